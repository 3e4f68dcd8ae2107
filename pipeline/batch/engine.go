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
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/framefleet/framefleet/internal/sdkhttp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/smithy-go"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
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

// describeBatch is DescribeJobs' limit on job IDs per call.
const describeBatch = 100

// ListJobs page sizes: Batch returns at most 1000 jobs per page when listing
// by status, 100 when a filter is used.
const (
	listByStatusMax = 1000
	listFilteredMax = 100
)

// submitTries bounds the submissions of one job after failures that may have
// taken effect (each followed by a look-up by name).
const submitTries = 5

// ErrJobNotFound is returned (wrapped) when Batch no longer knows a job of a handle.
var ErrJobNotFound = fmt.Errorf("job not found on AWS Batch: %w", pipeline.ErrUnknownJob)

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

// watch remembers, per render job, what earlier polls learnt, so that child
// details are fetched only when the failed count changes or once at the end.
type watch struct {
	failedSeen int
	failures   []pipeline.ChildFailure
	attempts   []pipeline.Attempt // children's attempts, once the array is terminal
	final      bool
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

// EnsureJobDefinition is `framefleet setup`'s step, run with an
// administrator's credentials: it returns the ARN of an ACTIVE revision
// matching spec (its SpecHashTag and its contents), registering a new
// revision only when none does. It refuses a spec that would fail every job.
// The render path never registers (see JobDefinition).
func (e *Engine) EnsureJobDefinition(ctx context.Context, spec Spec) (arn string, registered bool, err error) {
	spec = spec.withDefaults()
	if err := spec.Validate(); err != nil {
		return "", false, fmt.Errorf("job definition %s: %w", spec.Name, err)
	}
	if err := spec.CheckForSetup(); err != nil {
		return "", false, fmt.Errorf("job definition %s: %w", spec.Name, err)
	}
	match, _, err := e.matchingRevision(ctx, spec)
	if err != nil {
		return "", false, err
	}
	if match != nil {
		e.log.Debug("job definition unchanged", "arn", aws.ToString(match.JobDefinitionArn))
		return aws.ToString(match.JobDefinitionArn), false, nil
	}
	in := spec.registerInput()
	in.Tags = map[string]string{SpecHashTag: specHash(in), ManagedTag: "true"}
	out, err := e.api.RegisterJobDefinition(ctx, in)
	if err != nil {
		return "", false, fmt.Errorf("registering job definition %s: %w", spec.Name, err)
	}
	e.log.Info("registered job definition", "arn", aws.ToString(out.JobDefinitionArn), "revision", aws.ToInt32(out.Revision))
	return aws.ToString(out.JobDefinitionArn), true, nil
}

// JobDefinition returns the ARN of the newest ACTIVE revision whose tag and
// contents match spec. It never registers: whoever may submit must not be
// able to choose the image (or role, or privileges) every render runs with,
// so a missing or mismatching revision is an error naming `framefleet setup`.
func (e *Engine) JobDefinition(ctx context.Context, spec Spec) (string, error) {
	spec = spec.withDefaults()
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("job definition %s: %w", spec.Name, err)
	}
	match, rejected, err := e.matchingRevision(ctx, spec)
	if err != nil {
		return "", err
	}
	if match != nil {
		return aws.ToString(match.JobDefinitionArn), nil
	}
	if len(rejected) > 0 {
		return "", fmt.Errorf("%w: job definition %s %s; it was not registered by `framefleet setup` from this configuration: "+
			"run `framefleet setup` with administrator credentials to register a matching revision, and deregister the other one",
			ErrDefinitionMismatch, spec.Name, strings.Join(rejected, "; "))
	}
	return "", fmt.Errorf("%w: job definition %s has no ACTIVE revision with image %s and this configuration's settings: "+
		"run `framefleet setup` (with administrator credentials) to register it", ErrDefinitionMismatch, spec.Name, spec.Image)
}

// matchingRevision finds the newest ACTIVE revision of spec's definition that
// carries spec's hash tag and whose contents match. rejected describes the
// revisions that carry the tag but differ (someone registered them by hand,
// or with a forged tag); they are never used.
func (e *Engine) matchingRevision(ctx context.Context, spec Spec) (match *types.JobDefinition, rejected []string, err error) {
	want := spec.registerInput()
	hash := specHash(want)
	// Any ACTIVE revision with the same spec will do (e.g. going back to an
	// earlier image), not only the latest: every registration is a new
	// revision, and submissions name the exact one.
	defs, err := e.activeDefinitions(ctx, spec.Name)
	if err != nil {
		return nil, nil, err
	}
	for i := range defs {
		d := &defs[i]
		if d.Tags[SpecHashTag] != hash {
			continue
		}
		if diffs := mismatches(want, d); len(diffs) > 0 {
			e.log.Warn("job definition revision carries framefleet's spec tag but differs from the spec: not using it",
				"arn", aws.ToString(d.JobDefinitionArn), "differences", strings.Join(diffs, "; "))
			rejected = append(rejected, fmt.Sprintf("revision %d carries the spec tag but %s", aws.ToInt32(d.Revision), strings.Join(diffs, ", ")))
			continue
		}
		if match == nil || aws.ToInt32(d.Revision) > aws.ToInt32(match.Revision) {
			match = d
		}
	}
	return match, rejected, nil
}

