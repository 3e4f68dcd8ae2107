package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// countingStore records the keys written under inputs/.
type countingStore struct {
	store.Store
	mu     sync.Mutex
	inputs []string
}

func (c *countingStore) note(key string) {
	if strings.HasPrefix(key, "inputs/") {
		c.mu.Lock()
		c.inputs = append(c.inputs, key)
		c.mu.Unlock()
	}
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader) error {
	c.note(key)
	return c.Store.Put(ctx, key, r)
}

func (c *countingStore) PutFile(ctx context.Context, key, path string) error {
	c.note(key)
	return c.Store.PutFile(ctx, key, path)
}

// takeInputs returns the input keys written since the last call.
func (c *countingStore) takeInputs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.inputs
	c.inputs = nil
	return out
}

// frameOf reads frame 1 of a run from the store.
func frameOf(t *testing.T, st store.Store, runID string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), store.FrameKey(runID, 1, "png"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSceneWithTexturesAndLibraryRendersRight renders the textured project
// (a texture one level up, a linked library with its own relative
// texture) on the local engine: green left, blue right, never magenta.
// Rendering it again is a cache hit that uploads nothing; a changed texture
// renders again and uploads exactly that one file; a missing texture is
// refused before anything is stored, naming the file and its user; with
// allow_missing it renders magenta and the run lists the file.
func TestSceneWithTexturesAndLibraryRendersRight(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	proj := testenv.MakeProject(t, t.TempDir())
	e := realEngine(t, 1)
	fs, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: fs}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	render := func(allowMissing bool) (*pipeline.Result, error) {
		return pipelinetest.Render(ctx, e, st, pipeline.Request{BlendPath: proj.Scene, Threads: 1,
			PollInterval: 100 * time.Millisecond, AllowMissing: allowMissing}, nil)
	}

	res, err := render(false)
	if err != nil {
		t.Fatal(err)
	}
	if left, right := testenv.HalvesOf(t, frameOf(t, fs, res.RunID)); !testenv.Near(left, testenv.Green) || !testenv.Near(right, testenv.Blue) {
		t.Errorf("first render: left %v right %v, want green | blue (magenta is a missing texture, black a missing library)", left, right)
	}
	if up := st.takeInputs(); len(up) != 4 {
		t.Errorf("first render uploaded %d inputs %v, want the scene, the library and the two textures", len(up), up)
	}
	var man pipeline.InputManifest
	rc, err := fs.Get(ctx, store.InputManifestKey(res.RunID))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(rc).Decode(&man)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range man.Files {
		paths = append(paths, f.Path)
	}
	if want := []string{"lib/prop.blend", "lib/tex/right.png", "shots/shot.blend", "textures/left.png"}; !slices.Equal(paths, want) || man.Scene != "shots/shot.blend" {
		t.Errorf("manifest files %v scene %q, want %v and shots/shot.blend", paths, man.Scene, want)
	}

	again, err := render(false)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.RunID != res.RunID {
		t.Errorf("unchanged project: cached %v run %s, want the cached run %s", again.Cached, again.RunID, res.RunID)
	}
	if up := st.takeInputs(); len(up) != 0 {
		t.Errorf("unchanged project uploaded %v, want nothing", up)
	}

	testenv.WritePNG(t, filepath.Join(proj.Root, "lib", "tex", "right.png"), testenv.Red)
	changed, err := render(false)
	if err != nil {
		t.Fatal(err)
	}
	if changed.Cached || changed.RunID == res.RunID {
		t.Errorf("a changed texture was answered from the cache (run %s)", changed.RunID)
	}
	if up := st.takeInputs(); len(up) != 1 {
		t.Errorf("a changed texture uploaded %v, want exactly one new input", up)
	}
	if left, right := testenv.HalvesOf(t, frameOf(t, fs, changed.RunID)); !testenv.Near(left, testenv.Green) || !testenv.Near(right, testenv.Red) {
		t.Errorf("after the change: left %v right %v, want green | red", left, right)
	}

	if err := os.Remove(filepath.Join(proj.Root, "textures", "left.png")); err != nil {
		t.Fatal(err)
	}
	before, err := fs.List(ctx, "runs/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = render(false)
	var miss *pipeline.MissingInputsError
	if !errors.As(err, &miss) {
		t.Fatalf("missing texture: err = %v, want *pipeline.MissingInputsError", err)
	}
	if len(miss.Missing) != 1 || miss.Missing[0].StoredPath != "//../textures/left.png" ||
		!slices.Contains(miss.Missing[0].UsedBy, "IMleft.png") || miss.Missing[0].Blend != "shots/shot.blend" {
		t.Errorf("missing %+v, want //../textures/left.png used by IMleft.png in shots/shot.blend", miss.Missing)
	}
	for _, want := range []string{"//../textures/left.png", "IMleft.png", "fix:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	after, err := fs.List(ctx, "runs/")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(st.takeInputs()) != 0 {
		t.Errorf("a refused render stored something: %d run objects before, %d after", len(before), len(after))
	}

	allowed, err := render(true)
	if err != nil {
		t.Fatal(err)
	}
	runs := &pipeline.Runs{Store: fs}
	rec, err := runs.Get(ctx, allowed.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.MissingInputs) != 1 || rec.MissingInputs[0].StoredPath != "//../textures/left.png" {
		t.Errorf("run record lists missing inputs %+v, want the left texture", rec.MissingInputs)
	}
	if !slices.ContainsFunc(allowed.Warnings, func(w string) bool {
		return strings.Contains(w, "//../textures/left.png was missing when the render was submitted")
	}) {
		t.Errorf("warnings %q do not name the missing texture", allowed.Warnings)
	}
	if left, _ := testenv.HalvesOf(t, frameOf(t, fs, allowed.RunID)); !testenv.Near(left, testenv.Magenta) {
		t.Errorf("allow_missing: left %v, want Blender's magenta for the missing texture", left)
	}
}

// TestPathsThatDoNotResolveInTheWorkspace renders the textured project
// with its paths stored in ways that would not resolve in a workspace as
// they are: files above the given root (//../), absolute paths, and paths
// saved on Windows (C:\Users\...). Each is placed in the workspace and the
// shot's workspace copy is rewritten to name it there: green | blue.
func TestPathsThatDoNotResolveInTheWorkspace(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	e := realEngine(t, 1)
	for _, tc := range []struct {
		name, mode string
		root       func(proj testenv.Project) string
		external   bool // the texture is placed under _external/
	}{
		{"above the given root", "relative", func(p testenv.Project) string { return filepath.Join(p.Root, "shots") }, true},
		// The library's own texture (//tex/right.png) makes the project's
		// folder the root: the absolute paths point inside it.
		{"absolute paths", "absolute", func(testenv.Project) string { return "" }, false},
		{"saved on Windows", "windows", func(p testenv.Project) string { return p.Root }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proj := testenv.MakeProjectStoring(t, t.TempDir(), tc.mode)
			fs, err := store.NewFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			res, err := pipelinetest.Render(ctx, e, fs, pipeline.Request{BlendPath: proj.Scene, Root: tc.root(proj), Threads: 1,
				PollInterval: 100 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if left, right := testenv.HalvesOf(t, frameOf(t, fs, res.RunID)); !testenv.Near(left, testenv.Green) || !testenv.Near(right, testenv.Blue) {
				t.Errorf("left %v right %v, want green | blue", left, right)
			}
			rc, err := fs.Get(ctx, store.InputManifestKey(res.RunID))
			if err != nil {
				t.Fatal(err)
			}
			var man pipeline.InputManifest
			err = json.NewDecoder(rc).Decode(&man)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			external := false
			for _, f := range man.Files {
				if strings.HasSuffix(f.Path, "/left.png") {
					external = strings.HasPrefix(f.Path, "_external/")
				}
			}
			if external != tc.external || len(man.Files) != 4 {
				t.Errorf("manifest files %+v: want 4, the texture under _external/: %v", man.Files, tc.external)
			}
			orig, _ := os.ReadFile(proj.Scene)
			if scene := man.Files[slices.IndexFunc(man.Files, func(f pipeline.InputFile) bool { return f.Path == man.Scene })]; scene.Size == int64(len(orig)) && scene.SHA256 == sha256Hex(orig) {
				t.Error("the shot was not rewritten, yet its paths do not resolve in the workspace")
			}
		})
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
