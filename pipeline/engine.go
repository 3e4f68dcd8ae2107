// Package pipeline is framefleet's core: it reads a scene, plans the render,
// stores the inputs, submits the array job and the stitch job to an Engine,
// watches them and hands back the result. It imports no front-end; the CLI,
// the GitHub Action and the Slack bot all drive it the same way.
package pipeline

import (
	"context"
	"errors"
	"time"
)

// ErrUnknownJob is wrapped by Engine.Status and Engine.Cancel when the engine
// does not know the handle's jobs: a local job submitted by another (perhaps
// dead) process, or Batch jobs deleted after their retention period.
var ErrUnknownJob = errors.New("the engine does not know this job")

// HostBound is implemented by engines whose jobs die with the process that
// submitted them (the local engine): such a run needs a live host process,
// and a watcher resumes it when its host is gone.
type HostBound interface {
	HostBound() bool
}

// LogLocator is implemented by engines that can say where a run's worker
// logs are (a directory, a CloudWatch Logs group), for errors that give up.
type LogLocator interface {
	WorkerLogs(h Handle) string
}

// Engine runs a plan as AWS Batch does: an array job with one child per chunk
// (child i reads AWS_BATCH_JOB_ARRAY_INDEX=i), and a stitch job that starts
// only when every child succeeded. The local engine and the AWS Batch engine
// implement it with the same semantics.
type Engine interface {
	// Submit starts the render array and the dependent stitch job.
	Submit(ctx context.Context, job Job) (Handle, error)
	// Status reports both jobs with a bounded number of calls, whatever the frame count.
	Status(ctx context.Context, h Handle) (Status, error)
	// Cancel stops both jobs, running or queued.
	Cancel(ctx context.Context, h Handle, reason string) error
	// BlenderVersion is the Blender the workers run (e.g. "3.4.1"), so a file
	// saved by a newer Blender is refused before anything is submitted.
	BlenderVersion(ctx context.Context) (string, error)
}

// Job is what an engine needs to run a stored plan.
type Job struct {
	RunID    string
	StoreURI string // workers open this store and read runs/<RunID>/plan.json
	Chunks   int    // array size
	Scene    string // for job names and tags
	// Attempts per child (Batch retryStrategy.attempts); 0 = the engine's default.
	Attempts int
	// AttemptTimeout bounds each child attempt; 0 = none.
	AttemptTimeout time.Duration
	// Env is passed to every worker (e.g. the S3 endpoint in tests).
	Env map[string]string
}

// Handle identifies a submitted run so a caller can watch or cancel it later.
type Handle struct {
	Engine   string `json:"engine"`
	RenderID string `json:"render_job_id"`
	StitchID string `json:"stitch_job_id"`
}

// JobState is a job's state, using AWS Batch's names.
type JobState string

const (
	StateSubmitted JobState = "SUBMITTED"
	StatePending   JobState = "PENDING"
	StateRunnable  JobState = "RUNNABLE"
	StateStarting  JobState = "STARTING"
	StateRunning   JobState = "RUNNING"
	StateSucceeded JobState = "SUCCEEDED"
	StateFailed    JobState = "FAILED"
)

// Terminal reports whether a job in this state will never change again.
func (s JobState) Terminal() bool { return s == StateSucceeded || s == StateFailed }

// Status is a snapshot of a run's two jobs.
type Status struct {
	Render JobState
	// Children counts array children by state (Batch's statusSummary).
	Children map[JobState]int
	Stitch   JobState
	// StitchReason is the stitch job's status reason when it failed.
	StitchReason string
	// Failures lists failed children (filled once some have failed terminally).
	Failures []ChildFailure
	// Attempts lists finished attempts, for timings and cost.
	Attempts []Attempt
}

// ChildFailure says why an array child (or the stitch job, Index -1) failed.
type ChildFailure struct {
	Index     int    `json:"index"`
	Attempts  int    `json:"attempts"`
	Reason    string `json:"reason"`
	ExitCode  *int   `json:"exit_code,omitempty"`
	LogStream string `json:"log_stream,omitempty"`
	// WorkerError is the worker's own message from its chunk report, and Log
	// the store key of Blender's log tail (filled by Run, not by engines).
	WorkerError string `json:"worker_error,omitempty"`
	Log         string `json:"log,omitempty"`
}

// Attempt is one run of one child (Index -1 is the stitch job).
type Attempt struct {
	Index     int       `json:"index"`
	Number    int       `json:"attempt"`
	StartedAt time.Time `json:"started_at"`
	StoppedAt time.Time `json:"stopped_at"`
	VCPUs     float64   `json:"vcpus"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}
