package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Runs is the one entry point every front-end drives: durable runs recorded
// in the store, which any process can submit, watch, cancel and list.
// pipeline/fleet builds one from the configuration.
type Runs struct {
	Store store.Store
	// Engine returns the engine a record names ("local", "batch"); Runs
	// asks once per name and keeps the answer, so a local engine's jobs
	// stay known to this process.
	Engine     func(ctx context.Context, name string) (Engine, error)
	EngineName string // the engine Submit uses when the request names none
	// Clock is the time every step reads and waits on (default SystemClock).
	Clock  Clock
	Logger *slog.Logger
	// LeaseTTL is how long a host-bound run (local engine) stays hosted by
	// its process without renewing the lease in its record: after that, it is
	// interrupted and the next watcher resumes it (default 30 s).
	LeaseTTL time.Duration

	once    sync.Once
	hostID  string
	machine string       // os.Hostname, read once
	self    procIdentity // this process beyond its PID, recorded in its leases
	mu      sync.Mutex
	engines map[string]Engine
}

// RunPage is one page of List.
type RunPage struct {
	Runs []RunRecord `json:"runs"`
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next,omitempty"`
	// Unreadable lists runs whose records could not be read (a newer schema,
	// a damaged file); the other runs still list.
	Unreadable []UnreadableRun `json:"unreadable,omitempty"`
}

// UnreadableRun is a listed run whose record could not be read.
type UnreadableRun struct {
	ID    string `json:"id"`
	Error string `json:"error"`
	Err   error  `json:"-"` // *SchemaTooNewError, *CorruptRecordError, or a store error
}

// ListFilter selects runs; the zero value lists the newest DefaultListLimit.
type ListFilter struct {
	States []RunState
	Labels map[string]string // every label must match
	Limit  int               // default DefaultListLimit, at most MaxListLimit
	Cursor string            // RunPage.Next of the previous page
}

// List limits.
const (
	DefaultListLimit = 20
	MaxListLimit     = 1000
)

// RunCancelledError: the run was cancelled.
type RunCancelledError struct {
	RunID  string
	Reason string
}

func (e *RunCancelledError) Error() string {
	return fmt.Sprintf("run %s was cancelled: %s", e.RunID, e.Reason)
}

// JobsLostError: the record names jobs the engine no longer knows (Batch
// forgets jobs some days after they end), so the run cannot be followed.
type JobsLostError struct {
	RunID  string
	Handle Handle
	Err    error
}

func (e *JobsLostError) Error() string {
	return fmt.Sprintf("run %s: the %s engine no longer knows its jobs (render %s, stitch %s): %v; render again to make a new run",
		e.RunID, e.Handle.Engine, e.Handle.RenderID, e.Handle.StitchID, e.Err)
}

func (e *JobsLostError) Unwrap() error { return e.Err }

// OutageError: the store (or the engine) stayed unreachable for the whole budget.
type OutageError struct {
	What   string // the step, e.g. "store the plan"
	Budget time.Duration
	Err    error
}

func (e *OutageError) Error() string {
	return fmt.Sprintf("%s: still failing after %s of retries: %v", e.What, e.Budget, e.Err)
}

func (e *OutageError) Unwrap() error { return e.Err }

func (r *Runs) init() {
	r.once.Do(func() {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		r.machine, _ = os.Hostname()
		r.hostID = fmt.Sprintf("%s/%d/%s", r.machine, os.Getpid(), hex.EncodeToString(b))
		r.self = thisProcess()
	})
}

func (r *Runs) clock() Clock {
	if r.Clock != nil {
		return r.Clock
	}
	return SystemClock{}
}

func (r *Runs) now() time.Time { return r.clock().Now() }

// after is time.After on the Runs' clock.
func (r *Runs) after(d time.Duration) <-chan time.Time { return r.clock().After(d) }

func (r *Runs) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Runs) leaseTTL() time.Duration {
	if r.LeaseTTL > 0 {
		return r.LeaseTTL
	}
	return 30 * time.Second
}

func (r *Runs) lease() *RunHost {
	r.init()
	return &RunHost{ID: r.hostID, PID: os.Getpid(), Machine: r.machine, Expires: r.now().Add(r.leaseTTL()).UTC(),
		Boot: r.self.Boot, PIDNS: r.self.PIDNS, Start: r.self.Start}
}

