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
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/pipeline/blend"
)

type inspectOptions struct {
	json      bool
	thumbnail string
}

func newInspectCmd(g *globalFlags) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Show a .blend file's render settings, read without Blender",
		Long: `Inspect reads each .blend file directly (plain, gzip or zstd; Blender 2.4 to 5.x)
and prints the active scene's render settings: frame range, frame rate,
resolution, engine and output format. Blender is not needed and not started.`,
		Example: `  framefleet inspect scene.blend
  framefleet inspect --json shots/*.blend
  framefleet inspect --thumbnail preview.png scene.blend`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("inspect needs at least one .blend file: framefleet inspect FILE...")
			}
			if opts.thumbnail != "" && len(args) != 1 {
				return fmt.Errorf("--thumbnail writes one image, so give exactly one FILE (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			log := g.logger(cmd.ErrOrStderr())
			log.Debug("inspect", "files", len(args), "json", opts.json)
			return runInspect(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print one JSON object per file, one per line")
	cmd.Flags().StringVar(&opts.thumbnail, "thumbnail", "", "write the file's embedded preview to this PNG (one FILE only)")
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

// runInspect reports every file, even after one fails, and fails at the end
// if any did.
func runInspect(ctx context.Context, stdout, stderr io.Writer, files []string, opts inspectOptions) error {
	failed, printed := 0, 0
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := blend.ReadFile(path)
		if err == nil && opts.thumbnail != "" {
			err = writeThumbnail(info, opts.thumbnail)
		}
		if err == nil {
			// The path as given, not the reader's base name: it tells
			// shots/a/scene.blend from shots/b/scene.blend.
			info.File = path
		}
		if err != nil {
			ferr := &fileError{path: path, err: err}
			if len(files) == 1 {
				return ferr
			}
			failed++
			fmt.Fprintln(stderr, "framefleet:", ferr)
			continue
		}
		if opts.json {
			if err := json.NewEncoder(stdout).Encode(info); err != nil {
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

// writeThumbnail saves the embedded preview as a PNG. It writes a temporary
// file beside out and renames it, so a failure never leaves half an image.
func writeThumbnail(info *blend.Info, out string) error {
	if info.Thumbnail == nil {
		return errors.New("the file has no embedded thumbnail (Blender before 2.5 stores none, and newer ones skip it " +
			"when Preferences > Save & Load > Save Preview Images is off): turn that on and save the file again in Blender")
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".thumbnail-*.png")
	if err != nil {
		return fmt.Errorf("writing thumbnail: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := info.Thumbnail.PNG(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing thumbnail %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing thumbnail %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("writing thumbnail: %w", err)
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