// activeDefinitions lists every ACTIVE revision of the named definition.
func (e *Engine) activeDefinitions(ctx context.Context, name string) ([]types.JobDefinition, error) {
	var defs []types.JobDefinition
	p := batch.NewDescribeJobDefinitionsPaginator(e.api, &batch.DescribeJobDefinitionsInput{
		JobDefinitionName: aws.String(name),
		Status:            aws.String("ACTIVE"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing job definition %s: %w", name, err)
		}
		defs = append(defs, page.JobDefinitions...)
	}
	return defs, nil
}

// latestDefinition is the highest ACTIVE revision, which SubmitJob uses for a bare name.
func (e *Engine) latestDefinition(ctx context.Context, name string) (*types.JobDefinition, error) {
	defs, err := e.activeDefinitions(ctx, name)
	if err != nil {
		return nil, err
	}
	var latest *types.JobDefinition
	for i := range defs {
		if d := &defs[i]; latest == nil || aws.ToInt32(d.Revision) > aws.ToInt32(latest.Revision) {
			latest = d
		}
	}
	return latest, nil
}

// definition returns the job definition to submit with: the revision
// matching the configured spec (looked up once per Engine, never
// registered), or the named existing one.
func (e *Engine) definition(ctx context.Context) (string, error) {
	spec := e.opts.Definition
	if !spec.Registers() {
		return spec.Name, nil
	}
	e.mu.Lock()
	arn := e.def
	e.mu.Unlock()
	if arn != "" {
		return arn, nil
	}
	arn, err := e.JobDefinition(ctx, spec)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.def = arn
	e.mu.Unlock()
	return arn, nil
}

// retryOverride is the retryStrategy the render submission of a job asking
// for a different number of attempts carries (nil keeps the definition's).
// A retryStrategy sent with SubmitJob replaces the definition's, rules
// included, so it carries the same rules with the other count.
func (e *Engine) retryOverride(attempts int) (*types.RetryStrategy, error) {
	spec := e.opts.Definition
	if attempts == 0 {
		return nil, nil
	}
	if !spec.Registers() {
		return nil, fmt.Errorf("job asks for %d attempts but the existing job definition %s is used as is: set attempts in the definition instead", attempts, spec.Name)
	}
	if attempts == spec.withDefaults().Attempts {
		return nil, nil
	}
	return &types.RetryStrategy{Attempts: aws.Int32(int32(attempts)), EvaluateOnExit: RetryRules()}, nil
}

// Submit submits the render (an array job, or a plain job for one chunk) and
// the stitch job depending on it.
func (e *Engine) Submit(ctx context.Context, job pipeline.Job) (pipeline.Handle, error) {
	if err := checkJob(job); err != nil {
		return pipeline.Handle{}, err
	}
	if err := e.checkQueueOnce(ctx); err != nil {
		return pipeline.Handle{}, err
	}
	def, err := e.definition(ctx)
	if err != nil {
		return pipeline.Handle{}, err
	}
	retry, err := e.retryOverride(job.Attempts)
	if err != nil {
		return pipeline.Handle{}, err
	}
	env := []types.KeyValuePair{
		{Name: aws.String(StoreEnv), Value: aws.String(job.StoreURI)},
		{Name: aws.String(RunIDEnv), Value: aws.String(job.RunID)},
	}
	for _, k := range slices.Sorted(maps.Keys(job.Env)) {
		if k == StoreEnv || k == RunIDEnv {
			continue
		}
		env = append(env, types.KeyValuePair{Name: aws.String(k), Value: aws.String(job.Env[k])})
	}
	// The scope tag is what the stack's requester roles require on tagging
	// and check before stopping a job: each scope stops only its own.
	scope := store.TrustedScope
	if _, s, err := store.SplitScope(job.StoreURI); err == nil {
		scope = s
	}
	tags := func(stage string) map[string]string {
		t := map[string]string{ManagedTag: "true", RunTag: TagValue(job.RunID), StageTag: stage, ScopeTag: scope}
		if job.Scene != "" {
			t[SceneTag] = TagValue(job.Scene)
		}
		return t
	}

	render := &batch.SubmitJobInput{
		JobName:            aws.String(jobName(job.RunID, "render")),
		JobQueue:           aws.String(e.opts.Queue),
		JobDefinition:      aws.String(def),
		ContainerOverrides: &types.ContainerOverrides{Environment: env},
		Tags:               tags("render"),
	}
	// Only the render carries a different attempt count: the stitch keeps the
	// definition's.
	render.RetryStrategy = retry
	if job.Chunks > 1 {
		render.ArrayProperties = &types.ArrayProperties{Size: aws.Int32(int32(job.Chunks))}
	}
	// The attempt timeout bounds each render attempt only: the definition
	// carries none, so the stitch (one job over every frame) is not held to a
	// chunk's budget.
	if job.AttemptTimeout > 0 {
		render.Timeout = &types.JobTimeout{AttemptDurationSeconds: aws.Int32(int32(math.Ceil(job.AttemptTimeout.Seconds())))}
	}
	renderID, err := e.submit(ctx, render)
	if err != nil {
		return pipeline.Handle{}, fmt.Errorf("submitting render job for run %s: %w", job.RunID, err)
	}
	h := pipeline.Handle{Engine: EngineName, RenderID: renderID}

	stitch := &batch.SubmitJobInput{
		JobName:       aws.String(jobName(job.RunID, "stitch")),
		JobQueue:      aws.String(e.opts.Queue),
		JobDefinition: aws.String(def),
		// A plain dependency on the array parent waits for every child.
		DependsOn:          []types.JobDependency{{JobId: aws.String(h.RenderID)}},
		ContainerOverrides: &types.ContainerOverrides{Command: []string{"worker", "stitch"}, Environment: env},
		Tags:               tags("stitch"),
	}
	stitchID, err := e.submit(ctx, stitch)
	if err != nil {
		// Without a stitch job the render would run (and cost) for nothing.
		reason := "framefleet: stitch submission failed"
		_, terr := e.api.TerminateJob(context.WithoutCancel(ctx), &batch.TerminateJobInput{JobId: aws.String(h.RenderID), Reason: aws.String(reason)})
		if terr != nil {
			terr = fmt.Errorf("terminating render job %s: %w", h.RenderID, terr)
		}
		return pipeline.Handle{}, errors.Join(fmt.Errorf("submitting stitch job for run %s: %w", job.RunID, err), terr)
	}
	h.StitchID = stitchID
	e.log.Info("submitted", "run", job.RunID, "render", h.RenderID, "stitch", h.StitchID, "chunks", job.Chunks)
	return h, nil
}

// submit submits in and returns the job's ID. A throttled call is retried by
// the SDK (Batch refused it); after any other failure that may have taken
// effect (5xx, timeout, reset connection) the job is looked up by its name,
// with backoff over several seconds (a new job takes a while to show in
// ListJobs), and adopted if it exists, else submitted again, at most
// submitTries times. A job submitted again may meet the lost one later: it
// is looked for once more and terminated. A submission cancelled by ctx
// while its request may have reached Batch is looked up all the same (on a
// context of its own), and what it created is terminated: nobody would watch
// it, and it would run and cost.
func (e *Engine) submit(ctx context.Context, in *batch.SubmitJobInput) (string, error) {
	name := aws.ToString(in.JobName)
	var lastErr error
	lost := false // an earlier try may have created a job
	for try := 1; try <= submitTries; try++ {
		out, err := e.api.SubmitJob(ctx, in, retryThrottlesOnly)
		if err == nil {
			id := aws.ToString(out.JobId)
			if lost {
				e.terminateDuplicates(ctx, name, id)
			}
			return id, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			if lost || mayHaveTakenEffect(err) {
				e.abandon(ctx, name)
			}
			return "", err
		}
		if !mayHaveTakenEffect(err) {
			return "", err
		}
		lost = true
		e.log.Warn("job submission failed; checking whether Batch created the job", "job", name, "try", try, "err", err)
		id, err := e.lookUpSubmitted(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				e.abandon(ctx, name)
			}
			return "", fmt.Errorf("%w; then %w", lastErr, err)
		}
		if id != "" {
			e.log.Info("the failed submission had created the job: using it", "job", name, "id", id)
			return id, nil
		}
	}
	return "", fmt.Errorf("%d submissions failed, none created the job: %w", submitTries, lastErr)
}

