// Package action is framefleet's GitHub Action: it renders the .blend files
// a pull request or a push changed, and reports on the pull request (one
// sticky comment), on the commit (a status per file) and in the step summary.
//
// Everything GitHub-specific stays here: the pipeline knows runs only by
// their labels (github.repo, github.pr, github.sha, github.path), which is
// how `mode: refresh` finds and reports runs that another process started.
package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/framefleet/framefleet/pipeline"
)

// Options are what the action gets from its host process.
type Options struct {
	// Getenv reads the INPUT_* and GITHUB_* variables (default os.Getenv).
	Getenv func(string) string
	// Out receives workflow commands (::notice:: …) and the log (default stdout).
	Out    io.Writer
	Logger *slog.Logger
	// Clock paces GitHub requests and comment updates (default the real one).
	Clock Clock
	// HTTPClient is the base for GitHub API calls (default http.DefaultClient's transport).
	HTTPClient *http.Client
	// OpenRuns opens framefleet's runs as the inputs configure them.
	OpenRuns func(ctx context.Context, in Inputs) (Runs, error)
	// FetchLFS replaces a Git LFS pointer in the workspace by its content,
	// or fails with the fix (default FetchLFS: git lfs pull --include).
	FetchLFS func(ctx context.Context, workspace, path string) error
	// SmudgeLFS replaces a pointer copied from another commit (file) by its
	// content (default SmudgeLFS: git lfs smudge in the workspace).
	SmudgeLFS func(ctx context.Context, workspace, file, path string) error
	// UpdateEvery is the least time between two comment updates while
	// renders run (default 15 s): progress, not every frame.
	UpdateEvery time.Duration
	// RefreshBudget bounds how long mode refresh watches pending runs
	// (default 5 minutes, within a scheduled job's time).
	RefreshBudget time.Duration
}

// RunOutput is one entry of the "runs" output.
type RunOutput struct {
	File           string            `json:"file"`
	SHA            string            `json:"sha"`
	RunID          string            `json:"run_id,omitempty"`
	State          pipeline.RunState `json:"state"`
	Video          string            `json:"video,omitempty"`
	Preview        string            `json:"preview,omitempty"`
	Comparison     string            `json:"comparison,omitempty"`
	VideoPath      string            `json:"video_path,omitempty"`
	PreviewPath    string            `json:"preview_path,omitempty"`
	ComparisonPath string            `json:"comparison_path,omitempty"`
	// LinksExpireAt is when the soonest of the signed links stops working.
	LinksExpireAt *time.Time `json:"links_expire_at,omitempty"`
	Error         string     `json:"error,omitempty"`
}

// RendersFailedError is the action's result when some renders failed; the
// statuses and the comment say which.
type RendersFailedError struct{ Failed, Total int }

func (e *RendersFailedError) Error() string {
	return fmt.Sprintf("%d of %d renders failed: the comment, the commit statuses and the step summary say why", e.Failed, e.Total)
}

// runner is one invocation of the action.
type runner struct {
	o      Options
	gha    *githubactions.Action
	log    *slog.Logger
	in     Inputs
	event  Event
	gh     GitHub
	git    gitRepo
	runURL string
	rep    *reporter
	// removed are the deleted files the paths match (changedTargets sets
	// them): the report lists them.
	removed []Target
	// started is when this invocation began.
	started time.Time
}

