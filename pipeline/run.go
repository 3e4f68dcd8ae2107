package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
	// StoreOutageBudget is how long a run rides out a store or engine outage
	// (throttling, a network outage), from the upload of the scene to the
	// last check of the jobs, before it gives up and cancels its jobs
	// (default 5 minutes). Every stage retries with backoff under this one
	// budget: each outage may last this long.
	StoreOutageBudget time.Duration
	// WatchErrorBudget is the former name of StoreOutageBudget, used when
	// that is unset.
	WatchErrorBudget time.Duration
	// Labels are the front-end's own facts about the run (github.repo,
	// github.pr, slack.channel, slack.thread, requested_by, ...), stored in
	// the run record and never interpreted by the pipeline.
	Labels map[string]string
	// SourceName is what the front-end calls the scene ("shot.blend",
	// "owner/repo/path.blend@ref"); default: the file's base name.
	SourceName string
	// Engine names the engine to run on; empty = Runs.EngineName.
	Engine string
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
	// retried until Request.StoreOutageBudget runs out.
	EventWatchError EventKind = "watch_error"
	// EventStalled says chunks have waited for capacity (RUNNABLE) with none
	// running for Request.StallWarning: on Batch, a compute environment that
	// cannot start instances (quota, instance types, Spot capacity).
	EventStalled EventKind = "stalled"
	// EventCancelled says the run was cancelled (by Cancel, from any process);
	// its jobs are stopped.
	EventCancelled EventKind = "cancelled"
	// EventResumed says an interrupted run was submitted again under the same
	// id; only frames not yet stored are rendered.
	EventResumed EventKind = "resumed"
	// EventFirstFrame says the first frame is stored (Preview names it).
	EventFirstFrame EventKind = "first_frame"
)

// FramePreview names the newest stored frame and its small JPEG thumbnail
// (a few KB; empty until the worker stored it). Keys are store keys.
type FramePreview struct {
	Frame        int    `json:"frame"`
	FrameKey     string `json:"frame_key"`
	ThumbnailKey string `json:"thumbnail_key,omitempty"`
}

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
	// Preview is the newest stored frame, when it changed (progress, first_frame).
	Preview *FramePreview `json:"preview,omitempty"`
	// Record is a snapshot of the run record when the event was made
	// (submitted, resumed, cancelled and final events; nil otherwise).
	Record *RunRecord `json:"record,omitempty"`
	// View is the run as front-ends show it after this event (always set
	// for observers; built from the newest record the watcher knows).
	View *RunView `json:"view,omitempty"`
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

// BlenderTooOldError refuses a file saved by a newer Blender than the workers run.
type BlenderTooOldError struct {
	File    string // version that saved the file, e.g. "4.2"
	Blender string // the workers' Blender, e.g. "3.4.1"
	Path    string
}

func (e *BlenderTooOldError) Error() string {
	return fmt.Sprintf("%s was saved by Blender %s but the workers run Blender %s, which cannot read it reliably: "+
		"install Blender %s or newer (https://download.blender.org/release/), then point the blender setting at it (local) "+
		"or build the worker image with the build args BLENDER_SOURCE=official BLENDER_VERSION=<that version> (Batch)",
		e.Path, e.File, e.Blender, majorMinor(e.File))
}

// RunFailedError says which chunks (or the stitch job) failed and why.
type RunFailedError struct {
	RunID        string
	Failures     []ChildFailure
	StitchReason string
	// Logs says where the workers' logs are (the engine's LogLocator and
	// the store's log tails).
	Logs string
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
	if e.Logs != "" {
		fmt.Fprintf(&b, "\n  workers' logs: %s", e.Logs)
	}
	return b.String()
}

// DefaultStoreOutageBudget is how long a run rides out an outage by default.
const DefaultStoreOutageBudget = 5 * time.Minute

func withDefaults(req Request) Request {
	if req.PollInterval <= 0 {
		req.PollInterval = time.Second
	}
	if req.LinkExpiry <= 0 {
		req.LinkExpiry = store.MaxLinkExpiry
	}
	if req.Parallelism <= 0 {
		req.Parallelism = 1
	}
	if req.Stitch == "" {
		req.Stitch = plan.StitchConcat
	}
	if req.StoreOutageBudget <= 0 {
		req.StoreOutageBudget = req.WatchErrorBudget
	}
	if req.StoreOutageBudget <= 0 {
		req.StoreOutageBudget = DefaultStoreOutageBudget
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
			err = &SettingError{Key: KeyFrames, Reason: fmt.Sprintf("scene %q has no valid frame range (%v): fix the range in Blender or give the frames to render", info.Scene, err), Err: err}
		}
	}
	if err != nil {
		return plan.Plan{}, err
	}
	chunk := req.Chunk
	if chunk == 0 {
		chunk = plan.AutoChunkSize(len(frames), req.Parallelism)
	}
	chunk = plan.FitChunkSize(len(frames), chunk)

	stitch, err := plan.ParseStitchMode(string(req.Stitch))
	if err != nil {
		return plan.Plan{}, &SettingError{Key: KeyStitch, Value: string(req.Stitch), Reason: "use concat or encode", Err: err}
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
		return plan.Plan{}, &SettingError{Key: KeyResolution, Value: fmt.Sprint(pct), Reason: fmt.Sprintf("scene %q renders %dx%d pixels (%dx%d at %d%%): raise the resolution percentage", info.Scene, w, h, info.ResolutionX, info.ResolutionY, pct)}
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

// cachedResult returns the result of a finished run from its manifest, or
// nil when the run has no manifest or its files are gone.
func cachedResult(ctx context.Context, st store.Store, runID string, expiry time.Duration) (*Result, error) {
	var m Manifest
	if err := getJSON(ctx, st, store.ManifestKey(runID), &m); errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read cached run %s: %w", runID, err)
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

// finishRun reads the manifest and adds the cost (the cache entry was claimed at submission).
// Setting (not adding) the cost keeps it right when two watchers finish the same run.
func finishRun(ctx context.Context, st store.Store, runID string, s Status, priorVCPUSeconds, pricePerVCPUHour float64, linkExpiry time.Duration) (*Result, error) {
	var m Manifest
	if err := getJSON(ctx, st, store.ManifestKey(runID), &m); err != nil {
		return nil, fmt.Errorf("run %s: the stitch job succeeded but its manifest is unreadable: %w", runID, err)
	}
	m.VCPUSeconds = priorVCPUSeconds + VCPUSeconds(s.Attempts)
	m.CostUSD = m.VCPUSeconds / 3600 * pricePerVCPUHour
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
	return resultFromManifest(ctx, st, m, linkExpiry)
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
		res.FPS = RateValue(m.FPS)
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
				return nil, fmt.Errorf("run %s frame %s: %w (frames may have expired: render again with the setting force)", m.RunID, k, store.ErrNotFound)
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

// RateValue is a frame rate as FFmpeg writes it ("30000/1001", "24") in
// frames per second; 0 when it cannot be read.
func RateValue(s string) float64 {
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
