package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Request is one render, as a front-end asks for it.
type Request struct {
	// BlendPath is the local .blend file.
	BlendPath string
	// Frames overrides the scene's range ("1-100x5", "3,7,12-20"); empty = the scene's.
	Frames string
	// Chunk is frames per array child; 0 picks one from Parallelism.
	Chunk int
	// Parallelism is how many children run at once (workers, or an estimate on Batch).
	Parallelism int
	// ResolutionPercentage and Samples override the scene for previews; 0 keeps the scene's.
	ResolutionPercentage int
	Samples              int
	// Threads is Blender's -t per worker; 0 = all.
	Threads int
	// Stitch chooses how the video is made (default concat).
	Stitch plan.StitchMode
	// Force re-renders even when an identical render is cached.
	Force bool
	// Attempts per child (0 = the engine's default) and the per-attempt timeout (0 = none).
	Attempts       int
	AttemptTimeout time.Duration
	// Env is passed to every worker.
	Env map[string]string
	// PollInterval is how often the run is watched (default 1 s).
	PollInterval time.Duration
	// LinkExpiry bounds presigned links (default 7 days, S3's maximum).
	LinkExpiry time.Duration
	// PricePerVCPUHour turns vCPU time into the cost figure (0 locally).
	PricePerVCPUHour float64
	// WatchErrorBudget is how long the watcher keeps retrying when the engine
	// or the store cannot be asked (throttling, a network outage) before it
	// cancels the jobs and gives up (default 5 minutes).
	WatchErrorBudget time.Duration
	// StallWarning is how long chunks may wait for capacity, none running,
	// before an EventStalled (default 15 minutes).
	StallWarning time.Duration
}

// EventKind names a step of a run.
type EventKind string

const (
	EventPlanned      EventKind = "planned"
	EventCached       EventKind = "cached"
	EventSubmitted    EventKind = "submitted"
	EventProgress     EventKind = "progress"
	EventChunkRetried EventKind = "chunk_retried"
	EventChunkFailed  EventKind = "chunk_failed"
	EventStitching    EventKind = "stitching"
	EventSucceeded    EventKind = "succeeded"
	EventFailed       EventKind = "failed"
	// EventWatchError says the run could not be checked for a while; it is
	// retried until Request.WatchErrorBudget runs out.
	EventWatchError EventKind = "watch_error"
	// EventStalled says chunks have waited for capacity (RUNNABLE) with none
	// running for Request.StallWarning: on Batch, a compute environment that
	// cannot start instances (quota, instance types, Spot capacity).
	EventStalled EventKind = "stalled"
)

// Event tells a front-end what a run is doing.
type Event struct {
	Kind        EventKind        `json:"kind"`
	Time        time.Time        `json:"time"`
	RunID       string           `json:"run_id,omitempty"`
	FramesDone  int              `json:"frames_done"`
	FramesTotal int              `json:"frames_total"`
	Chunks      map[JobState]int `json:"chunks,omitempty"`
	ChunkTotal  int              `json:"chunk_total,omitempty"`
	// Failure is the chunk that failed or is retried (chunk_failed, chunk_retried).
	Failure *ChildFailure `json:"failure,omitempty"`
	Handle  *Handle       `json:"handle,omitempty"`
	Message string        `json:"message,omitempty"`
}

// Result is a finished render; `framefleet render --json` prints it.
type Result struct {
	RunID string `json:"run_id"`
	Scene string `json:"scene"`
	// Video, Preview and Thumbnail are links a person can open.
	Video     string `json:"video"`
	Preview   string `json:"preview,omitempty"`
	Thumbnail string `json:"thumbnail,omitempty"`
	// LinksExpireAt is when the links above stop working (nil: never, as
	// for local files); front-ends show it next to them.
	LinksExpireAt *time.Time `json:"links_expire_at,omitempty"`
	// VideoPath is the video's local path when the store is a directory.
	VideoPath       string        `json:"video_path,omitempty"`
	Frames          []string      `json:"frames"`
	FrameCount      int           `json:"frame_count"`
	FPS             float64       `json:"fps"`
	FrameRate       string        `json:"frame_rate"`
	DurationSeconds float64       `json:"duration_seconds"`
	Width           int           `json:"width,omitempty"`
	Height          int           `json:"height,omitempty"`
	Chunks          []ChunkReport `json:"chunks"`
	Warnings        []string      `json:"warnings,omitempty"`
	Cached          bool          `json:"cached"`
	Store           string        `json:"store"`
	VCPUSeconds     float64       `json:"vcpu_seconds"`
	CostUSD         float64       `json:"cost_usd"`
	WallSeconds     float64       `json:"wall_seconds"`
}

