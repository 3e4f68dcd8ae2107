package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/blend"
)

// inspectRun runs the CLI in-process and returns exit status, stdout, stderr.
func inspectRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"inspect"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// sharedExpected loads ../shared/blendfiles/expected.json: real files and
// the values Blender stores in them.
func sharedExpected(t *testing.T) (dir string, expected map[string]map[string]any) {
	t.Helper()
	return filepath.Join(testenv.Shared(t), "blendfiles"), testenv.CorpusExpected(t)
}

// jsonFields are the only keys --json may print (engine is left out for
// files that store none).
var jsonFields = []string{
	"file", "version", "compression", "scene", "scenes", "frame_start", "frame_end", "frame_step",
	"fps", "fps_base", "resolution_x", "resolution_y", "resolution_percentage", "engine",
	"file_format", "frame_count",
}

func TestInspectJSONMatchesExpected(t *testing.T) {
	dir, expected := sharedExpected(t)
	names := slices.Sorted(maps.Keys(expected))
	var paths []string
	for _, n := range names {
		paths = append(paths, filepath.Join(dir, n))
	}

	code, stdout, stderr := inspectRun(t, append([]string{"--json"}, paths...)...)
	if code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(paths) {
		t.Fatalf("got %d lines for %d files:\n%s", len(lines), len(paths), stdout)
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", i+1, err, line)
		}
		name := names[i]
		t.Run(name, func(t *testing.T) {
			for k := range got {
				if !slices.Contains(jsonFields, k) {
					t.Errorf("unexpected JSON field %q", k)
				}
			}
			if got["file"] != paths[i] {
				t.Errorf("file = %v, want %s (files must come out in argument order)", got["file"], paths[i])
			}
			want := expected[name]
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if k == "fps_base" { // a float32 on disk
					if g, ok := got[k].(float64); !ok || math.Abs(g-want[k].(float64)) > 1e-6 {
						t.Errorf("fps_base = %v, want %v", got[k], want[k])
					}
					continue
				}
				if !reflect.DeepEqual(got[k], want[k]) {
					t.Errorf("%s = %#v, want %#v", k, got[k], want[k])
				}
			}
			for _, k := range jsonFields {
				if _, ok := want[k]; !ok && k != "file" {
					if _, present := got[k]; present {
						t.Errorf("%s = %v, but the file stores none", k, got[k])
					}
				}
			}
		})
	}
}

func TestInspectTable(t *testing.T) {
	dir, expected := sharedExpected(t)
	names := []string{"00_slide_negative_frames.blend", "BlenderDefault_248.blend", "BlenderDefault_250_Compressed.blend"}
	var paths []string
	for _, n := range names {
		if expected[n] == nil {
			t.Fatalf("%s is not in expected.json", n)
		}
		paths = append(paths, filepath.Join(dir, n))
	}
	code, stdout, stderr := inspectRun(t, paths...)
	if code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	blocks := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n\n")
	if len(blocks) != len(paths) {
		t.Fatalf("want one block per file (%d), got %d:\n%s", len(paths), len(blocks), stdout)
	}
	for i, block := range blocks {
		want := expected[names[i]]
		t.Run(names[i], func(t *testing.T) {
			rows := tableRows(t, block)
			if rows[""] != paths[i] {
				t.Errorf("block starts with %q, want the file name %s", rows[""], paths[i])
			}
			num := func(k string) int { return int(want[k].(float64)) }
			check := func(row, wantSub string) {
				t.Helper()
				if !strings.Contains(rows[row], wantSub) {
					t.Errorf("row %q = %q, want it to contain %q\n%s", row, rows[row], wantSub, block)
				}
			}
			check("version", want["version"].(string))
			check("compression", want["compression"].(string))
			check("scene", want["scene"].(string))
			check("frames", fmt.Sprintf("%d-%d, step %d (%d frames)", num("frame_start"), num("frame_end"), num("frame_step"), num("frame_count")))
			pct := num("resolution_percentage")
			check("resolution", fmt.Sprintf("%dx%d at %d%% = %dx%d px", num("resolution_x"), num("resolution_y"), pct,
				num("resolution_x")*pct/100, num("resolution_y")*pct/100))
			check("fps", fmt.Sprint(num("fps")))
			check("output", want["file_format"].(string))
			if e, ok := want["engine"].(string); ok {
				check("engine", e)
			} else {
				check("engine", "none stored")
			}
			if _, ok := rows["thumbnail"]; !ok {
				t.Errorf("no thumbnail row:\n%s", block)
			}
		})
	}
	// The 3.4 file carries a preview, the 2.48 one none.
	w, h, _ := rawThumbnail(t, paths[0])
	if got, want := tableRows(t, blocks[0])["thumbnail"], fmt.Sprintf("yes (%dx%d)", w, h); got != want {
		t.Errorf("%s: thumbnail = %q, want %q", names[0], got, want)
	}
	if got := tableRows(t, blocks[1])["thumbnail"]; got != "no" {
		t.Errorf("%s: thumbnail = %q, want no", names[1], got)
	}
}