func (r *Runs) ours(h *RunHost) bool {
	r.init()
	return h != nil && h.ID == r.hostID
}

// engine returns the named engine, built once per Runs.
func (r *Runs) engine(ctx context.Context, name string) (Engine, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.engines[name]; ok {
		return e, nil
	}
	if r.Engine == nil {
		return nil, errors.New("runs: no engine factory configured")
	}
	e, err := r.Engine(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("engine %q: %w", name, err)
	}
	if r.engines == nil {
		r.engines = map[string]Engine{}
	}
	r.engines[name] = e
	return e, nil
}

func isHostBound(e Engine) bool {
	hb, ok := e.(HostBound)
	return ok && hb.HostBound()
}

// effectiveState is the state a reader should see: a host-bound run whose
// host's lease expired, or whose host process is certainly gone (gone, asked
// only of unexpired leases), is interrupted, whatever its record last said.
func effectiveState(rec *RunRecord, now time.Time, gone func(*RunHost) bool) RunState {
	if rec.State.Final() || rec.Host == nil {
		return rec.State
	}
	if !now.After(rec.Host.Expires) && (gone == nil || !gone(rec.Host)) {
		return rec.State
	}
	if rec.HostBound || rec.Handle == nil {
		return RunInterrupted
	}
	return rec.State
}

// outage retries store operations with backoff while one outage lasts at
// most budget; any success ends the outage.
type outage struct {
	budget time.Duration
	now    func() time.Time
	// after waits on the same clock as now (nil: the real one).
	after   func(time.Duration) <-chan time.Time
	since   time.Time
	backoff time.Duration
}

// permanent reports errors no retry fixes.
func permanent(err error) bool {
	var (
		tooNew  *SchemaTooNewError
		corrupt *CorruptRecordError
		missing *RunNotFoundError
		setting *SettingError
		refused *changeRefusedError
	)
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fs.ErrPermission) || store.IsPermanent(err) ||
		errors.As(err, &tooNew) || errors.As(err, &corrupt) || errors.As(err, &missing) || errors.As(err, &setting) ||
		errors.As(err, &refused)
}

func (o *outage) do(ctx context.Context, what string, fn func() error) error {
	for {
		err := fn()
		if err == nil || permanent(err) || ctx.Err() != nil {
			if err == nil {
				o.since, o.backoff = time.Time{}, 0
			}
			return err
		}
		now := o.now()
		if o.since.IsZero() {
			o.since = now
		}
		if now.Sub(o.since) >= o.budget {
			return &OutageError{What: what, Budget: o.budget, Err: err}
		}
		o.backoff = min(max(o.backoff*2, 100*time.Millisecond), 15*time.Second)
		wait := jitter(o.backoff)
		after := o.after
		if after == nil {
			after = time.After
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-after(wait):
		}
	}
}

// jitter returns a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + mrand.N(d/2+1)
}

// prepared is a request checked and planned, before anything is stored.
type prepared struct {
	req  Request
	eng  Engine
	plan plan.Plan
	key  string
}

func (r *Runs) prepare(ctx context.Context, req Request) (*prepared, error) {
	req = withDefaults(req)
	if req.Engine == "" {
		req.Engine = r.EngineName
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	eng, err := r.engine(ctx, req.Engine)
	if err != nil {
		return nil, err
	}
	// Everything that can be wrong with the input is found before anything runs.
	info, err := blend.ReadFile(req.BlendPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", req.BlendPath, err)
	}
	sum, size, err := hashFile(req.BlendPath)
	if err != nil {
		return nil, err
	}
	name := req.SourceName
	if name == "" {
		name = filepath.Base(req.BlendPath)
	}
	p, err := newPlan(info, req, plan.Blend{
		Key: store.BlendKey(sum), SHA256: sum, Name: name, Size: size, Version: info.Version,
	})
	if err != nil {
		return nil, err
	}
	// The workers' Blender must read the file, and is part of the cache key.
	bv, err := eng.BlenderVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the workers' Blender version: %w", err)
	}
	if newer(info.Version, bv) {
		return nil, &BlenderTooOldError{File: info.Version, Blender: bv, Path: req.BlendPath}
	}
	p.Blender = bv
	return &prepared{req: req, eng: eng, plan: p, key: cacheKey(p)}, nil
}

