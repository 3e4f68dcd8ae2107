package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

// The watcher is split in two: watchMachine is pure state logic (input: the
// time, the engine's status, the stored objects, the record; output: events
// and decisions), tested table-driven without timing, and Runs.poll is the
// I/O loop around it.

// watchOutcome is what a poll decided about the run as a whole.
type watchOutcome int

const (
	watchContinue  watchOutcome = iota
	watchSucceeded              // the stitch job succeeded: finish the run
	watchFailed                 // a job failed for good (Failures, StitchReason)
	watchCancelled              // the record says cancelled: stop the jobs
	watchGaveUp                 // the run could not be checked for the whole outage budget
	watchLost                   // the engine no longer knows the jobs
)

// watchObservation is one poll's input.
type watchObservation struct {
	Now time.Time
	// Err is the engine's error: when set, the other fields are not looked at.
	Err error
	// StoreErr is the store's (record read, listing): the engine's status is
	// still acted on (retries, failures), but the frames and the record are unknown.
	StoreErr error
	Status   Status
	// Objects are the stored objects under the run's prefix (frames, thumbnails, ...).
	Objects []store.Object
	Record  *RunRecord
}

// watchDecision is one poll's output.
type watchDecision struct {
	Events  []Event
	Wait    time.Duration // until the next poll
	Outcome watchOutcome
	// Cancel, when set, is the reason to stop the jobs now.
	Cancel string
	// State and Progress are what the record should say; Changed tells
	// whether they differ from what the machine said last.
	State    RunState
	Progress Progress
	Changed  bool
	// Failures and StitchReason explain watchFailed.
	Failures     []ChildFailure
	StitchReason string
	Err          error // the error behind watchGaveUp or watchLost
}

// watchConfig is what the machine knows about the run.
type watchConfig struct {
	RunID        string
	Frames       map[string]int // wanted frame file names → frame numbers
	ChunkTotal   int
	Poll         time.Duration
	OutageBudget time.Duration
	StallWarning time.Duration
	Handle       Handle
	// PricePerVCPUHour turns finished attempts into the cost so far;
	// PriorVCPUSeconds is what earlier submissions of the run used.
	PricePerVCPUHour float64
	PriorVCPUSeconds float64
}

// watchMachine is the watcher's memory between polls.
type watchMachine struct {
	cfg          watchConfig
	started      bool
	lastDone     int
	lastChunks   string
	lastLatest   string
	lastThumb    string
	lastChange   time.Time
	stallWarned  bool
	seenAttempts int
	failed       map[int]bool
	stitching    bool
	firstFrame   bool
	failingSince time.Time
	backoff      time.Duration
	state        RunState
}

func newWatchMachine(cfg watchConfig) *watchMachine {
	return &watchMachine{cfg: cfg, lastDone: -1, failed: map[int]bool{}}
}

// maxWatchBackoff caps the wait between two checks while the run cannot be checked.
const maxWatchBackoff = time.Minute

func (m *watchMachine) event(kind EventKind, now time.Time, done int) Event {
	return Event{Kind: kind, Time: now, RunID: m.cfg.RunID, FramesDone: done, FramesTotal: len(m.cfg.Frames), ChunkTotal: m.cfg.ChunkTotal}
}