// tableRows splits an inspect block into label -> value; the first line
// (the file name) is under "".
func tableRows(t *testing.T, block string) map[string]string {
	t.Helper()
	lines := strings.Split(block, "\n")
	rows := map[string]string{"": lines[0]}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "  ") {
			t.Fatalf("row %q is not indented", l)
		}
		// Labels may contain one space ("other scenes"); columns are
		// separated by at least two.
		k, v, ok := strings.Cut(strings.TrimSpace(l), "  ")
		if !ok {
			t.Fatalf("row %q has no value column", l)
		}
		rows[k] = strings.TrimSpace(v)
	}
	return rows
}

func TestFormatFPS(t *testing.T) {
	for _, tc := range []struct {
		fps  int
		base float64
		want string
	}{
		{24, 1, "24"},
		{30, float64(float32(1.001)), "29.97 (30/1.001)"},
		{24, float64(float32(1.001)), "23.976 (24/1.001)"},
		{60, float64(float32(1.001)), "59.94 (60/1.001)"},
		{25, 2, "12.5 (25/2)"},
		{24, 0, "24/0 (invalid fps_base)"},
	} {
		if got := formatFPS(tc.fps, tc.base); got != tc.want {
			t.Errorf("formatFPS(%d, %v) = %q, want %q", tc.fps, tc.base, got, tc.want)
		}
	}
}

func TestFormatResolution(t *testing.T) {
	// Blender renders x*pct/100 rounded down: 1279 at 37% is 473 px wide.
	if got, want := formatResolution(1279, 721, 37), "1279x721 at 37% = 473x266 px"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// badFiles writes inputs the reader must refuse, each with the error kind
// it must report.
func badFiles(t *testing.T, good string) map[string]error {
	t.Helper()
	dir := t.TempDir()
	real, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]struct {
		data []byte
		kind error
	}{
		"empty.blend":     {nil, blend.ErrEmpty},
		"notes.blend":     {[]byte("these are not the frames you are looking for\n"), blend.ErrNotBlend},
		"lfs.blend":       {[]byte("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"), blend.ErrGitLFSPointer},
		"truncated.blend": {real[:len(real)/2], blend.ErrTruncated},
		"future.blend":    {append([]byte("BLENDER18-02v0600"), make([]byte, 64)...), blend.ErrUnsupportedFormat},
	}
	kinds := map[string]error{}
	for name, f := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		kinds[p] = f.kind
	}
	return kinds
}

