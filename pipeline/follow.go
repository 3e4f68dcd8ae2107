package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Watch follows a run (by id or unique prefix) to its end from any process,
// with the same events as Render. It resumes an interrupted run (a local run
// whose host process is gone) under the same id, rendering only missing
// frames; it reports a Cancel from any process (EventCancelled, both jobs
// stopped). obs is called from a goroutine of its own: a slow observer
// never stalls polling, and gets the newest of the progress events it missed.
// When ctx ends, a run this process hosts is stopped and left interrupted
// (a later Watch resumes it); other runs simply go on without a watcher.
func (r *Runs) Watch(ctx context.Context, id string, obs func(Event)) (*Result, error) {
	full, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	d := r.newDeliverer(ctx, obs)
	defer d.close()
	return r.watch(ctx, full, d, nil)
}

// errLeaseLost: another process took over hosting the run.
var errLeaseLost = errors.New("another process hosts the run")

// watch follows run id; known, when given, is its record as just written
// (so a store outage right after Submit is ridden out under the request's
// budget, not the default one).
func (r *Runs) watch(ctx context.Context, id string, d *deliverer, known *RunRecord) (*Result, error) {
	out := r.newOutage(DefaultStoreOutageBudget, d)
	for {
		rec := known
		known = nil
		var ver store.Version // unknown for a known record
		if rec == nil {
			err := out.do(ctx, "read the run record", func() error {
				var err error
				rec, ver, err = readRecord(ctx, r.Store, id)
				return err
			})
			if err != nil {
				return nil, err
			}
		}
		if b := rec.Settings.StoreOutageBudget; b > 0 {
			out.budget = b
		}
		if rec.State.Final() {
			return r.finalOutcome(ctx, rec, d)
		}
		eng, err := r.engine(ctx, rec.Engine)
		if err != nil {
			return nil, err
		}
		needsHost := rec.HostBound || rec.Handle == nil
		switch {
		case !needsHost || r.ours(rec.Host) && rec.Handle != nil:
			res, err := r.poll(ctx, rec, ver, eng, d)
			if errors.Is(err, errLeaseLost) {
				continue
			}
			var lost *JobsLostError
			if errors.As(err, &lost) && rec.HostBound && ctx.Err() == nil {
				// Our own engine forgot the jobs (a new Runs in this process):
				// the run is as good as interrupted.
				cur, _, err := r.takeOver(ctx, out, rec.ID, true)
				if err != nil {
					return nil, err
				}
				if err := r.resume(ctx, out, cur, eng, d); err != nil {
					return nil, err
				}
				continue
			}
			return res, err
		case !r.ours(rec.Host) && r.hostAlive(rec.Host, r.now()):
			// Another live process hosts it: follow its record.
			if err := r.followRecord(ctx, rec, d); err != nil {
				return nil, err
			}
		default:
			// Nobody hosts it (its process died): take it over and resume.
			cur, took, err := r.takeOver(ctx, out, rec.ID, false)
			if err != nil {
				return nil, err
			}
			if took {
				if err := r.resume(ctx, out, cur, eng, d); err != nil {
					return nil, err
				}
				continue
			}
			// Someone else took it, or this process is still submitting it.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-r.after(durationOr(rec.Settings.PollInterval, time.Second)):
			}
		}
	}
}

// takeOver acquires the host lease of an unhosted run by a conditional
// write, so two watchers never both resume it. force takes it even from a
// live lease that is ours. It returns the record as it now is.
func (r *Runs) takeOver(ctx context.Context, out *outage, id string, force bool) (*RunRecord, bool, error) {
	took := false
	rec, err := r.update(ctx, out, "take over the run", id, func(rec *RunRecord) error {
		took = false
		if rec.State.Final() {
			return errNoChange
		}
		alive := r.hostAlive(rec.Host, r.now())
		if alive && !(force && r.ours(rec.Host)) {
			return errNoChange
		}
		if rec.Handle != nil {
			rec.State = RunInterrupted
		}
		rec.Host, took = r.lease(), true
		return nil
	})
	return rec, took, err
}

