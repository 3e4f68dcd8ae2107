package blend

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestTraceOceanCache: an ocean modifier that reads its bake lists the
// baked maps. Blender in background mode never sets the modifier's
// "cached" flag after baking (make_deps.py), so the test sets that one
// byte in Blender's file, found through the file's own catalogue.
func TestTraceOceanCache(t *testing.T) {
	src := filepath.Join(DepProjects(t), "ocean")
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(src, "scene.blend"))
	if err != nil {
		t.Fatal(err)
	}
	bf, err := newBlockFile(strings.NewReader(string(data)), int64(len(data)), defaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, ok, err := bf.dna.lookup("OceanModifierData", "cached")
	if err != nil || !ok {
		t.Fatalf("no OceanModifierData.cached: %v", err)
	}
	patched := 0
	for _, b := range bf.heads {
		if bf.structName(b) == "OceanModifierData" {
			data[bf.payloadStart(b)+int64(f.offset)] = 1
			patched++
		}
	}
	if patched != 1 {
		t.Fatalf("%d ocean modifiers, want 1", patched)
	}
	if err := os.WriteFile(filepath.Join(dir, "scene.blend"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "ocean"), os.DirFS(filepath.Join(src, "ocean"))); err != nil {
		t.Fatal(err)
	}
	deps, err := Trace(context.Background(), filepath.Join(dir, "scene.blend"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range deps.Dependencies {
		got = append(got, string(d.Kind)+" "+d.StoredPath+" "+strings.TrimPrefix(d.File, filepath.ToSlash(dir)+"/")+" "+strings.Join(d.UsedBy, ","))
	}
	want := []string{
		"ocean //ocean/ ocean/disp_0001.exr OBSea/Ocean",
		"ocean //ocean/ ocean/disp_0002.exr OBSea/Ocean",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestResolveStored(t *testing.T) {
	blendDir := filepath.FromSlash("/proj/shots")
	cases := []struct {
		stored string
		file   string
		local  bool
	}{
		{"//tex/a.png", "/proj/shots/tex/a.png", true},
		{"//../textures/a.png", "/proj/textures/a.png", true},
		{"//../../../../a.png", "/a.png", true}, // ".." stops at the root, as in Blender
		{`//tex\sub\a.png`, "/proj/shots/tex/sub/a.png", true},
		{"//./tex//a.png", "/proj/shots/tex/a.png", true},
		{"/abs/dir/../a.png", "/abs/a.png", true},
		{"tex/a.png", "/proj/shots/tex/a.png", true},
		{`C:\Users\me\tex\..\a.png`, "C:/Users/me/a.png", false},
		{"d:/assets/a.png", "d:/assets/a.png", false},
		{`\\server\share\tex\a.png`, "//server/share/tex/a.png", false},
	}
	for _, tc := range cases {
		got := resolveStored(tc.stored, blendDir)
		if got.file != tc.file || got.local != tc.local {
			t.Errorf("resolveStored(%q) = %+v, want %s local=%v", tc.stored, got, tc.file, tc.local)
		}
	}
}

func TestFrameAndTileFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"shot_0001.png", "shot_0002.png", "shot_0010.png", "shot_0001.exr", "shotA_0001.png", "shot_.png",
		"wood.1001.png", "wood.1002.png", "wood.1011.png", "wood.0999.png", "wood.2001.png", "wood.1001.png.bak",
		"rock.u1_v1.png", "rock.u2_v1.png", "rock.png",
		"nodigits.png",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "shot_0003.png"), 0o755); err != nil { // a folder, not a frame
		t.Fatal(err)
	}
	d := filepath.ToSlash(dir) + "/"
	cases := []struct {
		name string
		list func(string) []string
		file string
		want []string
	}{
		{"sequence", frameFiles, "shot_0001.png", []string{"shot_0001.png", "shot_0002.png", "shot_0010.png"}},
		{"single", frameFiles, "nodigits.png", []string{"nodigits.png"}},
		{"absent", frameFiles, "gone_0001.png", nil},
		{"udim token", tileFiles, "wood.<UDIM>.png", []string{"wood.1001.png", "wood.1002.png", "wood.1011.png"}},
		{"udim number", tileFiles, "wood.1001.png", []string{"wood.1001.png", "wood.1002.png", "wood.1011.png"}},
		{"uvtile", tileFiles, "rock.<UVTILE>.png", []string{"rock.u1_v1.png", "rock.u2_v1.png"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.list(d + tc.file)
			var want []string
			for _, w := range tc.want {
				want = append(want, d+w)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	file, local := ResolvePath(`//..\tex\a.png`, "/proj/shots/shot.blend")
	if file != "/proj/tex/a.png" || !local {
		t.Errorf("ResolvePath = %s %v", file, local)
	}
	if file, local := ResolvePath(`C:\a.png`, "/proj/shot.blend"); file != "C:/a.png" || local {
		t.Errorf("ResolvePath(C:) = %s %v", file, local)
	}
}

// TestTraceBlockByBlock: files too large to read whole are read block by
// block; the answer is the same. Every project of make_deps.py is traced
// both ways.
func TestTraceBlockByBlock(t *testing.T) {
	root := DepProjects(t)
	scenes, _ := filepath.Glob(filepath.Join(root, "*", "*.blend"))
	more, _ := filepath.Glob(filepath.Join(root, "*", "shots", "*.blend"))
	scenes = append(scenes, more...)
	if len(scenes) < 15 {
		t.Fatalf("%d scenes in %s", len(scenes), root)
	}
	for _, scene := range scenes {
		whole, err := Trace(context.Background(), scene)
		if err != nil {
			t.Fatal(err)
		}
		cache := newFileCache()
		cache.wholeFile = -1
		blocks, err := traceFile(context.Background(), scene, scene, cache)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(whole, blocks) {
			t.Errorf("%s: read whole %+v\nblock by block %+v", scene, whole, blocks)
		}
	}
}
