package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/golden"
	"github.com/framefleet/framefleet/pipeline/blend"
)

// writeTree writes files (slash paths relative to dir, with their contents).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// projectDeps is what the tracer reports for the textured project laid
// out under dir: the shot's texture one level up, a library, and the
// library's own texture relative to the library.
func projectDeps(dir string) *blend.Deps {
	abs := func(p string) string { return filepath.ToSlash(filepath.Join(dir, filepath.FromSlash(p))) }
	scene := abs("shots/shot.blend")
	lib := abs("lib/prop.blend")
	return &blend.Deps{Scene: scene, Dependencies: []blend.Dependency{
		{Kind: blend.DepImage, StoredPath: "//../textures/left.png", File: abs("textures/left.png"), Exists: true, Size: 5, UsedBy: []string{"IMleft.png"}, Blend: scene},
		{Kind: blend.DepLibrary, StoredPath: "//../lib/prop.blend", File: lib, Exists: true, Size: 4, UsedBy: []string{"LIprop.blend"}, Blend: scene},
		{Kind: blend.DepImage, StoredPath: "//tex/right.png", File: abs("lib/tex/right.png"), Exists: true, Size: 4, UsedBy: []string{"IMright.png"}, Blend: lib},
	}}
}

var projectFiles = map[string]string{
	"shots/shot.blend":  "shot",
	"textures/left.png": "green",
	"lib/prop.blend":    "prop",
	"lib/tex/right.png": "blue",
	"notes.txt":         "not a dependency",
}

