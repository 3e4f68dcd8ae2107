package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// RunView is one run as every front-end shows it: the CLI's status, the
// GitHub Action's comment and statuses, the Slack bot's messages. It is
// made in one place (NewRunView, Runs.View, and every Event), so the
// front-ends never read the store's layout, never guess the state from
// event kinds, and never shape error text themselves.
type RunView struct {
	ID    string   `json:"id"`
	State RunState `json:"state"`
	Final bool     `json:"final"`
	// Source is what the front-end called the scene ("shot.blend",
	// "owner/repo/path.blend@sha"); Scene is the scene rendered.
	Source       string `json:"source"`
	SourceSHA256 string `json:"source_sha256,omitempty"`
	SourceSize   int64  `json:"source_size,omitempty"`
	Scene        string `json:"scene"`
	Engine       string `json:"engine"`
	// Jobs are the engine's jobs, once submitted.
	Jobs      *Handle `json:"jobs,omitempty"`
	Width     int     `json:"width,omitempty"`
	Height    int     `json:"height,omitempty"`
	FrameRate string  `json:"frame_rate,omitempty"`
	// Frames is what was asked for, in Blender's notation ("1-48x2"), or ""
	// for the scene's own range.
	Frames   string       `json:"frames,omitempty"`
	Progress ViewProgress `json:"progress"`
	// Latest is the newest stored frame while the run is unfinished.
	Latest *LatestFrame `json:"latest,omitempty"`
	// Cancelled says who cancelled the run and why (State cancelled only).
	Cancelled *Cancellation `json:"cancelled,omitempty"`
	// Failures say why the run failed, one entry per cause (State failed only).
	Failures []FailureView `json:"failures,omitempty"`
	// Links are the finished run's files (State succeeded only).
	Links    *ViewLinks `json:"links,omitempty"`
	Cost     ViewCost   `json:"cost"`
	Warnings []string   `json:"warnings,omitempty"`
	// MissingInputs are files the scene needs that were not found (when
	// the run's inputs were traced); Scope is where the run may read them
	// from (its trust scope), when one is set.
	MissingInputs []MissingInput    `json:"missing_inputs,omitempty"`
	Scope         string            `json:"scope,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
	FinishedAt    *time.Time        `json:"finished_at,omitempty"`
	Cached        bool              `json:"cached,omitempty"`
	HostBound     bool              `json:"host_bound,omitempty"`
	Chunks        map[JobState]int  `json:"chunks,omitempty"`
}

// ViewProgress is how far a run is.
type ViewProgress struct {
	FramesDone  int `json:"frames_done"`
	FramesTotal int `json:"frames_total"`
	ChunkTotal  int `json:"chunk_total,omitempty"`
}

// Percent is the share of frames done, 0-100.
func (p ViewProgress) Percent() int {
	if p.FramesTotal <= 0 {
		return 0
	}
	return 100 * p.FramesDone / p.FramesTotal
}

// LatestFrame is the newest stored frame and its small JPEG.
type LatestFrame struct {
	Frame         int    `json:"frame"`
	FrameKey      string `json:"frame_key"`
	ThumbnailKey  string `json:"thumbnail_key,omitempty"`
	FrameLink     string `json:"frame_link,omitempty"`
	ThumbnailLink string `json:"thumbnail_link,omitempty"`
}

// Cancellation says who cancelled a run and why.
type Cancellation struct {
	// By is who cancelled it ("alice", "GitHub Actions", "U024BE7LH"), "" when unknown.
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at,omitzero"`
}

// FailureView is one cause of a failed run, in words any front-end can show.
type FailureView struct {
	// Chunk is the failed chunk, StitchChunk for the stitch job, RunChunk
	// for the run as a whole (submitting it, watching it).
	Chunk    int `json:"chunk"`
	Attempts int `json:"attempts,omitempty"`
	// Frames are the frames it affects, in Blender's notation ("" when unknown).
	Frames string `json:"frames,omitempty"`
	// Summary is one short sentence naming the cause, without engine
	// wording or temporary paths; Fix says what to do, "" when unknown.
	Summary string `json:"summary"`
	Fix     string `json:"fix,omitempty"`
	// BlenderError is Blender's own error line, once, when it gave one.
	BlenderError string `json:"blender_error,omitempty"`
	// LogKey is Blender's log in the store, LogLink a link to it; LogStream
	// is the engine's log of the attempt (a CloudWatch Logs stream on Batch).
	LogKey    string `json:"log_key,omitempty"`
	LogLink   string `json:"log_link,omitempty"`
	LogStream string `json:"log_stream,omitempty"`
}

