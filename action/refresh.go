package action

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// recentlyFinished is how long after a run ended refresh still checks its
// report, so a run that some other process saw end (the CLI, the bot) is
// reported final too.
const recentlyFinished = 24 * time.Hour

// refresh brings the reports of this repository's pending runs up to date
// from their records. It watches each pending run (which moves the record
// on: nobody else may be watching a run submitted with wait: false) for at
// most Options.RefreshBudget, so a scheduled job ends in bounded time; the
// next schedule picks up what is still pending.
func (a *runner) refresh(ctx context.Context) error {
	runs, err := a.o.OpenRuns(ctx, a.in)
	if err != nil {
		return err
	}
	now := a.o.Clock.Now()
	repo := a.event.Owner + "/" + a.event.Repo
	list, err := runs.List(ctx, map[string]string{LabelRepo: repo}, now.Add(-a.in.RefreshSince))
	if err != nil {
		return fmt.Errorf("list %s's runs: %w", repo, err)
	}
	groups := currentReports(list)

	live := newLiveReport(a)
	type pending struct {
		key reportKey
		i   int
		id  string
	}
	var todo []pending
	for key, rs := range groups {
		stale := false
		for _, r := range rs {
			if !r.Final || now.Sub(r.FinishedAt) < recentlyFinished {
				stale = true
			}
		}
		if !stale {
			continue
		}
		for _, r := range rs {
			i := live.add(key, r)
			if !r.Final || awaitsComparison(r, now) {
				todo = append(todo, pending{key, i, r.ID})
			}
		}
	}
	a.log.Info("refreshing", "repo", repo, "reports", len(live.runs), "pending_runs", len(todo))
	stop := live.start(ctx)
	var wg sync.WaitGroup
	for _, p := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			labels := live.snapshot(p.key)[p.i].Labels
			wctx, cancel := context.WithTimeout(ctx, a.o.RefreshBudget)
			r, err := runs.Watch(wctx, p.id, func(x Run) { x.Labels = labels; live.set(p.key, p.i, x) })
			budgetSpent := wctx.Err() != nil && ctx.Err() == nil
			cancel()
			if err != nil || budgetSpent {
				if !budgetSpent {
					a.gha.Warningf("run %s (%s): %s", p.id, labels[LabelPath], err)
				}
				if r, err = runs.Get(ctx, p.id); err != nil {
					return
				}
			}
			r.Labels = labels
			live.set(p.key, p.i, r)
		}()
	}
	wg.Wait()
	if err := stop(); err != nil {
		return fmt.Errorf("report the runs: %w", err)
	}

	all := live.all()
	if len(all) == 0 {
		a.gha.AddStepSummary("### 🎬 framefleet refresh\n\nNo pending runs.\n")
	} else {
		a.gha.AddStepSummary(summary("framefleet runs of "+repo, all))
	}
	return a.setOutputs(all)
}

// currentReports groups runs (newest first) by report: per PR only its
// newest commit's runs, per pushed commit its runs; one run per path, the
// newest.
func currentReports(list []Run) map[reportKey][]Run {
	newestSHA := map[int]string{}
	for _, r := range list {
		if pr := r.PR(); pr > 0 {
			if _, ok := newestSHA[pr]; !ok {
				newestSHA[pr] = r.SHA()
			}
		}
	}
	groups := map[reportKey][]Run{}
	seen := map[string]bool{}
	for _, r := range list {
		pr, sha := r.PR(), r.SHA()
		if sha == "" || r.Path() == "" || (pr > 0 && newestSHA[pr] != sha) {
			continue
		}
		k := reportKey{pr: pr, sha: sha}
		id := fmt.Sprint(pr, "\x00", sha, "\x00", r.Path())
		if seen[id] {
			continue
		}
		seen[id] = true
		groups[k] = append(groups[k], r)
	}
	for k := range groups {
		slices.SortFunc(groups[k], func(a, b Run) int { return strings.Compare(a.Path(), b.Path()) })
	}
	return groups
}

// awaitsComparison: a head run that succeeded while its comparison was not
// composed yet (its base was still rendering when a watch ended); watching
// it again composes it, for a day.
func awaitsComparison(r Run, now time.Time) bool {
	return r.State == StateSucceeded && r.Labels[LabelCompareBase] != "" && r.Comparison == "" && r.ComparisonPath == "" &&
		now.Sub(r.FinishedAt) < recentlyFinished
}