func TestInspectBadFiles(t *testing.T) {
	dir, _ := sharedExpected(t)
	good := filepath.Join(dir, "00_slide_negative_frames.blend")
	kinds := badFiles(t, good)
	missing := filepath.Join(t.TempDir(), "missing.blend")

	for _, asJSON := range []bool{false, true} {
		args := []string{good}
		for p := range kinds {
			args = append(args, p)
		}
		args = append(args, missing)
		if asJSON {
			args = append(args, "--json")
		}
		code, stdout, stderr := inspectRun(t, args...)
		if code == 0 {
			t.Fatalf("json=%v: exit status 0 with %d bad files", asJSON, len(kinds)+1)
		}
		// The good file is still reported.
		if !strings.Contains(stdout, good) || !strings.Contains(stdout, "Scene") {
			t.Errorf("json=%v: the good file is missing from stdout:\n%s", asJSON, stdout)
		}
		for p, kind := range kinds {
			_, readErr := blend.ReadFile(p)
			if !errors.Is(readErr, kind) {
				t.Errorf("%s: reader says %v, want kind %v", filepath.Base(p), readErr, kind)
				continue
			}
			if want := "framefleet: " + p + ": " + formatMessage(t, readErr) + "\n"; !strings.Contains(stderr, want) {
				t.Errorf("json=%v: stderr lacks %q:\n%s", asJSON, want, stderr)
			}
			if strings.Contains(stdout, p) {
				t.Errorf("json=%v: bad file %s appears on stdout", asJSON, p)
			}
		}
		if !strings.Contains(stderr, "framefleet: "+missing+": file not found: check the path") {
			t.Errorf("json=%v: stderr does not explain the missing file:\n%s", asJSON, stderr)
		}
		if summary := fmt.Sprintf("%d of %d files could not be read", len(kinds)+1, len(kinds)+2); !strings.Contains(stderr, summary) {
			t.Errorf("json=%v: stderr lacks %q:\n%s", asJSON, summary, stderr)
		}
	}
}

// formatMessage is the reader's typed message inside err.
func formatMessage(t *testing.T, err error) string {
	t.Helper()
	var fe *blend.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("reader error %v is not a *blend.FormatError", err)
	}
	return fe.Error()
}

func TestInspectOneBadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.blend")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := inspectRun(t, p)
	_, readErr := blend.ReadFile(p)
	if code == 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if want := "framefleet: " + p + ": " + formatMessage(t, readErr) + "\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

func TestInspectNoArgs(t *testing.T) {
	code, _, stderr := inspectRun(t)
	if code == 0 || !strings.Contains(stderr, "at least one .blend file") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestInspectThumbnail(t *testing.T) {
	dir, _ := sharedExpected(t)
	src := filepath.Join(dir, "00_slide_negative_frames.blend")
	w, h, raw := rawThumbnail(t, src)
	out := filepath.Join(t.TempDir(), "thumb.png")

	code, stdout, stderr := inspectRun(t, "--thumbnail", out, src)
	if code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "written to "+out) {
		t.Errorf("table does not say where the thumbnail went:\n%s", stdout)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", out, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("PNG is %dx%d, the TEST block says %dx%d", b.Dx(), b.Dy(), w, h)
	}
	// The TEST block stores rows bottom-up; the PNG must be top-down.
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := ((h-1-y)*w + x) * 4
			want := color.NRGBA{raw[o], raw[o+1], raw[o+2], raw[o+3]}
			got := color.NRGBAModel.Convert(img.At(x+img.Bounds().Min.X, y+img.Bounds().Min.Y)).(color.NRGBA)
			if want.A == 0 { // colour is meaningless where fully transparent
				got.R, got.G, got.B, want.R, want.G, want.B = 0, 0, 0, 0, 0, 0
			}
			if got != want {
				t.Fatalf("pixel (%d,%d) = %v, want %v (from stored row %d)", x, y, got, want, h-1-y)
			}
		}
	}
	if isUniform(img) {
		t.Error("thumbnail is a single colour; the pixel comparison proves nothing")
	}

	// With --json, stdout stays one JSON object per file.
	out2 := filepath.Join(t.TempDir(), "thumb.png")
	code, stdout, stderr = inspectRun(t, "--json", "--thumbnail", out2, src)
	var obj map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &obj) != nil || strings.Count(stdout, "\n") != 1 {
		t.Errorf("--json --thumbnail: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(out2); err != nil {
		t.Errorf("--json --thumbnail wrote no image: %v", err)
	}
}