// detachedBudget bounds the look-ups and terminations made on behalf of a
// cancelled submission, on a context of their own.
const detachedBudget = 30 * time.Second

// abandon terminates whatever live job named name a cancelled submission
// created, looking it up with backoff as lookUpSubmitted does.
func (e *Engine) abandon(ctx context.Context, name string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedBudget)
	defer cancel()
	for n := 1; n <= lookupTries; n++ {
		if sleep(dctx, e.backoff(n)) != nil {
			break
		}
		live, err := e.liveJobs(dctx, name)
		if err != nil {
			e.log.Warn("cannot look up the job of a cancelled submission", "job", name, "err", err)
			return
		}
		if len(live) > 0 {
			e.terminate(dctx, live, "framefleet: its submission was cancelled")
			return
		}
	}
	e.log.Info("a cancelled submission created no job that showed", "job", name)
}

// terminateDuplicates looks, after a submission that followed a possibly
// created one, for other live jobs of the same name and terminates them:
// the lost job showed too late to be adopted, and would run unwatched.
func (e *Engine) terminateDuplicates(ctx context.Context, name, keep string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedBudget)
	defer cancel()
	for n := 1; n <= lookupTries; n++ {
		if sleep(dctx, e.backoff(n)) != nil {
			return
		}
		live, err := e.liveJobs(dctx, name)
		if err != nil {
			e.log.Warn("cannot look for a duplicate job", "job", name, "err", err)
			return
		}
		others := slices.DeleteFunc(live, func(id string) bool { return id == keep })
		if len(others) > 0 {
			e.log.Warn("a lost submission created a duplicate job: terminating it", "job", name, "keep", keep, "duplicates", others)
			e.terminate(dctx, others, "framefleet: duplicate of job "+keep+" (a lost submission)")
			return
		}
	}
}

