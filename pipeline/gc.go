package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

// GC defaults.
const (
	// DefaultGCRetention keeps unreferenced scenes and inputs this long: a
	// run being submitted uploads them before its record names them, and a
	// re-render of last week's scene need not upload it again.
	DefaultGCRetention = 7 * 24 * time.Hour
	// DefaultGCGrace keeps an orphaned run prefix, index entry or cache
	// entry whose newest object is younger than this: a run being recorded
	// right now, or a worker still storing frames of a run just deleted
	// (collected by the next gc).
	DefaultGCGrace = time.Hour
)

// GCOptions say where and how carefully GC looks.
type GCOptions struct {
	// Prefix is the part of the store to collect, holding the usual layout
	// (runs/, runindex/, cache/, blends/, inputs/); "" is the store's root.
	// Nothing outside it is read or removed.
	Prefix string
	// Retention: unreferenced scenes and inputs younger than this are kept
	// (default DefaultGCRetention).
	Retention time.Duration
	// Grace: orphans younger than this are kept (default DefaultGCGrace).
	Grace time.Duration
}

// GCReason says why objects are garbage.
type GCReason string

// The reasons GC removes objects.
const (
	GCOrphanRun   GCReason = "orphaned run: no run record"
	GCOrphanIndex GCReason = "index entry of a run with no record"
	GCOrphanCache GCReason = "cache entry naming a run that does not exist"
	GCBadCache    GCReason = "unreadable cache entry"
	GCOldInput    GCReason = "input no run references"
	GCOldBlend    GCReason = "scene no run references"
)

// GCGroup is objects removed together for one reason: a whole orphaned run
// prefix, or a single object.
type GCGroup struct {
	// What is the run prefix (runs/<id>/) or the object's key, under the
	// collected prefix.
	What    string         `json:"what"`
	Reason  GCReason       `json:"reason"`
	Objects []store.Object `json:"objects"`
	Bytes   int64          `json:"bytes"`
}

