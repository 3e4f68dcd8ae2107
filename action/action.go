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
	a.rep = newReporter(a.gh, a.event.Owner, a.event.Repo, in.Comment, o.Clock)

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
		return err
	}
	if len(targets) == 0 {
		a.gha.Noticef("No changed file matches paths (%s): nothing to render.", strings.Join(a.in.Paths, ", "))
		a.gha.AddStepSummary("### 🎬 framefleet\n\nNo changed file matches `paths`: nothing to render.\n")
		return a.setOutputs(nil)
	}
	a.log.Info("rendering", "files", len(targets), "sha", short(ev.HeadSHA))
	runs, err := a.o.OpenRuns(ctx, a.in)
	if err != nil {
		return err
	}

	key := reportKey{pr: ev.PR, sha: ev.HeadSHA}
	live := newLiveReport(a)
	rows := make([]int, len(targets))
	for i, t := range targets {
		rows[i] = live.add(key, Run{State: pipeline.RunPlanned, Labels: a.labels(t)})
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
	index := Report{Repo: ev.Owner + "/" + ev.Repo, PR: ev.PR, SHA: ev.HeadSHA, RunURL: a.runURL,
		Files: make([]ReportFile, len(targets)), StartedAt: a.started}
	var indexMu sync.Mutex
	var submitted sync.WaitGroup
	submitted.Add(len(targets))
	noted := func(i int, r Run, err error) {
		indexMu.Lock()
		index.Files[i] = ReportFile{Path: targets[i].Path}
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
		if err := runs.SaveReport(context.WithoutCancel(ctx), index); err != nil {
			a.gha.Warningf("a scheduled refresh will not find these renders: %s", err)
		}
	}()

	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := a.renderOne(ctx, runs, t, tmp, func(r Run) { live.set(key, rows[i], r) }, func(r Run, err error) { noted(i, r, err) })
			if err != nil {
				r.State, r.Final, r.Failure = pipeline.RunFailed, true, err.Error()
			}
			if r.failed() {
				// An annotation on the file, shown in the PR's diff too.
				a.gha.WithFieldsMap(map[string]string{"file": t.Path, "title": "framefleet render " + string(r.State)}).
					Errorf("%s: %s", t.Path, orDash(r.Failure))
			}
			live.set(key, rows[i], r)
		}()
	}
	wg.Wait()
	<-indexSaved
	if err := stop(); err != nil {
		return fmt.Errorf("report the renders: %w", err)
	}
	final := live.snapshot(key)
	title := "framefleet renders of " + short(ev.HeadSHA)
	if !a.in.Wait {
		title += " (submitted; a scheduled `mode: refresh` workflow reports their end)"
	}
	a.gha.AddStepSummary(summary(title, final))
	if err := a.setOutputs(final); err != nil {
		return err
	}
	if failed := failures(final); failed > 0 {
		return &RendersFailedError{Failed: failed, Total: len(final)}
	}
	return nil
}

// renderOne prepares, submits and (with wait) follows one file, calling
// submitted once with the submitted run or the error that prevented it.
// The returned run carries the file's labels even on error.
func (a *runner) renderOne(ctx context.Context, runs Runs, t Target, tmp string, obs func(Run), submitted func(Run, error)) (Run, error) {
	labels := a.labels(t)
	failed := Run{Labels: labels}
	local, err := a.git.materialize(ctx, t, tmp)
	if err != nil {
		submitted(failed, err)
		return failed, err
	}
	if err := a.fetchLFS(ctx, local, t.Path); err != nil {
		submitted(failed, err)
		return failed, err
	}
	sub := Submission{
		BlendPath:  local,
		SourceName: fmt.Sprintf("%s/%s/%s@%s", a.event.Owner, a.event.Repo, t.Path, t.SHA),
		Frames:     a.in.Frames,
		Labels:     labels,
	}
	if a.in.Compare && a.event.PR > 0 && (t.Status == "modified" || t.Status == "renamed" || t.Status == "changed") {
		basePath := t.Path
		if t.Previous != "" {
			basePath = t.Previous
		}
		base := Target{Path: basePath, SHA: a.event.BaseSHA}
		if p, err := a.git.materialize(ctx, base, tmp); err != nil {
			a.gha.Warningf("%s: no before/after comparison: %s", t.Path, err)
		} else if err := a.fetchLFS(ctx, p, base.Path); err != nil {
			a.gha.Warningf("%s: no before/after comparison: %s", t.Path, err)
		} else {
			sub.ComparePath = p
			sub.CompareSource = fmt.Sprintf("%s/%s/%s@%s", a.event.Owner, a.event.Repo, base.Path, base.SHA)
			sub.BaseLabel, sub.HeadLabel = "base "+short(base.SHA), "head "+short(t.SHA)
		}
	}
	r, err := runs.Submit(ctx, sub)
	submitted(r, err)
	if err != nil {
		return failed, err
	}
	// A finished (cached) run may still lack its comparison: watching it
	// composes one.
	compose := needsComparison(r)
	r.Labels = labels
	obs(r)
	a.log.Info("submitted", "file", t.Path, "run", r.ID, "state", r.State)
	if !a.in.Wait || r.Final && !compose {
		return r, nil
	}
	end, err := runs.Watch(ctx, r.Ref(), func(x Run) { x.Labels = labels; obs(x) })
	end.Labels = labels
	if err != nil && !end.Final {
		// The run's own failure is in its record; this is watching failing.
		if got, gerr := runs.Get(ctx, r.Ref()); gerr == nil && got.Final {
			got.Labels = labels
			return got, nil
		}
		if end.ID == "" {
			end = r
		}
		return end, fmt.Errorf("follow run %s: %w", r.ID, err)
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
	if a.runURL != "" {
		l[LabelRunURL] = a.runURL
	}
	return l
}

func (a *runner) setOutputs(runs []Run) error {
	out := []RunOutput{}
	for _, r := range runs {
		out = append(out, RunOutput{
			File: r.Path(), SHA: r.SHA(), RunID: r.ID, State: r.State,
			Video: r.Video, Preview: r.Preview, Comparison: r.Comparison,
			VideoPath: r.VideoPath, PreviewPath: r.PreviewPath, ComparisonPath: r.ComparisonPath,
			Error: r.Failure,
		})
		if at := soonestExpiry([]Run{r}); !at.IsZero() {
			out[len(out)-1].LinksExpireAt = &at
		}
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	a.gha.SetOutput("runs", string(data))
	a.gha.SetOutput("failures", strconv.Itoa(failures(runs)))
	return nil
}
