package action

import (
	"context"
	"strconv"
	"time"
)

// Labels the action puts on the runs it submits; refresh finds runs by them.
const (
	LabelRepo   = "github.repo"    // owner/name
	LabelPR     = "github.pr"      // the PR's number ("" for a push)
	LabelSHA    = "github.sha"     // the commit rendered and reported on
	LabelPath   = "github.path"    // the blend's repository path
	LabelRunURL = "github.run_url" // the workflow run that submitted it
	// LabelCompareBase is the run of the PR's base a head run is compared
	// with, and LabelCompareLabels the halves' labels ("base abc1234|head def5678").
	LabelCompareBase   = "github.compare_base"
	LabelCompareLabels = "github.compare_labels"
	// LabelRole is "compare-base" on the base renders of comparisons.
	LabelRole = "github.role"
)

// Runs is what the action needs of framefleet's durable runs.
type Runs interface {
	// Submit starts a render (or attaches to an identical one) and returns
	// once it is submitted.
	Submit(ctx context.Context, s Submission) (Run, error)
	// Watch follows a run to its end, calling obs with each change.
	Watch(ctx context.Context, id string, obs func(Run)) (Run, error)
	// Get reads a run's record.
	Get(ctx context.Context, id string) (Run, error)
	// List returns runs whose labels include labels, newest first, created
	// after since.
	List(ctx context.Context, labels map[string]string, since time.Time) ([]Run, error)
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

// Run is the action's view of a run record: what the reports show.
type Run struct {
	ID    string
	State string
	Final bool
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

// Path is the blend's repository path.
func (r Run) Path() string { return r.Labels[LabelPath] }

// SHA is the commit the run rendered.
func (r Run) SHA() string { return r.Labels[LabelSHA] }

// PR is the pull request's number, 0 for none.
func (r Run) PR() int {
	n, _ := strconv.Atoi(r.Labels[LabelPR])
	return n
}

// Run states (pipeline.RunState's values).
const (
	StatePlanned     = "planned"
	StateSubmitted   = "submitted"
	StateRunning     = "running"
	StateStitching   = "stitching"
	StateSucceeded   = "succeeded"
	StateFailed      = "failed"
	StateCancelled   = "cancelled"
	StateInterrupted = "interrupted"
)
