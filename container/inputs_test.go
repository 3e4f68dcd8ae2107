package container

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// remoteStore hides the directory store's Path, as an S3 store has none:
// the worker must download every input.
type remoteStore struct{ store.Store }

// storeAs is fs as a worker sees it: a directory store it links from, or,
// remote, a store it must download from.
func storeAs(fs store.Store, remote bool) store.Store {
	if remote {
		return remoteStore{fs}
	}
	return fs
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// storeInputs stores contents by hash and the manifest naming them, and
// returns the plan pointing at it.
func storeInputs(t *testing.T, st store.Store, runID string, files map[string]string, kinds map[string]blend.DepKind) *plan.Plan {
	t.Helper()
	ctx := context.Background()
	m := pipeline.InputManifest{Schema: pipeline.InputManifestSchema, Scene: "shots/shot.blend"}
	for _, p := range []string{"shots/shot.blend", "textures/left.png", "lib/prop.blend", "lib/tex/right.png", "shots/blendcache_shot/a_000001_00.bphys"} {
		body, ok := files[p]
		if !ok {
			continue
		}
		m.Files = append(m.Files, pipeline.InputFile{Path: p, SHA256: sum(body), Size: int64(len(body)), Kind: kinds[p]})
		if err := st.Put(ctx, store.InputKey(sum(body)), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(m)
	key := store.InputManifestKey(runID)
	if err := st.Put(ctx, key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return &plan.Plan{Schema: plan.Schema, RunID: runID, Blend: plan.Blend{Key: store.InputKey(sum(files["shots/shot.blend"]))},
		Inputs: &plan.Inputs{Key: key, Digest: m.Digest(), Scene: m.Scene, Files: len(m.Files)}}
}

var wsFiles = map[string]string{
	"shots/shot.blend":                        "shot",
	"textures/left.png":                       "green",
	"lib/prop.blend":                          "prop",
	"lib/tex/right.png":                       "blue",
	"shots/blendcache_shot/a_000001_00.bphys": "baked",
}

var wsKinds = map[string]blend.DepKind{
	"textures/left.png": blend.DepImage, "lib/prop.blend": blend.DepLibrary, "lib/tex/right.png": blend.DepImage,
	"shots/blendcache_shot/a_000001_00.bphys": blend.DepPointCache,
}

func TestWorkspaceFromManifest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote bool
	}{{"directory store: linked", false}, {"remote store: downloaded", true}} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := store.NewFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			st := storeAs(fs, tc.remote)
			p := storeInputs(t, st, "r1", wsFiles, wsKinds)
			w := &Worker{Store: st, RunID: "r1"}
			dir := t.TempDir()
			scene, _, err := w.workspace(context.Background(), p, dir)
			if err != nil {
				t.Fatal(err)
			}
			ws := filepath.Join(dir, "workspace")
			if scene != filepath.Join(ws, "shots", "shot.blend") {
				t.Errorf("scene at %s, want inside the workspace at shots/shot.blend", scene)
			}
			for path, body := range wsFiles {
				local := filepath.Join(ws, filepath.FromSlash(path))
				got, err := os.ReadFile(local)
				if err != nil || string(got) != body {
					t.Errorf("%s: %q, %v; want %q", path, got, err, body)
					continue
				}
				fiLocal, _ := os.Stat(local)
				fiStored, _ := os.Stat(fs.Path(store.InputKey(sum(body))))
				shared := os.SameFile(fiLocal, fiStored)
				wantShared := !tc.remote && wsKinds[path] != blend.DepPointCache
				if shared != wantShared {
					t.Errorf("%s shares the stored object: %v, want %v (links only from a directory store, never for caches Blender may write)", path, shared, wantShared)
				}
			}
		})
	}
}

func TestWorkspaceRefusesDamagedInput(t *testing.T) {
	fs, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, remote := range []bool{false, true} {
		st := storeAs(fs, remote)
		p := storeInputs(t, st, "r2", wsFiles, wsKinds)
		// The stored texture is replaced by other bytes.
		if err := fs.Put(context.Background(), store.InputKey(sum("green")), strings.NewReader("magenta")); err != nil {
			t.Fatal(err)
		}
		w := &Worker{Store: st, RunID: "r2"}
		_, _, err = w.workspace(context.Background(), p, t.TempDir())
		var mm *InputMismatchError
		var e *Error
		if !errors.As(err, &mm) || mm.Path != "textures/left.png" || !errors.As(err, &e) || e.Code != ExitPermanent {
			t.Fatalf("remote %v: err = %v, want a permanent mismatch naming textures/left.png", remote, err)
		}
		if !strings.Contains(err.Error(), "textures/left.png") {
			t.Errorf("message %q does not name the file", err)
		}
	}
}

func TestWorkspaceRefusesAnotherManifest(t *testing.T) {
	fs, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := storeInputs(t, fs, "r3", wsFiles, wsKinds)
	p.Inputs.Digest = sum("another workspace")
	w := &Worker{Store: fs, RunID: "r3"}
	_, _, err = w.workspace(context.Background(), p, t.TempDir())
	var e *Error
	if !errors.As(err, &e) || e.Code != ExitPermanent || !strings.Contains(err.Error(), "not the one plan") {
		t.Fatalf("err = %v, want a permanent error: the manifest is not the plan's", err)
	}
}

func TestWorkspaceInputGoneFromStore(t *testing.T) {
	fs, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, remote := range []bool{false, true} {
		st := storeAs(fs, remote)
		p := storeInputs(t, st, "r4", wsFiles, wsKinds)
		if err := fs.Delete(context.Background(), store.InputKey(sum("blue"))); err != nil {
			t.Fatal(err)
		}
		_, _, err = (&Worker{Store: st, RunID: "r4"}).workspace(context.Background(), p, t.TempDir())
		var e *Error
		if !errors.As(err, &e) || e.Code != ExitPermanent || !strings.Contains(err.Error(), "lib/tex/right.png") {
			t.Errorf("remote %v: err = %v, want a permanent error naming lib/tex/right.png", remote, err)
		}
	}
}
