package action

import (
	"context"
	"time"

	"github.com/framefleet/framefleet/pipeline"
)

// Labels the action puts on the runs it submits; refresh finds runs by them.
const (
	LabelRepo   = "github.repo"    // owner/name
	LabelPR     = "github.pr"      // the PR's number ("" for a push)
	LabelSHA    = "github.sha"     // the commit rendered and reported on
	LabelPath   = "github.path"    // the blend's repository path
	LabelRunURL = "github.run_url" // the workflow run that submitted it
	// LabelRole is "compare-base" on the base renders of comparisons.
	LabelRole = "github.role"
)

// Runs is what the action needs of framefleet's durable runs, and of
// their store for its report index.
type Runs interface {
	// Submit starts a render (or attaches to an identical one) and returns
	// once it is submitted; the run's Ref names it (and its comparison).
	Submit(ctx context.Context, s Submission) (Run, error)
	// Watch follows a run to its end, calling obs with each change, and
	// composes its comparison once both renders are done.
	Watch(ctx context.Context, ref RunRef, obs func(Run)) (Run, error)
	// Get reads a run's view (and its comparison, when composed).
	Get(ctx context.Context, ref RunRef) (Run, error)
	// Cancel cancels an unfinished run, saying who and why.
	Cancel(ctx context.Context, id, by, reason string) error
	// SaveReport stores a report's index; Reports lists repo's (owner/name)
	// saved since since.
	SaveReport(ctx context.Context, r Report) error
	Reports(ctx context.Context, repo string, since time.Time) ([]Report, error)
}

// RunRef names a run and the comparison shown with it.
type RunRef struct {
	ID string `json:"id"`
	// CompareBase is the run of the PR's base this run is compared with;
	// BaseLabel and HeadLabel are drawn over the halves.
	CompareBase string `json:"compare_base,omitempty"`
	BaseLabel   string `json:"base_label,omitempty"`
	HeadLabel   string `json:"head_label,omitempty"`
}

// Report is the action's index of one report: which run renders each file
// of a PR's head commit (or of a pushed commit). Identical renders share a
// run (the render cache), whose labels name only its first requester; this
// index names every file's run, so refresh rebuilds the same report.
type Report struct {
	Repo   string `json:"repo"` // owner/name
	PR     int    `json:"pr,omitempty"`
	SHA    string `json:"sha"`
	RunURL string `json:"run_url,omitempty"`
	// CommentKey is the job's comment-key: jobs with different keys (and
	// paths) keep reports, and comments, of their own.
	CommentKey string       `json:"comment_key,omitempty"`
	Files      []ReportFile `json:"files"`
	// StartedAt is when the job that saved it started: a job for an older
	// push that ends later does not replace a newer push's report.
	StartedAt time.Time `json:"started_at"`
}

// ReportFile is one file of a report: its run, or why it has none.
type ReportFile struct {
	Path string `json:"path"`
	// Change is how the commit changed the file (added, modified,
	// renamed, removed); Previous is a renamed file's old path.
	Change   string `json:"change,omitempty"`
	Previous string `json:"previous,omitempty"`
	Run      RunRef `json:"run,omitzero"`
	Failure  string `json:"failure,omitempty"`
}

// Submission is one render the action asks for.
type Submission struct {
	// BlendPath is the local file; SourceName names it in the record
	// ("owner/repo/path.blend@sha").
	BlendPath, SourceName string
	Frames                string
	Labels                map[string]string
	// ComparePath is the blend at the PR's base commit, when a before/after
	// comparison is wanted ("" otherwise); CompareSource names it, and
	// BaseLabel and HeadLabel are drawn over the halves.
	ComparePath, CompareSource string
	BaseLabel, HeadLabel       string
}

// Run is one file's row in the reports: the pipeline's view of its run
// (everything about the run itself) and what only the action knows (the
// file, its change, its comparison).
type Run struct {
	// View is the run as the pipeline shows it; its ID is "" when the file
	// never got a run (Problem says why).
	View pipeline.RunView
	// Compare names the comparison shown with the run (see RunRef).
	Compare RunRef
	// Labels as submitted (see Label*): the file's path, commit, PR.
	Labels map[string]string
	// Change is how the commit changed the file: added, modified, renamed,
	// removed ("" when not known, e.g. workflow_dispatch); Previous is a
	// renamed file's old path.
	Change, Previous string

	// Comparison is the before/after video's link, ComparisonPreview its
	// looping GIF, ComparisonPath its local path (a directory store).
	Comparison, ComparisonPreview, ComparisonPath string
	// CompareNote says why a comparison was asked for but cannot be shown.
	CompareNote string

	// Problem says why the file has no run (it could not be read, fetched
	// or submitted), or why following its run failed.
	Problem string
}

// ID is the run's id ("" when there is none).
func (r Run) ID() string { return r.View.ID }

// State is the run's state; a file without a run failed.
func (r Run) State() pipeline.RunState {
	if r.View.ID == "" {
		if r.Change == changeRemoved {
			return ""
		}
		if r.Problem != "" {
			return pipeline.RunFailed
		}
		return pipeline.RunPlanned
	}
	return r.View.State
}

// Final says the run ended (or there will be none).
func (r Run) Final() bool {
	return r.View.Final || r.View.ID == "" && (r.Problem != "" || r.Change == changeRemoved)
}

// changeRemoved is a deleted file's change.
const changeRemoved = "removed"

// Ref names the run and its comparison.
func (r Run) Ref() RunRef {
	ref := r.Compare
	ref.ID = r.View.ID
	return ref
}

// Path is the blend's repository path.
func (r Run) Path() string { return r.Labels[LabelPath] }

// SHA is the commit the run rendered.
func (r Run) SHA() string { return r.Labels[LabelSHA] }

// failed says whether the run ended without its video (failed or cancelled).
func (r Run) failed() bool {
	s := r.State()
	return s == pipeline.RunFailed || s == pipeline.RunCancelled
}

// failures counts the runs that failed.
func failures(runs []Run) int {
	n := 0
	for _, r := range runs {
		if r.failed() {
			n++
		}
	}
	return n
}