// Main runs the action as the runner invokes it.
func Main(ctx context.Context, o Options) error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Out, nil))
	}
	if o.UpdateEvery == 0 {
		o.UpdateEvery = 15 * time.Second
	}
	if o.RefreshBudget == 0 {
		o.RefreshBudget = 5 * time.Minute
	}
	gha := githubactions.New(githubactions.WithGetenv(o.Getenv), githubactions.WithWriter(o.Out))
	a := &runner{o: o, gha: gha, log: o.Logger, started: o.Clock.Now()}

	// The token is masked before anything can print it.
	token := gha.GetInput("github-token")
	if token != "" {
		gha.AddMask(token)
	}
	in, err := ParseInputs(gha.GetInput)
	if err != nil {
		return err
	}
	a.in = in

	gctx, err := gha.Context()
	if err != nil {
		a.log.Warn("parts of the GitHub context could not be read", "err", err)
	}
	if gctx.Workspace == "" {
		return errors.New("GITHUB_WORKSPACE is empty: run the action in a GitHub workflow job after actions/checkout")
	}
	a.git = gitRepo{dir: gctx.Workspace}
	defer func() {
		if err := HandBackWorkspace(gctx.Workspace); err != nil {
			a.gha.Warningf("%s", err)
		}
	}()
	if gctx.ServerURL != "" && gctx.Repository != "" && gctx.RunID != 0 {
		a.runURL = fmt.Sprintf("%s/%s/actions/runs/%d", strings.TrimRight(gctx.ServerURL, "/"), gctx.Repository, gctx.RunID)
	}
	a.event, err = ReadEvent(gctx.EventName, gctx.EventPath, gctx.Repository, gctx.SHA)
	if err != nil && !(in.Mode == ModeRefresh && a.event.Owner != "") {
		return err
	}

	hc := &http.Client{}
	if o.HTTPClient != nil {
		*hc = *o.HTTPClient
	}
	hc.Transport = NewRateLimitTransport(hc.Transport, o.Clock, a.log)
	if a.gh, err = NewGitHub(hc, gctx.APIURL, in.Token); err != nil {
		return err
	}
	a.rep = newReporter(a.gh, a.event.Owner, a.event.Repo, in.Comment, in.CommentKey, reportFormat{artifact: in.ArtifactName}, o.Clock, a.log)

	if in.Mode == ModeRefresh {
		return a.refresh(ctx)
	}
	if a.event.Name == EventSchedule {
		return errors.New("input mode is render on a schedule, which would render every matching file each time: set mode: refresh in the scheduled workflow (it reports runs that others submitted)")
	}
	return a.render(ctx)
}

