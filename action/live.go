package action

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// reportKey names one report: a PR's comment and its head commit's
// statuses, or (pr 0) a pushed commit's statuses.
type reportKey struct {
	pr  int
	sha string
	// comment is the comment key (input comment-key) of the PR's comment.
	comment string
}

// finalReportGrace bounds the last report of a cancelled job (GitHub
// sends SIGKILL some seconds after SIGINT; the comment goes first).
const finalReportGrace = 30 * time.Second

// finalReportBudget bounds the last report of a job that was not
// cancelled: every status is paced a second apart, so 60 files take a
// minute or more, and the report must end complete.
const finalReportBudget = 30 * time.Minute

// liveReport keeps reports up to date while runs change: changes are
// coalesced, and each dirty report is published at most once per
// Options.UpdateEvery.
type liveReport struct {
	a       *runner
	mu      sync.Mutex
	runs    map[reportKey][]Run
	dirty   map[reportKey]bool
	changed chan struct{}
}

func newLiveReport(a *runner) *liveReport {
	return &liveReport{a: a, runs: map[reportKey][]Run{}, dirty: map[reportKey]bool{}, changed: make(chan struct{}, 1)}
}

// add registers a run of report k and returns its index there.
func (l *liveReport) add(k reportKey, r Run) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[k] = append(l.runs[k], r)
	l.dirty[k] = true
	return len(l.runs[k]) - 1
}

// set replaces run i of report k and wakes the publisher.
func (l *liveReport) set(k reportKey, i int, r Run) {
	l.mu.Lock()
	l.runs[k][i] = r
	l.dirty[k] = true
	l.mu.Unlock()
	l.poke()
}

// poke wakes the publisher.
func (l *liveReport) poke() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *liveReport) snapshot(k reportKey) []Run {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs[k])
}

// all returns every report's runs.
func (l *liveReport) all() []Run {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Run
	for _, rs := range l.runs {
		out = append(out, rs...)
	}
	return out
}

// takeDirty returns the reports changed since the last call.
func (l *liveReport) takeDirty() []reportKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ks []reportKey
	for k := range l.dirty {
		ks = append(ks, k)
	}
	clear(l.dirty)
	return ks
}

// run publishes changes until ctx ends.
func (l *liveReport) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.changed:
		}
		for _, k := range l.takeDirty() {
			if err := l.a.rep.publish(ctx, k, l.snapshot(k)); err != nil && ctx.Err() == nil {
				l.a.log.Warn("could not update the report (retried with the next change)", "err", err)
				l.mu.Lock()
				l.dirty[k] = true
				l.mu.Unlock()
			}
		}
		if l.a.o.Clock.Sleep(ctx, l.a.o.UpdateEvery) != nil {
			return
		}
	}
}

// start runs the publisher in the background; stop ends it and publishes
// every report once more, so the last state is always the published one.
func (l *liveReport) start(ctx context.Context) (stop func() error) {
	bg, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.poke() // what is known now (queued files) shows at once
	go func() { defer close(done); l.run(bg) }()
	return func() error {
		cancel()
		<-done
		l.mu.Lock()
		keys := make([]reportKey, 0, len(l.runs))
		for k := range l.runs {
			keys = append(keys, k)
		}
		l.mu.Unlock()
		// Even when the job is being cancelled, the report says where the
		// runs were left (interrupted, cancelled), within a short grace.
		budget := finalReportBudget
		if ctx.Err() != nil {
			budget = finalReportGrace
		}
		fctx, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), budget)
		defer cancelFinal()
		var errs []error
		for _, k := range keys {
			errs = append(errs, l.a.rep.publish(fctx, k, l.snapshot(k)))
		}
		return errors.Join(errs...)
	}
}
