package blend

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// resolvedPath is a stored path made absolute on this machine.
type resolvedPath struct {
	file string // slash-separated absolute path
	// local is false for a path that names another machine's file system
	// (C:\... or \\server\... on Linux): it cannot exist here and must not
	// be looked up, since the OS would take "C:/x" as relative.
	local bool
}

var windowsDrive = regexp.MustCompile(`^[A-Za-z]:[\\/]`)

// resolveStored makes a path as Blender stores it absolute:
//   - "//x" is relative to blendDir, the folder of the .blend that stores it
//     (a library's own paths are relative to that library);
//   - backslashes are separators (files saved on Windows: "//tex\a.png");
//   - "C:\x" and "\\server\share\x" are absolute Windows paths, kept as
//     they are ("C:/x") and marked non-local when this is not Windows;
//   - "/x" is absolute;
//   - anything else is taken relative to blendDir as well: Blender would use
//     its working directory, which for a render is the blend's folder.
//
// ".." and "." are resolved lexically, as Blender does (BLI_path_normalize).
func resolveStored(stored, blendDir string) resolvedPath {
	s := stored
	switch {
	case strings.HasPrefix(s, "//"):
		rel := strings.ReplaceAll(s[2:], `\`, "/")
		return resolvedPath{file: filepath.ToSlash(filepath.Join(blendDir, filepath.FromSlash(rel))), local: true}
	case windowsDrive.MatchString(s):
		if runtime.GOOS == "windows" {
			return resolvedPath{file: filepath.ToSlash(filepath.Clean(s)), local: true}
		}
		return resolvedPath{file: s[:2] + path.Clean(strings.ReplaceAll(s[2:], `\`, "/")), local: false}
	case strings.HasPrefix(s, `\\`):
		if runtime.GOOS == "windows" {
			return resolvedPath{file: filepath.ToSlash(filepath.Clean(s)), local: true}
		}
		// path.Clean would fold the UNC prefix into one slash.
		return resolvedPath{file: "//" + strings.TrimPrefix(path.Clean("/"+strings.ReplaceAll(s[2:], `\`, "/")), "/"), local: false}
	case strings.HasPrefix(s, "/"):
		return resolvedPath{file: path.Clean(s), local: true}
	}
	rel := strings.ReplaceAll(s, `\`, "/")
	return resolvedPath{file: filepath.ToSlash(filepath.Join(blendDir, filepath.FromSlash(rel))), local: true}
}

// statFile returns whether a resolved path is an existing regular file (or
// a link to one) and its size.
func statFile(r resolvedPath) (bool, int64) {
	if !r.local {
		return false, 0
	}
	st, err := os.Stat(filepath.FromSlash(r.file))
	if err != nil || !st.Mode().IsRegular() {
		return false, 0
	}
	return true, st.Size()
}

// listDir returns the names of the regular files in dir, sorted; nil when
// dir cannot be read.
func listDir(dir string) []string {
	entries, err := os.ReadDir(filepath.FromSlash(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
			continue
		}
		if e.Type()&os.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(filepath.FromSlash(dir), e.Name())); err == nil && st.Mode().IsRegular() {
				out = append(out, e.Name())
			}
		}
	}
	slices.Sort(out)
	return out
}

// walkFiles returns every regular file under dir (recursively), sorted,
// slash-separated and absolute. Symbolic links to folders are not followed.
func walkFiles(dir string) []string {
	var out []string
	_ = filepath.WalkDir(filepath.FromSlash(dir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts are simply not listed
		}
		if d.Type().IsRegular() {
			out = append(out, filepath.ToSlash(p))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// frameFiles lists the existing files of the frame sequence that file
// belongs to: Blender numbers frames by the last run of digits in the file
// name ("shot_0001.png", "cache.0120.vdb"), so every file in the folder
// with the same text before and after that run is a frame. Without digits
// the file is its own sequence.
func frameFiles(file string) []string {
	dir, base := path.Split(file)
	head, _, tail, ok := splitFrameNumber(base)
	if !ok {
		return existing([]string{file})
	}
	var out []string
	for _, name := range listDir(dir) {
		h, _, t, ok := splitFrameNumber(name)
		if ok && h == head && t == tail {
			out = append(out, dir+name)
		}
	}
	return out
}

// splitFrameNumber splits "shot_0012.png" into "shot_", "0012", ".png".
func splitFrameNumber(name string) (head, digits, tail string, ok bool) {
	end := -1
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] >= '0' && name[i] <= '9' {
			end = i + 1
			break
		}
	}
	if end < 0 {
		return "", "", "", false
	}
	start := end
	for start > 0 && name[start-1] >= '0' && name[start-1] <= '9' {
		start--
	}
	return name[:start], name[start:end], name[end:], true
}

var (
	udimNumber   = regexp.MustCompile(`^1[0-9]{3}$`)
	uvtileNumber = regexp.MustCompile(`^u[0-9]+_v[0-9]+$`)
	// A 1001-style tile number in a file name that has no token: Blender
	// turns "wood.1001.png" into "wood.<UDIM>.png" when it loads a tiled image.
	udimInName = regexp.MustCompile(`(^|[^0-9])(1[0-9]{3})([^0-9]|$)`)
)

// tileFiles lists the existing tiles of a UDIM image. file holds the
// <UDIM> or <UVTILE> token, or a tile number (1001-style) in its name.
func tileFiles(file string) []string {
	dir, base := path.Split(file)
	token, number := "", udimNumber
	switch {
	case strings.Contains(base, "<UDIM>"):
		token = "<UDIM>"
	case strings.Contains(base, "<UVTILE>"):
		token, number = "<UVTILE>", uvtileNumber
	default:
		locs := udimInName.FindAllStringSubmatchIndex(base, -1)
		if len(locs) == 0 {
			return existing([]string{file})
		}
		last := locs[len(locs)-1]
		base = base[:last[4]] + "<UDIM>" + base[last[5]:]
		token = "<UDIM>"
	}
	before, after, _ := strings.Cut(base, token)
	var out []string
	for _, name := range listDir(dir) {
		if len(name) <= len(before)+len(after) || !strings.HasPrefix(name, before) || !strings.HasSuffix(name, after) {
			continue
		}
		if mid := name[len(before) : len(name)-len(after)]; number.MatchString(mid) {
			if token == "<UDIM>" {
				if n, _ := strconv.Atoi(mid); n < 1001 || n > 2000 {
					continue
				}
			}
			out = append(out, dir+name)
		}
	}
	return out
}

func existing(files []string) []string {
	var out []string
	for _, f := range files {
		if ok, _ := statFile(resolvedPath{file: f, local: true}); ok {
			out = append(out, f)
		}
	}
	return out
}

// isTiled reports whether a stored image path names UDIM tiles by token.
func hasTileToken(p string) bool {
	return strings.Contains(p, "<UDIM>") || strings.Contains(p, "<UVTILE>")
}

// ResolvePath resolves a path as stored in the .blend at blendFile, the
// way Trace does: "//" is blendFile's folder, backslashes are separators,
// ".." is resolved lexically. local is false for a Windows drive or UNC
// path on another OS: file is then that path with forward slashes
// ("C:/Users/me/a.png") and names nothing on this machine.
func ResolvePath(stored, blendFile string) (file string, local bool) {
	r := resolveStored(stored, filepath.Dir(blendFile))
	return r.file, r.local
}