// Chunk numbers of failures that are not a render chunk's.
const (
	StitchChunk = -1
	RunChunk    = -2
)

// ViewLinks are a finished run's files: store keys from the manifest, and
// the links and local paths made from them.
type ViewLinks struct {
	VideoKey     string `json:"video_key"`
	PreviewKey   string `json:"preview_key,omitempty"`
	ThumbnailKey string `json:"thumbnail_key,omitempty"`
	Video        string `json:"video,omitempty"`
	Preview      string `json:"preview,omitempty"`
	Thumbnail    string `json:"thumbnail,omitempty"`
	// VideoPath and PreviewPath are local paths when the store is a directory.
	VideoPath   string `json:"video_path,omitempty"`
	PreviewPath string `json:"preview_path,omitempty"`
	// ExpiresAt is when the links stop working (nil: never, local files).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ViewCost is what the run used: finished attempts only while it runs.
type ViewCost struct {
	VCPUSeconds float64 `json:"vcpu_seconds"`
	USD         float64 `json:"usd"`
	Final       bool    `json:"final"`
}

// MissingInput is a file the scene references that was not found.
type MissingInput struct {
	// Path is as the scene names it ("//textures/wood.png").
	Path string `json:"path"`
	// Kind is what it is (image, library, sound, …), "" when unknown.
	Kind string `json:"kind,omitempty"`
}

// ViewInput is everything a view is made from; only Record is required.
type ViewInput struct {
	Record *RunRecord
	// Manifest is the succeeded run's manifest (nil: links from the record's result).
	Manifest *Manifest
	// Plan gives the failed chunks' frames (nil: frames unknown).
	Plan *plan.Plan
}

// NewRunView makes the view of a run from its record, and its manifest
// and plan when known. It does no I/O: links are filled by Runs.View.
func NewRunView(in ViewInput) RunView {
	rec := in.Record
	v := RunView{
		ID: rec.ID, State: rec.State, Final: rec.State.Final(), Source: rec.Source.Name, Scene: rec.Scene,
		SourceSHA256: rec.Source.SHA256, SourceSize: rec.Source.Size, Jobs: rec.Handle,
		Engine: rec.Engine, Width: rec.Width, Height: rec.Height, FrameRate: rec.FrameRate, Frames: rec.Settings.Frames,
		Progress: ViewProgress{FramesDone: rec.Progress.FramesDone, FramesTotal: rec.Progress.FramesTotal, ChunkTotal: rec.ChunkTotal},
		Labels:   rec.Labels, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, FinishedAt: rec.FinishedAt,
		HostBound: rec.HostBound,
		Cost:      ViewCost{VCPUSeconds: rec.Progress.VCPUSeconds, USD: rec.Progress.CostUSD, Final: rec.State.Final()},
	}
	if v.Progress.FramesTotal == 0 {
		v.Progress.FramesTotal = rec.FramesTotal
	}
	if !v.Final || !activeChunks(rec.Progress.Chunks) {
		v.Chunks = rec.Progress.Chunks // a finished run's counts that say "running" are stale
	}
	if !v.Final && rec.Progress.LatestFrameKey != "" {
		v.Latest = &LatestFrame{Frame: rec.Progress.LatestFrame, FrameKey: rec.Progress.LatestFrameKey, ThumbnailKey: rec.Progress.LatestThumbnailKey}
	}
	switch rec.State {
	case RunSucceeded:
		v.Progress.FramesDone = v.Progress.FramesTotal
		v.Links = linksOf(rec, in.Manifest)
		if m := in.Manifest; m != nil {
			v.Cost.VCPUSeconds, v.Cost.USD = m.VCPUSeconds, m.CostUSD
			v.Warnings = manifestWarnings(m)
		} else if res := rec.Result; res != nil {
			v.Cost.VCPUSeconds, v.Cost.USD = res.VCPUSeconds, res.CostUSD
			v.Warnings = res.Warnings
		}
		v.Cached = rec.Result != nil && rec.Result.Cached
	case RunCancelled:
		c := &Cancellation{Reason: "cancelled"}
		if f := rec.Failure; f != nil {
			c.By = f.CancelledBy
			if f.CancelReason != "" {
				c.Reason = f.CancelReason
			}
		}
		if rec.FinishedAt != nil {
			c.At = *rec.FinishedAt
		}
		v.Cancelled = c
	case RunFailed:
		v.Failures = failuresOf(rec, in.Plan)
	}
	return v
}

func activeChunks(c map[JobState]int) bool {
	for s, n := range c {
		if n > 0 && s != StateSucceeded && s != StateFailed {
			return true
		}
	}
	return false
}

// linksOf names a succeeded run's files: the manifest's keys, else the
// links its result recorded when it finished.
func linksOf(rec *RunRecord, m *Manifest) *ViewLinks {
	l := &ViewLinks{}
	if m != nil && m.VideoKey != "" {
		l.VideoKey, l.PreviewKey, l.ThumbnailKey = m.VideoKey, m.PreviewKey, m.ThumbnailKey
		return l
	}
	if res := rec.Result; res != nil {
		l.Video, l.Preview, l.Thumbnail, l.VideoPath = res.Video, res.Preview, res.Thumbnail, res.VideoPath
		l.ExpiresAt = res.LinksExpireAt
	}
	return l
}

func manifestWarnings(m *Manifest) []string {
	var out []string
	for _, c := range m.Chunks {
		for _, w := range c.Warnings {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// failuresOf shapes a failed run's causes: one per failed chunk, the
// stitch's when it ran and failed, or the run's own message.
func failuresOf(rec *RunRecord, p *plan.Plan) []FailureView {
	f := rec.Failure
	if f == nil {
		return []FailureView{{Chunk: RunChunk, Summary: "The run failed without saying why.",
			Fix: "Run `framefleet logs " + rec.ID + "` to read the workers' logs."}}
	}
	var out []FailureView
	for _, cf := range f.Failures {
		fv := ShapeFailure(rec.Engine, cf)
		if p != nil && cf.Index >= 0 {
			if frames, err := p.Chunk(cf.Index); err == nil {
				fv.Frames = plan.Format(frames)
			}
		}
		out = append(out, fv)
	}
	if len(out) == 0 && f.StitchReason != "" && !strings.HasPrefix(f.StitchReason, "not run") {
		out = append(out, ShapeFailure(rec.Engine, ChildFailure{Index: StitchChunk, Reason: f.StitchReason}))
	}
	if len(out) == 0 {
		fv := ShapeFailure(rec.Engine, ChildFailure{Index: RunChunk, Reason: firstLineOf(f.Message)})
		out = append(out, fv)
	}
	return out
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// knownCause is a failure whose cause and fix are known.
type knownCause struct {
	match   func(text string) bool
	summary func(frames string) string
	fix     string
}

func contains(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}

// knownCauses are checked in order against the failure's text.
var knownCauses = []knownCause{
	{contains("Cannot render, no camera"),
		func(string) string { return "The scene has no active camera, so Blender cannot render it." },
		"Add a camera to the scene and set it as the scene's camera (Properties > Scene > Camera), then save the file."},
	{contains("is not in this file"),
		func(string) string { return "The scene to render is not in this file." },
		"Render one of the file's scenes, or rename the scene in Blender."},
	{func(s string) bool {
		return strings.Contains(s, "Out of memory") || strings.Contains(s, "out of memory")
	},
		func(string) string { return "Blender ran out of memory." },
		"Lower the samples or the resolution, or render on workers with more memory."},
	{contains("killed by signal"),
		func(string) string { return "Blender was killed (out of memory?)." },
		"Lower the samples or the resolution, or render on workers with more memory."},
	{contains("attempt duration exceeded timeout"),
		func(string) string { return "A chunk took longer than the time allowed per attempt." },
		"Raise attempt_timeout, or render fewer frames per chunk (chunk)."},
	{contains("no such GPU"),
		func(string) string { return "The workers found no GPU for Cycles." },
		"Use an official Blender build on a GPU instance, or unset FRAMEFLEET_CYCLES_DEVICE."},
	{contains("saved by Blender"),
		func(string) string { return "The file was saved by a newer Blender than the workers run." },
		"Install a newer Blender for the workers (see the README)."},
}

// awsWording is what AWS Batch says of any container that exited; it tells
// a person nothing (and the local engine mimics it).
var awsWording = []string{"Essential container in task exited", "Host EC2", "Task failed to start"}

// failureText cleans a raw failure message: temporary paths become their
// base names, lines are split on Blender's " | " joins.
var (
	tempPath = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`'?(/tmp|/var/tmp|/var/folders|/private/var|/run/user)/[^\s'")]+'?`)
	})
	workerLog  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\s*\(worker log: [^)]*\)`) })
	exitPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^exit code \d+( \(transient\))?(: ?|$)`) })
)