func TestInspectThumbnailErrors(t *testing.T) {
	dir, _ := sharedExpected(t)
	out := filepath.Join(t.TempDir(), "thumb.png")

	code, _, stderr := inspectRun(t, "--thumbnail", out, filepath.Join(dir, "00_slide_negative_frames.blend"), filepath.Join(dir, "yxa_1.blend"))
	if code == 0 || !strings.Contains(stderr, "exactly one FILE") {
		t.Errorf("two files: exit %d, stderr %q", code, stderr)
	}

	noThumb := filepath.Join(dir, "BlenderDefault_248.blend")
	code, _, stderr = inspectRun(t, "--json", "--thumbnail", out, noThumb)
	if code == 0 || !strings.Contains(stderr, noThumb+": the file has no embedded thumbnail") {
		t.Errorf("file without thumbnail: exit %d, stderr %q", code, stderr)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Errorf("failed --thumbnail left files behind: %v", entries)
	}
}

// rawThumbnail finds the TEST block of an uncompressed little-endian .blend
// with 8-byte pointers by walking the block headers itself (independent of
// the reader): width, height and the stored bottom-up RGBA rows.
func rawThumbnail(t *testing.T, path string) (w, h int, rgba []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:9]) != "BLENDER-v" {
		t.Fatalf("%s: want an uncompressed 64-bit little-endian file, header %q", path, data[:12])
	}
	le := binary.LittleEndian
	for off := 12; off+24 <= len(data); {
		code := string(data[off : off+4])
		n := int(int32(le.Uint32(data[off+4:])))
		payload := data[off+24 : off+24+n]
		if code == "TEST" {
			w, h = int(int32(le.Uint32(payload))), int(int32(le.Uint32(payload[4:])))
			return w, h, payload[8:]
		}
		if code == "ENDB" {
			break
		}
		off += 24 + n
	}
	t.Fatalf("%s has no TEST block", path)
	return 0, 0, nil
}

func isUniform(img image.Image) bool {
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if img.At(x, y) != first {
				return false
			}
		}
	}
	return true
}

// TestInspectBlenderScenes checks the table on files the real Blender saves
// (pipeline/blend/testdata/make_scenes.py): the active scene of several, and
// an NTSC rate, which no shared sample has.
func TestInspectBlenderScenes(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(testenv.RepoRoot(), "pipeline", "blend", "testdata", "make_scenes.py")
	testenv.BlenderScript(t, script, dir)
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]map[string]any
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatal(err)
	}

	for name, wantFPS := range map[string]string{
		"three_scenes_zstd.blend": "",
		"two_scenes.blend":        "",
		"ntsc_29_97_zstd.blend":   "29.97 (30/1.001)", // the display the CLI promises for 30/1.001
	} {
		t.Run(name, func(t *testing.T) {
			want := expected[name]
			if want == nil {
				t.Fatalf("make_scenes.py made no %s", name)
			}
			path := filepath.Join(dir, name)
			code, stdout, stderr := inspectRun(t, path)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			rows := tableRows(t, strings.TrimSuffix(stdout, "\n"))
			if rows["scene"] != want["scene"] {
				t.Errorf("scene = %q, Blender says %q", rows["scene"], want["scene"])
			}
			var others []string
			for _, s := range want["scenes"].([]any) {
				if s != want["scene"] {
					others = append(others, s.(string))
				}
			}
			if got := rows["other scenes"]; got != strings.Join(others, ", ") {
				t.Errorf("other scenes = %q, want %q", got, strings.Join(others, ", "))
			}
			if wantFPS == "" {
				wantFPS = fmt.Sprint(want["fps"])
			}
			if rows["fps"] != wantFPS {
				t.Errorf("fps = %q, want %q", rows["fps"], wantFPS)
			}
			if rows["compression"] != want["compression"] || rows["output"] != want["file_format"] || rows["engine"] != want["engine"] {
				t.Errorf("compression/output/engine = %q/%q/%q, Blender says %v/%v/%v", rows["compression"], rows["output"],
					rows["engine"], want["compression"], want["file_format"], want["engine"])
			}
		})
	}
}

