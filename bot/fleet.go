package bot

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
	"strings"
	"sync"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// FleetRuns is Runs and Markers over the durable runs of a pipeline/fleet
// Fleet, the same runs the CLI and the GitHub Action see.
type FleetRuns struct {
	Fleet *fleet.Fleet
	Runs  *pipeline.Runs
}

// NewFleetRuns builds the bot's runs from an opened fleet.
func NewFleetRuns(f *fleet.Fleet) *FleetRuns {
	return &FleetRuns{Fleet: f, Runs: f.Runs}
}

var (
	_ Runs    = (*FleetRuns)(nil)
	_ Markers = (*FleetRuns)(nil)
)

func (r *FleetRuns) EngineName() string { return r.Fleet.Config.Engine }

func (r *FleetRuns) request(s Submission) pipeline.Request {
	req := r.Fleet.NewRequest(s.BlendPath)
	req.Root = s.Root
	// The scene is someone else's: only the files fetched with it travel,
	// never this host's own (an absolute path in the .blend).
	req.Confine = true
	req.SourceName, req.Labels, req.Frames = s.SourceName, s.Labels, s.Frames
	if s.Chunk > 0 {
		req.Chunk = s.Chunk
	}
	if s.Resolution > 0 {
		req.ResolutionPercentage = s.Resolution
	}
	if s.Samples > 0 {
		req.Samples = s.Samples
	}
	return req
}

// Rendering returns an unfinished run of the same file with the same
// settings, which a Submit of s would join. It compares the file's SHA-256
// and the settings that make the render different, as the pipeline's
// cache key does.
func (r *FleetRuns) Rendering(ctx context.Context, s Submission) (Run, bool) {
	req := r.request(s)
	f, err := os.Open(s.BlendPath)
	if err != nil {
		return Run{}, false
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return Run{}, false
	}
	sum := hex.EncodeToString(h.Sum(nil))
	page, err := r.Runs.List(ctx, pipeline.ListFilter{Limit: pipeline.MaxListLimit,
		States: []pipeline.RunState{pipeline.RunPlanned, pipeline.RunSubmitted, pipeline.RunRunning, pipeline.RunStitching, pipeline.RunInterrupted}})
	if err != nil {
		return Run{}, false
	}
	for i := range page.Runs {
		rec := &page.Runs[i]
		st := rec.Settings
		if rec.Source.SHA256 == sum && st.Frames == req.Frames && st.Chunk == req.Chunk && st.ResolutionPercentage == req.ResolutionPercentage &&
			st.Samples == req.Samples && st.Stitch == req.Stitch && !st.Force && rec.Engine == req.Engine {
			return summary(rec), true
		}
	}
	return Run{}, false
}

func (r *FleetRuns) Submit(ctx context.Context, s Submission) (Run, error) {
	req := r.request(s)
	rec, err := r.Runs.Submit(ctx, req) // validates req before anything else
	if err != nil {
		return Run{}, err
	}
	return r.snapshot(ctx, rec), nil
}