// stripPaths replaces temporary paths by their base names.
func stripPaths(s string) string {
	s = workerLog().ReplaceAllString(s, "")
	return tempPath().ReplaceAllStringFunc(s, func(p string) string {
		trimmed := strings.TrimRight(strings.Trim(p, "'"), ":,;.")
		tail := strings.TrimPrefix(strings.Trim(p, "'"), trimmed)
		return "'" + path.Base(trimmed) + "'" + tail
	})
}

// blenderErrorLine is Blender's first "Error: …" line in the texts, once.
func blenderErrorLine(texts ...string) string {
	for _, t := range texts {
		for _, line := range strings.FieldsFunc(t, func(r rune) bool { return r == '\n' }) {
			for _, part := range strings.Split(line, " | ") {
				part = strings.TrimSpace(part)
				if i := strings.Index(part, "Error: "); i >= 0 {
					return stripPaths(strings.TrimSpace(part[i:]))
				}
			}
		}
	}
	return ""
}

// maxSummary bounds a summary (a commit status holds 140 characters).
const maxSummary = 200

// ShapeFailure turns what an engine and the worker said about a failed
// chunk into one short sentence, a fix when the cause is known, and where
// the log is. It names no engine internals, no temporary paths, and
// Blender's error line only once.
func ShapeFailure(engine string, cf ChildFailure) FailureView {
	fv := FailureView{Chunk: cf.Index, Attempts: cf.Attempts, LogKey: cf.Log}
	if engine != "local" && cf.LogStream != "" {
		fv.LogStream = cf.LogStream // a CloudWatch stream outlives the attempt; a local /tmp log does not
	}
	all := cf.WorkerError + "\n" + cf.Reason
	fv.BlenderError = blenderErrorLine(cf.WorkerError, cf.Reason)
	for _, k := range knownCauses {
		if k.match(all) {
			fv.Summary, fv.Fix = k.summary(""), k.fix
			return fv
		}
	}
	fv.Summary = sentence(plainReason(cf, fv.BlenderError))
	if fv.Fix == "" && cf.Index >= 0 {
		fv.Fix = "Read Blender's log of the chunk for the cause."
	}
	return fv
}

