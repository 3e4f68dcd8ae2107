package blend_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/blend"
)

// wantDep is one expected dependency. File and Blend are relative to the
// case's folder unless absolute ("/..." or "C:/...").
type wantDep struct {
	Kind   blend.DepKind
	Stored string
	File   string
	Exists bool
	UsedBy string // comma-separated
	Blend  string
}

func TestTraceScenes(t *testing.T) {
	root := blend.DepProjects(t)
	cases := []struct {
		name  string
		scene string
		want  []wantDep
		refs  map[string][]blend.PathRef // by File, when more than one
	}{
		{name: "texture_subfolder", scene: "scene.blend", want: []wantDep{
			// textures/orphan.png is kept by a fake user only: no scene reaches
			// it; textures/stamp.png is a painting brush's, reached only
			// through the tool settings.
			{blend.DepIES, "//ies/spot.ies", "ies/spot.ies", true, "MAPlane", "scene.blend"},
			{blend.DepImage, "//textures/a.png", "textures/a.png", true, "IMa", "scene.blend"},
		}},
		{name: "texture_up", scene: "shots/shot.blend", want: []wantDep{
			{blend.DepImage, "//../textures/left.png", "textures/left.png", true, "IMleft", "shots/shot.blend"},
		}},
		{name: "image_sequence", scene: "scene.blend", want: []wantDep{
			// seq/other_0001.png is another sequence in the same folder.
			{blend.DepImage, "//seq/frame_0001.png", "seq/frame_0001.png", true, "IMframes", "scene.blend"},
			{blend.DepImage, "//seq/frame_0001.png", "seq/frame_0002.png", true, "IMframes", "scene.blend"},
			{blend.DepImage, "//seq/frame_0001.png", "seq/frame_0003.png", true, "IMframes", "scene.blend"},
		}},
		{name: "udim", scene: "scene.blend", want: []wantDep{
			{blend.DepImage, "//tex/wood.<UDIM>.png", "tex/wood.1001.png", true, "IMwood", "scene.blend"},
			{blend.DepImage, "//tex/wood.<UDIM>.png", "tex/wood.1002.png", true, "IMwood", "scene.blend"},
		}},
		{name: "library", scene: "shots/shot.blend", want: []wantDep{
			{blend.DepImage, "//tex/right.png", "lib/tex/right.png", true, "IMPropTex", "lib/prop.blend"},
			{blend.DepImage, "//../textures/left.png", "textures/left.png", true, "IMleft", "shots/shot.blend"},
			{blend.DepLibrary, "//../lib/prop.blend", "lib/prop.blend", true, "OBProp", "shots/shot.blend"},
		}},
		{name: "library_two_paths", scene: "scene.blend", want: []wantDep{
			{blend.DepImage, "//tex/a.png", "lib/tex/a.png", true, "IMATex", "lib/a.blend"},
			{blend.DepImage, "//tex/b.png", "lib/tex/b.png", true, "IMBTex", "lib/b.blend"},
			{blend.DepLibrary, "//lib/a.blend", "lib/a.blend", true, "OBA", "scene.blend"},
			{blend.DepLibrary, "//lib/b.blend", "lib/b.blend", true, "OBB", "scene.blend"},
		}, refs: map[string][]blend.PathRef{
			"lib/a.blend": {{Blend: "scene.blend", StoredPath: "//lib/a.blend"}, {Blend: "lib/b.blend", StoredPath: "//a.blend"}},
		}},
		{name: "font", scene: "scene.blend", want: []wantDep{
			// The bold and italic slots keep Blender's <builtin> font: not a file.
			{blend.DepFont, "//fonts/title.ttf", "fonts/title.ttf", true, "VFDejaVu Sans Bold", "scene.blend"},
		}},
		{name: "sound_strip", scene: "scene.blend", want: []wantDep{
			{blend.DepSequence, "//movies/", "movies/clip.mp4", true, "SCScene/clip", "scene.blend"},
			{blend.DepSequence, "//strips/", "strips/card_0001.png", true, "SCScene/cards", "scene.blend"},
			{blend.DepSequence, "//strips/", "strips/card_0002.png", true, "SCScene/cards", "scene.blend"},
			{blend.DepSound, "//audio/beep.wav", "audio/beep.wav", true, "SObeep.wav", "scene.blend"},
		}},
		{name: "alembic", scene: "scene.blend", want: []wantDep{
			{blend.DepCacheFile, "//cache/anim.abc", "cache/anim.abc", true, "CFanim.abc", "scene.blend"},
		}},
		{name: "baked_cache", scene: "scene.blend", want: []wantDep{
			// Blender names the files by the owner's name in hex: "Emitter".
			{blend.DepPointCache, "//blendcache_scene/", "blendcache_scene/456D6974746572_000001_00.bphys", true, "OBEmitter", "scene.blend"},
			{blend.DepPointCache, "//blendcache_scene/", "blendcache_scene/456D6974746572_000002_00.bphys", true, "OBEmitter", "scene.blend"},
			{blend.DepPointCache, "//blendcache_scene/", "blendcache_scene/456D6974746572_000003_00.bphys", true, "OBEmitter", "scene.blend"},
		}},
		{name: "absolute", scene: "scene.blend", want: []wantDep{
			{blend.DepImage, "/nonexistent/framefleet/gone.png", "/nonexistent/framefleet/gone.png", false, "IMgone", "scene.blend"},
			{blend.DepImage, "{dir}/elsewhere/abs.png", "elsewhere/abs.png", true, "IMhere", "scene.blend"},
		}},
		{name: "packed", scene: "scene.blend", want: nil},
		{name: "volume_sequence", scene: "scene.blend", want: []wantDep{
			{blend.DepVolume, "//vdb/smoke_0001.vdb", "vdb/smoke_0001.vdb", true, "VOSmoke", "scene.blend"},
			{blend.DepVolume, "//vdb/smoke_0001.vdb", "vdb/smoke_0002.vdb", true, "VOSmoke", "scene.blend"},
		}},
		{name: "movieclip", scene: "scene.blend", want: []wantDep{
			{blend.DepMovieClip, "//plates/plate_0001.png", "plates/plate_0001.png", true, "MCplate", "scene.blend"},
			{blend.DepMovieClip, "//plates/plate_0001.png", "plates/plate_0002.png", true, "MCplate", "scene.blend"},
		}},
		{name: "mesh_cache", scene: "scene.blend", want: []wantDep{
			// cache/unused.mdd belongs to an object in no scene.
			{blend.DepMeshCache, "//cache/wave.pc2", "cache/wave.pc2", true, "OBWave/Wave", "scene.blend"},
		}},
		{name: "multires", scene: "scene.blend", want: []wantDep{
			{blend.DepMultires, "//sculpt/detail.btx", "sculpt/detail.btx", true, "MESculpt", "scene.blend"},
		}},
		{name: "fluid", scene: "scene.blend", want: []wantDep{
			{blend.DepPointCache, "//fluid_cache/", "fluid_cache/config/config_0001.uni", true, "OBDomain", "scene.blend"},
			{blend.DepPointCache, "//fluid_cache/", "fluid_cache/config/config_0002.uni", true, "OBDomain", "scene.blend"},
			{blend.DepPointCache, "//fluid_cache/", "fluid_cache/data/fluid_data_0001.vdb", true, "OBDomain", "scene.blend"},
			{blend.DepPointCache, "//fluid_cache/", "fluid_cache/data/fluid_data_0002.vdb", true, "OBDomain", "scene.blend"},
		}},
		// The bake files exist, but the saved modifier does not read them
		// (see make_deps.py); TestTraceOceanCache sets the flag.
		{name: "ocean", scene: "scene.blend", want: nil},
		{name: "windows", scene: "scene.blend", want: []wantDep{
			{blend.DepImage, `//textures\win.png`, "textures/win.png", true, "IMwin", "scene.blend"},
			{blend.DepImage, `C:\Users\artist\tex\wood.png`, "C:/Users/artist/tex/wood.png", false, "IMdrive", "scene.blend"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.ToSlash(filepath.Join(root, tc.name))
			deps, err := blend.Trace(context.Background(), filepath.Join(root, tc.name, filepath.FromSlash(tc.scene)))
			if err != nil {
				t.Fatal(err)
			}
			if deps.Scene != dir+"/"+tc.scene {
				t.Errorf("Scene = %s, want %s", deps.Scene, dir+"/"+tc.scene)
			}
			if len(deps.Warnings) > 0 {
				t.Errorf("warnings: %q", deps.Warnings)
			}
			abs := func(p string) string {
				if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "C:") {
					return p
				}
				return dir + "/" + p
			}
			if len(deps.Dependencies) != len(tc.want) {
				t.Errorf("%d dependencies, want %d", len(deps.Dependencies), len(tc.want))
			}
			for i := range max(len(deps.Dependencies), len(tc.want)) {
				if i >= len(tc.want) {
					t.Errorf("unexpected %+v", deps.Dependencies[i])
					continue
				}
				w := tc.want[i]
				if i >= len(deps.Dependencies) {
					t.Errorf("missing %+v", w)
					continue
				}
				g := deps.Dependencies[i]
				stored := strings.ReplaceAll(w.Stored, "{dir}", dir)
				if g.Kind != w.Kind || g.StoredPath != stored || g.File != abs(w.File) || g.Exists != w.Exists ||
					strings.Join(g.UsedBy, ",") != w.UsedBy || g.Blend != abs(w.Blend) {
					t.Errorf("item %d:\n got %s %q %s exists=%v used_by=%q blend=%s\nwant %s %q %s exists=%v used_by=%q blend=%s", i,
						g.Kind, g.StoredPath, g.File, g.Exists, g.UsedBy, g.Blend,
						w.Kind, stored, abs(w.File), w.Exists, w.UsedBy, abs(w.Blend))
				}
				// The size is the file's, and 0 for a missing file.
				var size int64
				if st, err := os.Stat(g.File); err == nil && w.Exists {
					size = st.Size()
				}
				if g.Size != size {
					t.Errorf("%s: size %d, want %d", g.File, g.Size, size)
				}
				wantRefs := []blend.PathRef{{Blend: g.Blend, StoredPath: g.StoredPath}}
				if r, ok := tc.refs[w.File]; ok {
					wantRefs = nil
					for _, ref := range r {
						wantRefs = append(wantRefs, blend.PathRef{Blend: abs(ref.Blend), StoredPath: ref.StoredPath})
					}
				}
				if !equalRefs(g.Refs, wantRefs) {
					t.Errorf("%s: refs %+v, want %+v", g.File, g.Refs, wantRefs)
				}
			}
			if missing := deps.Missing(); len(missing) != countMissing(tc.want) {
				t.Errorf("Missing() = %+v, want %d items", missing, countMissing(tc.want))
			}
		})
	}
}