// GCPlan is what GC found; nothing is removed until Delete.
type GCPlan struct {
	Prefix string    `json:"prefix"`
	Groups []GCGroup `json:"groups"`
	// Kept explains what looked like garbage but was kept on purpose.
	Kept []string `json:"kept,omitempty"`
	// Objects and Bytes total the groups.
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// GC finds objects that belong to no readable run: orphaned run prefixes
// (a run directory whose record was deleted while workers kept storing),
// index and cache entries naming runs that do not exist, and scenes and
// inputs that no run references, older than the retention. It removes
// nothing: show the plan, then call DeleteGarbage.
func (r *Runs) GC(ctx context.Context, opts GCOptions) (*GCPlan, error) {
	st, err := store.WithPrefix(r.Store, opts.Prefix)
	if err != nil {
		return nil, err
	}
	retention := durationOr(opts.Retention, DefaultGCRetention)
	grace := durationOr(opts.Grace, DefaultGCGrace)
	now := r.now()
	plan := &GCPlan{Prefix: opts.Prefix}
	add := func(what string, reason GCReason, objs ...store.Object) {
		g := GCGroup{What: what, Reason: reason, Objects: objs}
		for _, o := range objs {
			g.Bytes += o.Size
		}
		plan.Groups = append(plan.Groups, g)
		plan.Objects += len(objs)
		plan.Bytes += g.Bytes
	}
	old := func(o store.Object, age time.Duration) bool { return !o.ModTime.IsZero() && now.Sub(o.ModTime) >= age }

	// Runs, grouped by id.
	objs, err := st.List(ctx, "runs/")
	if err != nil {
		return nil, fmt.Errorf("gc: list runs: %w", err)
	}
	byRun := map[string][]store.Object{}
	var ids []string
	for _, o := range objs {
		id, _, ok := strings.Cut(strings.TrimPrefix(o.Key, "runs/"), "/")
		if !ok || id == "" {
			continue
		}
		if _, seen := byRun[id]; !seen {
			ids = append(ids, id)
		}
		byRun[id] = append(byRun[id], o)
	}
	refs := newGCRefs()
	exists := map[string]bool{} // runs that are kept, by id
	for _, id := range ids {
		group := byRun[id]
		rec, _, err := readRecord(ctx, st, id)
		var missing *RunNotFoundError
		switch {
		case err == nil:
			exists[id] = true
			refs.blends[rec.Source.Key] = true
			refs.read(ctx, st, id)
			continue
		case !errors.As(err, &missing):
			var tooNew *SchemaTooNewError
			var corrupt *CorruptRecordError
			if !errors.As(err, &tooNew) && !errors.As(err, &corrupt) {
				return nil, fmt.Errorf("gc: %w", err)
			}
			// A record this framefleet cannot read is not garbage.
			exists[id] = true
			refs.read(ctx, st, id)
			plan.Kept = append(plan.Kept, fmt.Sprintf("runs/%s/: its record cannot be read (%v)", id, err))
			continue
		}
		if hasKey(group, store.ManifestKey(id)) {
			// A finished run from before run records: its manifest is the result.
			exists[id] = true
			refs.read(ctx, st, id)
			continue
		}
		newest := group[0]
		for _, o := range group {
			if o.ModTime.After(newest.ModTime) {
				newest = o
			}
		}
		if !old(newest, grace) {
			exists[id] = true
			refs.read(ctx, st, id)
			plan.Kept = append(plan.Kept, fmt.Sprintf("runs/%s/: no run record, but written to %s ago (grace %s)", id, now.Sub(newest.ModTime).Round(time.Second), grace))
			continue
		}
		add(store.RunPrefix(id), GCOrphanRun, group...)
	}

	// The run index: entries of runs with no record.
	index, err := st.List(ctx, "runindex/")
	if err != nil {
		return nil, fmt.Errorf("gc: list the run index: %w", err)
	}
	for _, o := range index {
		var id string
		switch {
		case strings.HasPrefix(o.Key, indexIDPrefix):
			id = strings.TrimPrefix(o.Key, indexIDPrefix)
		case strings.HasPrefix(o.Key, indexTimePrefix):
			id = idFromTimeIndex(o.Key)
		default:
			continue
		}
		if !exists[id] && old(o, grace) {
			add(o.Key, GCOrphanIndex, o)
		}
	}

	// The cache: entries naming runs that do not exist.
	cache, err := st.List(ctx, "cache/")
	if err != nil {
		return nil, fmt.Errorf("gc: list the cache: %w", err)
	}
	for _, o := range cache {
		if !old(o, grace) {
			continue
		}
		data, _, err := st.GetVersioned(ctx, o.Key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
		var entry cacheEntry
		if json.Unmarshal(data, &entry) != nil || entry.RunID == "" {
			add(o.Key, GCBadCache, o)
			continue
		}
		if !exists[entry.RunID] {
			add(o.Key, GCOrphanCache, o)
		}
	}

	// Runs of other trust scopes (scopes/<scope>/runs/...) read the root's
	// scenes and inputs when they lack their own: what they reference stays.
	if strings.Trim(opts.Prefix, "/") == "" {
		if err := refs.readScopes(ctx, r.Store); err != nil {
			return nil, err
		}
	}

	// Scenes and inputs no kept run references, past the retention.
	for _, c := range []struct {
		prefix string
		reason GCReason
		used   func(key string) bool
	}{
		{"blends/", GCOldBlend, func(key string) bool { return refs.blends[key] }},
		{"inputs/", GCOldInput, func(key string) bool { return refs.inputs[strings.TrimPrefix(key, "inputs/")] }},
	} {
		if c.prefix == "inputs/" && refs.unknownInputs != "" {
			plan.Kept = append(plan.Kept, "inputs/: not collected, since "+refs.unknownInputs)
			continue
		}
		objs, err := st.List(ctx, c.prefix)
		if err != nil {
			return nil, fmt.Errorf("gc: list %s: %w", c.prefix, err)
		}
		for _, o := range objs {
			if !c.used(o.Key) && old(o, retention) {
				add(o.Key, c.reason, o)
			}
		}
	}
	sort.SliceStable(plan.Groups, func(i, j int) bool { return plan.Groups[i].What < plan.Groups[j].What })
	return plan, nil
}

// DeleteGarbage removes what GC found, and returns how many objects it
// removed; it goes on past a failed delete and reports every failure.
func (r *Runs) DeleteGarbage(ctx context.Context, plan *GCPlan) (int, error) {
	st, err := store.WithPrefix(r.Store, plan.Prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, g := range plan.Groups {
		for _, o := range g.Objects {
			if err := st.Delete(ctx, o.Key); err != nil {
				errs = append(errs, err)
				if ctx.Err() != nil {
					return n, errors.Join(errs...)
				}
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

func hasKey(objs []store.Object, key string) bool {
	for _, o := range objs {
		if o.Key == key {
			return true
		}
	}
	return false
}

// gcRefs are the scenes and inputs kept runs reference.
type gcRefs struct {
	blends map[string]bool // store keys
	inputs map[string]bool // sha256
	// unknownInputs says why the inputs some kept run references cannot be
	// known (an unreadable manifest): then no input is collected.
	unknownInputs string
}

func newGCRefs() *gcRefs { return &gcRefs{blends: map[string]bool{}, inputs: map[string]bool{}} }

// scopesDir holds the trust scopes, each with the usual layout under
// scopes/<scope>/ (see store/layout.go).
const scopesDir = "scopes/"

// readScopes notes what every run of every scope references.
func (g *gcRefs) readScopes(ctx context.Context, st store.Store) error {
	objs, err := st.List(ctx, scopesDir)
	if err != nil {
		return fmt.Errorf("gc: list %s: %w", scopesDir, err)
	}
	seen := map[[2]string]bool{}
	for _, o := range objs {
		parts := strings.SplitN(strings.TrimPrefix(o.Key, scopesDir), "/", 4)
		if len(parts) < 4 || parts[1] != "runs" || seen[[2]string{parts[0], parts[2]}] {
			continue
		}
		scope, id := parts[0], parts[2]
		seen[[2]string{scope, id}] = true
		sub, err := store.WithPrefix(st, scopesDir+scope)
		if err != nil {
			continue
		}
		if rec, _, err := readRecord(ctx, sub, id); err == nil {
			g.blends[rec.Source.Key] = true
		}
		g.read(ctx, sub, id)
	}
	return nil
}

// read notes what run id's plan and input manifest reference.
func (g *gcRefs) read(ctx context.Context, st store.Store, id string) {
	if p, err := readPlan(ctx, st, id); err == nil && p.Blend.Key != "" {
		g.blends[p.Blend.Key] = true
	}
	data, _, err := st.GetVersioned(ctx, store.InputManifestKey(id))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return // a run without inputs beside its scene
	case err != nil:
		g.unknownInputs = fmt.Sprintf("run %s's input manifest could not be read: %v", id, err)
		return
	}
	sums, err := inputSums(data)
	if err != nil {
		g.unknownInputs = fmt.Sprintf("run %s's input manifest is not understood: %v", id, err)
		return
	}
	for _, s := range sums {
		g.inputs[s] = true
	}
}

// inputSums reads the SHA-256 sums an input manifest names: a JSON object
// whose "files" holds objects (keyed by path, or in a list) with a "sha256"
// field. Unknown fields are ignored, so the manifest may grow.
func inputSums(data []byte) ([]string, error) {
	var doc struct {
		Files json.RawMessage `json:"files"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	type file struct {
		SHA256 string `json:"sha256"`
	}
	var sums []string
	var byPath map[string]file
	var list []file
	switch {
	case len(doc.Files) == 0 || string(doc.Files) == "null":
		return nil, nil
	case json.Unmarshal(doc.Files, &byPath) == nil:
		for _, f := range byPath {
			sums = append(sums, strings.ToLower(f.SHA256))
		}
	case json.Unmarshal(doc.Files, &list) == nil:
		for _, f := range list {
			sums = append(sums, strings.ToLower(f.SHA256))
		}
	default:
		return nil, errors.New(`"files" is neither an object nor a list of files`)
	}
	return sums, nil
}