// TestInspectStdin: FILE - reads standard input, which has no size to trust.
func TestInspectStdin(t *testing.T) {
	dir, expected := sharedExpected(t)
	name := "00_slide_negative_frames.blend"
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runInspect(t.Context(), bytes.NewReader(data), &stdout, &stderr, []string{"-"}, inspectOptions{json: true}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	want := expected[name]
	if got["file"] != "-" || got["scene"] != want["scene"] || got["frame_end"] != want["frame_end"] {
		t.Errorf("got %v, want file - and %v", got, want)
	}

	err = runInspect(t.Context(), strings.NewReader("not a blend"), &stdout, &stderr, []string{"-"}, inspectOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "standard input: not a .blend file") {
		t.Errorf("bad stdin: %v", err)
	}
}

// TestInspectJSONBadValuesPerFile: a file whose settings cannot be printed
// (fps_base NaN, which Blender saves if told to) fails alone, named; the
// other files are still printed.
func TestInspectJSONBadValuesPerFile(t *testing.T) {
	blender := testenv.Blender(t)
	dir, _ := sharedExpected(t)
	nan := filepath.Join(t.TempDir(), "nan.blend")
	cmd := exec.CommandContext(t.Context(), blender, "-b", "-Y", "--factory-startup", "--python-expr",
		"import bpy, sys; bpy.context.scene.render.fps_base = float('nan'); "+
			"bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1], compress=False)", "--", nan)
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	good1 := filepath.Join(dir, "00_slide_negative_frames.blend")
	good2 := filepath.Join(dir, "yxa_1.blend")
	code, stdout, stderr := inspectRun(t, "--json", good1, nan, good2)
	if code == 0 {
		t.Error("exit status 0")
	}
	if n := strings.Count(stdout, "\n"); n != 2 || !strings.Contains(stdout, good1) || !strings.Contains(stdout, good2) {
		t.Errorf("want the two good files on stdout, got:\n%s", stdout)
	}
	if !strings.Contains(stderr, "framefleet: "+nan+": corrupt .blend file") || !strings.Contains(stderr, "fps_base = NaN") {
		t.Errorf("stderr does not name the file and the field:\n%s", stderr)
	}
}

func TestInspectThumbnailOutputErrors(t *testing.T) {
	dir, _ := sharedExpected(t)
	src := filepath.Join(dir, "00_slide_negative_frames.blend")
	tmp := t.TempDir()
	missingDir := filepath.Join(tmp, "no-such-dir")
	out := filepath.Join(missingDir, "thumb.png")

	code, _, stderr := inspectRun(t, "--thumbnail", out, src)
	want := "cannot write thumbnail " + out + ": directory " + missingDir + " does not exist"
	if code == 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "file not found") || strings.Contains(stderr, src) {
		t.Errorf("missing output directory: exit %d, stderr %q, want %q and no blame on the input", code, stderr, want)
	}

	code, _, stderr = inspectRun(t, "--thumbnail", tmp, src)
	if code == 0 || !strings.Contains(stderr, "--thumbnail "+tmp+" is a directory: give the PNG's file name") {
		t.Errorf("--thumbnail DIR: exit %d, stderr %q", code, stderr)
	}

	good := filepath.Join(tmp, "thumb.png")
	if code, _, stderr := inspectRun(t, "--thumbnail", good, src); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	st, err := os.Stat(good)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o644 {
		t.Errorf("thumbnail mode %v, want 0644", perm)
	}
}
