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
	// Get reads a run's record (and its comparison, when composed).
	Get(ctx context.Context, ref RunRef) (Run, error)
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
	Repo   string       `json:"repo"` // owner/name
	PR     int          `json:"pr,omitempty"`
	SHA    string       `json:"sha"`
	RunURL string       `json:"run_url,omitempty"`
	Files  []ReportFile `json:"files"`
	// StartedAt is when the job that saved it started: a job for an older
	// push that ends later does not replace a newer push's report.
	StartedAt time.Time `json:"started_at"`
}

// ReportFile is one file of a report: its run, or why it has none.
type ReportFile struct {
	Path    string `json:"path"`
	Run     RunRef `json:"run,omitzero"`
	Failure string `json:"failure,omitempty"`
}

// Submission is one render the action asks for.
type Submission struct {
	// BlendPath is the local file; SourceName names it in the record
	// ("owner/repo/path.blend@sha").
	BlendPath, SourceName string
	// Root is the project root the blend's files are laid out from (the
	// repository's top); CompareRoot the comparison base's.
	Root, CompareRoot string
	Frames            string
	Labels            map[string]string
	// ComparePath is the blend at the PR's base commit, when a before/after
	// comparison is wanted ("" otherwise); CompareSource names it, and
	// BaseLabel and HeadLabel are drawn over the halves.
	ComparePath, CompareSource string
	BaseLabel, HeadLabel       string
}

// Run is the action's view of a run record: what the reports show.
type Run struct {
	ID string
	// Compare names the comparison shown with the run (see RunRef).
	Compare RunRef
	State   pipeline.RunState
	Final   bool
	// Labels as submitted (see Label*).
	Labels map[string]string

	Scene                   string
	Width, Height           int    // the rendered size
	Frames                  string // e.g. "1-48"
	FramesDone, FramesTotal int
	// LatestFrame and LatestFrameLink show the newest frame while rendering.
	LatestFrame     int
	LatestFrameLink string

	// Links a person can open (http(s), or file paths for a local store),
	// and local paths when the store is a directory.
	Video, Preview, Comparison string
	// ComparisonPreview is the before/after's looping GIF.
	ComparisonPreview                      string
	VideoPath, PreviewPath, ComparisonPath string

	// Failure says why a failed or cancelled run ended.
	Failure string

	CreatedAt  time.Time
	FinishedAt time.Time
}

// Ref names the run and its comparison.
func (r Run) Ref() RunRef {
	ref := r.Compare
	ref.ID = r.ID
	return ref
}

// Path is the blend's repository path.
func (r Run) Path() string { return r.Labels[LabelPath] }

// SHA is the commit the run rendered.
func (r Run) SHA() string { return r.Labels[LabelSHA] }

// failed says whether the run ended without its video (failed or cancelled).
func (r Run) failed() bool { return r.State == pipeline.RunFailed || r.State == pipeline.RunCancelled }

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