// step decides what one poll means.
func (m *watchMachine) step(o watchObservation) watchDecision {
	if !m.started {
		m.started, m.lastChange = true, o.Now
	}
	d := watchDecision{Wait: m.cfg.Poll, State: m.state}
	total := len(m.cfg.Frames)
	if errors.Is(o.Err, ErrUnknownJob) {
		d.Outcome, d.Err = watchLost, o.Err
		return d
	}
	if err := cmp.Or(o.Err, o.StoreErr); err != nil {
		// The jobs keep running (and costing) whether or not we can see
		// them: keep asking with backoff, and cancel them if we must give up.
		if m.failingSince.IsZero() {
			m.failingSince = o.Now
			ev := m.event(EventWatchError, o.Now, max(m.lastDone, 0))
			h := m.cfg.Handle
			ev.Handle = &h
			ev.Message = fmt.Sprintf("cannot check the run, retrying for up to %s: %v", m.cfg.OutageBudget, err)
			if o.Err == nil {
				ev.Message = WaitingMessage(o.Now, m.cfg.OutageBudget) + ": " + err.Error()
			}
			d.Events = append(d.Events, ev)
		}
		if o.Now.Sub(m.failingSince) >= m.cfg.OutageBudget {
			d.Outcome, d.Err = watchGaveUp, err
			d.Cancel = "framefleet lost track of the run: " + err.Error()
			return d
		}
		m.backoff = min(max(m.backoff*2, m.cfg.Poll), maxWatchBackoff)
		d.Wait = m.backoff
		if o.Err != nil {
			return d
		}
		// The store is down but the engine answers: its retries and
		// failures are still reported, the frames are as last seen.
		return m.jobs(o, d, max(m.lastDone, 0))
	}
	m.failingSince, m.backoff = time.Time{}, 0
	if o.Record != nil && o.Record.State == RunCancelled {
		d.Outcome, d.State = watchCancelled, RunCancelled
		reason := cancelReason(o.Record)
		d.Cancel = reason
		ev := m.event(EventCancelled, o.Now, max(m.lastDone, 0))
		ev.Message = reason
		d.Events = append(d.Events, ev)
		return d
	}
	s := o.Status
	// Frames and thumbnails stored so far; the newest frame is the preview.
	prefix := store.RunPrefix(m.cfg.RunID)
	done := 0
	var latest store.Object
	latestFrame := 0
	thumbs := map[string]bool{}
	for _, obj := range o.Objects {
		rest := strings.TrimPrefix(obj.Key, prefix)
		if name, ok := strings.CutPrefix(rest, "thumbs/"); ok {
			thumbs[name] = true
			continue
		}
		name, ok := strings.CutPrefix(rest, "frames/")
		if !ok {
			continue
		}
		f, want := m.cfg.Frames[name]
		if !want {
			continue
		}
		done++
		if latest.Key == "" || obj.ModTime.After(latest.ModTime) || obj.ModTime.Equal(latest.ModTime) && f > latestFrame {
			latest, latestFrame = obj, f
		}
	}
	prog := Progress{FramesDone: done, FramesTotal: total, Chunks: s.Children, UpdatedAt: o.Now}
	prog.VCPUSeconds = m.cfg.PriorVCPUSeconds + VCPUSeconds(s.Attempts)
	prog.CostUSD = prog.VCPUSeconds / 3600 * m.cfg.PricePerVCPUHour
	if latest.Key != "" {
		prog.LatestFrame, prog.LatestFrameKey = latestFrame, latest.Key
		if thumbs[store.FrameName(latestFrame, "jpg")] {
			prog.LatestThumbnailKey = ThumbnailKey(m.cfg.RunID, latestFrame)
		}
	}
	var preview *FramePreview
	if prog.LatestFrameKey != "" && (prog.LatestFrameKey != m.lastLatest || prog.LatestThumbnailKey != m.lastThumb) {
		preview = &FramePreview{Frame: prog.LatestFrame, FrameKey: prog.LatestFrameKey, ThumbnailKey: prog.LatestThumbnailKey}
	}
	d = m.jobs(o, d, done)
	if !m.firstFrame && done > 0 {
		m.firstFrame = true
		ev := m.event(EventFirstFrame, o.Now, done)
		ev.Preview = preview
		ev.Chunks = s.Children
		d.Events = append(d.Events, ev)
	}
	chunks := fmt.Sprint(s.Children)
	if done != m.lastDone || chunks != m.lastChunks || preview != nil {
		if done != m.lastDone || chunks != m.lastChunks {
			m.lastChange, m.stallWarned = o.Now, false
		}
		m.lastDone, m.lastChunks = done, chunks
		m.lastLatest, m.lastThumb = prog.LatestFrameKey, prog.LatestThumbnailKey
		ev := m.event(EventProgress, o.Now, done)
		ev.Chunks, ev.Preview = s.Children, preview
		d.Events = append(d.Events, ev)
		d.Changed = true
	}
	if waiting := s.Children[StateRunnable]; !m.stallWarned && waiting > 0 && s.Children[StateRunning]+s.Children[StateStarting] == 0 &&
		o.Now.Sub(m.lastChange) >= m.cfg.StallWarning {
		m.stallWarned = true
		ev := m.event(EventStalled, o.Now, done)
		h := m.cfg.Handle
		ev.Chunks, ev.Handle = s.Children, &h
		ev.Message = fmt.Sprintf("%d chunk(s) have waited %s for capacity with none running: check the job queue's compute environments (instance types, vCPU limits, EC2 quotas, Spot capacity)",
			waiting, o.Now.Sub(m.lastChange).Round(time.Second))
		d.Events = append(d.Events, ev)
	}
	state := RunSubmitted
	if s.Children[StateRunning]+s.Children[StateStarting]+s.Children[StateSucceeded]+s.Children[StateFailed] > 0 || done > 0 {
		state = RunRunning
	}
	if s.Render == StateSucceeded && d.Outcome == watchContinue {
		state = RunStitching
		if !m.stitching {
			m.stitching = true
			d.Events = append(d.Events, m.event(EventStitching, o.Now, done))
		}
	}
	if state != m.state {
		m.state, d.Changed = state, true
	}
	d.State, d.Progress = m.state, prog
	return d
}