func equalRefs(a, b []blend.PathRef) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func countMissing(w []wantDep) int {
	n := 0
	for _, d := range w {
		if !d.Exists {
			n++
		}
	}
	return n
}

// TestTraceMissingLibrary: a library that is not there is listed missing,
// with the datablocks linked from it, and its own files cannot be listed.
func TestTraceMissingLibrary(t *testing.T) {
	src := filepath.Join(blend.DepProjects(t), "library")
	dir := t.TempDir()
	copyFile(t, filepath.Join(src, "shots", "shot.blend"), filepath.Join(dir, "shots", "shot.blend"))
	deps, err := blend.Trace(context.Background(), filepath.Join(dir, "shots", "shot.blend"))
	if err != nil {
		t.Fatal(err)
	}
	missing := deps.Missing()
	if len(missing) != 2 {
		t.Fatalf("missing = %+v, want the library and left.png", missing)
	}
	lib := missing[1]
	if lib.Kind != blend.DepLibrary || lib.File != filepath.ToSlash(filepath.Join(dir, "lib", "prop.blend")) ||
		strings.Join(lib.UsedBy, ",") != "OBProp" {
		t.Errorf("library item = %+v", lib)
	}
}

// TestRewritePaths rewrites the library case's paths so that the scene
// loads from a new layout, and has the real Blender open the result: the
// linked object and both textures must load from their new places.
func TestRewritePaths(t *testing.T) {
	src := filepath.Join(blend.DepProjects(t), "library")
	ws := t.TempDir()
	// The workspace layout: scene at the top, everything else under deps/.
	copyFile(t, filepath.Join(src, "lib", "prop.blend"), filepath.Join(ws, "deps", "prop.blend"))
	copyFile(t, filepath.Join(src, "lib", "tex", "right.png"), filepath.Join(ws, "deps", "tex", "right.png"))
	copyFile(t, filepath.Join(src, "textures", "left.png"), filepath.Join(ws, "deps", "left.png"))
	remap := map[string]string{"//../lib/prop.blend": "//deps/prop.blend", "//../textures/left.png": "//deps/left.png"}
	var seen []string
	out, err := os.Create(filepath.Join(ws, "shot.blend"))
	if err != nil {
		t.Fatal(err)
	}
	err = blend.RewritePaths(filepath.Join(src, "shots", "shot.blend"), out, func(stored string) (string, bool) {
		seen = append(seen, stored)
		q, ok := remap[stored]
		return q, ok
	})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	for stored := range remap {
		if !strings.Contains(strings.Join(seen, "\n"), stored) {
			t.Errorf("remap was never asked about %q (asked: %q)", stored, seen)
		}
	}
	deps, err := blend.Trace(context.Background(), filepath.Join(ws, "shot.blend"))
	if err != nil {
		t.Fatal(err)
	}
	if m := deps.Missing(); len(m) != 0 {
		t.Fatalf("after the rewrite, missing: %+v", m)
	}
	wantFiles := []string{ws + "/deps/left.png", ws + "/deps/tex/right.png", ws + "/deps/prop.blend"} // images by file, then the library
	if len(deps.Dependencies) != len(wantFiles) {
		t.Fatalf("dependencies %+v, want %q", deps.Dependencies, wantFiles)
	}
	for i, d := range deps.Dependencies {
		if d.File != filepath.ToSlash(wantFiles[i]) {
			t.Errorf("item %d file %s, want %s", i, d.File, wantFiles[i])
		}
	}

	// Blender itself loads the rewritten file: the linked object is there
	// and both images have pixels (a missing file gives has_data False).
	script := `import bpy, sys
ob = bpy.data.objects.get("Prop")
print("PROP", ob is not None and ob.library is not None and ob.library.filepath)
for img in bpy.data.images:
    img.pixels[0]  # loads the file
    print("IMAGE", img.name, img.has_data)
`
	cmd := exec.Command(testenv.Blender(t), "-b", "-Y", "--factory-startup", filepath.Join(ws, "shot.blend"), "--python-exit-code", "1", "--python-expr", script)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("blender: %v\n%s", err, got)
	}
	for _, want := range []string{"PROP //deps/prop.blend", "IMAGE left True", "IMAGE PropTex True"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("Blender output lacks %q:\n%s", want, got)
		}
	}
}