// cacheEntry is stored at store.CacheKey.
type cacheEntry struct {
	RunID string `json:"run_id"`
}

// BlenderTooOldError refuses a file saved by a newer Blender than the workers run.
type BlenderTooOldError struct {
	File    string // version that saved the file, e.g. "4.2"
	Blender string // the workers' Blender, e.g. "3.4.1"
	Path    string
}

func (e *BlenderTooOldError) Error() string {
	return fmt.Sprintf("%s was saved by Blender %s but the workers run Blender %s, which cannot read it reliably: "+
		"install Blender %s or newer (https://download.blender.org/release/), then point --blender at it (local) "+
		"or build the worker image with the build args BLENDER_SOURCE=official BLENDER_VERSION=<that version> (Batch)",
		e.Path, e.File, e.Blender, majorMinor(e.File))
}

// RunFailedError says which chunks (or the stitch job) failed and why.
type RunFailedError struct {
	RunID        string
	Failures     []ChildFailure
	StitchReason string
}

func (e *RunFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s failed", e.RunID)
	for _, f := range e.Failures {
		if f.Index < 0 {
			continue
		}
		fmt.Fprintf(&b, "\n  chunk %d failed after %d attempt(s): %s", f.Index, f.Attempts, f.Reason)
		if f.WorkerError != "" && !strings.Contains(f.Reason, f.WorkerError) {
			fmt.Fprintf(&b, "\n    %s", strings.ReplaceAll(f.WorkerError, "\n", "\n    "))
		}
		switch {
		case f.LogStream != "":
			fmt.Fprintf(&b, "\n    log stream: %s", f.LogStream)
		case f.Log != "":
			fmt.Fprintf(&b, "\n    Blender's log: %s in the store", f.Log)
		}
	}
	if e.StitchReason != "" {
		fmt.Fprintf(&b, "\n  stitch: %s", e.StitchReason)
	}
	return b.String()
}