// plainReason is the failure's cause in plain words, before known causes.
func plainReason(cf ChildFailure, blenderErr string) string {
	if blenderErr != "" {
		return "Blender failed: " + strings.TrimPrefix(blenderErr, "Error: ")
	}
	// The worker's first line says what failed; the engine's reason is the fallback.
	text := firstLineOf(cf.WorkerError)
	if text == "" {
		text = cf.Reason
		for _, w := range awsWording {
			text = strings.TrimPrefix(strings.TrimPrefix(text, w), ":")
		}
		text = strings.TrimSpace(text)
		text = exitPrefix().ReplaceAllString(text, "")
		if i := strings.Index(text, " | "); i >= 0 {
			text = text[:i]
		}
	}
	text = stripPaths(strings.TrimSpace(text))
	if text == "" {
		if cf.ExitCode != nil {
			return fmt.Sprintf("The worker exited with code %d", *cf.ExitCode)
		}
		return "The worker failed without saying why"
	}
	return text
}

// sentence capitalises s, ends it with a full stop and cuts it to maxSummary.
func sentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxSummary {
		s = string([]rune(s)[:maxSummary-1]) + "…"
	}
	if r, n := utf8.DecodeRuneInString(s); n > 0 && r >= 'a' && r <= 'z' {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "…") {
		s += "."
	}
	return s
}

// View returns run id's view (by id or unique prefix), with its links
// signed afresh from the manifest.
func (r *Runs) View(ctx context.Context, id string) (*RunView, error) {
	rec, err := r.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.viewOf(ctx, rec), nil
}

// viewOf reads what the record's view needs beyond it (the manifest of a
// succeeded run, the plan of a failed one) and signs its links. What
// cannot be read is left out: the record alone is worth showing.
func (r *Runs) viewOf(ctx context.Context, rec *RunRecord) *RunView {
	in := ViewInput{Record: rec}
	switch rec.State {
	case RunSucceeded:
		var m Manifest
		if err := getJSON(ctx, r.Store, store.ManifestKey(rec.ID), &m); err == nil {
			in.Manifest = &m
		} else if !errors.Is(err, store.ErrNotFound) {
			r.log().Warn("run view: manifest unreadable", "run", rec.ID, "err", err)
		}
	case RunFailed:
		if p, err := readPlan(ctx, r.Store, rec.ID); err == nil {
			in.Plan = &p
		}
	}
	v := NewRunView(in)
	r.signView(ctx, &v, rec.Settings.LinkExpiry)
	return &v
}

