package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/framefleet/framefleet/pipeline"
)

// describeBatch is DescribeJobs' limit on job IDs per call.
const describeBatch = 100

// ErrJobNotFound is returned (wrapped) when Batch no longer knows a job of a handle.
var ErrJobNotFound = fmt.Errorf("job not found on AWS Batch: %w", pipeline.ErrUnknownJob)

// watch remembers, per render job, what earlier polls learnt, so that child
// details are fetched only when the failed count changes or once at the end.
type watch struct {
	failedSeen int
	failures   []pipeline.ChildFailure
	attempts   []pipeline.Attempt // children's attempts, once the array is terminal
	final      bool
}

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