// Run renders req on eng, storing everything in st, and reports progress
// to obs (which may be nil). It returns when the video is ready, when
// anything failed for good, or when ctx ends (the jobs are then cancelled).
func Run(ctx context.Context, eng Engine, st store.Store, req Request, obs func(Event)) (*Result, error) {
	started := time.Now()
	emit := func(ev Event) {
		if obs != nil {
			ev.Time = time.Now()
			obs(ev)
		}
	}
	req = withDefaults(req)

	// Everything that can be wrong with the input is found before anything runs.
	info, err := blend.ReadFile(req.BlendPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", req.BlendPath, err)
	}
	sum, size, err := hashFile(req.BlendPath)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(info, req, plan.Blend{
		Key: store.BlendKey(sum), SHA256: sum, Name: filepath.Base(req.BlendPath), Size: size, Version: info.Version,
	})
	if err != nil {
		return nil, err
	}
	// The workers' Blender must read the file, and is part of the cache key.
	// (Engines keep the version cheap to ask: the local engine caches it per
	// binary, Batch reads it from the job definition.)
	bv, err := eng.BlenderVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the workers' Blender version: %w", err)
	}
	if newer(info.Version, bv) {
		return nil, &BlenderTooOldError{File: info.Version, Blender: bv, Path: req.BlendPath}
	}
	p.Blender = bv
	key := cacheKey(p)

	if !req.Force {
		res, err := cachedResult(ctx, st, key, req.LinkExpiry)
		if err != nil {
			return nil, err
		}
		if res != nil {
			res.WallSeconds = time.Since(started).Seconds()
			emit(Event{Kind: EventCached, RunID: res.RunID, FramesDone: res.FrameCount, FramesTotal: res.FrameCount,
				Message: "identical render found; use --force to render again"})
			return res, nil
		}
	}

	if _, err := st.Stat(ctx, p.Blend.Key); errors.Is(err, store.ErrNotFound) {
		if err := st.PutFile(ctx, p.Blend.Key, req.BlendPath); err != nil {
			return nil, fmt.Errorf("upload the scene: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("check the stored scene: %w", err)
	}

	if p.RunID, err = NewRunID(time.Now()); err != nil {
		return nil, err
	}
	p.CreatedAt = time.Now().UTC()
	planJSON, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	if err := st.Put(ctx, store.PlanKey(p.RunID), strings.NewReader(string(planJSON))); err != nil {
		return nil, fmt.Errorf("store the plan: %w", err)
	}
	emit(Event{Kind: EventPlanned, RunID: p.RunID, FramesTotal: len(p.Frames), ChunkTotal: p.NumChunks(),
		Message: fmt.Sprintf("%d frames (%s) in %d chunk(s) of %d, %dx%d at %s fps",
			len(p.Frames), plan.Format(p.Frames), p.NumChunks(), p.ChunkSize, p.Width, p.Height, p.FrameRate)})

	h, err := eng.Submit(ctx, Job{
		RunID: p.RunID, StoreURI: st.URI(), Chunks: p.NumChunks(), Scene: p.Scene,
		Attempts: req.Attempts, AttemptTimeout: req.AttemptTimeout, Env: req.Env,
	})
	if err != nil {
		return nil, fmt.Errorf("submit run %s: %w", p.RunID, err)
	}
	emit(Event{Kind: EventSubmitted, RunID: p.RunID, FramesTotal: len(p.Frames), ChunkTotal: p.NumChunks(), Handle: &h})

	status, err := watch(ctx, eng, st, h, p, req, emit)
	if err != nil {
		if ctx.Err() != nil {
			// The caller's context is gone; stopping the workers must not be.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if cerr := eng.Cancel(cctx, h, "render interrupted ("+context.Cause(ctx).Error()+")"); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		emit(Event{Kind: EventFailed, RunID: p.RunID, FramesTotal: len(p.Frames), Message: err.Error()})
		return nil, err
	}

	res, err := finishRun(ctx, st, p.RunID, key, status, req)
	if err != nil {
		emit(Event{Kind: EventFailed, RunID: p.RunID, Message: err.Error()})
		return nil, err
	}
	res.WallSeconds = time.Since(started).Seconds()
	emit(Event{Kind: EventSucceeded, RunID: p.RunID, FramesDone: res.FrameCount, FramesTotal: len(p.Frames), Message: res.Video})
	return res, nil
}

func withDefaults(req Request) Request {
	if req.PollInterval <= 0 {
		req.PollInterval = time.Second
	}
	if req.LinkExpiry <= 0 {
		req.LinkExpiry = 7 * 24 * time.Hour
	}
	if req.Parallelism <= 0 {
		req.Parallelism = 1
	}
	if req.Stitch == "" {
		req.Stitch = plan.StitchConcat
	}
	if req.WatchErrorBudget <= 0 {
		req.WatchErrorBudget = 5 * time.Minute
	}
	if req.StallWarning <= 0 {
		req.StallWarning = 15 * time.Minute
	}
	return req
}

// newPlan turns the scene and the request into the plan every worker reads.
func newPlan(info *blend.Info, req Request, b plan.Blend) (plan.Plan, error) {
	var frames []int
	var err error
	if req.Frames != "" {
		frames, err = plan.ParseFrames(req.Frames)
	} else {
		frames, err = plan.SceneFrames(info.FrameStart, info.FrameEnd, info.FrameStep)
		if err != nil {
			err = fmt.Errorf("scene %q: %w (fix the range in Blender or pass --frames)", info.Scene, err)
		}
	}
	if err != nil {
		return plan.Plan{}, err
	}
	if req.Chunk < 0 {
		return plan.Plan{}, fmt.Errorf("chunk size %d: give a positive number of frames per chunk, or 0 to choose automatically", req.Chunk)
	}
	chunk := req.Chunk
	if chunk == 0 {
		chunk = plan.AutoChunkSize(len(frames), req.Parallelism)
	}
	chunk = plan.FitChunkSize(len(frames), chunk)

	if req.ResolutionPercentage < 0 || req.ResolutionPercentage > 32767 {
		return plan.Plan{}, fmt.Errorf("resolution %d%%: give a percentage from 1 to 32767 (e.g. 25 for a quick preview)", req.ResolutionPercentage)
	}
	if req.Samples < 0 {
		return plan.Plan{}, fmt.Errorf("samples %d: give a positive number of samples, or 0 to keep the scene's", req.Samples)
	}
	if req.Threads < 0 {
		return plan.Plan{}, fmt.Errorf("threads %d: give a positive number, or 0 for all cores", req.Threads)
	}
	stitch, err := plan.ParseStitchMode(string(req.Stitch))
	if err != nil {
		return plan.Plan{}, err
	}
	rate, err := plan.FrameRateFromScene(info.FPS, info.FPSBase)
	if err != nil {
		return plan.Plan{}, fmt.Errorf("scene %q: %w", info.Scene, err)
	}
	pct := info.ResolutionPercentage
	if req.ResolutionPercentage > 0 {
		pct = req.ResolutionPercentage
	}
	w, h := info.ResolutionX*pct/100, info.ResolutionY*pct/100
	if w < 1 || h < 1 {
		return plan.Plan{}, fmt.Errorf("scene %q renders %dx%d pixels (%dx%d at %d%%): raise the resolution percentage", info.Scene, w, h, info.ResolutionX, info.ResolutionY, pct)
	}
	p := plan.Plan{
		Schema:    plan.Schema,
		Blend:     b,
		Scene:     info.Scene,
		Frames:    frames,
		ChunkSize: chunk,
		FrameRate: rate,
		Width:     w,
		Height:    h,
		Engine:    info.Engine,
		Render: plan.RenderSettings{
			ResolutionPercentage: req.ResolutionPercentage,
			Samples:              req.Samples,
			Threads:              req.Threads,
			ImageFormat:          "PNG",
		},
		Stitch: stitch,
	}
	return p, nil
}

// cacheKey identifies a render by everything that changes its pixels.
// Threads and chunking change only how it is made, so they are left out.
func cacheKey(p plan.Plan) string {
	k := struct {
		Schema     int             `json:"schema"`
		Blend      string          `json:"blend"`
		Scene      string          `json:"scene"`
		Frames     string          `json:"frames"`
		Resolution int             `json:"resolution_percentage"`
		Samples    int             `json:"samples"`
		Format     string          `json:"image_format"`
		Stitch     plan.StitchMode `json:"stitch"`
		Blender    string          `json:"blender"`
	}{plan.Schema, p.Blend.SHA256, p.Scene, plan.Format(p.Frames), p.Render.ResolutionPercentage, p.Render.Samples, p.Render.ImageFormat, p.Stitch, p.Blender}
	b, _ := json.Marshal(k) // plain values: cannot fail
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// cachedResult returns the result of a finished identical run, or nil.
func cachedResult(ctx context.Context, st store.Store, key string, expiry time.Duration) (*Result, error) {
	var entry cacheEntry
	if err := getJSON(ctx, st, store.CacheKey(key), &entry); errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil || entry.RunID == "" {
		// A damaged cache entry only costs a re-render.
		return nil, nil
	}
	var m Manifest
	if err := getJSON(ctx, st, store.ManifestKey(entry.RunID), &m); errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read cached run %s: %w", entry.RunID, err)
	}
	res, err := resultFromManifest(ctx, st, m, expiry)
	if err != nil {
		// The cached run's files are gone (cleaned up by hand): render again.
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	res.Cached = true
	return res, nil
}

// watch polls until the stitch job succeeded (returning the final status)
// or anything failed for good. Each poll costs one Status and one List.
func watch(ctx context.Context, eng Engine, st store.Store, h Handle, p plan.Plan, req Request, emit func(Event)) (Status, error) {
	every, errorBudget := req.PollInterval, req.WatchErrorBudget
	want := make(map[string]bool, len(p.Frames))
	for _, f := range p.Frames {
		want[store.FrameName(f, "png")] = true
	}
	prefix := store.FramesPrefix(p.RunID)
	lastDone, lastKey := -1, ""
	seenAttempts := 0
	failed := map[int]bool{}
	stitching := false
	var failingSince time.Time // start of the current run of failed checks
	lastChange, stallWarned := time.Now(), false
	var backoff time.Duration
	tick := time.NewTicker(every)
	defer tick.Stop()
	notifier, _ := eng.(ChangeNotifier)
	for {
		var changed <-chan struct{}
		if notifier != nil {
			changed = notifier.Changes(h)
		}
		s, err := eng.Status(ctx, h)
		var objs []store.Object
		if err == nil {
			objs, err = st.List(ctx, prefix)
		}
		if err != nil {
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			// The jobs keep running (and costing) whether or not we can see
			// them: keep asking with backoff, and cancel them if we must give up.
			if failingSince.IsZero() {
				failingSince = time.Now()
				emit(Event{Kind: EventWatchError, RunID: p.RunID, FramesTotal: len(p.Frames), Handle: &h,
					Message: fmt.Sprintf("cannot check the run, retrying for up to %s: %v", errorBudget, err)})
			}
			if time.Since(failingSince) >= errorBudget {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				cerr := eng.Cancel(cctx, h, "framefleet lost track of the run: "+err.Error())
				cancel()
				if cerr != nil {
					return s, fmt.Errorf("watch run %s: gave up after %s: %w; cancelling its jobs also failed (%v): cancel render job %s and stitch job %s yourself",
						p.RunID, errorBudget, err, cerr, h.RenderID, h.StitchID)
				}
				return s, fmt.Errorf("watch run %s: gave up after %s and cancelled its jobs: %w", p.RunID, errorBudget, err)
			}
			backoff = min(max(backoff*2, every), time.Minute)
			select {
			case <-ctx.Done():
				return s, ctx.Err()
			case <-time.After(backoff):
			}
			continue
		}
		failingSince, backoff = time.Time{}, 0
		done := 0
		for _, o := range objs {
			if want[strings.TrimPrefix(o.Key, prefix)] {
				done++
			}
		}
		// Retried attempts, in the order they finished.
		for _, a := range s.Attempts[min(seenAttempts, len(s.Attempts)):] {
			if a.Index >= 0 && (a.ExitCode == nil || *a.ExitCode != 0) && !childFailed(s, a.Index) {
				emit(Event{Kind: EventChunkRetried, RunID: p.RunID, FramesDone: done, FramesTotal: len(p.Frames),
					Failure: &ChildFailure{Index: a.Index, Attempts: a.Number, Reason: a.Reason, ExitCode: a.ExitCode}})
			}
		}
		seenAttempts = len(s.Attempts)
		for _, f := range s.Failures {
			if f.Index >= 0 && !failed[f.Index] {
				failed[f.Index] = true
				emit(Event{Kind: EventChunkFailed, RunID: p.RunID, FramesDone: done, FramesTotal: len(p.Frames), Failure: &f})
			}
		}
		if k := fmt.Sprint(s.Children); done != lastDone || k != lastKey {
			lastDone, lastKey, lastChange, stallWarned = done, k, time.Now(), false
			emit(Event{Kind: EventProgress, RunID: p.RunID, FramesDone: done, FramesTotal: len(p.Frames),
				Chunks: s.Children, ChunkTotal: p.NumChunks()})
		}
		if waiting := s.Children[StateRunnable]; !stallWarned && waiting > 0 && s.Children[StateRunning]+s.Children[StateStarting] == 0 &&
			time.Since(lastChange) >= req.StallWarning {
			stallWarned = true
			emit(Event{Kind: EventStalled, RunID: p.RunID, FramesDone: done, FramesTotal: len(p.Frames), Chunks: s.Children, Handle: &h,
				Message: fmt.Sprintf("%d chunk(s) have waited %s for capacity with none running: check the job queue's compute environments (instance types, vCPU limits, EC2 quotas, Spot capacity)",
					waiting, time.Since(lastChange).Round(time.Second))})
		}
		switch {
		case s.Stitch == StateSucceeded:
			return s, nil
		case s.Render == StateFailed || s.Stitch == StateFailed:
			return s, &RunFailedError{RunID: p.RunID, Failures: workerErrors(ctx, st, p.RunID, s.Failures), StitchReason: s.StitchReason}
		case len(failed) > 0:
			// The stitch job can no longer run: stop paying for the rest.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			cerr := eng.Cancel(cctx, h, fmt.Sprintf("chunk %d failed", s.Failures[0].Index))
			cancel()
			var fs []ChildFailure
			for _, f := range s.Failures {
				if f.Index >= 0 {
					fs = append(fs, f)
				}
			}
			return s, errors.Join(&RunFailedError{RunID: p.RunID, Failures: workerErrors(ctx, st, p.RunID, fs),
				StitchReason: "not run: a render chunk failed"}, cerr)
		case !stitching && s.Render == StateSucceeded:
			stitching = true
			emit(Event{Kind: EventStitching, RunID: p.RunID, FramesDone: done, FramesTotal: len(p.Frames)})
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-tick.C:
		case <-changed: // nil (never ready) for engines without notifications
		}
	}
}

// ChangeNotifier is implemented by engines that can say when a run's state
// changed (the local engine); the watcher then reacts at once instead of at
// its next poll. Engines that cannot (Batch) are simply polled.
type ChangeNotifier interface {
	Changes(h Handle) <-chan struct{}
}

// maxFailureReports bounds the store reads a failed run makes to explain itself.
const maxFailureReports = 20

// workerErrors adds each failed chunk's own error (the worker stores it in its
// chunk report) to what the engine knows: on Batch that is only "Essential
// container in task exited" and an exit code, while the report says "Blender:
// cannot read file …".
func workerErrors(ctx context.Context, st store.Store, runID string, fs []ChildFailure) []ChildFailure {
	out := slices.Clone(fs)
	for i := range out {
		if i >= maxFailureReports || out[i].Index < 0 {
			continue
		}
		var r ChunkReport
		if err := getJSON(ctx, st, store.ChunkReportKey(runID, out[i].Index), &r); err == nil && r.Error != "" {
			out[i].WorkerError = r.Error
			out[i].Log = store.ChunkLogKey(runID, out[i].Index)
		}
	}
	return out
}

func childFailed(s Status, index int) bool {
	for _, f := range s.Failures {
		if f.Index == index {
			return true
		}
	}
	return false
}

// finishRun reads the manifest, adds the cost, and records the cache entry.
func finishRun(ctx context.Context, st store.Store, runID, key string, s Status, req Request) (*Result, error) {
	var m Manifest
	if err := getJSON(ctx, st, store.ManifestKey(runID), &m); err != nil {
		return nil, fmt.Errorf("run %s: the stitch job succeeded but its manifest is unreadable: %w", runID, err)
	}
	for _, a := range s.Attempts {
		if !a.StoppedAt.IsZero() && a.StoppedAt.After(a.StartedAt) {
			m.VCPUSeconds += a.StoppedAt.Sub(a.StartedAt).Seconds() * a.VCPUs
		}
	}
	m.CostUSD = m.VCPUSeconds / 3600 * req.PricePerVCPUHour
	m.Attempts = s.Attempts
	updated, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if err := st.Put(ctx, store.ManifestKey(runID), bytes.NewReader(updated)); err != nil {
		return nil, fmt.Errorf("store the manifest's cost: %w", err)
	}
	if m.RunID == "" {
		m.RunID = runID
	}
	res, err := resultFromManifest(ctx, st, m, req.LinkExpiry)
	if err != nil {
		return nil, err
	}
	entry, _ := json.Marshal(cacheEntry{RunID: runID})
	if err := st.Put(ctx, store.CacheKey(key), strings.NewReader(string(entry))); err != nil {
		return nil, fmt.Errorf("record the render in the cache: %w", err)
	}
	return res, nil
}

func resultFromManifest(ctx context.Context, st store.Store, m Manifest, expiry time.Duration) (*Result, error) {
	if m.VideoKey == "" {
		return nil, fmt.Errorf("run %s: manifest names no video", m.RunID)
	}
	link := func(key string) (string, error) {
		if key == "" {
			return "", nil
		}
		return st.Link(ctx, key, expiry)
	}
	res := &Result{
		RunID: m.RunID, Scene: m.Scene, FrameCount: m.FrameCount, FPS: m.FPSFloat, FrameRate: m.FPS,
		DurationSeconds: m.DurationSeconds, Width: m.Width, Height: m.Height, Chunks: m.Chunks,
		Store: st.URI(), VCPUSeconds: m.VCPUSeconds, CostUSD: m.CostUSD, Frames: []string{},
	}
	if res.FPS == 0 && m.FPS != "" {
		res.FPS = parseRate(m.FPS)
	}
	// Links are only signed; existence is checked with one Stat for the
	// video and one listing for all frames, not a request per frame.
	if _, err := st.Stat(ctx, m.VideoKey); err != nil {
		return nil, fmt.Errorf("run %s video: %w", m.RunID, err)
	}
	var err error
	if res.Video, err = link(m.VideoKey); err != nil {
		return nil, fmt.Errorf("run %s video: %w", m.RunID, err)
	}
	res.LinksExpireAt = store.LinksExpireAt(ctx, st, expiry)
	if lp, ok := st.(interface{ Path(string) string }); ok {
		res.VideoPath = lp.Path(m.VideoKey)
	}
	// Preview and thumbnail are nice to have; a missing one is left out.
	for _, o := range []struct {
		key string
		dst *string
	}{{m.PreviewKey, &res.Preview}, {m.ThumbnailKey, &res.Thumbnail}} {
		if o.key == "" {
			continue
		}
		if _, err := st.Stat(ctx, o.key); err == nil {
			*o.dst, _ = link(o.key)
		}
	}
	if len(m.Frames) > 0 {
		stored, err := st.List(ctx, store.FramesPrefix(m.RunID))
		if err != nil {
			return nil, fmt.Errorf("run %s frames: %w", m.RunID, err)
		}
		have := make(map[string]bool, len(stored))
		for _, o := range stored {
			have[o.Key] = true
		}
		for _, k := range m.Frames {
			if !have[k] {
				return nil, fmt.Errorf("run %s frame %s: %w (frames may have expired: render again with --force)", m.RunID, k, store.ErrNotFound)
			}
			l, err := link(k)
			if err != nil {
				return nil, fmt.Errorf("run %s frame: %w", m.RunID, err)
			}
			res.Frames = append(res.Frames, l)
		}
	}
	seen := map[string]bool{}
	for _, c := range m.Chunks {
		for _, w := range c.Warnings {
			if !seen[w] {
				seen[w] = true
				res.Warnings = append(res.Warnings, w)
			}
		}
	}
	return res, nil
}

func parseRate(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0
	}
	if !ok {
		return n
	}
	d, err := strconv.ParseFloat(den, 64)
	if err != nil || d == 0 {
		return 0
	}
	return n / d
}

func getJSON(ctx context.Context, st store.Store, key string, v any) error {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// hashFile returns the file's SHA-256 (hex) and size.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("open scene: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// NewRunID is time-sortable and unique per submission: 20261121-083000-ab12cd.
func NewRunID(now time.Time) (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b), nil
}

// newer reports whether version a (the file's) has a higher major.minor than b (Blender's).
func newer(a, b string) bool {
	am, an := splitVersion(a)
	bm, bn := splitVersion(b)
	if am != bm {
		return am > bm
	}
	return an > bn
}

func splitVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

func majorMinor(v string) string {
	m, n := splitVersion(v)
	return fmt.Sprintf("%d.%d", m, n)
}