// signView fills the links of the view's keys that have none yet.
func (r *Runs) signView(ctx context.Context, v *RunView, expiry time.Duration) {
	if expiry <= 0 {
		expiry = store.MaxLinkExpiry
	}
	link := func(key string, dst *string) bool {
		if key == "" || *dst != "" {
			return false
		}
		l, err := r.Store.Link(ctx, key, expiry)
		if err != nil {
			return false
		}
		*dst = l
		return true
	}
	localPath := func(key string) string {
		if p, ok := r.Store.(interface{ Path(string) string }); ok && key != "" {
			return p.Path(key)
		}
		return ""
	}
	signed := false
	if l := v.Latest; l != nil {
		signed = link(l.ThumbnailKey, &l.ThumbnailLink) || signed
		signed = link(l.FrameKey, &l.FrameLink) || signed
	}
	if l := v.Links; l != nil {
		signed = link(l.VideoKey, &l.Video) || signed
		signed = link(l.PreviewKey, &l.Preview) || signed
		signed = link(l.ThumbnailKey, &l.Thumbnail) || signed
		if l.VideoPath == "" {
			l.VideoPath = localPath(l.VideoKey)
		}
		l.PreviewPath = localPath(l.PreviewKey)
		if l.ExpiresAt == nil && signed {
			l.ExpiresAt = store.LinksExpireAt(ctx, r.Store, expiry)
		}
	}
	for i := range v.Failures {
		link(v.Failures[i].LogKey, &v.Failures[i].LogLink)
	}
}

// newDeliverer is a deliverer whose events carry the run's view.
func (r *Runs) newDeliverer(ctx context.Context, obs func(Event)) *deliverer {
	d := newDeliverer(obs)
	vctx := context.WithoutCancel(ctx) // the last events are delivered after ctx ends
	d.view = func(ev Event, last *RunView) *RunView {
		cctx, cancel := context.WithTimeout(vctx, 30*time.Second)
		defer cancel()
		return r.eventView(cctx, ev, last)
	}
	return d
}

// eventView is the view after ev: the record's when the event carries
// one (read further, and signed, once the run ended), else the last view
// moved on by the event's progress.
func (r *Runs) eventView(ctx context.Context, ev Event, last *RunView) *RunView {
	expiry := time.Duration(0)
	if ev.Record != nil {
		expiry = ev.Record.Settings.LinkExpiry
	}
	switch {
	case ev.Record != nil && ev.Record.State.Final():
		return r.viewOf(ctx, ev.Record)
	case ev.View != nil:
		v := *ev.View
		if v.Latest == nil && last != nil && last.ID == v.ID {
			v.Latest = last.Latest
		}
		v.Labels = labelsOr(v.Labels, last)
		v = withPreview(v, ev.Preview)
		r.signView(ctx, &v, expiry)
		return &v
	case ev.Record != nil:
		v := NewRunView(ViewInput{Record: ev.Record})
		v = withPreview(v, ev.Preview)
		r.signView(ctx, &v, expiry)
		return &v
	case last != nil && last.ID == ev.RunID:
		v := *last
		if ev.FramesTotal > 0 {
			v.Progress.FramesDone, v.Progress.FramesTotal = ev.FramesDone, ev.FramesTotal
		}
		if ev.Chunks != nil {
			v.Chunks = ev.Chunks
		}
		v = withPreview(v, ev.Preview)
		r.signView(ctx, &v, expiry)
		return &v
	default:
		v := RunView{ID: ev.RunID, State: RunPlanned, Progress: ViewProgress{FramesDone: ev.FramesDone, FramesTotal: ev.FramesTotal, ChunkTotal: ev.ChunkTotal}}
		return &v
	}
}

func labelsOr(l map[string]string, last *RunView) map[string]string {
	if l == nil && last != nil {
		return last.Labels
	}
	return l
}

// withPreview moves the view's newest frame to the event's.
func withPreview(v RunView, p *FramePreview) RunView {
	if p == nil || v.Final {
		return v
	}
	if v.Latest == nil || v.Latest.Frame != p.Frame || v.Latest.FrameKey != p.FrameKey {
		v.Latest = &LatestFrame{Frame: p.Frame, FrameKey: p.FrameKey, ThumbnailKey: p.ThumbnailKey}
	}
	return v
}