// jobs turns the engine's status into retry and failure events and the
// run's outcome; done is the stored frame count for the events.
func (m *watchMachine) jobs(o watchObservation, d watchDecision, done int) watchDecision {
	s := o.Status
	// Retried attempts, in the order they finished.
	for _, a := range s.Attempts[min(m.seenAttempts, len(s.Attempts)):] {
		if a.Index >= 0 && (a.ExitCode == nil || *a.ExitCode != 0) && !childFailed(s, a.Index) {
			ev := m.event(EventChunkRetried, o.Now, done)
			ev.Failure = &ChildFailure{Index: a.Index, Attempts: a.Number, Reason: a.Reason, ExitCode: a.ExitCode}
			d.Events = append(d.Events, ev)
		}
	}
	m.seenAttempts = len(s.Attempts)
	for _, f := range s.Failures {
		if f.Index >= 0 && !m.failed[f.Index] {
			m.failed[f.Index] = true
			ev := m.event(EventChunkFailed, o.Now, done)
			ev.Failure = &f
			d.Events = append(d.Events, ev)
		}
	}
	switch {
	case s.Stitch == StateSucceeded:
		d.Outcome = watchSucceeded
	case s.Render == StateFailed || s.Stitch == StateFailed:
		d.Outcome, d.Failures, d.StitchReason = watchFailed, s.Failures, s.StitchReason
	case len(m.failed) > 0:
		// The stitch job can no longer run: stop paying for the rest.
		for _, f := range s.Failures {
			if f.Index >= 0 {
				d.Failures = append(d.Failures, f)
			}
		}
		sort.Slice(d.Failures, func(i, j int) bool { return d.Failures[i].Index < d.Failures[j].Index })
		d.Outcome, d.StitchReason = watchFailed, "not run: a render chunk failed"
		d.Cancel = fmt.Sprintf("chunk %d failed", d.Failures[0].Index)
	}
	return d
}

// VCPUSeconds adds up the vCPU time of finished attempts.
func VCPUSeconds(as []Attempt) float64 {
	total := 0.0
	for _, a := range as {
		if !a.StoppedAt.IsZero() && a.StoppedAt.After(a.StartedAt) {
			total += a.StoppedAt.Sub(a.StartedAt).Seconds() * a.VCPUs
		}
	}
	return total
}

func childFailed(s Status, index int) bool {
	for _, f := range s.Failures {
		if f.Index == index {
			return true
		}
	}
	return false
}