// resume submits the run's jobs again under the same id; the workers skip
// frames already stored. rec is the record takeOver returned.
func (r *Runs) resume(ctx context.Context, out *outage, rec *RunRecord, eng Engine, d *deliverer) error {
	id := rec.ID
	if _, err := r.Store.Stat(ctx, store.PlanKey(id)); errors.Is(err, store.ErrNotFound) {
		return r.failRun(ctx, id, fmt.Errorf("run %s cannot be resumed: the process that planned it stopped before storing its plan; render again", id))
	} else if err != nil {
		return fmt.Errorf("resume run %s: %w", id, err)
	}
	// The record's count lags behind when its last watcher gave up while
	// workers still stored frames: the store's listing is the truth.
	if n, err := countStoredFrames(ctx, r.Store, id); err == nil && n != rec.Progress.FramesDone {
		if cur, err := r.update(ctx, out, "count the stored frames", id, func(cur *RunRecord) error {
			cur.Progress.FramesDone, cur.Progress.UpdatedAt = min(n, cur.FramesTotal), r.now().UTC()
			return nil
		}); err == nil {
			rec = cur
		}
	}
	r.log().Info("resuming run", "run", id, "frames_done", rec.Progress.FramesDone, "frames_total", rec.FramesTotal)
	_, err := r.submitJobs(ctx, out, rec, eng, d)
	return err
}

// followRecord follows a run another live process hosts, through its record
// alone, until it ends, its host's lease expires, or its host process is gone.
func (r *Runs) followRecord(ctx context.Context, rec *RunRecord, d *deliverer) error {
	every := rec.Settings.PollInterval
	if every <= 0 {
		every = time.Second
	}
	last := Progress{FramesDone: -1}
	for {
		if p := rec.Progress; p.FramesDone != last.FramesDone || p.LatestFrameKey != last.LatestFrameKey ||
			!maps.Equal(p.Chunks, last.Chunks) || p.LatestThumbnailKey != last.LatestThumbnailKey {
			ev := Event{Kind: EventProgress, Time: r.now(), RunID: rec.ID, FramesDone: p.FramesDone, FramesTotal: rec.FramesTotal,
				Chunks: p.Chunks, ChunkTotal: rec.ChunkTotal}
			if p.LatestFrameKey != "" && (p.LatestFrameKey != last.LatestFrameKey || p.LatestThumbnailKey != last.LatestThumbnailKey) {
				ev.Preview = &FramePreview{Frame: p.LatestFrame, FrameKey: p.LatestFrameKey, ThumbnailKey: p.LatestThumbnailKey}
			}
			if last.FramesDone <= 0 && p.FramesDone > 0 {
				first := ev
				first.Kind = EventFirstFrame
				d.send(first)
			}
			d.send(ev)
			last = p
		}
		if rec.State.Final() || rec.Host == nil || r.ours(rec.Host) || !r.hostAlive(rec.Host, r.now()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.after(every):
		}
		next, _, err := readRecord(ctx, r.Store, rec.ID)
		if err != nil {
			if permanent(err) {
				return err
			}
			continue // the outer loop's reads count the outage
		}
		rec = next
	}
}