func (r *FleetRuns) Watch(ctx context.Context, id string, obs func(Update)) (Run, error) {
	rec, err := r.Runs.Get(ctx, id)
	if err != nil {
		return Run{}, r.wrap(err)
	}
	var mu sync.Mutex
	cur := r.snapshot(ctx, rec)
	_, werr := r.Runs.Watch(ctx, id, func(ev pipeline.Event) {
		switch ev.Kind {
		case pipeline.EventSucceeded, pipeline.EventFailed, pipeline.EventCancelled:
			return // the final snapshot comes from the record below
		}
		mu.Lock()
		if ev.Record != nil {
			cur = r.snapshot(ctx, ev.Record)
		}
		if ev.FramesTotal > 0 {
			cur.FramesDone, cur.FramesTotal = ev.FramesDone, ev.FramesTotal
		}
		if ev.Preview != nil {
			cur.LatestFrame, cur.FrameKey = ev.Preview.Frame, ev.Preview.FrameKey
			if ev.Preview.ThumbnailKey != "" {
				cur.ThumbnailKey = ev.Preview.ThumbnailKey
			}
		}
		if cur.State == pipeline.RunSubmitted && ev.FramesDone > 0 || ev.Kind == pipeline.EventFirstFrame {
			cur.State = pipeline.RunRunning
		}
		kind := UpdateProgress
		switch ev.Kind {
		case pipeline.EventFirstFrame:
			kind = UpdateFirstFrame
		case pipeline.EventChunkFailed:
			kind = UpdateChunkFailed
			cur.FailedChunk, cur.FailedFrames, cur.Failure = -1, "", ""
			if ev.Failure != nil {
				cur.FailedChunk = ev.Failure.Index
				cur.FailedFrames = r.chunkFrames(ctx, id, ev.Failure.Index)
				cur.Failure = failureText(cur.Engine, *ev.Failure)
			}
		case pipeline.EventChunkRetried:
			kind = UpdateRetried
		case pipeline.EventStitching:
			kind, cur.State = UpdateStitching, pipeline.RunStitching
		case pipeline.EventResumed:
			kind = UpdateResumed
		case pipeline.EventStalled, pipeline.EventWatchError, pipeline.EventStoreUnreachable, pipeline.EventWarning: // a note on the parent message
			kind = UpdateStalled
		case pipeline.EventSubmitted:
			kind = UpdateSubmitted
		}
		u := Update{Kind: kind, Run: cur, Message: ev.Message}
		mu.Unlock()
		obs(u)
	})
	rec, err = r.Runs.Get(ctx, id)
	if err != nil {
		return Run{}, r.wrap(err)
	}
	final := r.snapshot(ctx, rec)
	if !final.Final {
		if werr == nil {
			werr = fmt.Errorf("run %s ended watching in state %s", id, rec.State)
		}
		return final, werr
	}
	return final, nil
}

func (r *FleetRuns) Cancel(ctx context.Context, id, reason string) (Run, error) {
	rec, err := r.Runs.Cancel(ctx, id, reason)
	if err != nil {
		return Run{}, r.wrap(err)
	}
	return r.snapshot(ctx, rec), nil
}

func (r *FleetRuns) Get(ctx context.Context, id string) (Run, error) {
	rec, err := r.Runs.Get(ctx, id)
	if err != nil {
		return Run{}, r.wrap(err)
	}
	return r.snapshot(ctx, rec), nil
}