// Submit records and submits a run and returns once it is submitted. An
// identical unfinished run (same cache key) is returned instead (Watch
// resumes it if it was interrupted), and a finished identical one is
// returned with its Result marked Cached; Request.Force renders afresh.
func (r *Runs) Submit(ctx context.Context, req Request) (*RunRecord, error) {
	d := r.newDeliverer(ctx, nil)
	rec, _, err := r.submit(ctx, req, d)
	return rec, err
}

// Render is Submit followed by Watch.
func (r *Runs) Render(ctx context.Context, req Request, obs func(Event)) (*Result, error) {
	_, res, err := r.render(ctx, req, obs)
	return res, err
}

func (r *Runs) render(ctx context.Context, req Request, obs func(Event)) (string, *Result, error) {
	started := r.now()
	d := r.newDeliverer(ctx, obs)
	defer d.close()
	rec, cached, err := r.submit(ctx, req, d)
	if err != nil {
		return "", nil, err
	}
	if cached {
		res := *rec.Result
		res.WallSeconds = r.now().Sub(started).Seconds()
		return rec.ID, &res, nil
	}
	res, err := r.watch(ctx, rec.ID, d, rec)
	if res != nil {
		res.WallSeconds = r.now().Sub(started).Seconds()
	}
	return rec.ID, res, err
}

// claimGrace is how long a cache claim may name a run whose record is not
// written yet before another request takes the claim over.
const claimGrace = 30 * time.Second

// cacheEntry is stored at store.CacheKey: the run that renders (or
// rendered) these inputs. It is claimed with a create-if-absent write, so
// two identical requests at the same moment make one run.
type cacheEntry struct {
	RunID     string    `json:"run_id"`
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
}

// submit returns the run's record, and whether it is a cached finished run.
func (r *Runs) submit(ctx context.Context, req Request, d *deliverer) (*RunRecord, bool, error) {
	pr, err := r.prepare(ctx, req)
	if err != nil {
		return nil, false, err
	}
	req, p := pr.req, pr.plan
	out := &outage{budget: req.StoreOutageBudget, now: r.now, after: r.after}

	// Claim a fresh id (create-if-absent), then the cache key.
	var id string
	for {
		if id, err = NewRunID(); err != nil {
			return nil, false, err
		}
		err = out.do(ctx, "record the run id", func() error {
			_, err := r.Store.PutIfVersion(ctx, indexIDPrefix+id, []byte("{}"), "")
			return err
		})
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, false, err
		}
	}
	existing, cached, err := r.claim(ctx, out, pr, id)
	if err != nil || existing != nil {
		_ = r.Store.Delete(context.WithoutCancel(ctx), indexIDPrefix+id) // the id was never used
		if existing != nil {
			if err := r.addLabels(ctx, out, existing, req.Labels); err != nil {
				return nil, false, err
			}
			if cached {
				d.send(Event{Kind: EventCached, Time: r.now(), RunID: existing.ID, FramesDone: existing.FramesTotal,
					FramesTotal: existing.FramesTotal, Record: existing,
					Message: "identical render found (setting " + KeyForce + " renders again)"})
			} else {
				d.send(Event{Kind: EventProgress, Time: r.now(), RunID: existing.ID, FramesDone: existing.Progress.FramesDone,
					FramesTotal: existing.FramesTotal, ChunkTotal: existing.ChunkTotal, Record: existing,
					Message: "attached to identical unfinished run " + existing.ID})
			}
		}
		return existing, cached, err
	}

	now := r.now().UTC()
	p.RunID, p.CreatedAt = id, now
	rec := &RunRecord{
		Schema: RecordSchema, ID: id, State: RunPlanned,
		Source:   RunSource{Name: p.Blend.Name, SHA256: p.Blend.SHA256, Size: p.Blend.Size, Key: p.Blend.Key},
		Settings: settingsOf(req), CacheKey: pr.key, Scene: p.Scene,
		FramesTotal: len(p.Frames), ChunkTotal: p.NumChunks(), Width: p.Width, Height: p.Height, FrameRate: p.FrameRate.String(),
		Blender: p.Blender, Engine: req.Engine, StoreURI: r.Store.URI(), HostBound: isHostBound(pr.eng),
		Host: r.lease(), Progress: Progress{FramesTotal: len(p.Frames)}, Labels: req.Labels,
		CreatedAt: now, UpdatedAt: now,
	}
	data, err := encodeRecord(rec)
	if err != nil {
		return nil, false, err
	}
	if err := out.do(ctx, "record the run", func() error {
		_, err := r.Store.PutIfVersion(ctx, RecordKey(id), data, "")
		return err
	}); err != nil {
		return nil, false, fmt.Errorf("record run %s: %w", id, err)
	}
	// Uploading a big scene can outlast the lease: keep it while submitting,
	// so no identical request takes the run over half-planned.
	stopLease := r.keepLease(ctx, id)
	defer stopLease()
	if err := out.do(ctx, "index the run", func() error {
		return r.Store.Put(ctx, timeIndexKey(now, id), strings.NewReader("{}"))
	}); err != nil {
		return nil, false, r.failRun(ctx, id, fmt.Errorf("index run %s: %w", id, err))
	}
	if err := out.do(ctx, "upload the scene", func() error {
		if _, err := r.Store.Stat(ctx, p.Blend.Key); errors.Is(err, store.ErrNotFound) {
			return r.Store.PutFile(ctx, p.Blend.Key, req.BlendPath)
		} else {
			return err
		}
	}); err != nil {
		return nil, false, r.failRun(ctx, id, fmt.Errorf("upload the scene: %w", err))
	}
	planJSON, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, false, r.failRun(ctx, id, fmt.Errorf("encode plan: %w", err))
	}
	if err := out.do(ctx, "store the plan", func() error {
		return r.Store.Put(ctx, store.PlanKey(id), strings.NewReader(string(planJSON)))
	}); err != nil {
		return nil, false, r.failRun(ctx, id, fmt.Errorf("store the plan: %w", err))
	}
	d.send(Event{Kind: EventPlanned, Time: r.now(), RunID: id, FramesTotal: len(p.Frames), ChunkTotal: p.NumChunks(), Record: rec,
		Message: fmt.Sprintf("%d frames (%s) in %d chunk(s) of %d, %dx%d at %s fps",
			len(p.Frames), plan.Format(p.Frames), p.NumChunks(), p.ChunkSize, p.Width, p.Height, p.FrameRate)})
	rec, err = r.submitJobs(ctx, out, rec, pr.eng, d)
	return rec, false, err
}

