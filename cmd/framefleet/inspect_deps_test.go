package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/golden"
	"github.com/framefleet/framefleet/internal/testenv"
)

// TestInspectDeps runs inspect --deps on projects made by
// pipeline/blend/testdata/make_deps.py, in one Blender run for all subtests.
func TestInspectDeps(t *testing.T) {
	root := t.TempDir()
	script := filepath.Join(testenv.RepoRoot(), "pipeline", "blend", "testdata", "make_deps.py")
	testenv.BlenderScript(t, script, root, "library", "windows", "image_sequence", "packed")
	// A library texture goes missing: the table and JSON must name it and
	// the datablock that uses it.
	if err := os.Remove(filepath.Join(root, "library", "lib", "tex", "right.png")); err != nil {
		t.Fatal(err)
	}
	t.Run("json", func(t *testing.T) { testInspectDepsJSON(t, root) })
	t.Run("table", func(t *testing.T) { testInspectDepsTable(t, root) })
}

// testInspectDepsJSON: one object per file argument, whose dependencies
// array has one item per file with the documented keys.
func testInspectDepsJSON(t *testing.T, root string) {
	lib := filepath.ToSlash(filepath.Join(root, "library"))
	seq := filepath.ToSlash(filepath.Join(root, "image_sequence"))
	code, stdout, stderr := inspectRun(t, "--deps", "--json", lib+"/shots/shot.blend", seq+"/scene.blend", root+"/packed/scene.blend")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one JSON object per file:\n%s", len(lines), stdout)
	}
	type item struct {
		Kind       string   `json:"kind"`
		StoredPath string   `json:"stored_path"`
		File       string   `json:"file"`
		Exists     bool     `json:"exists"`
		Size       int64    `json:"size"`
		UsedBy     []string `json:"used_by"`
	}
	want := [][]item{
		{
			{"image", "//tex/right.png", lib + "/lib/tex/right.png", false, 0, []string{"IMPropTex"}},
			{"image", "//../textures/left.png", lib + "/textures/left.png", true, fileSize(t, lib+"/textures/left.png"), []string{"IMleft"}},
			{"library", "//../lib/prop.blend", lib + "/lib/prop.blend", true, fileSize(t, lib+"/lib/prop.blend"), []string{"OBProp"}},
		},
		{
			{"image", "//seq/frame_0001.png", seq + "/seq/frame_0001.png", true, fileSize(t, seq+"/seq/frame_0001.png"), []string{"IMframes"}},
			{"image", "//seq/frame_0001.png", seq + "/seq/frame_0002.png", true, fileSize(t, seq+"/seq/frame_0002.png"), []string{"IMframes"}},
			{"image", "//seq/frame_0001.png", seq + "/seq/frame_0003.png", true, fileSize(t, seq+"/seq/frame_0003.png"), []string{"IMframes"}},
		},
		{}, // packed: nothing outside the .blend
	}
	for i, line := range lines {
		var got struct {
			Scene        string            `json:"scene"`
			Dependencies []json.RawMessage `json:"dependencies"`
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v\n%s", i, err, line)
		}
		if got.Dependencies == nil {
			t.Errorf("line %d has no dependencies array (an empty one is [])", i)
		}
		if len(got.Dependencies) != len(want[i]) {
			t.Errorf("line %d: %d dependencies, want %d:\n%s", i, len(got.Dependencies), len(want[i]), line)
			continue
		}
		for j, raw := range got.Dependencies {
			var keys map[string]any
			var it item
			if err := json.Unmarshal(raw, &keys); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"kind", "stored_path", "file", "exists", "size", "used_by"} {
				if _, ok := keys[k]; !ok {
					t.Errorf("line %d item %d lacks %q", i, j, k)
				}
			}
			if err := json.Unmarshal(raw, &it); err != nil {
				t.Fatal(err)
			}
			w := want[i][j]
			if it.Kind != w.Kind || it.StoredPath != w.StoredPath || it.File != w.File || it.Exists != w.Exists ||
				it.Size != w.Size || strings.Join(it.UsedBy, ",") != strings.Join(w.UsedBy, ",") {
				t.Errorf("line %d item %d = %+v, want %+v", i, j, it, w)
			}
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// testInspectDepsTable compares the readable table with
// testdata/inspect_deps.golden (go test -run TestInspectDeps -update
// rewrites it). Files under the working directory are shown relative to
// it; the library's size, which depends on Blender's build, is $SIZE.
func testInspectDepsTable(t *testing.T, root string) {
	var stdout string
	// In a subtest so that the working directory is back for golden().
	t.Run("in the projects folder", func(t *testing.T) {
		t.Chdir(root)
		var code int
		var stderr string
		code, stdout, stderr = inspectRun(t, "--deps", "library/shots/shot.blend", "windows/scene.blend", "packed/scene.blend")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
	libSize := formatSize(fileSize(t, filepath.Join(root, "library", "lib", "prop.blend")))
	// Keep the columns: the placeholder is padded to the real value's width.
	got := strings.Replace(stdout, libSize, "$SIZE"+strings.Repeat(" ", max(0, len(libSize)-len("$SIZE"))), 1)
	golden.Check(t, "inspect_deps.golden", got)
}

func TestInspectDepsErrors(t *testing.T) {
	dir := t.TempDir()
	notBlend := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notBlend, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--deps", "-"}, "cannot read standard input"},
		{[]string{"--deps", "--thumbnail", filepath.Join(dir, "t.png"), notBlend}, "--deps and --thumbnail"},
		{[]string{"--deps", notBlend}, "not a .blend file"},
		{[]string{"--deps", filepath.Join(dir, "gone.blend")}, "file not found"},
	}
	for _, tc := range cases {
		code, _, stderr := inspectRun(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("inspect %q: exit %d, stderr %q; want a failure saying %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
