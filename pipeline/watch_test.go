package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func testMachine() *watchMachine {
	frames := map[string]int{}
	for _, f := range []int{1, 2, 3, 4} {
		frames[store.FrameName(f, "png")] = f
	}
	return newWatchMachine(watchConfig{RunID: "abc", Frames: frames, ChunkTotal: 2, Poll: time.Second,
		OutageBudget: time.Minute, StallWarning: 10 * time.Minute, Handle: Handle{Engine: "x", RenderID: "r", StitchID: "s"}})
}

func frameObj(f int, at time.Time) store.Object {
	return store.Object{Key: store.FrameKey("abc", f, "png"), ModTime: at}
}

func thumbObj(f int) store.Object { return store.Object{Key: ThumbnailKey("abc", f)} }

func running(n int) Status {
	return Status{Render: StatePending, Stitch: StatePending, Children: map[JobState]int{StateRunning: n, StateRunnable: 2 - n}}
}

func kinds(evs []Event) []EventKind {
	var out []EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// TestWatchMachine drives the pure watcher through sequences of polls; each
// step gives the time, what the engine, store and record said, and what the
// machine must decide.
func TestWatchMachine(t *testing.T) {
	one, seventyFive := 1, 75
	type step struct {
		at      time.Duration
		obs     watchObservation
		events  []EventKind
		outcome watchOutcome
		state   RunState
		wait    time.Duration // 0: not checked
		cancel  bool
		check   func(t *testing.T, d watchDecision)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "progress, first frame with its thumbnail, stitching, done", steps: []step{
			{obs: watchObservation{Status: running(0)}, events: []EventKind{EventProgress}, state: RunSubmitted, wait: time.Second},
			{at: time.Second, obs: watchObservation{Status: running(2)}, events: []EventKind{EventProgress}, state: RunRunning},
			{at: 2 * time.Second, obs: watchObservation{Status: running(2)}, events: nil, state: RunRunning},
			{at: 3 * time.Second, obs: watchObservation{Status: running(2), Objects: []store.Object{frameObj(1, t0), frameObj(3, t0.Add(time.Second)), thumbObj(3)}},
				events: []EventKind{EventFirstFrame, EventProgress}, state: RunRunning, check: func(t *testing.T, d watchDecision) {
					p := d.Progress
					if p.FramesDone != 2 || p.LatestFrame != 3 || p.LatestFrameKey != store.FrameKey("abc", 3, "png") || p.LatestThumbnailKey != ThumbnailKey("abc", 3) {
						t.Errorf("progress %+v: want 2 done, frame 3 newest with its thumbnail", p)
					}
					if d.Events[1].Preview == nil || d.Events[1].Preview.Frame != 3 {
						t.Errorf("progress event preview %+v, want frame 3", d.Events[1].Preview)
					}
				}},
			{at: 4 * time.Second, obs: watchObservation{Status: Status{Render: StateSucceeded, Stitch: StateRunning, Children: map[JobState]int{StateSucceeded: 2}},
				Objects: []store.Object{frameObj(1, t0), frameObj(2, t0), frameObj(3, t0), frameObj(4, t0.Add(2*time.Second)), thumbObj(3)}},
				events: []EventKind{EventProgress, EventStitching}, state: RunStitching, check: func(t *testing.T, d watchDecision) {
					if d.Progress.LatestFrame != 4 || d.Progress.LatestThumbnailKey != "" {
						t.Errorf("progress %+v: newest frame 4 has no thumbnail yet", d.Progress)
					}
				}},
			{at: 5 * time.Second, obs: watchObservation{Status: Status{Render: StateSucceeded, Stitch: StateSucceeded, Children: map[JobState]int{StateSucceeded: 2}}},
				outcome: watchSucceeded, events: []EventKind{EventProgress}},
		}},
		{name: "a retried attempt, then a failed chunk cancels the rest", steps: []step{
			{obs: watchObservation{Status: Status{Render: StatePending, Children: map[JobState]int{StateRunnable: 1, StateRunning: 1},
				Attempts: []Attempt{{Index: 0, Number: 1, ExitCode: &seventyFive, Reason: "transient"}}}},
				events: []EventKind{EventChunkRetried, EventProgress}},
			{at: time.Second, obs: watchObservation{Status: Status{Render: StatePending, Children: map[JobState]int{StateFailed: 1, StateRunning: 1},
				Attempts: []Attempt{{Index: 0, Number: 1, ExitCode: &seventyFive}, {Index: 1, Number: 1, ExitCode: &one}},
				Failures: []ChildFailure{{Index: 1, Attempts: 1, Reason: "exit code 1"}}}},
				events: []EventKind{EventChunkFailed, EventProgress}, outcome: watchFailed, cancel: true, check: func(t *testing.T, d watchDecision) {
					if len(d.Failures) != 1 || d.Failures[0].Index != 1 || d.StitchReason == "" {
						t.Errorf("failures %+v stitch %q", d.Failures, d.StitchReason)
					}
				}},
		}},
		{name: "an outage backs off, warns once, recovers, then gives up after the budget", steps: []step{
			{obs: watchObservation{Status: running(1)}, events: []EventKind{EventProgress}},
			{at: time.Second, obs: watchObservation{Err: errors.New("connection refused")}, events: []EventKind{EventWatchError}, wait: time.Second},
			{at: 2 * time.Second, obs: watchObservation{Err: errors.New("connection refused")}, wait: 2 * time.Second},
			{at: 4 * time.Second, obs: watchObservation{Err: errors.New("connection refused")}, wait: 4 * time.Second},
			{at: 8 * time.Second, obs: watchObservation{Status: running(1)}, wait: time.Second},
			{at: 9 * time.Second, obs: watchObservation{Err: errors.New("503")}, events: []EventKind{EventWatchError}, wait: time.Second},
			{at: 68 * time.Second, obs: watchObservation{Err: errors.New("503")}, wait: 2 * time.Second},
			{at: 69 * time.Second, obs: watchObservation{Err: errors.New("503")}, outcome: watchGaveUp, cancel: true},
		}},
		{name: "a cancel recorded by another process stops the jobs", steps: []step{
			{obs: watchObservation{Status: running(2), Record: &RunRecord{State: RunRunning}}, events: []EventKind{EventProgress}},
			{at: time.Second, obs: watchObservation{Status: running(2), Record: &RunRecord{State: RunCancelled, Failure: &RunFailure{CancelReason: "by @ana"}}},
				events: []EventKind{EventCancelled}, outcome: watchCancelled, cancel: true, check: func(t *testing.T, d watchDecision) {
					if d.Cancel != "by @ana" || d.Events[0].Message != "by @ana" {
						t.Errorf("cancel %q event %q, want the recorded reason", d.Cancel, d.Events[0].Message)
					}
				}},
		}},
		{name: "jobs the engine no longer knows", steps: []step{
			{obs: watchObservation{Err: fmt.Errorf("render job r: %w", ErrUnknownJob)}, outcome: watchLost},
		}},
		{name: "stall warning once chunks wait for capacity with none running", steps: []step{
			{obs: watchObservation{Status: running(0)}, events: []EventKind{EventProgress}},
			{at: 9 * time.Minute, obs: watchObservation{Status: running(0)}},
			{at: 10 * time.Minute, obs: watchObservation{Status: running(0)}, events: []EventKind{EventStalled}},
			{at: 11 * time.Minute, obs: watchObservation{Status: running(0)}},
			{at: 12 * time.Minute, obs: watchObservation{Status: running(1)}, events: []EventKind{EventProgress}},
		}},
		{name: "the stitch job failing fails the run", steps: []step{
			{obs: watchObservation{Status: Status{Render: StateSucceeded, Stitch: StateFailed, StitchReason: "ffmpeg", Children: map[JobState]int{StateSucceeded: 2}}},
				events: []EventKind{EventProgress}, outcome: watchFailed, check: func(t *testing.T, d watchDecision) {
					if d.StitchReason != "ffmpeg" || d.Cancel != "" {
						t.Errorf("stitch reason %q cancel %q", d.StitchReason, d.Cancel)
					}
				}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testMachine()
			for i, s := range tc.steps {
				s.obs.Now = t0.Add(s.at)
				d := m.step(s.obs)
				if got := kinds(d.Events); !slices.Equal(got, s.events) {
					t.Errorf("step %d: events %v, want %v", i, got, s.events)
				}
				if d.Outcome != s.outcome {
					t.Errorf("step %d: outcome %d, want %d", i, d.Outcome, s.outcome)
				}
				if s.state != "" && d.State != s.state {
					t.Errorf("step %d: state %q, want %q", i, d.State, s.state)
				}
				if s.wait != 0 && d.Wait != s.wait {
					t.Errorf("step %d: wait %s, want %s", i, d.Wait, s.wait)
				}
				if (d.Cancel != "") != s.cancel {
					t.Errorf("step %d: cancel %q, want cancel=%v", i, d.Cancel, s.cancel)
				}
				if s.check != nil {
					s.check(t, d)
				}
			}
		})
	}
}

// While the store is down the engine is still asked: a retried attempt is
// reported, the frames stay as last seen, and nothing is written.
func TestWatchMachineStoreDownEngineUp(t *testing.T) {
	m := testMachine()
	m.step(watchObservation{Now: t0, Status: running(1), Objects: []store.Object{frameObj(1, t0)}})
	code := 75
	d := m.step(watchObservation{Now: t0.Add(time.Second), StoreErr: errors.New("connection refused"),
		Status: Status{Render: StatePending, Children: map[JobState]int{StateRunnable: 1, StateRunning: 1},
			Attempts: []Attempt{{Index: 0, Number: 1, ExitCode: &code}}}})
	if k := kinds(d.Events); !slices.Equal(k, []EventKind{EventWatchError, EventChunkRetried}) {
		t.Errorf("events %v, want watch_error then chunk_retried", k)
	}
	if d.Changed || d.Outcome != watchContinue || d.Events[1].FramesDone != 1 {
		t.Errorf("decision %+v: want no record change, going on, frames as last seen", d)
	}
}

func TestWatchMachineCostSoFar(t *testing.T) {
	m := testMachine()
	m.cfg.PricePerVCPUHour = 0.36
	zero := 0
	st := running(1)
	st.Attempts = []Attempt{
		{Index: 0, Number: 1, StartedAt: t0, StoppedAt: t0.Add(100 * time.Second), VCPUs: 2, ExitCode: &zero},
		{Index: 1, Number: 1, StartedAt: t0, VCPUs: 2}, // still running: not counted
	}
	d := m.step(watchObservation{Now: t0.Add(time.Minute), Status: st})
	if d.Progress.VCPUSeconds != 200 || d.Progress.CostUSD < 0.0199999 || d.Progress.CostUSD > 0.0200001 {
		t.Errorf("cost so far %v vCPU-s, $%v; want 200 and $0.02", d.Progress.VCPUSeconds, d.Progress.CostUSD)
	}
}
