// Package batch runs framefleet plans on AWS Batch: one array job renders
// (child i = chunk i), a dependent job stitches the video. Retries are the
// definition's (Spot reclaims and the worker's transient exit code); a job
// asking for another number of attempts sends the same rules with its count.
//
// Registering job definitions belongs to `framefleet setup`
// (EnsureJobDefinition), run with an administrator's credentials. The engine
// never registers: it submits with an ACTIVE revision whose tag and contents
// (image, roles, command, privileges, resources, …) match the configured
// spec, so whoever may submit cannot choose what every render runs. Before
// its first submission it also checks that the queue can run the jobs.
//
// SubmitJob has no idempotency token, so it is never retried blindly: the SDK
// retries it only when throttled (the call was refused), and after any other
// failure the engine looks the job up by its name, unique per run, with
// backoff over several seconds, before submitting again.
package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/framefleet/framefleet/internal/sdkhttp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/batch"

	"github.com/framefleet/framefleet/pipeline"
)

// EngineName is the Handle.Engine value of runs submitted here.
const EngineName = "batch"

// Environment the workers read.
const (
	StoreEnv = "FRAMEFLEET_STORE"
	RunIDEnv = "FRAMEFLEET_RUN_ID"
)

// DefaultLogGroup is where AWS Batch's awslogs driver writes every job's
// output, one stream per attempt, unless the job definition names a group.
const DefaultLogGroup = "/aws/batch/job"

// ListJobs page sizes: Batch returns at most 1000 jobs per page when listing
// by status, 100 when a filter is used.
const (
	listByStatusMax = 1000
	listFilteredMax = 100
)

