package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/smithy-go"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// submitTries bounds the submissions of one job after failures that may have
// taken effect (each followed by a look-up by name).
const submitTries = 5

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
