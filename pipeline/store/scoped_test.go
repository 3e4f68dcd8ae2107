package store_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/store"
)

func put(t *testing.T, st store.Store, key, data string) {
	t.Helper()
	if err := st.Put(context.Background(), key, strings.NewReader(data)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func read(t *testing.T, st store.Store, key string) (string, error) {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// A scope writes only under its prefix; it reads the trusted scope's scenes
// and inputs when it lacks them, but never its cache or runs through its own
// store; the trusted scope never sees the scope's keys.
func TestScopedStore(t *testing.T) {
	ctx := context.Background()
	root, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	preview, err := store.NewScoped(root, "preview")
	if err != nil {
		t.Fatal(err)
	}
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	put(t, root, store.BlendKey(sha), "trusted scene")
	put(t, root, store.InputKey(sha), "trusted texture")
	put(t, root, store.CacheKey("k"), `{"run_id":"trusted-run"}`)
	put(t, root, store.ManifestKey("trusted-run"), "trusted manifest")

	for _, key := range []string{store.CacheKey("k"), store.ManifestKey("trusted-run"), store.PlanKey("r1")} {
		put(t, preview, key, "planted")
	}
	put(t, preview, store.BlendKey(sha), "planted scene")

	objs, err := root.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		trustedOwn := slices.Contains([]string{store.BlendKey(sha), store.InputKey(sha), store.CacheKey("k"), store.ManifestKey("trusted-run")}, o.Key)
		if !trustedOwn && !strings.HasPrefix(o.Key, "scopes/preview/") {
			t.Errorf("the preview scope wrote %s, outside scopes/preview/", o.Key)
		}
	}
	// The trusted scope reads only its own.
	for key, want := range map[string]string{store.CacheKey("k"): `{"run_id":"trusted-run"}`, store.ManifestKey("trusted-run"): "trusted manifest", store.BlendKey(sha): "trusted scene"} {
		if got, err := read(t, root, key); err != nil || got != want {
			t.Errorf("trusted reads %s = %q, %v; want %q", key, got, err, want)
		}
	}
	if _, err := root.Stat(ctx, store.PlanKey("r1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the trusted scope sees the preview's plan: %v", err)
	}
	// The preview reads its own first, and the trusted scope's inputs when it lacks them.
	if got, _ := read(t, preview, store.BlendKey(sha)); got != "planted scene" {
		t.Errorf("preview reads its scene as %q", got)
	}
	if got, err := read(t, preview, store.InputKey(sha)); err != nil || got != "trusted texture" {
		t.Errorf("preview reads the trusted input as %q, %v", got, err)
	}
	other, _ := store.NewScoped(root, "bot")
	if got, err := read(t, other, store.BlendKey(sha)); err != nil || got != "trusted scene" {
		t.Errorf("bot reads the trusted scene as %q, %v", got, err)
	}
	if got, err := read(t, other, store.ManifestKey("trusted-run")); err != nil || got != "trusted manifest" {
		t.Errorf("bot reads a trusted run's manifest (to compare with it) as %q, %v", got, err)
	}
	if _, _, err := other.GetVersioned(ctx, store.ManifestKey("trusted-run")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bot's versioned reads (records) see the trusted scope: %v", err)
	}
	if _, err := other.Stat(ctx, store.CacheKey("k")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bot's own store shows the trusted cache entry (only Runs' read-only view may): %v", err)
	}
	if _, err := read(t, other, store.PlanKey("r1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bot reads the preview's plan: %v", err)
	}
	listed, err := preview.List(ctx, "runs/")
	if err != nil || len(listed) != 2 || listed[1].Key != store.ManifestKey("trusted-run") {
		t.Errorf("preview lists %v, %v: want its own two run objects, keys relative to the scope", listed, err)
	}

	// The trusted view is read-only.
	tv := store.TrustedView(preview)
	if tv == nil || store.TrustedView(root) != nil {
		t.Fatal("TrustedView: want a view for a scope, none for the trusted scope")
	}
	if err := tv.Put(ctx, store.CacheKey("k"), strings.NewReader("x")); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("a write through the trusted view: %v, want ErrReadOnly", err)
	}
	if _, err := tv.PutIfVersion(ctx, store.CacheKey("k"), []byte("x"), ""); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("a conditional write through the trusted view: %v, want ErrReadOnly", err)
	}
	if err := tv.Delete(ctx, store.CacheKey("k")); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("a delete through the trusted view: %v, want ErrReadOnly", err)
	}

	// The scope travels in the URI, to the record and the workers.
	reopened, err := store.Open(ctx, preview.URI(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if store.ScopeOf(reopened) != "preview" || !strings.HasSuffix(preview.URI(), "?scope=preview") {
		t.Errorf("Open(%s) is scope %s", preview.URI(), store.ScopeOf(reopened))
	}
	if got, _ := read(t, reopened, store.PlanKey("r1")); got != "planted" {
		t.Errorf("reopened scope reads its plan as %q", got)
	}
	for _, bad := range []string{root.URI() + "?scope=Trusted", root.URI() + "?scope=../x", root.URI() + "?other=1"} {
		if _, err := store.Open(ctx, bad, store.Options{}); err == nil {
			t.Errorf("Open(%s) succeeded", bad)
		}
	}
}

func TestIntermediateInAnyScope(t *testing.T) {
	for key, want := range map[string]bool{
		"runs/r/frames/frame_000001.png":                true,
		"scopes/preview/runs/r/frames/frame_000001.png": true,
		"scopes/bot/runs/r/segments/chunk_00000.mp4":    true,
		"scopes/preview/runs/r/Scene.mp4":               false,
		"runs/r/manifest.json":                          false,
	} {
		if got := store.IsIntermediate(key); got != want {
			t.Errorf("IsIntermediate(%s) = %v, want %v", key, got, want)
		}
	}
}