// poll watches a submitted run's jobs: the pure watchMachine decides, this
// loop does the I/O. Each poll costs one record read, one Status, one
// listing of the run's objects, and a record write when something changed
// (conditional on the version read: only a conflict reads it again). The
// first poll takes rec, at version ver, as the caller just read it.
func (r *Runs) poll(ctx context.Context, rec *RunRecord, ver store.Version, eng Engine, d *deliverer) (*Result, error) {
	s := rec.Settings
	h := *rec.Handle
	var p plan.Plan
	out := r.newOutage(durationOr(s.StoreOutageBudget, DefaultStoreOutageBudget), d)
	if err := out.do(ctx, "read the plan", func() error {
		var err error
		p, err = readPlan(ctx, r.Store, rec.ID)
		return err
	}); err != nil {
		var oe *OutageError
		if errors.As(err, &oe) {
			cerr := r.stopJobs(ctx, eng, h, "framefleet lost track of the run: "+err.Error())
			logs := r.logsHint(ctx, workerLogs(eng, h), rec.ID, true)
			err = fmt.Errorf("watch run %s: gave up and cancelled its jobs: %w; workers' logs: %s", rec.ID, errors.Join(err, cerr), logs)
			return nil, r.fail(ctx, rec, &RunFailure{Message: err.Error(), Logs: logs}, err, d)
		}
		return nil, err
	}
	frames := make(map[string]int, len(p.Frames))
	for _, f := range p.Frames {
		frames[store.FrameName(f, "png")] = f
	}
	m := newWatchMachine(watchConfig{
		RunID: rec.ID, Frames: frames, ChunkTotal: rec.ChunkTotal, Handle: h,
		Poll: durationOr(s.PollInterval, time.Second), OutageBudget: durationOr(s.StoreOutageBudget, DefaultStoreOutageBudget),
		StallWarning: durationOr(s.StallWarning, 15*time.Minute), PricePerVCPUHour: s.PricePerVCPUHour,
		PriorVCPUSeconds: rec.PriorVCPUSeconds,
	})
	notifier, _ := eng.(ChangeNotifier)
	hosting := rec.HostBound
	renewEvery := r.leaseTTL() / 3
	lastWrite := r.now()
	var last Status
	first := *rec // a copy: the write below changes the record it starts from
	next := &first
	for {
		var changed <-chan struct{}
		if notifier != nil {
			changed = notifier.Changes(h)
		}
		o := watchObservation{Now: r.now()}
		cur, rerr := next, error(nil)
		if next = nil; cur == nil {
			cur, ver, rerr = readRecord(ctx, r.Store, rec.ID)
		}
		if rerr != nil && !permanent(rerr) {
			o.StoreErr = rerr // an outage: the engine is still asked
		} else if rerr != nil {
			return nil, rerr // the record vanished or is unreadable
		} else {
			o.Record = cur
			if hosting && !r.ours(cur.Host) && !cur.State.Final() {
				// Another watcher took over (we were too slow to renew):
				// our workers must not render beside its.
				r.stopJobs(ctx, eng, h, "another process took over the run")
				return nil, errLeaseLost
			}
			if cur.Handle != nil && *cur.Handle != h && !cur.State.Final() {
				return nil, errLeaseLost // resubmitted elsewhere: follow the new jobs
			}
		}
		o.Status, o.Err = eng.Status(ctx, h)
		if o.Err == nil && o.StoreErr == nil {
			o.Objects, o.StoreErr = r.Store.List(ctx, store.RunPrefix(rec.ID))
		}
		if ctx.Err() != nil {
			return nil, r.detach(ctx, eng, rec, h)
		}
		if o.Err == nil {
			last = o.Status
		}
		dec := m.step(o)
		for i := range dec.Events {
			ev := &dec.Events[i]
			if o.Record != nil && ev.Record == nil {
				// The record as this poll will write it: the view's state is the machine's.
				snap := *o.Record
				snap.State, snap.Progress = dec.State, dec.Progress
				v := NewRunView(ViewInput{Record: &snap})
				ev.View = &v
			}
			if ev.Kind == EventWatchError {
				r.log().Warn("cannot check the run", "run", rec.ID, "note", ev.Message) // front-ends that only log (the Action) say it too
			}
		}
		// A front-end may post what an event says (a first-frame milestone):
		// once the record holds it, a front-end restarted after a crash resumes
		// from the record and does not post it again. So the record is written
		// before the poll's events are sent; an ending outcome writes its own.
		sendEvents := func() {
			for _, ev := range dec.Events {
				d.send(ev)
			}
		}
		if dec.Outcome != watchContinue {
			sendEvents()
		}
		switch dec.Outcome {
		case watchCancelled:
			r.stopJobs(ctx, eng, h, dec.Cancel)
			return nil, &RunCancelledError{RunID: rec.ID, Reason: dec.Cancel}
		case watchSucceeded:
			return r.succeed(ctx, rec, last, d)
		case watchFailed:
			var cerr error
			if dec.Cancel != "" {
				cerr = r.stopJobs(ctx, eng, h, dec.Cancel)
			}
			ferr := &RunFailedError{RunID: rec.ID, Failures: workerErrors(ctx, r.Store, rec.ID, dec.Failures), StitchReason: dec.StitchReason,
				Logs: r.logsHint(ctx, workerLogs(eng, h), rec.ID, false)}
			return nil, r.fail(ctx, rec, &RunFailure{Message: ferr.Error(), Failures: ferr.Failures, StitchReason: ferr.StitchReason,
				Logs: ferr.Logs}, errors.Join(ferr, cerr), d)
		case watchLost:
			lost := &JobsLostError{RunID: rec.ID, Handle: h, Err: dec.Err}
			if rec.HostBound {
				return nil, lost // the caller resumes it
			}
			return nil, r.fail(ctx, rec, &RunFailure{Message: lost.Error()}, lost, d)
		case watchGaveUp:
			logs := r.logsHint(ctx, workerLogs(eng, h), rec.ID, o.StoreErr != nil)
			budget := m.cfg.OutageBudget
			var err error
			if cerr := r.stopJobs(ctx, eng, h, dec.Cancel); cerr != nil {
				err = fmt.Errorf("watch run %s: gave up after %s: %w; cancelling its jobs also failed (%v): cancel render job %s and stitch job %s yourself; workers' logs: %s",
					rec.ID, budget, dec.Err, cerr, h.RenderID, h.StitchID, logs)
			} else {
				err = fmt.Errorf("watch run %s: gave up after %s and cancelled its jobs: %w; workers' logs: %s", rec.ID, budget, dec.Err, logs)
			}
			return nil, r.fail(ctx, rec, &RunFailure{Message: err.Error(), Logs: logs}, err, d)
		}
		if dec.Changed || hosting && r.now().Sub(lastWrite) >= renewEvery {
			// From this poll's read (nil after a failed one): no second read.
			_, err := updateReadRecord(ctx, r.Store, rec.ID, o.Record, ver, r.clock(), func(cur *RunRecord) error {
				if cur.State.Final() {
					return errNoChange // cancelled meanwhile: the next poll sees it
				}
				if hosting && !r.ours(cur.Host) {
					return errLeaseLost
				}
				cur.Progress, cur.State = dec.Progress, dec.State
				if hosting {
					cur.Host = r.lease()
				}
				return nil
			})
			switch {
			case errors.Is(err, errLeaseLost):
				r.stopJobs(ctx, eng, h, "another process took over the run")
				return nil, errLeaseLost
			case err == nil:
				lastWrite = r.now()
			}
			// Other write errors: the next poll's read counts the outage.
		}
		if dec.Outcome == watchContinue {
			sendEvents()
		}
		wait := dec.Wait
		if hosting {
			wait = min(wait, renewEvery) // the lease must not lapse between polls
		}
		select {
		case <-ctx.Done():
			return nil, r.detach(ctx, eng, rec, h)
		case <-r.after(wait):
		case <-changed: // nil (never ready) for engines without notifications
		}
	}
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// detach ends watching when ctx ends: a run this process hosts is stopped
// (its workers would die with us anyway) and left interrupted for a later
// Watch to resume; any other run goes on.
func (r *Runs) detach(ctx context.Context, eng Engine, rec *RunRecord, h Handle) error {
	err := ctx.Err()
	if !rec.HostBound {
		return err
	}
	cerr := r.stopJobs(ctx, eng, h, "the watching process stopped ("+context.Cause(ctx).Error()+")")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, _ = updateRecord(cctx, r.Store, rec.ID, r.clock(), func(cur *RunRecord) error {
		if cur.State.Final() || !r.ours(cur.Host) {
			return errNoChange
		}
		cur.State = RunInterrupted
		cur.Host.Expires = r.now().UTC() // released: the next watcher resumes at once
		return nil
	})
	return errors.Join(err, cerr)
}

// stopJobs cancels the jobs even when ctx has ended.
func (r *Runs) stopJobs(ctx context.Context, eng Engine, h Handle, reason string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := eng.Cancel(cctx, h, reason); err != nil && !errors.Is(err, ErrUnknownJob) {
		return err
	}
	return nil
}

// workerLogs is where the engine keeps the workers' own logs ("" when it
// cannot say).
func workerLogs(eng Engine, h Handle) string {
	if ll, ok := eng.(LogLocator); ok {
		return ll.WorkerLogs(h)
	}
	return ""
}

// logsHint says where a run's logs really are: the engine's worker logs
// (local paths, a CloudWatch group) first, then Blender's chunk logs in the
// store only when the store has some. storeDown: the store could not be
// reached, so the workers may never have stored their logs.
func (r *Runs) logsHint(ctx context.Context, workerLogs, runID string, storeDown bool) string {
	logs := store.RunPrefix(runID) + "logs/"
	var chunkLogs string
	if storeDown {
		chunkLogs = fmt.Sprintf("the store %s could not be reached, so Blender's chunk logs may never have reached %s", r.Store.URI(), logs)
	} else {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		objs, _, err := r.Store.ListPage(cctx, logs, "", 1)
		cancel()
		switch {
		case err != nil:
			chunkLogs = fmt.Sprintf("Blender's chunk logs, if any were stored, under %s in the store %s (it could not be listed: %v)", logs, r.Store.URI(), err)
		case len(objs) == 0:
			chunkLogs = fmt.Sprintf("no Blender chunk log reached the store (%s is empty)", logs)
		default:
			chunkLogs = fmt.Sprintf("Blender's log of each chunk under %s in the store %s", logs, r.Store.URI())
		}
	}
	if workerLogs == "" {
		return chunkLogs
	}
	return workerLogs + "; " + chunkLogs
}

// countStoredFrames counts the frames the store holds for a run: the truth
// a record's progress may lag behind.
func countStoredFrames(ctx context.Context, st store.Store, runID string) (int, error) {
	objs, err := st.List(ctx, store.FramesPrefix(runID))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range objs {
		if strings.HasPrefix(path.Base(o.Key), "frame_") {
			n++
		}
	}
	return n, nil
}

// settleChunks drops the chunk states that mean "still going" from a run
// that ended: a cancelled or failed run has no chunk running.
func settleChunks(p *Progress) {
	for s := range p.Chunks {
		if s != StateSucceeded && s != StateFailed {
			delete(p.Chunks, s)
		}
	}
}

// succeed finishes a run whose stitch job succeeded.
func (r *Runs) succeed(ctx context.Context, rec *RunRecord, s Status, d *deliverer) (*Result, error) {
	out := r.newOutage(durationOr(rec.Settings.StoreOutageBudget, DefaultStoreOutageBudget), d)
	var res *Result
	err := out.do(ctx, "finish the run", func() error {
		var err error
		res, err = finishRun(ctx, r.Store, rec.ID, s, rec.PriorVCPUSeconds, rec.Settings.PricePerVCPUHour, durationOr(rec.Settings.LinkExpiry, 7*24*time.Hour))
		return err
	})
	if err != nil {
		return nil, r.fail(ctx, rec, &RunFailure{Message: err.Error()}, err, d)
	}
	final, err := r.update(ctx, out, "record the result", rec.ID, func(cur *RunRecord) error {
		if cur.State.Final() {
			return errNoChange
		}
		now := r.now().UTC()
		cur.State, cur.FinishedAt, cur.Host, cur.Result = RunSucceeded, &now, nil, res
		cur.Progress.FramesDone, cur.Progress.UpdatedAt = cur.FramesTotal, now
		return nil
	})
	if err != nil {
		return nil, err
	}
	if final.State == RunCancelled {
		// Cancelled at the last moment: the video exists, but the record says cancelled.
		return r.finalOutcome(ctx, final, d)
	}
	d.send(Event{Kind: EventSucceeded, Time: r.now(), RunID: rec.ID, FramesDone: res.FrameCount, FramesTotal: rec.FramesTotal,
		Message: res.Video, Record: final})
	return res, nil
}

// fail records a failure (best effort: the store may be what failed), tells
// the observer, and returns err.
func (r *Runs) fail(ctx context.Context, rec *RunRecord, f *RunFailure, err error, d *deliverer) error {
	final := r.recordFailure(ctx, rec.ID, f)
	if final != nil && final.State == RunCancelled {
		// Cancelled from another process between our read of the record and
		// the jobs' status, which then showed them terminated: a cancel.
		_, cerr := r.finalOutcome(ctx, final, d)
		return cerr
	}
	d.send(Event{Kind: EventFailed, Time: r.now(), RunID: rec.ID, FramesTotal: rec.FramesTotal, Message: err.Error(), Record: final})
	return err
}

// Result returns a succeeded run's result with its links signed anew
// (the record's expire), by id or unique prefix.
func (r *Runs) Result(ctx context.Context, id string) (*Result, error) {
	rec, err := r.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.State != RunSucceeded {
		return nil, fmt.Errorf("run %s is %s: it has no result yet", rec.ID, rec.State)
	}
	res, err := cachedResult(ctx, r.Store, rec.ID, durationOr(rec.Settings.LinkExpiry, 7*24*time.Hour))
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("run %s succeeded but its files are gone from the store: render again", rec.ID)
	}
	res.Cached = false
	return res, nil
}