func TestProjectRoot(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, projectFiles)
	deps := projectDeps(dir)
	scene := filepath.Join(dir, "shots", "shot.blend")

	git := t.TempDir()
	writeTree(t, git, map[string]string{"art/shots/shot.blend": "shot", ".git/HEAD": "ref: refs/heads/main\n"})

	withAbsolute := projectDeps(dir)
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"tex/a.png": "a"})
	withAbsolute.Dependencies = append(withAbsolute.Dependencies, blend.Dependency{Kind: blend.DepImage,
		StoredPath: filepath.ToSlash(filepath.Join(outside, "tex", "a.png")), File: filepath.ToSlash(filepath.Join(outside, "tex", "a.png")),
		Exists: true, Blend: deps.Scene})

	tests := []struct {
		name, scene, root string
		deps              *blend.Deps
		want              string
		errKey            string
	}{
		{name: "given root", scene: scene, root: dir, deps: deps, want: dir},
		{name: "given root below the scene's folder", scene: scene, root: filepath.Join(dir, "lib"), deps: deps, errKey: KeyRoot},
		{name: "given root that is no folder", scene: scene, root: filepath.Join(dir, "notes.txt"), deps: deps, errKey: KeyRoot},
		{name: "git top level", scene: filepath.Join(git, "art", "shots", "shot.blend"), deps: &blend.Deps{}, want: git},
		{name: "deepest folder holding the relative dependencies", scene: scene, deps: deps, want: dir},
		{name: "no dependencies: the scene's folder", scene: scene, deps: &blend.Deps{}, want: filepath.Join(dir, "shots")},
		{name: "absolute paths do not widen it", scene: scene, deps: withAbsolute, want: dir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ProjectRoot(tc.scene, tc.root, tc.deps)
			if tc.errKey != "" {
				var se *SettingError
				if !errors.As(err, &se) || se.Key != tc.errKey {
					t.Fatalf("err = %v, want a setting error on %s", err, tc.errKey)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("root %s, want %s", got, tc.want)
			}
		})
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestBuildWorkspaceLaysOutTheProject(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, projectFiles)
	ws, err := buildWorkspace(context.Background(), filepath.Join(dir, "shots", "shot.blend"), dir, projectDeps(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.close()
	m := ws.manifest
	want := []InputFile{
		{Path: "lib/prop.blend", SHA256: sha("prop"), Size: 4, Kind: blend.DepLibrary},
		{Path: "lib/tex/right.png", SHA256: sha("blue"), Size: 4, Kind: blend.DepImage},
		{Path: "shots/shot.blend", SHA256: sha("shot"), Size: 4},
		{Path: "textures/left.png", SHA256: sha("green"), Size: 5, Kind: blend.DepImage},
	}
	if !slices.Equal(m.Files, want) {
		t.Errorf("files\n%+v\nwant\n%+v", m.Files, want)
	}
	if m.Scene != "shots/shot.blend" || m.Root != dir || len(m.Missing) != 0 {
		t.Errorf("scene %q root %q missing %v", m.Scene, m.Root, m.Missing)
	}
	if ws.tmp != "" {
		t.Errorf("nothing needed rewriting, but %s was made", ws.tmp)
	}
	// Every file is uploaded from where it is: nothing was copied.
	for _, f := range m.Files {
		if want := filepath.Join(dir, filepath.FromSlash(f.Path)); ws.local[f.Path] != want {
			t.Errorf("%s comes from %s, want %s", f.Path, ws.local[f.Path], want)
		}
	}
	if err := m.Validate(); err != nil {
		t.Errorf("built manifest does not validate: %v", err)
	}
}

func TestWorkspaceDigest(t *testing.T) {
	build := func(files map[string]string, deps func(string) *blend.Deps) string {
		dir := t.TempDir()
		writeTree(t, dir, files)
		ws, err := buildWorkspace(context.Background(), filepath.Join(dir, "shots", "shot.blend"), dir, deps(dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.close()
		return ws.manifest.Digest()
	}
	base := build(projectFiles, projectDeps)
	if again := build(projectFiles, projectDeps); again != base {
		t.Errorf("an identical tree in another folder has digest %s, want %s", again, base)
	}
	changed := with(projectFiles, "textures/left.png", "red")
	if d := build(changed, projectDeps); d == base {
		t.Error("a changed texture kept the digest")
	}
	unrelated := with(projectFiles, "notes.txt", "other notes")
	if d := build(unrelated, projectDeps); d != base {
		t.Error("a file the scene does not use changed the digest")
	}
	moved := with(projectFiles, "textures/left.png", "")
	delete(moved, "textures/left.png")
	moved["textures/old/left.png"] = "green"
	movedDeps := func(dir string) *blend.Deps {
		d := projectDeps(dir)
		d.Dependencies[0].StoredPath = "//../textures/old/left.png"
		d.Dependencies[0].File = filepath.ToSlash(filepath.Join(dir, "textures", "old", "left.png"))
		return d
	}
	if d := build(moved, movedDeps); d == base {
		t.Error("the same texture at another place kept the digest")
	}
}

// with is m with key set to v.
func with(m map[string]string, key, v string) map[string]string {
	out := make(map[string]string, len(m))
	for k, x := range m {
		out[k] = x
	}
	out[key] = v
	return out
}

func TestMissingInputsAreListed(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, projectFiles)
	deps := projectDeps(dir)
	deps.Dependencies[2].Exists = false // the library's texture
	deps.Dependencies[2].Size = 0
	miss := missingInputs(dir, deps, nil)
	want := []MissingInput{{Kind: blend.DepImage, StoredPath: "//tex/right.png", File: deps.Dependencies[2].File,
		UsedBy: []string{"IMright.png"}, Blend: "lib/prop.blend"}}
	if len(miss) != 1 || miss[0].StoredPath != want[0].StoredPath || miss[0].Blend != want[0].Blend ||
		miss[0].File != want[0].File || !slices.Equal(miss[0].UsedBy, want[0].UsedBy) {
		t.Errorf("missing %+v, want %+v", miss, want)
	}
	ws, err := buildWorkspace(context.Background(), filepath.Join(dir, "shots", "shot.blend"), dir, deps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.close()
	if len(ws.manifest.Missing) != 1 || slices.ContainsFunc(ws.manifest.Files, func(f InputFile) bool { return f.Path == "lib/tex/right.png" }) {
		t.Errorf("manifest files %v missing %v: want the texture listed as missing only", ws.manifest.Files, ws.manifest.Missing)
	}
}

func TestMissingInputsErrorText(t *testing.T) {
	e := &MissingInputsError{Scene: "shots/shot.blend", Missing: []MissingInput{
		{Kind: blend.DepImage, StoredPath: "//../textures/left.png", File: "/home/me/proj/textures/left.png", UsedBy: []string{"IMleft.png"}, Blend: "shots/shot.blend"},
		{Kind: blend.DepImage, StoredPath: "//tex/right.png", File: "/home/me/proj/lib/tex/right.png", UsedBy: []string{"IMright.png", "MAprop"}, Blend: "lib/prop.blend"},
	}}
	cli := *e
	cli.AllowHint = "add --allow-missing"
	golden.Check(t, "missing_inputs.golden", e.Error()+"\n---\n"+cli.Error()+"\n")
}

func TestInputManifestValidate(t *testing.T) {
	good := func() InputManifest {
		return InputManifest{Schema: 1, Scene: "shots/shot.blend", Files: []InputFile{
			{Path: "shots/shot.blend", SHA256: sha("shot"), Size: 4},
			{Path: "textures/left.png", SHA256: sha("green"), Size: 5},
		}}
	}
	m := good()
	if err := m.Validate(); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	bad := map[string]func(*InputManifest){
		"parent folder":   func(m *InputManifest) { m.Files[1].Path = "../etc/passwd" },
		"inner parent":    func(m *InputManifest) { m.Files[1].Path = "textures/../../x" },
		"absolute":        func(m *InputManifest) { m.Files[1].Path = "/etc/passwd" },
		"drive":           func(m *InputManifest) { m.Files[1].Path = "C:/x.png" },
		"backslash":       func(m *InputManifest) { m.Files[1].Path = `textures\left.png` },
		"empty part":      func(m *InputManifest) { m.Files[1].Path = "textures//left.png" },
		"not a hash":      func(m *InputManifest) { m.Files[1].SHA256 = "abc" },
		"listed twice":    func(m *InputManifest) { m.Files[1].Path = "shots/shot.blend" },
		"scene not in it": func(m *InputManifest) { m.Scene = "shots/other.blend" },
		"newer schema":    func(m *InputManifest) { m.Schema = InputManifestSchema + 1 },
	}
	for name, f := range bad {
		m := good()
		f(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

func TestExternalPlace(t *testing.T) {
	a, b := externalPlace("/home/me/tex"), externalPlace("/srv/tex")
	if a == b || !strings.HasPrefix(a, externalDir+"/") || !strings.HasSuffix(a, "-tex") {
		t.Errorf("places %q and %q: want distinct _external/<hash>-tex folders", a, b)
	}
	if err := CheckWorkspacePath(externalPlace("/") + "/a.png"); err != nil {
		t.Errorf("the file system root's place: %v", err)
	}
}

func TestConfineKeepsToTheRoot(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, projectFiles)
	secret := filepath.Join(t.TempDir(), "secret.png")
	if err := os.WriteFile(secret, []byte("the host's own file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "textures", "link.png")); err != nil {
		t.Fatal(err)
	}
	deps := projectDeps(dir)
	scene := deps.Scene
	deps.Dependencies = append(deps.Dependencies,
		blend.Dependency{Kind: blend.DepImage, StoredPath: filepath.ToSlash(secret), File: filepath.ToSlash(secret), Exists: true, Size: 19, UsedBy: []string{"IMabs"}, Blend: scene},
		blend.Dependency{Kind: blend.DepImage, StoredPath: "//../textures/link.png", File: filepath.ToSlash(filepath.Join(dir, "textures", "link.png")), Exists: true, Size: 19, UsedBy: []string{"IMlink"}, Blend: scene},
	)
	outside, err := confine(dir, deps)
	if err != nil {
		t.Fatal(err)
	}
	miss := missingInputs(dir, deps, outside)
	var got []string
	for _, m := range miss {
		if !m.OutsideRoot {
			t.Errorf("%s is missing but not marked outside the root", m.StoredPath)
		}
		got = append(got, m.StoredPath)
	}
	if want := []string{filepath.ToSlash(secret), "//../textures/link.png"}; !slices.Equal(got, want) {
		t.Errorf("confined out %v, want %v (the absolute path and the link leading out); the project's own files stay", got, want)
	}
	text := (&MissingInputsError{Scene: "shots/shot.blend", Missing: miss}).Error()
	if !strings.Contains(text, "is outside the project, so it is not sent") {
		t.Errorf("message does not say why:\n%s", text)
	}
}