func (e *Engine) terminate(ctx context.Context, ids []string, reason string) {
	for _, id := range ids {
		if _, err := e.api.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(id), Reason: aws.String(reason)}); err != nil {
			e.log.Error("cannot terminate job", "id", id, "err", err)
		}
	}
}

// lookupTries is how many times a possibly created job is looked up before
// it is submitted again: after 0.5, 1, 2 and 4 s (7.5 s in all, less with a
// lower MaxBackoff).
const lookupTries = 4

// lookUpSubmitted looks for the job a failed SubmitJob may have created,
// with backoff, and returns its ID or "" when it never showed.
func (e *Engine) lookUpSubmitted(ctx context.Context, name string) (string, error) {
	for n := 1; n <= lookupTries; n++ {
		if err := sleep(ctx, e.backoff(n)); err != nil {
			return "", err
		}
		id, err := e.findJob(ctx, name)
		if err != nil || id != "" {
			return id, err
		}
	}
	return "", nil
}

// retryThrottlesOnly is the per-call option that lets the SDK retry a
// SubmitJob only when Batch throttled it (and so did not run it).
func retryThrottlesOnly(o *batch.Options) {
	switch r := o.Retryer.(type) {
	case nil:
	case aws.RetryerV2:
		o.Retryer = throttleRetryer{r}
	default:
		o.Retryer = throttleRetryer{retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = r.MaxAttempts()
		})}
	}
}

// throttleRetryer retries only throttling errors (TooManyRequestsException, …).
type throttleRetryer struct{ aws.RetryerV2 }

func (throttleRetryer) IsErrorRetryable(err error) bool {
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}

// mayHaveTakenEffect reports whether a failed call may still have been
// carried out: any failure but a client error (Batch refused the request,
// throttling included). A call cancelled by its context may have reached
// Batch too.
func mayHaveTakenEffect(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultClient {
		return false
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return false
	}
	return true
}

// findJob returns the ID of the job named name in the engine's queue, or ""
// when there is none. Names are unique per run ("ff-<run>-render"). Should
// two exist, the oldest is the one the first call created.
func (e *Engine) findJob(ctx context.Context, name string) (string, error) {
	jobs, err := e.jobsNamed(ctx, name)
	if err != nil || len(jobs) == 0 {
		return "", err
	}
	return aws.ToString(jobs[0].JobId), nil
}

// liveJobs are the IDs of the jobs named name that have not finished.
func (e *Engine) liveJobs(ctx context.Context, name string) ([]string, error) {
	jobs, err := e.jobsNamed(ctx, name)
	var out []string
	for _, j := range jobs {
		if j.Status != types.JobStatusSucceeded && j.Status != types.JobStatusFailed {
			out = append(out, aws.ToString(j.JobId))
		}
	}
	return out, err
}

// jobsNamed lists the jobs named exactly name in the engine's queue, oldest first.
func (e *Engine) jobsNamed(ctx context.Context, name string) ([]types.JobSummary, error) {
	p := batch.NewListJobsPaginator(e.api, &batch.ListJobsInput{
		JobQueue:   aws.String(e.opts.Queue),
		Filters:    []types.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{name}}},
		MaxResults: aws.Int32(listFilteredMax),
	})
	var out []types.JobSummary
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("looking up job %s in queue %s: %w", name, e.opts.Queue, err)
		}
		for _, s := range page.JobSummaryList {
			if aws.ToString(s.JobName) == name { // the filter ignores case; the name is ours exactly
				out = append(out, s)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b types.JobSummary) int {
		return cmp.Compare(aws.ToInt64(a.CreatedAt), aws.ToInt64(b.CreatedAt))
	})
	return out, nil
}