// finalOutcome reports a run that already ended.
func (r *Runs) finalOutcome(ctx context.Context, rec *RunRecord, d *deliverer) (*Result, error) {
	switch rec.State {
	case RunSucceeded:
		res := rec.Result
		if fresh, err := cachedResult(ctx, r.Store, rec.ID, durationOr(rec.Settings.LinkExpiry, 7*24*time.Hour)); err == nil && fresh != nil {
			res = fresh // links signed anew
		}
		if res == nil {
			return nil, fmt.Errorf("run %s succeeded but its result is gone from the store: render again", rec.ID)
		}
		res.Cached = false
		d.send(Event{Kind: EventSucceeded, Time: r.now(), RunID: rec.ID, FramesDone: res.FrameCount, FramesTotal: rec.FramesTotal,
			Message: res.Video, Record: rec})
		return res, nil
	case RunCancelled:
		reason := cancelReason(rec)
		d.send(Event{Kind: EventCancelled, Time: r.now(), RunID: rec.ID, FramesDone: rec.Progress.FramesDone, FramesTotal: rec.FramesTotal,
			Message: reason, Record: rec})
		return nil, &RunCancelledError{RunID: rec.ID, Reason: reason}
	}
	var err error = fmt.Errorf("run %s failed", rec.ID)
	if f := rec.Failure; f != nil {
		if len(f.Failures) > 0 || f.StitchReason != "" {
			err = &RunFailedError{RunID: rec.ID, Failures: f.Failures, StitchReason: f.StitchReason}
		} else if f.Message != "" {
			err = errors.New(f.Message)
		}
	}
	d.send(Event{Kind: EventFailed, Time: r.now(), RunID: rec.ID, FramesTotal: rec.FramesTotal, Message: err.Error(), Record: rec})
	return nil, err
}

func readPlan(ctx context.Context, st store.Store, runID string) (plan.Plan, error) {
	var p plan.Plan
	if err := getJSON(ctx, st, store.PlanKey(runID), &p); err != nil {
		return p, fmt.Errorf("read run %s's plan: %w", runID, err)
	}
	return p, nil
}