func (a *runner) render(ctx context.Context) error {
	ev := a.event
	if ev.Name == EventPullRequest && ev.Fork {
		a.gha.Noticef("Pull request #%d comes from the fork %s: GitHub gives fork PRs no secrets and a read-only token, so framefleet renders nothing. A maintainer can render it from a branch of this repository.", ev.PR, ev.HeadRepo)
		a.gha.AddStepSummary(fmt.Sprintf("### 🎬 framefleet\n\nPull request #%d comes from a fork (%s): nothing was rendered, since fork PRs get no secrets.\n", ev.PR, mdText(ev.HeadRepo)))
		return a.setOutputs(nil)
	}
	targets, err := a.changedTargets(ctx)
	if err != nil {
		a.gha.AddStepSummary(fmt.Sprintf("### 🎬 framefleet\n\nThe changed files could not be listed, so nothing was rendered: %s\n", mdText(err.Error())))
		_ = a.setOutputs(nil)
		return err
	}
	if len(targets) == 0 {
		a.gha.Noticef("No changed file matches paths (%s): nothing to render.", strings.Join(a.in.Paths, ", "))
		a.gha.AddStepSummary("### 🎬 framefleet\n\nNo changed file matches `paths`: nothing to render.\n")
		if ev.PR > 0 {
			if a.in.CancelSuperseded {
				if runs, err := a.o.OpenRuns(ctx, a.in); err == nil {
					a.cancelSuperseded(ctx, runs)
				}
			}
			// A comment about an earlier push's blends must not stay as if current.
			if err := a.rep.publishNoBlends(ctx, ev.PR, ev.HeadSHA, a.in.Paths); err != nil {
				a.gha.Warningf("could not update the pull request's comment: %s", err)
			}
		}
		return a.setOutputs(nil)
	}
	a.log.Info("rendering", "files", len(targets), "sha", short(ev.HeadSHA))
	runs, err := a.o.OpenRuns(ctx, a.in)
	if err != nil {
		a.gha.AddStepSummary(fmt.Sprintf("### 🎬 framefleet\n\nframefleet could not start, so nothing was rendered: %s\n", mdText(err.Error())))
		_ = a.setOutputs(nil)
		return err
	}
	if a.in.CancelSuperseded && ev.PR > 0 {
		a.cancelSuperseded(ctx, runs)
	}

	key := reportKey{pr: ev.PR, sha: ev.HeadSHA, comment: a.in.CommentKey}
	live := newLiveReport(a)
	rows := make([]int, len(targets))
	for i, t := range targets {
		rows[i] = live.add(key, a.fileRow(t))
	}
	for _, t := range a.removed {
		live.add(key, a.fileRow(t))
	}
	stop := live.start(ctx)

	tmp, err := os.MkdirTemp("", "framefleet-action-")
	if err != nil {
		_ = stop()
		return err
	}
	defer os.RemoveAll(tmp)

	// The report index is saved once every file is submitted (or failed
	// before), so a later refresh rebuilds this very report.
	index := Report{Repo: ev.Owner + "/" + ev.Repo, PR: ev.PR, SHA: ev.HeadSHA, RunURL: a.runURL, CommentKey: a.in.CommentKey,
		Files: make([]ReportFile, len(targets)), StartedAt: a.started}
	var indexMu sync.Mutex
	var submitted sync.WaitGroup
	submitted.Add(len(targets))
	noted := func(i int, r Run, err error) {
		indexMu.Lock()
		index.Files[i] = ReportFile{Path: targets[i].Path, Change: targets[i].Status, Previous: targets[i].Previous}
		if err != nil {
			index.Files[i].Failure = err.Error()
		} else {
			index.Files[i].Run = r.Ref()
		}
		indexMu.Unlock()
		submitted.Done()
	}
	indexSaved := make(chan struct{})
	go func() {
		defer close(indexSaved)
		submitted.Wait()
		indexMu.Lock()
		defer indexMu.Unlock()
		for _, t := range a.removed {
			index.Files = append(index.Files, ReportFile{Path: t.Path, Change: changeRemoved})
		}
		if err := runs.SaveReport(context.WithoutCancel(ctx), index); err != nil {
			a.gha.Warningf("a scheduled refresh will not find these renders: %s", err)
		}
	}()

	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := a.fileRow(t)
			r, err := a.renderOne(ctx, runs, t, tmp, func(r Run) { live.set(key, rows[i], row.with(r)) }, func(r Run, err error) { noted(i, r, err) })
			r = row.with(r)
			if err != nil {
				r.Problem = err.Error()
			}
			if ctx.Err() != nil && r.ID() != "" && !r.Final() {
				r = a.cancelled(ctx, runs, r)
			}
			if r.failed() {
				// An annotation on the file, shown in the PR's diff too.
				a.gha.WithFieldsMap(map[string]string{"file": t.Path, "title": "framefleet render " + string(r.State())}).
					Errorf("%s: %s", t.Path, failureText(r))
			}
			live.set(key, rows[i], r)
		}()
	}
	wg.Wait()
	<-indexSaved
	if err := stop(); err != nil {
		// The report is what GitHub answered badly; the renders' own
		// outcome is still in the summary and the outputs below.
		a.gha.Warningf("the comment or some commit statuses could not be updated: %s", err)
	}
	final := live.snapshot(key)
	title := "framefleet renders of " + short(ev.HeadSHA)
	if !a.in.Wait {
		title += " (submitted; a scheduled `mode: refresh` workflow reports their end)"
	}
	a.gha.AddStepSummary(a.rep.format.summary(title, final))
	if err := a.setOutputs(final); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if failed := failures(final); failed > 0 {
		return &RendersFailedError{Failed: failed, Total: len(final)}
	}
	return nil
}