func (r *FleetRuns) List(ctx context.Context, labels map[string]string, limit int) ([]Run, error) {
	var out []Run
	cursor := ""
	for len(out) < limit {
		page, err := r.Runs.List(ctx, pipeline.ListFilter{Labels: labels, Limit: min(limit-len(out), pipeline.MaxListLimit), Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for i := range page.Runs {
			out = append(out, summary(&page.Runs[i]))
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	return out, nil
}

func (r *FleetRuns) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	obj, err := r.Fleet.Store.Stat(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	rc, err := r.Fleet.Store.Get(ctx, key)
	return rc, obj.Size, err
}

func (r *FleetRuns) Link(ctx context.Context, key string) (string, error) {
	return r.Fleet.Link(ctx, key)
}

func (r *FleetRuns) wrap(err error) error {
	var nf *pipeline.RunNotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %v", ErrRunNotFound, err)
	}
	return err
}

// snapshot reduces a record to what the bot shows, with what only the
// store knows: the failed chunk's frames, the video's size and the preview.
func (r *FleetRuns) snapshot(ctx context.Context, rec *pipeline.RunRecord) Run {
	run := summary(rec)
	if run.FailedChunk >= 0 {
		run.FailedFrames = r.chunkFrames(ctx, rec.ID, run.FailedChunk)
	}
	if run.VideoKey != "" {
		if obj, err := r.Fleet.Store.Stat(ctx, run.VideoKey); err == nil {
			run.VideoSize = obj.Size
		}
		if _, err := r.Fleet.Store.Stat(ctx, store.PreviewKey(rec.ID)); err == nil {
			run.PreviewKey = store.PreviewKey(rec.ID)
		}
	}
	return run
}

// summary is snapshot without reading the store (no FailedFrames,
// VideoSize or PreviewKey): what List returns, one record per run.
func summary(rec *pipeline.RunRecord) Run {
	run := Run{
		ID: rec.ID, State: rec.State, Final: rec.State.Final(), Scene: rec.Scene,
		SourceName: rec.Source.Name, Frames: rec.Settings.Frames,
		FramesDone: rec.Progress.FramesDone, FramesTotal: rec.FramesTotal, ChunksTotal: rec.ChunkTotal,
		LatestFrame: rec.Progress.LatestFrame, ThumbnailKey: rec.Progress.LatestThumbnailKey, FrameKey: rec.Progress.LatestFrameKey,
		Width: rec.Width, Height: rec.Height, FrameRate: rec.FrameRate, Engine: rec.Engine,
		Labels: rec.Labels, CreatedAt: rec.CreatedAt, FailedChunk: -1,
	}
	if run.FramesTotal == 0 {
		run.FramesTotal = rec.Progress.FramesTotal
	}
	if rec.FinishedAt != nil {
		run.FinishedAt = *rec.FinishedAt
	}
	if f := rec.Failure; f != nil {
		run.Failure = f.Message
		if f.CancelReason != "" {
			run.Failure = f.CancelReason
		}
		for _, c := range f.Failures {
			if c.Index >= 0 {
				run.FailedChunk = c.Index
				run.Failure = failureText(rec.Engine, c)
				break
			}
		}
		if run.FailedChunk < 0 && rec.State == pipeline.RunFailed {
			// The stitch's or the run's own failure, as the run view words it.
			if v := pipeline.NewRunView(pipeline.ViewInput{Record: rec}); len(v.Failures) > 0 {
				run.Failure = viewFailureText(v.Failures[0])
			}
		}
	}
	if rec.State == pipeline.RunSucceeded {
		run.VideoKey = store.VideoKey(rec.ID, rec.Scene)
		if rec.Result != nil {
			run.CostUSD = rec.Result.CostUSD
		}
	}
	return run
}

// failureText is a failed chunk as the pipeline's run view words it
// (pipeline.ShapeFailure): one sentence naming the cause, Blender's own
// error line when the sentence does not already carry it, and the fix —
// never a cut through Blender's preamble.
func failureText(engine string, c pipeline.ChildFailure) string {
	return viewFailureText(pipeline.ShapeFailure(engine, c))
}

func viewFailureText(fv pipeline.FailureView) string {
	text := fv.Summary
	if be := strings.TrimPrefix(fv.BlenderError, "Error: "); be != "" && !strings.Contains(text, be) {
		text += " Blender said: " + fv.BlenderError
	}
	if fv.Fix != "" {
		text += " Fix: " + fv.Fix
	}
	return text
}

// chunkFrames names a chunk's frames ("21–30") from the stored plan.
func (r *FleetRuns) chunkFrames(ctx context.Context, id string, chunk int) string {
	rc, err := r.Fleet.Store.Get(ctx, store.PlanKey(id))
	if err != nil {
		return ""
	}
	defer rc.Close()
	var p plan.Plan
	if json.NewDecoder(rc).Decode(&p) != nil {
		return ""
	}
	frames, err := p.Chunk(chunk)
	if err != nil || len(frames) == 0 {
		return ""
	}
	if len(frames) == 1 {
		return fmt.Sprint(frames[0])
	}
	return fmt.Sprintf("%d–%d", frames[0], frames[len(frames)-1])
}

// Markers, in the runs' store with its conditional writes.

func (r *FleetRuns) GetMarker(ctx context.Context, key string) ([]byte, string, error) {
	data, v, err := r.Fleet.Store.GetVersioned(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("%s: %w", key, ErrNoMarker)
	}
	return data, string(v), err
}

func (r *FleetRuns) PutMarker(ctx context.Context, key string, data []byte, match string) (string, error) {
	v, err := r.Fleet.Store.PutIfVersion(ctx, key, bytes.Clone(data), store.Version(match))
	if errors.Is(err, store.ErrConflict) {
		return "", fmt.Errorf("%s: %w", key, ErrMarkerConflict)
	}
	return string(v), err
}

func (r *FleetRuns) DeleteMarker(ctx context.Context, key string) error {
	return r.Fleet.Store.Delete(ctx, key)
}

func (r *FleetRuns) ListMarkers(ctx context.Context, prefix string) ([]string, error) {
	objs, err := r.Fleet.Store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys, nil
}
