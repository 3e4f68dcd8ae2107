package action

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/framefleet/framefleet/pipeline"
)

// recentlyFinished is how long after a run ended refresh still checks its
// report, so a run that some other process saw end (the CLI, the bot) is
// reported final too.
const recentlyFinished = 24 * time.Hour

// refresh brings this repository's reports up to date from the run records,
// finding them through the report index the render jobs saved. It watches
// each pending run (which moves the record on: nobody else may be watching
// a run submitted with wait: false) for at most Options.RefreshBudget, so a
// scheduled job ends in bounded time; the next schedule picks up the rest.
func (a *runner) refresh(ctx context.Context) error {
	runs, err := a.o.OpenRuns(ctx, a.in)
	if err != nil {
		return err
	}
	now := a.o.Clock.Now()
	repo := a.event.Owner + "/" + a.event.Repo
	reports, err := runs.Reports(ctx, repo, now.Add(-a.in.RefreshSince))
	if err != nil {
		return fmt.Errorf("list %s's reports: %w", repo, err)
	}

	live := newLiveReport(a)
	type pending struct {
		key reportKey
		i   int
		ref RunRef
	}
	var todo []pending
	for _, rep := range reports {
		key := reportKey{pr: rep.PR, sha: rep.SHA, comment: rep.CommentKey}
		rows := make([]Run, len(rep.Files))
		stale := false
		for i, f := range rep.Files {
			labels := reportLabels(rep, f.Path)
			row := Run{Labels: labels, Change: f.Change, Previous: f.Previous}
			switch {
			case f.Change == changeRemoved:
				rows[i] = row
				continue
			case f.Run.ID == "":
				row.Problem = f.Failure
				rows[i] = row
				continue
			}
			r, err := runs.Get(ctx, f.Run)
			if err != nil {
				r = Run{View: pipeline.RunView{ID: f.Run.ID, State: pipeline.RunFailed, Final: true},
					Problem: fmt.Sprintf("run %s cannot be read: %v", f.Run.ID, err)}
			}
			rows[i] = row.with(r)
			if !r.Final() || finishedWithin(r, now, recentlyFinished) || awaitsComparison(r, now) {
				stale = true
			}
		}
		if !stale {
			continue
		}
		for i, r := range rows {
			j := live.add(key, r)
			if r.ID() != "" && (!r.Final() || awaitsComparison(r, now)) {
				todo = append(todo, pending{key, j, rep.Files[i].Run})
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
			row := live.snapshot(p.key)[p.i]
			labels := row.Labels
			wctx, cancel := context.WithTimeout(ctx, a.o.RefreshBudget)
			r, err := runs.Watch(wctx, p.ref, func(x Run) { live.set(p.key, p.i, row.with(x)) })
			budgetSpent := wctx.Err() != nil && ctx.Err() == nil
			cancel()
			if err != nil || budgetSpent {
				if !budgetSpent {
					a.gha.Warningf("run %s (%s): %s", p.ref.ID, labels[LabelPath], err)
				}
				if r, err = runs.Get(ctx, p.ref); err != nil {
					return
				}
			}
			live.set(p.key, p.i, row.with(r))
		}()
	}
	wg.Wait()
	if err := stop(); err != nil {
		a.gha.Warningf("some comments or commit statuses could not be updated (the next refresh tries again): %s", err)
	}

	all := live.all()
	if len(all) == 0 {
		a.gha.AddStepSummary("### 🎬 framefleet refresh\n\nNo pending runs.\n")
	} else {
		a.gha.AddStepSummary(a.rep.format.summary("framefleet runs of "+repo, all))
	}
	return a.setOutputs(all)
}

// reportLabels are the labels a file of rep is shown with.
func reportLabels(rep Report, path string) map[string]string {
	l := map[string]string{LabelRepo: rep.Repo, LabelSHA: rep.SHA, LabelPath: path}
	if rep.PR > 0 {
		l[LabelPR] = strconv.Itoa(rep.PR)
	}
	if rep.RunURL != "" {
		l[LabelRunURL] = rep.RunURL
	}
	return l
}

// finishedWithin: the run ended less than d ago.
func finishedWithin(r Run, now time.Time, d time.Duration) bool {
	return r.View.FinishedAt != nil && now.Sub(*r.View.FinishedAt) < d
}

// awaitsComparison: a head run that succeeded while its comparison was not
// composed yet (its base was still rendering when a watch ended); watching
// it again composes it, for a day.
func awaitsComparison(r Run, now time.Time) bool {
	return needsComparison(r) && finishedWithin(r, now, recentlyFinished)
}

// needsComparison: a succeeded head run whose comparison is not composed.
func needsComparison(r Run) bool {
	return r.State() == pipeline.RunSucceeded && r.Compare.CompareBase != "" && r.Comparison == "" && r.ComparisonPath == ""
}
