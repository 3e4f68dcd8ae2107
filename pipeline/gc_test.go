package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

func TestGCFindsWhatBelongsToNoReadableRun(t *testing.T) {
	root := t.TempDir()
	st, err := store.NewFile(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key, data string, age time.Duration) {
		t.Helper()
		if err := st.Put(ctx, key, strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(key)), when, when); err != nil {
			t.Fatal(err)
		}
	}
	const day = 24 * time.Hour
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	created := time.Now().Add(-30 * day).UTC()

	// A readable run, its scene and one input (and an input only an
	// unknown field names, which the tolerant reading ignores).
	putRun(t, st, RunRecord{ID: "aaaa0001", State: RunSucceeded, CreatedAt: created,
		Source: RunSource{Key: store.BlendKey(sum('a'))}})
	put(store.BlendKey(sum('a')), "scene", 30*day)
	put(store.InputManifestKey("aaaa0001"), `{"version": 2, "files": {"tex/wood.png": {"sha256": "`+sum('b')+`", "size": 5}}, "extra": [1]}`, 30*day)
	put(store.InputKey(sum('b')), "input", 30*day)
	// A run from before records: its manifest keeps it and its plan's scene.
	put(store.PlanKey("bbbb0002"), `{"blend": {"key": "`+store.BlendKey(sum('c'))+`"}}`, 30*day)
	put(store.ManifestKey("bbbb0002"), `{}`, 30*day)
	put(store.BlendKey(sum('c')), "scene", 30*day)
	// An orphaned run: its directory lost the record, workers stored on.
	put(store.PlanKey("cccc0003"), `{"blend": {"key": "`+store.BlendKey(sum('d'))+`"}}`, 2*time.Hour)
	put(store.FrameKey("cccc0003", 7, "png"), "png", 2*time.Hour)
	put(indexIDPrefix+"cccc0003", "{}", 3*time.Hour)
	put(timeIndexKey(created, "cccc0003"), "{}", 3*time.Hour)
	put(store.BlendKey(sum('d')), "scene", 30*day) // only the orphan used it
	// A run being recorded right now: no record yet, but fresh.
	put(store.PlanKey("dddd0004"), `{}`, time.Minute)
	// Cache entries: one naming the readable run, one a run that is gone,
	// one damaged, one claimed a moment ago.
	put(store.CacheKey("k1"), `{"run_id": "aaaa0001"}`, 30*day)
	put(store.CacheKey("k2"), `{"run_id": "eeee0005", "claimed_at": "2026-01-01T00:00:00Z"}`, 30*day)
	put(store.CacheKey("k3"), `not json`, 30*day)
	put(store.CacheKey("k4"), `{"run_id": "ffff0006"}`, time.Minute)
	// Unreferenced scene and input: one past the retention, one within it.
	put(store.InputKey(sum('e')), "old", 30*day)
	put(store.InputKey(sum('f')), "new", day)
	put(store.BlendKey(sum('g')), "new", day)
	// The store's own check is never garbage.
	put(store.ConditionalCheckKey, `{}`, 30*day)

	r := &Runs{Store: st}
	plan, err := r.GC(ctx, GCOptions{Retention: 7 * day, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]GCReason{}
	for _, g := range plan.Groups {
		got[g.What] = g.Reason
	}
	want := map[string]GCReason{
		"runs/cccc0003/":                  GCOrphanRun,
		indexIDPrefix + "cccc0003":        GCOrphanIndex,
		timeIndexKey(created, "cccc0003"): GCOrphanIndex,
		store.CacheKey("k2"):              GCOrphanCache,
		store.CacheKey("k3"):              GCBadCache,
		store.InputKey(sum('e')):          GCOldInput,
		store.BlendKey(sum('d')):          GCOldBlend,
	}
	for what, reason := range want {
		if got[what] != reason {
			t.Errorf("%s: reason %q, want %q", what, got[what], reason)
		}
	}
	for what := range got {
		if _, ok := want[what]; !ok {
			t.Errorf("%s would be removed (%s), but it belongs to a readable run or is young", what, got[what])
		}
	}
	if !slices.ContainsFunc(plan.Kept, func(k string) bool { return strings.HasPrefix(k, "runs/dddd0004/") }) {
		t.Errorf("kept %q; want the fresh run without a record named", plan.Kept)
	}
	if plan.Objects != 8 { // the orphaned run has 2 objects
		t.Errorf("plan has %d objects, want 8", plan.Objects)
	}

	n, err := r.DeleteGarbage(ctx, plan)
	if err != nil || n != plan.Objects {
		t.Fatalf("deleted %d of %d: %v", n, plan.Objects, err)
	}
	again, err := r.GC(ctx, GCOptions{Retention: 7 * day, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Groups) != 0 {
		t.Errorf("after deleting, gc still finds %+v", again.Groups)
	}
	if _, err := r.Get(ctx, "aaaa0001"); err != nil {
		t.Errorf("the readable run is damaged: %v", err)
	}
}

func TestGCKeepsInputsWhenAManifestIsNotUnderstood(t *testing.T) {
	st := newFileStore(t)
	ctx := context.Background()
	putRun(t, st, RunRecord{ID: "aaaa0001", State: RunSucceeded, CreatedAt: time.Now().UTC()})
	for key, data := range map[string]string{
		store.InputManifestKey("aaaa0001"):      `{"files": "not files"}`,
		store.InputKey(strings.Repeat("e", 64)): "input",
	} {
		if err := st.Put(ctx, key, strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	r := &Runs{Store: st, Clock: aheadClock{30 * 24 * time.Hour}}
	plan, err := r.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range plan.Groups {
		if g.Reason == GCOldInput {
			t.Errorf("input %s would be removed although run aaaa0001's manifest cannot be read", g.What)
		}
	}
	if !slices.ContainsFunc(plan.Kept, func(k string) bool { return strings.Contains(k, "input manifest is not understood") }) {
		t.Errorf("kept %q; want the reason inputs are not collected", plan.Kept)
	}
}

func TestGCStaysUnderItsPrefix(t *testing.T) {
	st := newFileStore(t)
	ctx := context.Background()
	for _, key := range []string{"scopes/a/runs/cccc0003/plan.json", "runs/dddd0004/plan.json"} {
		if err := st.Put(ctx, key, strings.NewReader("{}")); err != nil {
			t.Fatal(err)
		}
	}
	r := &Runs{Store: st, Clock: aheadClock{2 * time.Hour}}
	plan, err := r.GC(ctx, GCOptions{Prefix: "scopes/a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Groups) != 1 || plan.Groups[0].What != "runs/cccc0003/" {
		t.Fatalf("groups %+v; want only the orphan under scopes/a", plan.Groups)
	}
	if _, err := r.DeleteGarbage(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(ctx, "scopes/a/runs/cccc0003/plan.json"); err == nil {
		t.Error("the orphan under the prefix was not removed")
	}
	if _, err := st.Stat(ctx, "runs/dddd0004/plan.json"); err != nil {
		t.Errorf("an object outside the prefix was touched: %v", err)
	}
}

func TestGCKeepsWhatRunsOfOtherScopesReference(t *testing.T) {
	st := newFileStore(t)
	ctx := context.Background()
	scene, input := store.BlendKey(strings.Repeat("a", 64)), store.InputKey(strings.Repeat("b", 64))
	scoped, err := store.WithPrefix(st, "scopes/preview")
	if err != nil {
		t.Fatal(err)
	}
	putRun(t, scoped, RunRecord{ID: "aaaa0001", State: RunSucceeded, CreatedAt: time.Now().UTC(), Source: RunSource{Key: scene}})
	for key, data := range map[string]string{
		"scopes/preview/" + store.InputManifestKey("aaaa0001"): `{"files": [{"path": "t.png", "sha256": "` + strings.Repeat("b", 64) + `"}]}`,
		scene: "scene", input: "input",
	} {
		if err := st.Put(ctx, key, strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	r := &Runs{Store: st, Clock: aheadClock{30 * 24 * time.Hour}}
	plan, err := r.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Groups) != 0 {
		t.Errorf("gc of the root would remove %+v, which a run of scope preview references", plan.Groups)
	}
}

// aheadClock is the real clock moved ahead by d.
type aheadClock struct{ d time.Duration }

func (c aheadClock) Now() time.Time                         { return time.Now().Add(c.d) }
func (c aheadClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