// Options configure an Engine.
type Options struct {
	// Queue is the job queue (name or ARN). Required.
	Queue string
	// Definition is the job definition to submit with: the revision setup
	// registered for this spec (or, with no Image, an existing definition
	// by name, used as is).
	Definition Spec
	// Endpoint overrides the Batch endpoint (with scheme), e.g. a test server.
	Endpoint string
	// MaxAttempts per API call, throttling included (default 10).
	MaxAttempts int
	// MaxBackoff caps the delay between retries of one call (default 20s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// API is the part of the Batch client the engine uses.
type API interface {
	DescribeJobs(context.Context, *batch.DescribeJobsInput, ...func(*batch.Options)) (*batch.DescribeJobsOutput, error)
	batch.ListJobsAPIClient
	batch.DescribeJobDefinitionsAPIClient
	SubmitJob(context.Context, *batch.SubmitJobInput, ...func(*batch.Options)) (*batch.SubmitJobOutput, error)
	TerminateJob(context.Context, *batch.TerminateJobInput, ...func(*batch.Options)) (*batch.TerminateJobOutput, error)
	RegisterJobDefinition(context.Context, *batch.RegisterJobDefinitionInput, ...func(*batch.Options)) (*batch.RegisterJobDefinitionOutput, error)
	DescribeJobQueues(context.Context, *batch.DescribeJobQueuesInput, ...func(*batch.Options)) (*batch.DescribeJobQueuesOutput, error)
	DescribeComputeEnvironments(context.Context, *batch.DescribeComputeEnvironmentsInput, ...func(*batch.Options)) (*batch.DescribeComputeEnvironmentsOutput, error)
}

// Engine implements pipeline.Engine on AWS Batch.
type Engine struct {
	api        API
	opts       Options
	log        *slog.Logger
	maxBackoff time.Duration

	mu      sync.Mutex
	def     string // verified definition ARN, once looked up
	queueOK bool   // the queue passed CheckQueue
	watches map[string]*watch
}

var (
	_ pipeline.Engine     = (*Engine)(nil)
	_ pipeline.LogLocator = (*Engine)(nil)
)

// LogGroup is the CloudWatch Logs group the workers write to: the job
// definition's (batch.log_group), else Batch's default.
func (e *Engine) LogGroup() string {
	if g := e.opts.Definition.LogGroup; g != "" {
		return g
	}
	return DefaultLogGroup
}

// WorkerLogs says where the workers of h log (pipeline.LogLocator): the
// CloudWatch Logs group, and the streams of the failed attempts this engine
// has seen, else how Batch names a run's streams. It makes no API call: it
// is asked when a run gives up, often because something is unreachable.
func (e *Engine) WorkerLogs(h pipeline.Handle) string {
	var streams []string
	e.mu.Lock()
	if w := e.watches[h.RenderID]; w != nil {
		for _, f := range w.failures {
			if f.LogStream != "" {
				streams = append(streams, fmt.Sprintf("chunk %d: %s", f.Index, f.LogStream))
			}
		}
	}
	e.mu.Unlock()
	if len(streams) > 0 {
		return fmt.Sprintf("CloudWatch Logs group %s, streams %s", e.LogGroup(), strings.Join(streams, "; "))
	}
	return fmt.Sprintf("CloudWatch Logs group %s, one stream per attempt named %s/default/<task id> (render job %s, stitch job %s: their attempts name them)",
		e.LogGroup(), e.definitionName(), h.RenderID, h.StitchID)
}

// definitionName is the job definition's name, which starts its log streams' names.
func (e *Engine) definitionName() string {
	name := e.opts.Definition.withDefaults().Name
	if i := strings.LastIndexByte(name, '/'); i >= 0 { // an ARN: .../name:revision
		name = name[i+1:]
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	return name
}

// New builds an Engine whose Batch client comes from cfg (region,
// credentials), retrying throttled calls in adaptive mode.
func New(cfg aws.Config, opts Options) (*Engine, error) {
	if opts.Queue == "" {
		return nil, errors.New("batch engine: no job queue given: set the queue name or ARN")
	}
	if opts.Definition.Registers() {
		if err := opts.Definition.Validate(); err != nil {
			return nil, fmt.Errorf("batch engine: job definition: %w", err)
		}
	} else if opts.Definition.Name == "" {
		return nil, errors.New("batch engine: no job definition: give an image to register one, or the name of an existing definition")
	}
	maxAttempts := orDefault(opts.MaxAttempts, 10)
	maxBackoff := opts.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 20 * time.Second
	}
	client := batch.NewFromConfig(cfg, func(o *batch.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		if o.HTTPClient != nil {
			o.HTTPClient = sdkhttp.Client(o.HTTPClient)
		}
		o.Retryer = retry.NewAdaptiveMode(func(ao *retry.AdaptiveModeOptions) {
			ao.StandardOptions = append(ao.StandardOptions, func(so *retry.StandardOptions) {
				so.MaxAttempts = maxAttempts
				so.MaxBackoff = maxBackoff
			})
		})
	})
	return NewWithAPI(client, opts), nil
}

// NewWithAPI builds an Engine on an existing Batch client.
func NewWithAPI(api API, opts Options) *Engine {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxBackoff := opts.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 20 * time.Second
	}
	return &Engine{api: api, opts: opts, log: log, maxBackoff: maxBackoff, watches: map[string]*watch{}}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Cancel terminates the stitch and the render job (queued or running).
func (e *Engine) Cancel(ctx context.Context, h pipeline.Handle, reason string) error {
	if err := checkHandle(h); err != nil {
		return err
	}
	if reason == "" {
		reason = "cancelled"
	}
	reason = truncate(reason, 1024)
	var errs []error
	// The stitch first, so it carries the reason rather than "Dependent Job failed".
	for _, id := range []string{h.StitchID, h.RenderID} {
		if id == "" {
			continue
		}
		if _, err := e.api.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(id), Reason: aws.String(reason)}); err != nil {
			errs = append(errs, fmt.Errorf("terminating job %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// Name is the engine's name in run records (pipeline.Run uses it).
func (e *Engine) Name() string { return EngineName }