// fileRow is a file's row before its run is known.
func (a *runner) fileRow(t Target) Run {
	return Run{Labels: a.labels(t), Change: t.Status, Previous: t.Previous}
}

// with is the file's row showing run r: r's view and comparison, the
// file's own labels and change.
func (row Run) with(r Run) Run {
	r.Labels, r.Change, r.Previous = row.Labels, row.Change, row.Previous
	if r.CompareNote == "" {
		r.CompareNote = row.CompareNote
	}
	return r
}

// cancelledBy is who the action says cancelled a run.
const cancelledBy = "GitHub Actions"

// cancelled cancels r's run when the job is stopped (the workflow run was
// cancelled: SIGINT), so the report says cancelled, not failed.
func (a *runner) cancelled(ctx context.Context, runs Runs, r Run) Run {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalReportGrace)
	defer cancel()
	if err := runs.Cancel(cctx, r.ID(), cancelledBy, "the workflow run was cancelled"); err != nil {
		a.log.Warn("could not cancel the run", "run", r.ID(), "err", err)
	}
	got, err := runs.Get(cctx, r.Ref())
	if err != nil {
		return r
	}
	got = r.with(got)
	got.Problem = ""
	return got
}

// cancelSuperseded cancels the unfinished runs an earlier push to this
// pull request started, as its saved report names them: this push
// supersedes them. Runs of this very commit are kept.
func (a *runner) cancelSuperseded(ctx context.Context, runs Runs) {
	ev := a.event
	reports, err := runs.Reports(ctx, ev.Owner+"/"+ev.Repo, a.started.Add(-a.in.RefreshSince))
	if err != nil {
		a.log.Warn("could not look for superseded runs", "err", err)
		return
	}
	for _, rep := range reports {
		if rep.PR != ev.PR || rep.SHA == ev.HeadSHA || rep.StartedAt.After(a.started) || rep.CommentKey != a.in.CommentKey {
			continue
		}
		for _, f := range rep.Files {
			if f.Run.ID == "" {
				continue
			}
			r, err := runs.Get(ctx, f.Run)
			if err != nil || r.Final() || r.Labels[LabelPR] != strconv.Itoa(ev.PR) {
				continue // finished, or shared with another request (the render cache)
			}
			reason := "superseded by the push of " + short(ev.HeadSHA)
			if err := runs.Cancel(ctx, f.Run.ID, cancelledBy, reason); err != nil {
				a.log.Warn("could not cancel a superseded run", "run", f.Run.ID, "err", err)
				continue
			}
			a.log.Info("cancelled a superseded run", "run", f.Run.ID, "file", f.Path, "sha", short(rep.SHA))
		}
	}
}

// failureText is a failed row's cause on one line.
func failureText(r Run) string {
	v := r.View
	switch {
	case v.Cancelled != nil:
		return "cancelled: " + v.Cancelled.Reason
	case len(v.Failures) > 0:
		f := v.Failures[0]
		if f.Fix != "" {
			return f.Summary + " " + f.Fix
		}
		return f.Summary
	}
	return orDash(r.Problem)
}