// backoff is the wait before the look-up that follows failed try n (1-based).
func (e *Engine) backoff(n int) time.Duration {
	d := 500 * time.Millisecond << (n - 1)
	return min(d, e.maxBackoff)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func checkJob(job pipeline.Job) error {
	var errs []error
	if job.RunID == "" {
		errs = append(errs, errors.New("job has no run ID"))
	}
	if job.StoreURI == "" {
		errs = append(errs, errors.New("job has no store: workers need an s3:// store to read the plan from"))
	}
	if job.Chunks < 1 {
		errs = append(errs, fmt.Errorf("job has %d chunks: a plan has at least one", job.Chunks))
	}
	if job.Chunks > plan.MaxArraySize {
		errs = append(errs, fmt.Errorf("job has %d chunks, more than the %d children an AWS Batch array job allows: use bigger chunks", job.Chunks, plan.MaxArraySize))
	}
	if job.Attempts != 0 { // 0: the job definition's
		if err := pipeline.CheckAttempts(job.Attempts); err != nil {
			errs = append(errs, fmt.Errorf("job: %w", err))
		}
	}
	if err := pipeline.CheckAttemptTimeout(job.AttemptTimeout, EngineName); err != nil {
		errs = append(errs, fmt.Errorf("job: %w", err))
	}
	for k := range job.Env {
		if strings.HasPrefix(k, "AWS_BATCH") {
			errs = append(errs, fmt.Errorf("environment variable %s uses the AWS_BATCH prefix, which Batch reserves: rename it", k))
		}
	}
	return errors.Join(errs...)
}

// TagValue makes s a tag value every AWS service accepts: at most 256
// characters of ASCII letters, digits, spaces and + - = . _ : / @ (Batch
// passes job tags on to ECS and EC2, and some services refuse the Unicode
// letters others allow). Other characters become '_'.
func TagValue(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == 256 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" +-=._:/@", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		n++
	}
	return b.String()
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

// Status reads both jobs with one DescribeJobs call. Child details are
// fetched only when the number of failed children changed, and once more
// (for timings) when the array is finished.
func (e *Engine) Status(ctx context.Context, h pipeline.Handle) (pipeline.Status, error) {
	if err := checkHandle(h); err != nil {
		return pipeline.Status{}, err
	}
	ids := []string{h.RenderID}
	if h.StitchID != "" {
		ids = append(ids, h.StitchID)
	}
	out, err := e.api.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: ids})
	if err != nil {
		return pipeline.Status{}, fmt.Errorf("describing jobs %s: %w", strings.Join(ids, ", "), err)
	}
	var render, stitch *types.JobDetail
	for i := range out.Jobs {
		switch aws.ToString(out.Jobs[i].JobId) {
		case h.RenderID:
			render = &out.Jobs[i]
		case h.StitchID:
			stitch = &out.Jobs[i]
		}
	}
	if render == nil {
		return pipeline.Status{}, fmt.Errorf("render job %s: %w (Batch forgets jobs about a week after they end)", h.RenderID, ErrJobNotFound)
	}
	if stitch == nil && h.StitchID != "" {
		return pipeline.Status{}, fmt.Errorf("stitch job %s: %w (Batch forgets jobs about a week after they end)", h.StitchID, ErrJobNotFound)
	}

	st := pipeline.Status{Render: pipeline.JobState(render.Status), Children: map[pipeline.JobState]int{}}
	isArray := render.ArrayProperties != nil && render.ArrayProperties.Index == nil && aws.ToInt32(render.ArrayProperties.Size) > 0
	if isArray {
		for k, n := range render.ArrayProperties.StatusSummary {
			st.Children[pipeline.JobState(k)] = int(n)
		}
	} else {
		st.Children[st.Render] = 1
	}

	w := e.watchFor(h.RenderID)
	if isArray {
		if failed := st.Children[pipeline.StateFailed]; failed != w.failedSeen {
			failures, err := e.childFailures(ctx, h.RenderID)
			if err != nil {
				return pipeline.Status{}, err
			}
			e.mu.Lock()
			w.failedSeen, w.failures = failed, failures
			e.mu.Unlock()
		}
		if st.Render.Terminal() && !w.final {
			attempts, err := e.childAttempts(ctx, h.RenderID)
			if err != nil {
				return pipeline.Status{}, err
			}
			e.mu.Lock()
			w.attempts, w.final = attempts, true
			e.mu.Unlock()
		}
		e.mu.Lock()
		st.Failures = slices.Clone(w.failures)
		st.Attempts = slices.Clone(w.attempts)
		e.mu.Unlock()
	} else {
		if st.Render == pipeline.StateFailed {
			st.Failures = append(st.Failures, failureOf(render, 0))
		}
		st.Attempts = append(st.Attempts, attemptsOf(render, 0, e.vcpus(render))...)
	}

	if stitch != nil {
		st.Stitch = pipeline.JobState(stitch.Status)
		if st.Stitch == pipeline.StateFailed {
			st.StitchReason = aws.ToString(stitch.StatusReason)
			if len(stitch.Attempts) > 0 { // it ran and failed itself, not because the render did
				st.Failures = append(st.Failures, failureOf(stitch, -1))
			}
		}
		st.Attempts = append(st.Attempts, attemptsOf(stitch, -1, e.vcpus(stitch))...)
	}
	if st.Render.Terminal() && (h.StitchID == "" || st.Stitch.Terminal()) {
		// Nothing changes any more: forget the run, so a long-lived process
		// (the bot) does not accumulate every run it ever watched.
		e.mu.Lock()
		delete(e.watches, h.RenderID)
		e.mu.Unlock()
	}
	return st, nil
}

