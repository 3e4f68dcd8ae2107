package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/smithy-go"
)

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
