package container

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// fetchers bounds the inputs downloaded at once.
const fetchers = 8

// localStore is a store whose objects are files on this machine (a
// directory store): the workspace links them instead of copying.
type localStore interface {
	Path(key string) string
}

// InputMismatchError: an input in the store does not have the content the
// manifest names (a damaged or replaced object). It fails the chunk for good.
type InputMismatchError struct {
	Path       string // the file's workspace path
	Key        string // its store key
	Want, Have string // SHA-256s
}

func (e *InputMismatchError) Error() string {
	return fmt.Sprintf("input %s (%s in the store) has SHA-256 %s, not the %s its manifest names: the stored copy is damaged or was replaced; "+
		"delete %s from the store and submit the render again", e.Path, e.Key, e.Have, e.Want, e.Key)
}

// workspace lays out the files the plan's scene needs under dir/workspace
// and returns the scene's path there. Both engines run this one code path:
// a Batch job downloads every input; the local engine's workers, whose
// store is a directory, hard-link the stored objects (falling back to a
// symbolic link across file systems) instead of copying them. Inputs
// Blender may write (baked caches) are always copied, so a render never
// changes a stored object. Every file's SHA-256 is checked against the
// manifest. A schema 1 plan has no manifest: its scene is fetched alone.
//
// warnings name the inputs that were missing when the render was submitted
// (with allow_missing): they render magenta or not at all.
func (w *Worker) workspace(ctx context.Context, p *plan.Plan, dir string) (scene string, warnings []string, err error) {
	if p.Inputs == nil {
		scene := filepath.Join(dir, "scene.blend")
		if err := w.Store.GetFile(ctx, p.Blend.Key, scene); err != nil {
			return "", nil, classify(stopped(ctx, fmt.Errorf("fetch the scene %s: %w", p.Blend.Key, err)))
		}
		// A plan without inputs names the scene alone: its hash is checked here
		// (a workspace checks every file it places).
		if err := checkSHA256(scene, p.Blend.Key, expectedBlendSHA256(p.Blend)); err != nil {
			return "", nil, err
		}
		return scene, nil, nil
	}
	m, err := w.inputManifest(ctx, p)
	if err != nil {
		return "", nil, err
	}
	for _, miss := range m.Missing {
		warnings = append(warnings, fmt.Sprintf("%s %s was missing when the render was submitted (used by %s in %s): it renders magenta or not at all",
			miss.Kind, miss.StoredPath, strings.Join(miss.UsedBy, ", "), miss.Blend))
	}
	ws := filepath.Join(dir, "workspace")
	local, _ := w.Store.(localStore)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	jobs := make(chan pipeline.InputFile)
	for range min(fetchers, len(m.Files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if err := w.placeInput(ctx, local, ws, f); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, f := range m.Files {
		jobs <- f
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return "", nil, first
	}
	w.log().Info("workspace ready", "files", len(m.Files), "bytes", m.Bytes(), "scene", m.Scene, "missing", len(m.Missing))
	return filepath.Join(ws, filepath.FromSlash(m.Scene)), warnings, nil
}

// inputManifest reads the plan's input manifest and checks it is the one
// the plan was made with.
func (w *Worker) inputManifest(ctx context.Context, p *plan.Plan) (*pipeline.InputManifest, error) {
	rc, err := w.Store.Get(ctx, p.Inputs.Key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, permanent("run %s has no input manifest %s in store %s (%w): submit the render again", p.RunID, p.Inputs.Key, w.Store.URI(), err)
		}
		return nil, classify(stopped(ctx, fmt.Errorf("read the input manifest: %w", err)))
	}
	defer rc.Close()
	var m pipeline.InputManifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return nil, classify(stoppedOr(ctx, fmt.Errorf("read the input manifest %s: %w", p.Inputs.Key, err), true))
	}
	if err := m.Validate(); err != nil {
		return nil, permanent("input manifest %s: %w", p.Inputs.Key, err)
	}
	if d := m.Digest(); d != p.Inputs.Digest || m.Scene != p.Inputs.Scene {
		return nil, permanent("input manifest %s (digest %s) is not the one plan %s was made with (digest %s): submit the render again",
			p.Inputs.Key, d, store.PlanKey(p.RunID), p.Inputs.Digest)
	}
	return &m, nil
}

// placeInput puts one input at its workspace path and checks its content.
func (w *Worker) placeInput(ctx context.Context, local localStore, ws string, f pipeline.InputFile) error {
	if err := pipeline.CheckWorkspacePath(f.Path); err != nil {
		return permanent("%w", err)
	}
	key := store.InputKey(f.SHA256)
	dst := filepath.Join(ws, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return &Error{Code: ExitTransient, Err: fmt.Errorf("input %s: %w", f.Path, err)}
	}
	linked := false
	// A scoped store answers Path for any base: "" means its objects are not files here.
	if src := localPath(local, key); src != "" && !pipeline.WritableInput(f.Kind) {
		if _, err := os.Stat(src); err != nil {
			return inputMissing(f, key, err)
		}
		linked = os.Link(src, dst) == nil || os.Symlink(src, dst) == nil
	}
	if !linked {
		if err := w.Store.GetFile(ctx, key, dst); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return inputMissing(f, key, err)
			}
			return classify(stopped(ctx, fmt.Errorf("fetch input %s (%s): %w", f.Path, key, err)))
		}
	}
	have, err := fileSHA256(dst)
	if err != nil {
		return &Error{Code: ExitTransient, Err: fmt.Errorf("check input %s: %w", f.Path, err)}
	}
	if have != f.SHA256 {
		return &Error{Code: ExitPermanent, Err: &InputMismatchError{Path: f.Path, Key: key, Want: f.SHA256, Have: have}}
	}
	return nil
}

// localPath is key's file when the store keeps its objects on this machine, else "".
func localPath(local localStore, key string) string {
	if local == nil {
		return ""
	}
	return local.Path(key)
}

func inputMissing(f pipeline.InputFile, key string, err error) error {
	return permanent("input %s (%s) is not in the store (%w): it was deleted after the render was submitted; submit it again", f.Path, key, err)
}

// fileSHA256 is a file's SHA-256, hex.
func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