// checkHandle refuses handles of other engines (a local run's IDs mean nothing to Batch).
func checkHandle(h pipeline.Handle) error {
	if h.Engine != "" && h.Engine != EngineName {
		return fmt.Errorf("run was submitted to the %s engine, not to AWS Batch: watch it with engine %s", h.Engine, h.Engine)
	}
	if h.RenderID == "" {
		return errors.New("handle has no render job ID")
	}
	return nil
}

func (e *Engine) watchFor(renderID string) *watch {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.watches[renderID]
	if !ok {
		w = &watch{}
		e.watches[renderID] = w
	}
	return w
}

// children lists the IDs of the array's children in the given state.
func (e *Engine) children(ctx context.Context, arrayID string, state types.JobStatus) ([]string, error) {
	var ids []string
	p := batch.NewListJobsPaginator(e.api, &batch.ListJobsInput{ArrayJobId: aws.String(arrayID), JobStatus: state, MaxResults: aws.Int32(listByStatusMax)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s children of %s: %w", state, arrayID, err)
		}
		for _, s := range page.JobSummaryList {
			ids = append(ids, aws.ToString(s.JobId))
		}
	}
	return ids, nil
}

// describe returns the details of ids, in calls of at most 100.
func (e *Engine) describe(ctx context.Context, ids []string) ([]types.JobDetail, error) {
	var all []types.JobDetail
	for batchIDs := range slices.Chunk(ids, describeBatch) {
		out, err := e.api.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: batchIDs})
		if err != nil {
			return nil, fmt.Errorf("describing %d child jobs: %w", len(batchIDs), err)
		}
		all = append(all, out.Jobs...)
	}
	return all, nil
}