// addLabels merges a request's labels into the identical run it attached
// to (or whose result it reuses), so whoever asked can find that run by its
// own labels too: a Slack thread asking for a render a PR already started.
// Labels the run has keep their values. rec is updated in place.
func (r *Runs) addLabels(ctx context.Context, out *outage, rec *RunRecord, labels map[string]string) error {
	if _, changed := mergeLabels(rec.Labels, labels); !changed {
		return nil
	}
	updated, err := r.update(ctx, out, "label the run", rec.ID, func(cur *RunRecord) error {
		merged, changed := mergeLabels(cur.Labels, labels)
		if !changed {
			return errNoChange
		}
		cur.Labels = merged
		return nil
	})
	var missing *RunNotFoundError
	switch {
	case errors.As(err, &missing):
		return nil // a run from before records: nothing to label
	case err != nil:
		return fmt.Errorf("label run %s: %w", rec.ID, err)
	}
	rec.Labels = updated.Labels
	return nil
}

// mergeLabels returns have with the labels of add it lacks (existing keys
// keep their values), and whether anything was added. have is not changed.
func mergeLabels(have, add map[string]string) (map[string]string, bool) {
	var merged map[string]string
	for k, v := range add {
		if _, ok := have[k]; ok {
			continue
		}
		if merged == nil {
			merged = make(map[string]string, len(have)+len(add))
			maps.Copy(merged, have)
		}
		merged[k] = v
	}
	if merged == nil {
		return have, false
	}
	return merged, true
}

