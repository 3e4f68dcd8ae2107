package blend_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/blend"
)

// TestAgainstBlender has the real Blender save scenes with known settings
// (testdata/make_scenes.py) and compares the reader's answer for every file
// with what Blender's own Python API reports after reopening it: several
// scenes with the active one not first, 30/1.001 fps, 37 %, every engine,
// PNG/JPEG/OPEN_EXR/FFMPEG, zstd and plain, a 20,000-frame range with step 7
// and a 60-byte unicode scene name.
func TestAgainstBlender(t *testing.T) {
	dir := t.TempDir()
	script, err := filepath.Abs(filepath.Join("testdata", "make_scenes.py"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.BlenderScript(t, script, dir)

	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]map[string]any
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatalf("expected.json from make_scenes.py: %v", err)
	}
	// make_scenes.py defines 14 cases; fewer means it silently skipped some.
	if len(expected) < 14 {
		t.Fatalf("make_scenes.py answered for %d files, want 14", len(expected))
	}

	// Guard the script itself: the interesting cases must really be there.
	var multiScene, activeNotFirst int
	for _, want := range expected {
		if scenes, _ := want["scenes"].([]any); len(scenes) > 1 {
			multiScene++
			if scenes[0] != want["scene"] {
				activeNotFirst++
			}
		}
	}
	if multiScene < 4 || activeNotFirst < 4 {
		t.Fatalf("make_scenes.py produced %d multi-scene files, %d with the active scene not first; want at least 4 of each",
			multiScene, activeNotFirst)
	}

	for name, want := range expected {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			info, err := blend.ReadFile(path)
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			got := asJSON(t, info)
			if got["file"] != name { // ReadFile reports the base name
				t.Errorf("file = %v, want %s", got["file"], name)
			}
			delete(got, "file")
			compareToBlender(t, got, want)

			// The same bytes through the other two entry points.
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			at, err := blend.ReadAt(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("ReadAt: %v", err)
			}
			stream, err := blend.ReadStream(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("ReadStream: %v", err)
			}
			for via, other := range map[string]*blend.Info{"ReadAt": at, "ReadStream": stream} {
				t.Run(via, func(t *testing.T) {
					o := asJSON(t, other)
					delete(o, "file")
					compareToBlender(t, o, want)
				})
			}
		})
	}
}

// asJSON returns the reader's answer under its JSON names, the names
// make_scenes.py uses for Blender's answers.
func asJSON(t *testing.T, info *blend.Info) map[string]any {
	t.Helper()
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// compareToBlender checks every key Blender answered. fps_base is a float32
// in the file, so it is compared to within float32 precision. Scene order is
// compared exactly: Blender writes bmain's scene list, which is the order of
// bpy.data.scenes.
func compareToBlender(t *testing.T, got, want map[string]any) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		w, g := want[k], got[k]
		if k == "fps_base" {
			wf, _ := w.(float64)
			gf, ok := g.(float64)
			if !ok || math.Abs(gf-wf) > 1e-6 {
				t.Errorf("fps_base = %v, Blender says %v", g, w)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %#v, Blender says %#v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("reader reports %s = %v, which Blender's answers do not have", k, got[k])
		}
	}
}