func (e *Engine) childFailures(ctx context.Context, arrayID string) ([]pipeline.ChildFailure, error) {
	ids, err := e.children(ctx, arrayID, types.JobStatusFailed)
	if err != nil {
		return nil, err
	}
	details, err := e.describe(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []pipeline.ChildFailure
	for i := range details {
		out = append(out, failureOf(&details[i], childIndex(&details[i])))
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out, nil
}

func (e *Engine) childAttempts(ctx context.Context, arrayID string) ([]pipeline.Attempt, error) {
	var ids []string
	for _, state := range []types.JobStatus{types.JobStatusSucceeded, types.JobStatusFailed} {
		some, err := e.children(ctx, arrayID, state)
		if err != nil {
			return nil, err
		}
		ids = append(ids, some...)
	}
	details, err := e.describe(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []pipeline.Attempt
	for i := range details {
		out = append(out, attemptsOf(&details[i], childIndex(&details[i]), e.vcpus(&details[i]))...)
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Index != out[b].Index {
			return out[a].Index < out[b].Index
		}
		return out[a].Number < out[b].Number
	})
	return out, nil
}

// childIndex reads a child's array index (from its details, or its "<parent>:<i>" ID).
func childIndex(d *types.JobDetail) int {
	if d.ArrayProperties != nil && d.ArrayProperties.Index != nil {
		return int(*d.ArrayProperties.Index)
	}
	id := aws.ToString(d.JobId)
	if i := strings.LastIndexByte(id, ':'); i >= 0 {
		if n, err := strconv.Atoi(id[i+1:]); err == nil {
			return n
		}
	}
	return 0
}

// vcpus is the job's vCPU reservation, for cost; the definition's spec when
// Batch does not report it.
func (e *Engine) vcpus(d *types.JobDetail) float64 {
	if d.Container != nil {
		for _, r := range d.Container.ResourceRequirements {
			if r.Type == types.ResourceTypeVcpu {
				if v, err := strconv.ParseFloat(aws.ToString(r.Value), 64); err == nil {
					return v
				}
			}
		}
		if v := aws.ToInt32(d.Container.Vcpus); v > 0 {
			return float64(v)
		}
	}
	if e.opts.Definition.Registers() {
		return e.opts.Definition.withDefaults().VCPUs
	}
	return 0
}

func failureOf(d *types.JobDetail, index int) pipeline.ChildFailure {
	f := pipeline.ChildFailure{Index: index, Attempts: len(d.Attempts), Reason: aws.ToString(d.StatusReason)}
	var containerReason string
	if n := len(d.Attempts); n > 0 {
		last := d.Attempts[n-1]
		if r := aws.ToString(last.StatusReason); r != "" {
			f.Reason = r
		}
		if last.Container != nil {
			f.ExitCode = exitCode(last.Container.ExitCode)
			f.LogStream = aws.ToString(last.Container.LogStreamName)
			containerReason = aws.ToString(last.Container.Reason)
		}
	}
	if d.Container != nil {
		if f.ExitCode == nil {
			f.ExitCode = exitCode(d.Container.ExitCode)
		}
		if f.LogStream == "" {
			f.LogStream = aws.ToString(d.Container.LogStreamName)
		}
		if containerReason == "" {
			containerReason = aws.ToString(d.Container.Reason)
		}
	}
	if containerReason != "" && !strings.Contains(f.Reason, containerReason) {
		f.Reason = strings.TrimPrefix(f.Reason+": "+containerReason, ": ")
	}
	return f
}

func attemptsOf(d *types.JobDetail, index int, vcpus float64) []pipeline.Attempt {
	var out []pipeline.Attempt
	for i, a := range d.Attempts {
		if a.StartedAt == nil || a.StoppedAt == nil {
			continue
		}
		at := pipeline.Attempt{
			Index:     index,
			Number:    i + 1,
			StartedAt: time.UnixMilli(*a.StartedAt).UTC(),
			StoppedAt: time.UnixMilli(*a.StoppedAt).UTC(),
			VCPUs:     vcpus,
			Reason:    aws.ToString(a.StatusReason),
		}
		if a.Container != nil {
			at.ExitCode = exitCode(a.Container.ExitCode)
			if r := aws.ToString(a.Container.Reason); r != "" {
				at.Reason = strings.TrimPrefix(at.Reason+": "+r, ": ")
			}
		}
		out = append(out, at)
	}
	return out
}

func exitCode(c *int32) *int {
	if c == nil {
		return nil
	}
	v := int(*c)
	return &v
}

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

// BlenderVersion is the Blender the image carries: the spec's, or the
// FRAMEFLEET_BLENDER_VERSION of the existing job definition.
func (e *Engine) BlenderVersion(ctx context.Context) (string, error) {
	spec := e.opts.Definition
	if spec.BlenderVersion != "" {
		return spec.BlenderVersion, nil
	}
	ref := spec.withDefaults().Name
	var def *types.JobDefinition
	if strings.Contains(ref, ":") { // name:revision or ARN
		out, err := e.api.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitions: []string{ref}})
		if err != nil {
			return "", fmt.Errorf("describing job definition %s: %w", ref, err)
		}
		if len(out.JobDefinitions) > 0 {
			def = &out.JobDefinitions[0]
		}
	} else {
		d, err := e.latestDefinition(ctx, ref)
		if err != nil {
			return "", err
		}
		def = d
	}
	if def == nil {
		return "", fmt.Errorf("job definition %s not found: run `framefleet setup` to register it", ref)
	}
	if def.ContainerProperties != nil {
		for _, kv := range def.ContainerProperties.Environment {
			if aws.ToString(kv.Name) == BlenderVersionEnv && aws.ToString(kv.Value) != "" {
				return aws.ToString(kv.Value), nil
			}
		}
	}
	return "", fmt.Errorf("job definition %s does not say which Blender its image carries: set the Blender version in the configuration (it is stored as %s)", aws.ToString(def.JobDefinitionArn), BlenderVersionEnv)
}

// Queue describes the job queue jobs are submitted to.
type Queue struct {
	Name, ARN, State, Status, StatusReason string
	// SchedulingPolicyARN is the queue's fair-share policy, if any.
	SchedulingPolicyARN string
	// ComputeTypes are the types of its compute environments (EC2, SPOT,
	// FARGATE, FARGATE_SPOT), in queue order.
	ComputeTypes []string
}

// ErrQueueNotReady is returned (wrapped) when the job queue is missing,
// disabled or invalid.
var ErrQueueNotReady = errors.New("job queue not ready")

// ErrQueueUnsuitable is returned (wrapped) when the queue cannot run
// framefleet's jobs as configured: it needs share identifiers, or its compute
// environments are of the other platform than the job definition's.
var ErrQueueUnsuitable = errors.New("job queue unsuitable")