// claim takes the cache key for run id, or returns the identical run that
// holds it: unfinished (to attach to), or succeeded (cached).
func (r *Runs) claim(ctx context.Context, out *outage, pr *prepared, id string) (*RunRecord, bool, error) {
	key := store.CacheKey(pr.key)
	for {
		var (
			data []byte
			ver  store.Version
		)
		err := out.do(ctx, "read the cache", func() error {
			var err error
			data, ver, err = r.Store.GetVersioned(ctx, key)
			return err
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("read the cache: %w", err)
		}
		if err == nil {
			var entry cacheEntry
			if json.Unmarshal(data, &entry) == nil && entry.RunID != "" {
				rec, take, err := r.holder(ctx, pr, entry)
				if err != nil {
					return nil, false, err
				}
				if rec != nil {
					return rec, rec.State == RunSucceeded, nil
				}
				if !take {
					// The holder is still writing its record.
					select {
					case <-ctx.Done():
						return nil, false, ctx.Err()
					case <-r.after(100 * time.Millisecond):
					}
					continue
				}
			}
		}
		entry, _ := json.Marshal(cacheEntry{RunID: id, ClaimedAt: r.now().UTC()})
		err = out.do(ctx, "claim the cache key", func() error {
			_, err := r.Store.PutIfVersion(ctx, key, entry, ver)
			return err
		})
		if err == nil {
			return nil, false, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, false, fmt.Errorf("claim the cache key: %w", err)
		}
		// Another request claimed it first: look at what it made.
	}
}

// holder decides about the run a cache entry names: it returns that run's
// record to attach to (or reuse), or take=true when the claim may be taken.
func (r *Runs) holder(ctx context.Context, pr *prepared, entry cacheEntry) (*RunRecord, bool, error) {
	rec, _, err := readRecord(ctx, r.Store, entry.RunID)
	var missing *RunNotFoundError
	switch {
	case errors.As(err, &missing):
		if !entry.ClaimedAt.IsZero() && r.now().Sub(entry.ClaimedAt) < claimGrace {
			return nil, false, nil // being recorded right now
		}
		if entry.ClaimedAt.IsZero() && !pr.req.Force {
			// A run from before records: its manifest is the result.
			if res, err := cachedResult(ctx, r.Store, entry.RunID, pr.req.LinkExpiry); err != nil {
				return nil, false, err
			} else if res != nil {
				return &RunRecord{Schema: RecordSchema, ID: entry.RunID, State: RunSucceeded, Result: res, CacheKey: pr.key,
					Scene: res.Scene, FramesTotal: res.FrameCount, StoreURI: r.Store.URI()}, false, nil
			}
		}
		return nil, true, nil
	case err != nil:
		var tooNew *SchemaTooNewError
		var corrupt *CorruptRecordError
		if errors.As(err, &tooNew) || errors.As(err, &corrupt) {
			return nil, true, nil // render afresh rather than trust it
		}
		return nil, false, err
	case pr.req.Force:
		return nil, true, nil
	case rec.State == RunSucceeded:
		res, err := cachedResult(ctx, r.Store, rec.ID, pr.req.LinkExpiry)
		if err != nil {
			return nil, false, err
		}
		if res == nil {
			return nil, true, nil // its files are gone: render again
		}
		rec.Result = res
		return rec, false, nil
	case rec.State.Final():
		return nil, true, nil // failed or cancelled: a new run
	}
	rec.State = effectiveState(rec, r.now(), r.holderGone)
	return rec, false, nil
}

func settingsOf(req Request) RunSettings {
	return RunSettings{
		Frames: req.Frames, Chunk: req.Chunk, Parallelism: req.Parallelism, ResolutionPercentage: req.ResolutionPercentage,
		Samples: req.Samples, Threads: req.Threads, Stitch: req.Stitch, Force: req.Force, Attempts: req.Attempts,
		AttemptTimeout: req.AttemptTimeout, Env: req.Env, PollInterval: req.PollInterval, LinkExpiry: req.LinkExpiry,
		PricePerVCPUHour: req.PricePerVCPUHour, StoreOutageBudget: req.StoreOutageBudget, StallWarning: req.StallWarning,
	}
}

// keepLease renews this process's lease on a run being submitted until stop is called.
func (r *Runs) keepLease(ctx context.Context, id string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.after(r.leaseTTL() / 3):
			}
			_, _ = updateRecord(ctx, r.Store, id, r.clock(), func(rec *RunRecord) error {
				if rec.State.Final() || rec.Handle != nil || !r.ours(rec.Host) {
					return errNoChange
				}
				rec.Host = r.lease()
				return nil
			})
		}
	}()
	return func() { cancel(); <-done }
}

// update is updateRecord retried under out while the store is unreachable.
func (r *Runs) update(ctx context.Context, out *outage, what, id string, change func(*RunRecord) error) (*RunRecord, error) {
	var rec *RunRecord
	err := out.do(ctx, what, func() error {
		var err error
		rec, err = updateRecord(ctx, r.Store, id, r.clock(), change)
		return err
	})
	return rec, err
}