// TestRewritePathsCompressed: a zstd scene comes out uncompressed, with
// the path replaced and everything else as Blender wrote it.
func TestRewritePathsCompressed(t *testing.T) {
	src := filepath.Join(blend.DepProjects(t), "texture_up", "shots", "shot.blend")
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "\x28\xb5\x2f\xfd") {
		t.Fatalf("%s is not zstd-compressed; make_deps.py should save it with compress=True", src)
	}
	dst := filepath.Join(t.TempDir(), "shot.blend")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	err = blend.RewritePaths(src, f, func(stored string) (string, bool) {
		return strings.Replace(stored, "//../textures/", "//t/", 1), strings.HasPrefix(stored, "//../textures/")
	})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "BLENDER") {
		t.Fatalf("output starts with %q, want an uncompressed .blend", out[:8])
	}
	deps, err := blend.Trace(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Dependencies) != 1 || deps.Dependencies[0].StoredPath != "//t/left.png" {
		t.Fatalf("after the rewrite: %+v", deps.Dependencies)
	}
	info, err := blend.ReadFile(dst)
	if err != nil {
		t.Fatalf("the rewritten file no longer reads: %v", err)
	}
	if info.Compression != "none" {
		t.Errorf("compression %s, want none", info.Compression)
	}
}

func TestRewritePathsTooLong(t *testing.T) {
	src := filepath.Join(blend.DepProjects(t), "texture_subfolder", "scene.blend")
	long := "//" + strings.Repeat("x", 2000) + ".png"
	var sink strings.Builder
	err := blend.RewritePaths(src, &sink, func(stored string) (string, bool) { return long, stored == "//textures/a.png" })
	var tl *blend.PathTooLongError
	if !errors.As(err, &tl) || !errors.Is(err, blend.ErrPathTooLong) {
		t.Fatalf("err = %v, want a PathTooLongError", err)
	}
	if tl.Stored != "//textures/a.png" || tl.Struct != "Image" || tl.Max != 1023 {
		t.Errorf("error = %+v", tl)
	}
	if !strings.Contains(err.Error(), "fix:") {
		t.Errorf("error %q does not say how to fix it", err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTraceCorpus traces the shared public files (Blender 2.48 to 5.x,
// 32-bit big-endian, gzip, zstd): every one traces, and the three that
// reference files list what Blender 3.4 itself lists for them
// (bpy.data.images, bpy.data.libraries): a packed image and the Render
// Result are left out, and a path saved on Windows resolves with slashes.
// 01_cs_rotate links four node groups; only "glTF Metallic Roughness" is
// used by a material of the scene, so only it names the library.
func TestTraceCorpus(t *testing.T) {
	dir := filepath.Join(testenv.Shared(t), "blendfiles")
	want := map[string][]string{
		"01_cs_rotate.blend": {
			`image //..\environments\field.hdr ../environments/field.hdr IMfield.hdr`,
			`library //..\pbr_node\glTF2_Principled.blend ../pbr_node/glTF2_Principled.blend NTglTF Metallic Roughness`,
		},
		"01_principled_material_280.blend": {
			"image //01_principled_baseColor.png 01_principled_baseColor.png IM01_principled_baseColor.png",
			"image //01_principled_emissive.png 01_principled_emissive.png IM01_principled_emissive.png",
			"image //01_principled_normal.png 01_principled_normal.png IM01_principled_normal.png",
			"image //01_principled_occlusionRoughnessMetallic.png 01_principled_occlusionRoughnessMetallic.png IM01_principled_occlusionRoughnessMetallic.png",
		},
		"yxa_1.blend": {
			"image //../corrosive_med.jpg ../corrosive_med.jpg IMcorrosive_med.jpg",
			"image //../oak_golden.jpg ../oak_golden.jpg IMoak_golden.jpg",
		},
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.blend"))
	if len(paths) < 10 {
		t.Fatalf("%d corpus files in %s, want the shared set", len(paths), dir)
	}
	for _, p := range paths {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			deps, err := blend.Trace(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range deps.Dependencies {
				rel, err := filepath.Rel(dir, filepath.FromSlash(d.File))
				if err != nil {
					t.Fatal(err)
				}
				if d.Exists {
					t.Errorf("%s exists?", d.File)
				}
				got = append(got, strings.Join([]string{string(d.Kind), d.StoredPath, filepath.ToSlash(rel), strings.Join(d.UsedBy, ",")}, " "))
			}
			if strings.Join(got, "\n") != strings.Join(want[name], "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want[name], "\n"))
			}
		})
	}
}

// TestTraceLibraryThroughLinkLoop: a library that links itself through a
// folder link pointing back to its own folder is the same file under ever
// longer names (lib/self/b2.blend, lib/self/self/b2.blend...); the trace
// must recognise the file and end.
func TestTraceLibraryThroughLinkLoop(t *testing.T) {
	src := filepath.Join(blend.DepProjects(t), "library_two_paths")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".", filepath.Join(dir, "lib", "self")); err != nil {
		t.Fatal(err)
	}
	rewrite := func(from, to string, remap map[string]string) {
		t.Helper()
		out, err := os.Create(to)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		if err := blend.RewritePaths(from, out, func(stored string) (string, bool) {
			q, ok := remap[stored]
			return q, ok
		}); err != nil {
			t.Fatal(err)
		}
	}
	// b2 is b whose link to a.blend now names b2 itself, through lib/self.
	rewrite(filepath.Join(dir, "lib", "b.blend"), filepath.Join(dir, "lib", "b2.blend"), map[string]string{"//a.blend": "//self/b2.blend"})
	rewrite(filepath.Join(dir, "scene.blend"), filepath.Join(dir, "loop.blend"), map[string]string{"//lib/b.blend": "//lib/b2.blend"})
	deps, err := blend.Trace(context.Background(), filepath.Join(dir, "loop.blend"))
	if err != nil {
		t.Fatal(err)
	}
	var libs []string
	for _, d := range deps.Dependencies {
		if d.Kind == blend.DepLibrary {
			libs = append(libs, strings.TrimPrefix(d.File, filepath.ToSlash(dir)+"/"))
		}
	}
	want := []string{"lib/a.blend", "lib/b2.blend", "lib/self/b2.blend"}
	if strings.Join(libs, " ") != strings.Join(want, " ") {
		t.Errorf("libraries %q, want %q", libs, want)
	}
}

// TestTraceMissingSets: a sequence or UDIM set with no file left is one
// missing item naming its first file, with its user.
func TestTraceMissingSets(t *testing.T) {
	root := blend.DepProjects(t)
	for _, tc := range []struct{ project, want string }{
		{"image_sequence", "image //seq/frame_0001.png seq/frame_0001.png IMframes"},
		{"udim", "image //tex/wood.<UDIM>.png tex/wood.1001.png IMwood"},
	} {
		t.Run(tc.project, func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, filepath.Join(root, tc.project, "scene.blend"), filepath.Join(dir, "scene.blend"))
			deps, err := blend.Trace(context.Background(), filepath.Join(dir, "scene.blend"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range deps.Missing() {
				got = append(got, strings.Join([]string{string(d.Kind), d.StoredPath, strings.TrimPrefix(d.File, filepath.ToSlash(dir)+"/"), strings.Join(d.UsedBy, ",")}, " "))
			}
			if len(deps.Dependencies) != 1 || strings.Join(got, "\n") != tc.want {
				t.Errorf("missing %q of %d, want %q", got, len(deps.Dependencies), tc.want)
			}
		})
	}
}