// CheckQueue describes the engine's job queue and its compute environments
// and fails unless it is ENABLED and VALID (jobs would otherwise wait in it
// forever) and can run the job definition: no scheduling policy (its jobs
// would all need a share identifier, which framefleet does not send) and
// compute environments of the definition's platform.
func (e *Engine) CheckQueue(ctx context.Context) (Queue, error) {
	out, err := e.api.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{e.opts.Queue}})
	if err != nil {
		return Queue{}, fmt.Errorf("describing job queue %s: %w", e.opts.Queue, err)
	}
	if len(out.JobQueues) == 0 {
		return Queue{}, fmt.Errorf("job queue %s not found in this region (%w): create it (deploy/ has a CloudFormation template) or fix batch.job_queue", e.opts.Queue, ErrQueueNotReady)
	}
	d := out.JobQueues[0]
	q := Queue{Name: aws.ToString(d.JobQueueName), ARN: aws.ToString(d.JobQueueArn), State: string(d.State), Status: string(d.Status),
		StatusReason: aws.ToString(d.StatusReason), SchedulingPolicyARN: aws.ToString(d.SchedulingPolicyArn)}
	if d.State != types.JQStateEnabled || d.Status != types.JQStatusValid {
		return q, fmt.Errorf("job queue %s is %s and %s, %q (%w): enable it and fix its compute environments", q.Name, q.State, q.Status, q.StatusReason, ErrQueueNotReady)
	}
	if q.SchedulingPolicyARN != "" {
		return q, fmt.Errorf("job queue %s has the fair-share scheduling policy %s, so every job submitted to it needs a share identifier, which framefleet does not send (%w): "+
			"use a queue without a scheduling policy (the deploy/ template's queue has none)", q.Name, q.SchedulingPolicyARN, ErrQueueUnsuitable)
	}
	order := slices.Clone(d.ComputeEnvironmentOrder)
	slices.SortFunc(order, func(a, b types.ComputeEnvironmentOrder) int {
		return int(aws.ToInt32(a.Order)) - int(aws.ToInt32(b.Order))
	})
	var ces []string
	for _, o := range order {
		ces = append(ces, aws.ToString(o.ComputeEnvironment))
	}
	if len(ces) == 0 {
		return q, nil
	}
	ceOut, err := e.api.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: ces})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "AccessDenied") {
			return q, fmt.Errorf("describing the compute environments of job queue %s: %w: the credentials need batch:DescribeComputeEnvironments (update the deploy/ stack: its render role has it)", q.Name, err)
		}
		return q, fmt.Errorf("describing the compute environments of job queue %s: %w", q.Name, err)
	}
	typeOf := map[string]string{}
	for _, ce := range ceOut.ComputeEnvironments {
		t := "EC2" // an unmanaged environment runs on instances the owner provides
		if ce.ComputeResources != nil {
			t = string(ce.ComputeResources.Type)
		}
		typeOf[aws.ToString(ce.ComputeEnvironmentArn)] = t
		typeOf[aws.ToString(ce.ComputeEnvironmentName)] = t
	}
	for _, ce := range ces {
		if t, ok := typeOf[ce]; ok {
			q.ComputeTypes = append(q.ComputeTypes, t)
		}
	}
	if spec := e.opts.Definition; spec.Registers() && len(q.ComputeTypes) > 0 {
		want := spec.withDefaults().Platform
		fargateQueue := strings.HasPrefix(q.ComputeTypes[0], "FARGATE")
		switch {
		case want == PlatformFargate && !fargateQueue:
			return q, fmt.Errorf("the job definition is for Fargate but job queue %s has only EC2 compute environments (%s) (%w): "+
				"set batch.platform: EC2, or use a queue of Fargate compute environments", q.Name, strings.Join(q.ComputeTypes, ", "), ErrQueueUnsuitable)
		case want == PlatformEC2 && fargateQueue:
			return q, fmt.Errorf("the job definition is for EC2 but job queue %s has only Fargate compute environments (%s) (%w): "+
				"set batch.platform: FARGATE (with an execution role), or use a queue of EC2 or Spot compute environments", q.Name, strings.Join(q.ComputeTypes, ", "), ErrQueueUnsuitable)
		}
	}
	return q, nil
}

// checkQueueOnce runs CheckQueue before the engine's first submission: a
// queue that can never run the jobs fails the run at once instead of
// leaving it RUNNABLE (or refused) after the upload.
func (e *Engine) checkQueueOnce(ctx context.Context) error {
	e.mu.Lock()
	ok := e.queueOK
	e.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := e.CheckQueue(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.queueOK = true
	e.mu.Unlock()
	return nil
}