// recordFailure marks the run failed unless it already ended, best effort
// (the store may be what failed) and even when ctx has ended; it returns
// the record as it now is, nil when it could not be written or read.
func (r *Runs) recordFailure(ctx context.Context, id string, f *RunFailure) *RunRecord {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	rec, _ := updateRecord(cctx, r.Store, id, r.clock(), func(cur *RunRecord) error {
		if cur.State.Final() {
			return errNoChange
		}
		now := r.now().UTC()
		cur.State, cur.FinishedAt, cur.Host, cur.Failure = RunFailed, &now, nil, f
		return nil
	})
	return rec
}

// failRun records a failure that happened before the jobs ran, and returns err.
func (r *Runs) failRun(ctx context.Context, id string, err error) error {
	r.recordFailure(ctx, id, &RunFailure{Message: err.Error()})
	return err
}

// errCancelledMeanwhile: the record was cancelled while its jobs were being submitted.
var errCancelledMeanwhile = errors.New("cancelled while submitting")

// submitJobs submits (or resubmits, keeping the id) a recorded run's jobs.
func (r *Runs) submitJobs(ctx context.Context, out *outage, rec *RunRecord, eng Engine, d *deliverer) (*RunRecord, error) {
	s := rec.Settings
	h, err := eng.Submit(ctx, Job{
		RunID: rec.ID, StoreURI: r.Store.URI(), Chunks: rec.ChunkTotal, Scene: rec.Scene,
		Attempts: s.Attempts, AttemptTimeout: s.AttemptTimeout, Env: s.Env,
	})
	if err != nil {
		return nil, r.failRun(ctx, rec.ID, fmt.Errorf("submit run %s: %w", rec.ID, err))
	}
	resumed := rec.Submissions > 0
	updated, err := r.update(ctx, out, "record the submitted jobs", rec.ID, func(cur *RunRecord) error {
		if cur.State.Final() {
			return errCancelledMeanwhile
		}
		if cur.Submissions > 0 {
			cur.PriorVCPUSeconds = cur.Progress.VCPUSeconds
		}
		cur.Handle, cur.State = &h, RunSubmitted
		cur.Submissions++
		cur.Host = nil
		if cur.HostBound {
			cur.Host = r.lease()
		}
		return nil
	})
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		cerr := eng.Cancel(cctx, h, "framefleet could not record the run")
		if errors.Is(err, errCancelledMeanwhile) {
			return updated, &RunCancelledError{RunID: rec.ID, Reason: cancelReason(updated)}
		}
		return nil, errors.Join(fmt.Errorf("record run %s's jobs: %w", rec.ID, err), cerr)
	}
	kind := EventSubmitted
	if resumed {
		kind = EventResumed
	}
	d.send(Event{Kind: kind, Time: r.now(), RunID: rec.ID, FramesDone: updated.Progress.FramesDone, FramesTotal: updated.FramesTotal,
		ChunkTotal: updated.ChunkTotal, Handle: &h, Record: updated})
	return updated, nil
}

func cancelReason(rec *RunRecord) string {
	if rec != nil && rec.Failure != nil && rec.Failure.CancelReason != "" {
		return rec.Failure.CancelReason
	}
	return "cancelled"
}

// Get returns a run's record by id or unique id prefix.
func (r *Runs) Get(ctx context.Context, id string) (*RunRecord, error) {
	full, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	rec, _, err := readRecord(ctx, r.Store, full)
	if err != nil {
		return nil, err
	}
	rec.State = effectiveState(rec, r.now(), r.holderGone)
	return rec, nil
}

// resolve turns an id or a unique prefix into a run id, with one listing.
func (r *Runs) resolve(ctx context.Context, prefix string) (string, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if !validRunIDPrefix(prefix) {
		return "", &RunNotFoundError{ID: prefix}
	}
	objs, _, err := r.Store.ListPage(ctx, indexIDPrefix+prefix, "", 5)
	if err != nil {
		return "", fmt.Errorf("look up run %s: %w", prefix, err)
	}
	switch {
	case len(objs) == 0:
		return "", &RunNotFoundError{ID: prefix}
	case len(objs) == 1 || strings.TrimPrefix(objs[0].Key, indexIDPrefix) == prefix:
		return strings.TrimPrefix(objs[0].Key, indexIDPrefix), nil
	}
	var ids []string
	for _, o := range objs {
		ids = append(ids, strings.TrimPrefix(o.Key, indexIDPrefix))
	}
	return "", &AmbiguousRunError{Prefix: prefix, Matches: ids}
}