// renderOne prepares, submits and (with wait) follows one file, calling
// submitted once with the submitted run or the error that prevented it.
func (a *runner) renderOne(ctx context.Context, runs Runs, t Target, tmp string, obs func(Run), submitted func(Run, error)) (Run, error) {
	labels := a.labels(t)
	local, err := a.git.materialize(ctx, t, tmp)
	if err != nil {
		submitted(Run{}, err)
		return Run{}, err
	}
	root, err := a.project(ctx, t, local, tmp)
	if err != nil {
		submitted(Run{}, err)
		return Run{}, err
	}
	sub := Submission{
		BlendPath:  local,
		Root:       root,
		SourceName: fmt.Sprintf("%s/%s/%s@%s", a.event.Owner, a.event.Repo, t.Path, t.SHA),
		Frames:     a.in.Frames,
		Labels:     labels,
	}
	compareNote := ""
	if a.in.Compare && a.event.PR > 0 && (t.Status == "modified" || t.Status == "renamed" || t.Status == "changed") {
		basePath := t.Path
		if t.Previous != "" {
			basePath = t.Previous
		}
		base := Target{Path: basePath, SHA: a.event.BaseSHA}
		if p, err := a.git.materialize(ctx, base, tmp); err != nil {
			compareNote = err.Error()
		} else if baseRoot, err := a.project(ctx, base, p, tmp); err != nil {
			compareNote = err.Error()
		} else {
			sub.ComparePath, sub.CompareRoot = p, baseRoot
			sub.CompareSource = fmt.Sprintf("%s/%s/%s@%s", a.event.Owner, a.event.Repo, base.Path, base.SHA)
			sub.BaseLabel, sub.HeadLabel = "base "+short(base.SHA), "head "+short(t.SHA)
		}
		if compareNote != "" {
			a.gha.Warningf("%s: no before/after comparison: %s", t.Path, compareNote)
		}
	}
	r, err := runs.Submit(ctx, sub)
	submitted(r, err)
	if err != nil {
		return Run{CompareNote: compareNote}, err
	}
	r.CompareNote = compareNote
	// A finished (cached) run may still lack its comparison: watching it
	// composes one.
	compose := needsComparison(r)
	obs(r)
	a.log.Info("submitted", "file", t.Path, "run", r.ID(), "state", r.State())
	if !a.in.Wait || r.Final() && !compose {
		return r, nil
	}
	end, err := runs.Watch(ctx, r.Ref(), func(x Run) { x.CompareNote = compareNote; obs(x) })
	end.CompareNote = compareNote
	if err != nil && !end.Final() {
		if ctx.Err() != nil {
			return end, nil // the caller cancels it
		}
		// The run's own failure is in its view; this is watching failing.
		if got, gerr := runs.Get(ctx, r.Ref()); gerr == nil && got.Final() {
			got.CompareNote = compareNote
			return got, nil
		}
		if end.ID() == "" {
			end = r
		}
		return end, fmt.Errorf("follow run %s: %w", r.ID(), err)
	}
	return end, nil
}

func (a *runner) labels(t Target) map[string]string {
	l := map[string]string{
		LabelRepo: a.event.Owner + "/" + a.event.Repo,
		LabelSHA:  t.SHA,
		LabelPath: t.Path,
	}
	if a.event.PR > 0 {
		l[LabelPR] = strconv.Itoa(a.event.PR)
	}
	if t.Reason != "" {
		l[LabelReason] = t.Reason
	}
	if a.runURL != "" {
		l[LabelRunURL] = a.runURL
	}
	return l
}

func (a *runner) setOutputs(runs []Run) error {
	out := []RunOutput{}
	for _, r := range runs {
		if r.Change == changeRemoved && r.ID() == "" {
			continue
		}
		o := RunOutput{File: r.Path(), SHA: r.SHA(), RunID: r.ID(), State: r.State(),
			Comparison: r.Comparison, ComparisonPath: a.relative(r.ComparisonPath)}
		if l := r.View.Links; l != nil {
			o.Video, o.Preview = l.Video, l.Preview
			o.VideoPath, o.PreviewPath = a.relative(l.VideoPath), a.relative(l.PreviewPath)
			o.LinksExpireAt = l.ExpiresAt
		}
		if r.failed() {
			o.Error = failureText(r)
		}
		out = append(out, o)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	a.gha.SetOutput("runs", string(data))
	a.gha.SetOutput("failures", strconv.Itoa(failures(runs)))
	return nil
}

// relative is a local path relative to the workspace (the paths
// actions/upload-artifact takes), or as it is when outside it.
func (a *runner) relative(p string) string {
	if p == "" || a.git.dir == "" {
		return p
	}
	rel, err := filepath.Rel(a.git.dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return p
	}
	return filepath.ToSlash(rel)
}
