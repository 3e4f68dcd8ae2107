package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/framefleet/framefleet/pipeline/blend"
)

type inspectOptions struct {
	json      bool
	thumbnail string
	deps      bool
}

func newInspectCmd(g *globalFlags) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Show a .blend file's render settings, read without Blender",
		Long: `Inspect reads each .blend file directly (plain, gzip or zstd; Blender 2.4 to 5.x)
and prints the active scene's render settings: frame range, frame rate,
resolution, engine and output format. Blender is not needed and not started.
FILE - reads the .blend from standard input.

With --deps it lists instead every external file the scene needs, found the
same way without Blender: images (UDIM tiles and sequences file by file),
linked libraries followed recursively, fonts, sounds, movie clips, Alembic
and USD caches, OpenVDB volumes, physics bakes and point caches, mesh
caches, multires data, ocean bakes, IES profiles and sequencer strips. Packed files and
data no scene uses are left out. Each row shows the kind, the path as the
.blend stores it, the file it resolves to here, its size, whether it was
found, and the datablocks that use it. Missing files are part of the answer:
the exit status is 0 when the file could be read.`,
		Example: `  framefleet inspect scene.blend
  framefleet inspect --json shots/*.blend
  framefleet inspect --thumbnail preview.png scene.blend
  framefleet inspect --deps shots/shot.blend
  framefleet inspect --deps --json shots/shot.blend | jq '.dependencies[] | select(.exists | not)'
  aws s3 cp s3://bucket/scene.blend - | framefleet inspect -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("inspect needs at least one .blend file: framefleet inspect FILE...")
			}
			if opts.thumbnail != "" && len(args) != 1 {
				return fmt.Errorf("--thumbnail writes one image, so give exactly one FILE (got %d)", len(args))
			}
			if opts.deps && opts.thumbnail != "" {
				return errors.New("--deps and --thumbnail do different things: run inspect once with each")
			}
			if opts.deps && slices.Contains(args, stdinName) {
				return errors.New("--deps needs the .blend's location to resolve its relative paths, so it cannot read standard input: give the file's path")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			log := g.logger(cmd.ErrOrStderr())
			log.Debug("inspect", "files", len(args), "json", opts.json)
			return runInspect(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print one JSON object per file, one per line")
	cmd.Flags().StringVar(&opts.thumbnail, "thumbnail", "", "write the file's embedded preview to this PNG (one FILE only)")
	cmd.Flags().BoolVar(&opts.deps, "deps", false, "list the external files each scene needs (textures, libraries, caches...) instead of its settings")
	return cmd
}

// inspectFailed reports how many files could not be read; each one has
// already been explained on stderr.
type inspectFailed struct{ failed, total int }

func (e *inspectFailed) Error() string {
	return fmt.Sprintf("inspect: %d of %d files could not be read", e.failed, e.total)
}

// fileError is the reader's error with the file name in front.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	if errors.Is(e.err, fs.ErrNotExist) {
		return e.path + ": file not found: check the path (relative paths start from " + workDir() + ")"
	}
	msg := e.err.Error()
	if strings.Contains(msg, e.path) { // errors from os already name it
		return msg
	}
	return e.path + ": " + msg
}

func (e *fileError) Unwrap() error { return e.err }

func workDir() string {
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "the current directory"
}

// stdinName is the FILE argument that means standard input.
const stdinName = "-"

// runInspect reports every file, even after one fails, and fails at the end
// if any did.
func runInspect(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, files []string, opts inspectOptions) error {
	if opts.deps {
		return runInspectDeps(ctx, stdout, stderr, files, opts)
	}
	if opts.thumbnail != "" {
		if err := checkThumbnailOut(opts.thumbnail); err != nil {
			return err
		}
	}
	failed, printed := 0, 0
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, out, err := inspectOne(stdin, path, opts)
		var outErr *thumbnailOutError
		if errors.As(err, &outErr) {
			return err // about the output, not the input file
		}
		if err != nil {
			ferr := &fileError{path: displayName(path), err: err}
			if len(files) == 1 {
				return ferr
			}
			failed++
			fmt.Fprintln(stderr, "framefleet:", ferr)
			continue
		}
		if opts.json {
			if _, err := stdout.Write(out); err != nil {
				return err
			}
			continue
		}
		if printed > 0 {
			fmt.Fprintln(stdout)
		}
		printed++
		if err := writeInfoTable(stdout, info, opts.thumbnail); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &inspectFailed{failed: failed, total: len(files)}
	}
	return nil
}

// inspectOne reads one file, writes its thumbnail if asked, and with --json
// encodes it (out), so an Info that cannot be encoded fails that file only.
func inspectOne(stdin io.Reader, path string, opts inspectOptions) (*blend.Info, []byte, error) {
	info, err := readInput(stdin, path)
	if err != nil {
		return nil, nil, err
	}
	if opts.thumbnail != "" {
		if err := writeThumbnail(info, opts.thumbnail); err != nil {
			return nil, nil, err
		}
	}
	// The path as given, not the reader's base name: it tells
	// shots/a/scene.blend from shots/b/scene.blend.
	info.File = path
	if !opts.json {
		return info, nil, nil
	}
	out, err := json.Marshal(info)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot print its settings as JSON: %w", err)
	}
	return info, append(out, '\n'), nil
}

// readInput reads path, or standard input for "-".
func readInput(stdin io.Reader, path string) (*blend.Info, error) {
	if path != stdinName {
		return blend.ReadFile(path)
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return nil, errors.New("standard input is a terminal, not a .blend: pipe the file in (framefleet inspect - < scene.blend)")
	}
	return blend.ReadStream(stdin)
}

func displayName(path string) string {
	if path == stdinName {
		return "standard input"
	}
	return path
}

// thumbnailOutError is a problem with the --thumbnail output path; it must
// not be reported as a problem with the .blend.
type thumbnailOutError struct{ msg string }

func (e *thumbnailOutError) Error() string { return e.msg }

// checkThumbnailOut fails early, before any file is read, when the
// --thumbnail path cannot be written: a directory, or in a missing one.
func checkThumbnailOut(out string) error {
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return &thumbnailOutError{fmt.Sprintf("--thumbnail %s is a directory: give the PNG's file name, e.g. --thumbnail %s",
			out, filepath.Join(out, "thumbnail.png"))}
	}
	dir := filepath.Dir(out)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &thumbnailOutError{fmt.Sprintf("cannot write thumbnail %s: directory %s does not exist: create it (mkdir -p %s) or choose another path",
			out, dir, dir)}
	case err != nil:
		return &thumbnailOutError{fmt.Sprintf("cannot write thumbnail %s: %v", out, err)}
	case !st.IsDir():
		return &thumbnailOutError{fmt.Sprintf("cannot write thumbnail %s: %s is not a directory", out, dir)}
	}
	return nil
}

// writeThumbnail saves the embedded preview as a PNG. It writes a temporary
// file beside out and renames it, so a failure never leaves half an image.
func writeThumbnail(info *blend.Info, out string) error {
	if info.Thumbnail == nil {
		return errors.New("the file has no embedded thumbnail (Blender before 2.5 stores none, and newer ones skip it " +
			"when Preferences > Save & Load > Save Preview Images is off): turn that on and save the file again in Blender")
	}
	if err := checkThumbnailOut(out); err != nil {
		return err
	}
	outErr := func(err error) error {
		msg := fmt.Sprintf("cannot write thumbnail %s: %v", out, err)
		if errors.Is(err, fs.ErrPermission) {
			msg += ": check that this user may write to " + filepath.Dir(out)
		}
		return &thumbnailOutError{msg}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".thumbnail-*.png")
	if err != nil {
		return outErr(err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	// CreateTemp makes the file 0600; an image is for everyone to read.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return outErr(err)
	}
	if err := info.Thumbnail.PNG(tmp); err != nil {
		tmp.Close()
		return outErr(err)
	}
	if err := tmp.Close(); err != nil {
		return outErr(err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return outErr(err)
	}
	return nil
}

func writeInfoTable(w io.Writer, info *blend.Info, thumbnailOut string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }

	fmt.Fprintln(tw, info.File)
	row("version", info.Version)
	row("compression", info.Compression)
	row("scene", info.Scene)
	if others := otherScenes(info); len(others) > 0 {
		row("other scenes", strings.Join(others, ", "))
	}
	row("frames", fmt.Sprintf("%d-%d, step %d (%d frames)", info.FrameStart, info.FrameEnd, info.FrameStep, info.FrameCount))
	row("fps", formatFPS(info.FPS, info.FPSBase))
	row("resolution", formatResolution(info.ResolutionX, info.ResolutionY, info.ResolutionPercentage))
	engine := info.Engine
	if engine == "" {
		engine = "(none stored: Blender before 2.5)"
	}
	row("engine", engine)
	row("output", info.FileFormat)
	thumb := "no"
	if t := info.Thumbnail; t != nil {
		thumb = fmt.Sprintf("yes (%dx%d)", t.Width, t.Height)
		if thumbnailOut != "" {
			thumb += ", written to " + thumbnailOut
		}
	}
	row("thumbnail", thumb)
	return tw.Flush()
}

func otherScenes(info *blend.Info) []string {
	var others []string
	for _, s := range info.Scenes {
		if s != info.Scene {
			others = append(others, s)
		}
	}
	return others
}

// formatFPS shows the rate Blender shows, plus the stored pair when
// fps_base is not 1: "24", "29.97 (30/1.001)".
func formatFPS(fps int, base float64) string {
	if base <= 0 || math.IsNaN(base) || math.IsInf(base, 0) {
		return fmt.Sprintf("%d/%g (invalid fps_base)", fps, base)
	}
	// fps_base is a float32 on disk (1.001 reads as 1.00100005), and
	// Blender's presets use thousandths.
	b := math.Round(base*1000) / 1000
	if b == 1 {
		return strconv.Itoa(fps)
	}
	rate := math.Round(float64(fps)/base*1000) / 1000
	return fmt.Sprintf("%s (%d/%s)", strconv.FormatFloat(rate, 'f', -1, 64), fps, strconv.FormatFloat(b, 'f', -1, 64))
}

// formatResolution shows the stored size and, like Blender, the rendered
// size: resolution times percentage, rounded down.
func formatResolution(x, y, pct int) string {
	return fmt.Sprintf("%dx%d at %d%% = %dx%d px", x, y, pct, x*pct/100, y*pct/100)
}

// runInspectDeps traces each file; like the settings view it reports every
// file, even after one fails, and fails at the end if any did. Missing
// dependencies are part of the answer, not a failure of inspect.
func runInspectDeps(ctx context.Context, stdout, stderr io.Writer, files []string, opts inspectOptions) error {
	failed := 0
	for i, path := range files {
		deps, err := blend.Trace(ctx, path)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			ferr := &fileError{path: path, err: err}
			if len(files) == 1 {
				return ferr
			}
			failed++
			fmt.Fprintln(stderr, "framefleet:", ferr)
			continue
		}
		if opts.json {
			out, err := json.Marshal(deps)
			if err != nil {
				return fmt.Errorf("%s: cannot print its dependencies as JSON: %w", path, err)
			}
			if _, err := stdout.Write(append(out, '\n')); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := writeDepsTable(stdout, path, deps); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &inspectFailed{failed: failed, total: len(files)}
	}
	return nil
}

// writeDepsTable prints one scene's dependencies: a summary line, then one
// row per file. A file stored in a linked library names that library, by
// its path relative to the scene's folder, next to its users.
func writeDepsTable(w io.Writer, path string, deps *blend.Deps) error {
	missing := len(deps.Missing())
	summary := fmt.Sprintf("%d files", len(deps.Dependencies))
	if len(deps.Dependencies) == 1 {
		summary = "1 file"
	}
	if missing > 0 {
		summary += fmt.Sprintf(", %d missing", missing)
	}
	fmt.Fprintf(w, "%s: %s\n", path, summary)
	if len(deps.Dependencies) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tSTORED PATH\tFILE\tSIZE\tSTATUS\tUSED BY")
		sceneDir := filepath.Dir(filepath.FromSlash(deps.Scene))
		wd, _ := os.Getwd()
		for _, d := range deps.Dependencies {
			size, status := formatSize(d.Size), "found"
			if !d.Exists {
				size, status = "-", "MISSING"
			}
			users := strings.Join(d.UsedBy, ", ")
			if d.Blend != deps.Scene {
				in := filepath.FromSlash(d.Blend)
				if rel, err := filepath.Rel(sceneDir, in); err == nil {
					in = rel
				}
				users += " (in " + filepath.ToSlash(in) + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", d.Kind, d.StoredPath, shownPath(wd, d.File), size, status, users)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, warning := range deps.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warning)
	}
	if missing > 0 {
		fmt.Fprintln(w, "  fix: put the missing files where the paths point, or in Blender use File > External Data > Find Missing Files (or Pack Resources), then save")
	}
	return nil
}

// shownPath is file relative to the working directory when it is inside
// it (shorter to read), else the absolute path as resolved.
func shownPath(wd, file string) string {
	if wd == "" || !filepath.IsAbs(filepath.FromSlash(file)) {
		return file
	}
	rel, err := filepath.Rel(wd, filepath.FromSlash(file))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return file
	}
	return filepath.ToSlash(rel)
}

// formatSize is a size people read: "72 B", "1.5 KiB", "3.2 GiB".
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