// List returns runs newest first: one listing of the time index per page
// and one read per listed run, whatever the number of runs in the store.
func (r *Runs) List(ctx context.Context, f ListFilter) (RunPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	if f.Cursor != "" && !strings.HasPrefix(f.Cursor, indexTimePrefix) {
		return RunPage{}, fmt.Errorf("list runs: cursor %q is not one List returned", f.Cursor)
	}
	filtered := len(f.States) > 0 || len(f.Labels) > 0
	pageSize := limit
	if filtered {
		pageSize = max(limit, 100)
	}
	page := RunPage{Runs: []RunRecord{}}
	after := f.Cursor
	now := r.now()
	for {
		objs, more, err := r.Store.ListPage(ctx, indexTimePrefix, after, pageSize)
		if err != nil {
			return page, fmt.Errorf("list runs: %w", err)
		}
		recs, errs := r.readRecords(ctx, objs)
		for i, o := range objs {
			after = o.Key
			id, rec, err := idFromTimeIndex(o.Key), recs[i], errs[i]
			var missing *RunNotFoundError
			switch {
			case errors.As(err, &missing):
				continue // recorded in the index but not (yet) written
			case err != nil:
				if !filtered {
					page.Unreadable = append(page.Unreadable, UnreadableRun{ID: id, Error: err.Error(), Err: err})
				}
				continue
			}
			rec.State = effectiveState(rec, now, r.holderGone)
			if !matches(rec, f) {
				continue
			}
			page.Runs = append(page.Runs, *rec)
			if len(page.Runs) == limit {
				if more || i < len(objs)-1 {
					page.Next = o.Key
				}
				return page, nil
			}
		}
		if !more || len(objs) == 0 {
			return page, nil
		}
	}
}

// listReaders bounds the records List reads at once.
const listReaders = 8

// readRecords reads the records a page of the time index names, a few at
// once, keeping the page's order.
func (r *Runs) readRecords(ctx context.Context, objs []store.Object) ([]*RunRecord, []error) {
	recs, errs := make([]*RunRecord, len(objs)), make([]error, len(objs))
	sem := make(chan struct{}, listReaders)
	var wg sync.WaitGroup
	for i, o := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			recs[i], _, errs[i] = readRecord(ctx, r.Store, idFromTimeIndex(o.Key))
		}()
	}
	wg.Wait()
	return recs, errs
}

func matches(rec *RunRecord, f ListFilter) bool {
	if len(f.States) > 0 {
		ok := false
		for _, s := range f.States {
			ok = ok || rec.State == s
		}
		if !ok {
			return false
		}
	}
	for k, v := range f.Labels {
		if rec.Labels[k] != v {
			return false
		}
	}
	return true
}

// Cancel cancels a run: the record says cancelled at once (whoever watches
// it, in any process, stops its jobs at its next poll and reports it), and
// the engine is asked to stop the jobs when it knows them here.
func (r *Runs) Cancel(ctx context.Context, id, reason string) (*RunRecord, error) {
	return r.CancelBy(ctx, id, "", reason)
}

// CancelBy is Cancel saying who cancelled (RunView.Cancelled.By).
func (r *Runs) CancelBy(ctx context.Context, id, by, reason string) (*RunRecord, error) {
	full, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "cancelled by user"
	}
	rec, err := updateRecord(ctx, r.Store, full, r.clock(), func(rec *RunRecord) error {
		if rec.State.Final() {
			return errNoChange
		}
		now := r.now().UTC()
		rec.State, rec.FinishedAt = RunCancelled, &now
		rec.Failure = &RunFailure{Message: "cancelled: " + reason, CancelReason: reason, CancelledBy: by}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec.State != RunCancelled || rec.Handle == nil {
		return rec, nil
	}
	eng, err := r.engine(ctx, rec.Engine)
	if err != nil {
		return rec, err
	}
	if err := eng.Cancel(ctx, *rec.Handle, reason); err != nil && !errors.Is(err, ErrUnknownJob) {
		return rec, fmt.Errorf("cancel run %s's jobs: %w", rec.ID, err)
	}
	return rec, nil
}
