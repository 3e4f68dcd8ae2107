package batchtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/smithy-go"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/sdkhttp"
)

// client is the real SDK client pointed at srv, without SDK retries so
// faults are visible.
func client(srv *batchtest.Server) *batch.Client {
	return batch.New(batch.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		BaseEndpoint: aws.String(srv.URL),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   sdkhttp.Client(nil),
	})
}

func register(t *testing.T, c *batch.Client, rs *types.RetryStrategy) string {
	t.Helper()
	out, err := c.RegisterJobDefinition(context.Background(), &batch.RegisterJobDefinitionInput{
		JobDefinitionName: aws.String("def"),
		Type:              types.JobDefinitionTypeContainer,
		ContainerProperties: &types.ContainerProperties{
			Image:       aws.String("img"),
			Command:     []string{"worker", "render"},
			Environment: []types.KeyValuePair{{Name: aws.String("A"), Value: aws.String("def")}, {Name: aws.String("B"), Value: aws.String("def")}},
			ResourceRequirements: []types.ResourceRequirement{
				{Type: types.ResourceTypeVcpu, Value: aws.String("1")},
				{Type: types.ResourceTypeMemory, Value: aws.String("2048")},
			},
		},
		RetryStrategy: rs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.JobDefinitionArn)
}

func submit(t *testing.T, c *batch.Client, in *batch.SubmitJobInput) string {
	t.Helper()
	if in.JobQueue == nil {
		in.JobQueue = aws.String("q")
	}
	if in.JobDefinition == nil {
		in.JobDefinition = aws.String("def")
	}
	out, err := c.SubmitJob(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.JobId)
}

func waitTerminal(t *testing.T, c *batch.Client, id string) types.JobDetail {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.DescribeJobs(context.Background(), &batch.DescribeJobsInput{Jobs: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Jobs) != 1 {
			t.Fatalf("DescribeJobs(%s) returned %d jobs", id, len(out.Jobs))
		}
		if s := out.Jobs[0].Status; s == types.JobStatusSucceeded || s == types.JobStatusFailed {
			return out.Jobs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s stuck in %s", id, out.Jobs[0].Status)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestArraySizeLimits(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	c := client(srv)
	register(t, c, nil)
	for _, tc := range []struct {
		size int32
		ok   bool
	}{{1, false}, {2, true}, {10000, true}, {10001, false}, {0, false}} {
		_, err := c.SubmitJob(context.Background(), &batch.SubmitJobInput{
			JobName: aws.String("a"), JobQueue: aws.String("q"), JobDefinition: aws.String("def"),
			ArrayProperties: &types.ArrayProperties{Size: aws.Int32(tc.size)},
		})
		var ce *types.ClientException
		switch {
		case tc.ok && err != nil:
			t.Errorf("size %d: %v", tc.size, err)
		case !tc.ok && !errors.As(err, &ce):
			t.Errorf("size %d: error %v, want ClientException", tc.size, err)
		}
	}
}

func TestSubmitValidation(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Queues: []string{"q"}})
	c := client(srv)
	register(t, c, nil)
	tests := []struct {
		name string
		in   batch.SubmitJobInput
	}{
		{"bad name", batch.SubmitJobInput{JobName: aws.String("ff run")}},
		{"long name", batch.SubmitJobInput{JobName: aws.String(strings.Repeat("a", 129))}},
		{"unknown queue", batch.SubmitJobInput{JobName: aws.String("a"), JobQueue: aws.String("nope")}},
		{"unknown definition", batch.SubmitJobInput{JobName: aws.String("a"), JobDefinition: aws.String("nope")}},
		{"unknown dependency", batch.SubmitJobInput{JobName: aws.String("a"), DependsOn: []types.JobDependency{{JobId: aws.String("nope")}}}},
		{"reserved env", batch.SubmitJobInput{JobName: aws.String("a"), ContainerOverrides: &types.ContainerOverrides{
			Environment: []types.KeyValuePair{{Name: aws.String("AWS_BATCH_JOB_ID"), Value: aws.String("x")}}}}},
		{"short timeout", batch.SubmitJobInput{JobName: aws.String("a"), Timeout: &types.JobTimeout{AttemptDurationSeconds: aws.Int32(10)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.JobQueue == nil {
				in.JobQueue = aws.String("q")
			}
			if in.JobDefinition == nil {
				in.JobDefinition = aws.String("def")
			}
			_, err := c.SubmitJob(context.Background(), &in)
			var ce *types.ClientException
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want ClientException", err)
			}
		})
	}
}

func TestArrayJobAndDependency(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Executor: func(_ context.Context, j batchtest.ExecJob) (int, error) {
		if j.Env["FAIL_INDEX"] != "" && j.Env["FAIL_INDEX"] == j.Env["AWS_BATCH_JOB_ARRAY_INDEX"] {
			return 3, nil
		}
		return 0, nil
	}})
	c := client(srv)
	register(t, c, &types.RetryStrategy{Attempts: aws.Int32(2), EvaluateOnExit: []types.EvaluateOnExit{{OnReason: aws.String("*"), Action: types.RetryActionExit}}})

	for _, tc := range []struct {
		name      string
		failIndex string
		parent    types.JobStatus
		dependent types.JobStatus
	}{
		{"all children succeed", "", types.JobStatusSucceeded, types.JobStatusSucceeded},
		{"one child fails", "2", types.JobStatusFailed, types.JobStatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []types.KeyValuePair{{Name: aws.String("FAIL_INDEX"), Value: aws.String(tc.failIndex)}}
			arr := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("arr"), ArrayProperties: &types.ArrayProperties{Size: aws.Int32(4)},
				ContainerOverrides: &types.ContainerOverrides{Environment: env}})
			dep := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("dep"), DependsOn: []types.JobDependency{{JobId: aws.String(arr)}}})
			d := waitTerminal(t, c, dep)
			p := waitTerminal(t, c, arr)
			if p.Status != tc.parent || d.Status != tc.dependent {
				t.Fatalf("parent %s dependent %s, want %s %s", p.Status, d.Status, tc.parent, tc.dependent)
			}
			sum := p.ArrayProperties.StatusSummary
			if sum["SUCCEEDED"]+sum["FAILED"] != 4 || aws.ToInt32(p.ArrayProperties.Size) != 4 {
				t.Errorf("statusSummary %v size %d", sum, aws.ToInt32(p.ArrayProperties.Size))
			}
			if tc.dependent == types.JobStatusFailed {
				if len(d.Attempts) != 0 || aws.ToString(d.StatusReason) != "Dependent Job failed" {
					t.Errorf("dependent ran %d attempts, reason %q", len(d.Attempts), aws.ToString(d.StatusReason))
				}
				child := waitTerminal(t, c, arr+":"+tc.failIndex)
				if len(child.Attempts) != 1 || aws.ToInt32(child.Attempts[0].Container.ExitCode) != 3 {
					t.Errorf("failed child attempts %+v: want one with exit code 3 (EXIT rule)", child.Attempts)
				}
				if aws.ToInt32(child.ArrayProperties.Index) != 2 || child.Attempts[0].Container.LogStreamName == nil {
					t.Errorf("child index %d, log stream %v", aws.ToInt32(child.ArrayProperties.Index), child.Attempts[0].Container.LogStreamName)
				}
				// ListJobs lists failed children when asked for FAILED.
				out, err := c.ListJobs(context.Background(), &batch.ListJobsInput{ArrayJobId: aws.String(arr), JobStatus: types.JobStatusFailed})
				if err != nil || len(out.JobSummaryList) != 1 || aws.ToString(out.JobSummaryList[0].JobId) != arr+":2" {
					t.Errorf("ListJobs FAILED: %v %+v", err, out)
				}
			}
		})
	}
}

func TestEnvironmentMerge(t *testing.T) {
	seen := make(chan batchtest.ExecJob, 10)
	srv := batchtest.Start(t, batchtest.Options{Executor: func(_ context.Context, j batchtest.ExecJob) (int, error) {
		seen <- j
		return 0, nil
	}})
	c := client(srv)
	register(t, c, nil)
	id := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("env"), ArrayProperties: &types.ArrayProperties{Size: aws.Int32(2)},
		ContainerOverrides: &types.ContainerOverrides{Command: []string{"worker", "stitch"},
			Environment: []types.KeyValuePair{{Name: aws.String("B"), Value: aws.String("override")}}}})
	waitTerminal(t, c, id)
	for range 2 {
		j := <-seen
		want := map[string]string{"A": "def", "B": "override", "AWS_BATCH_JOB_ARRAY_SIZE": "2", "AWS_BATCH_JOB_ATTEMPT": "1",
			"AWS_BATCH_JOB_ID": fmt.Sprintf("%s:%d", id, j.ArrayIndex), "AWS_BATCH_JOB_ARRAY_INDEX": fmt.Sprint(j.ArrayIndex)}
		for k, v := range want {
			if j.Env[k] != v {
				t.Errorf("child %d: %s=%q, want %q", j.ArrayIndex, k, j.Env[k], v)
			}
		}
		if strings.Join(j.Command, " ") != "worker stitch" {
			t.Errorf("command %q", j.Command)
		}
	}
}

// TestEvaluateOnExit runs one job per case and counts its attempts.
func TestEvaluateOnExit(t *testing.T) {
	rules := []types.EvaluateOnExit{
		{OnStatusReason: aws.String("Host EC2*"), Action: types.RetryActionRetry},
		{OnExitCode: aws.String("75"), Action: types.RetryActionRetry},
		{OnExitCode: aws.String("4*"), Action: types.RetryActionExit},
		{OnReason: aws.String("CannotStart*"), Action: types.RetryActionRetry},
	}
	tests := []struct {
		name         string
		rules        []types.EvaluateOnExit
		exit         int
		err          error
		reclaim      bool
		wantAttempts int
	}{
		{"exit 0 succeeds once", rules, 0, nil, false, 1},
		{"exit code rule retries", rules, 75, nil, false, 3},
		{"prefix exit rule exits", rules, 42, nil, false, 1},
		{"no matching rule retries", rules, 1, nil, false, 3},
		{"spot reclaim retries", rules, 0, nil, true, 3},
		{"container reason rule", rules, 0, errors.New("image pull"), false, 3},
		{"first match wins", append([]types.EvaluateOnExit{{OnExitCode: aws.String("75"), Action: types.RetryActionExit}}, rules...), 75, nil, false, 1},
		{"catch-all exit", []types.EvaluateOnExit{{OnReason: aws.String("*"), Action: types.RetryActionExit}}, 1, nil, false, 1},
		{"case-insensitive action and pattern", []types.EvaluateOnExit{{OnStatusReason: aws.String("host ec2*"), Action: "exit"}}, 0, nil, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := batchtest.Start(t, batchtest.Options{Executor: func(ctx context.Context, _ batchtest.ExecJob) (int, error) {
				if tc.reclaim {
					<-ctx.Done() // the host dies while the job runs
				}
				return tc.exit, tc.err
			}})
			if tc.reclaim {
				srv.SetReclaim(func(batchtest.ExecJob) bool { return true })
			}
			c := client(srv)
			register(t, c, &types.RetryStrategy{Attempts: aws.Int32(3), EvaluateOnExit: tc.rules})
			id := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("j")})
			d := waitTerminal(t, c, id)
			if len(d.Attempts) != tc.wantAttempts {
				t.Fatalf("%d attempts, want %d (status %s %q)", len(d.Attempts), tc.wantAttempts, d.Status, aws.ToString(d.StatusReason))
			}
			for _, a := range d.Attempts {
				if aws.ToInt64(a.StartedAt) == 0 || aws.ToInt64(a.StoppedAt) < aws.ToInt64(a.StartedAt) {
					t.Errorf("attempt times %d..%d", aws.ToInt64(a.StartedAt), aws.ToInt64(a.StoppedAt))
				}
				if tc.reclaim && aws.ToString(a.StatusReason) != batchtest.SpotReclaimReason {
					t.Errorf("attempt reason %q", aws.ToString(a.StatusReason))
				}
			}
		})
	}
}

func TestSubmitRetryStrategyReplacesDefinitions(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Executor: func(context.Context, batchtest.ExecJob) (int, error) { return 75, nil }})
	c := client(srv)
	register(t, c, &types.RetryStrategy{Attempts: aws.Int32(3)})
	id := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("j"), RetryStrategy: &types.RetryStrategy{Attempts: aws.Int32(1)}})
	if d := waitTerminal(t, c, id); len(d.Attempts) != 1 {
		t.Fatalf("%d attempts, want 1: SubmitJob's retryStrategy replaces the definition's", len(d.Attempts))
	}
	if !srv.Submissions()[0].RetryOverride {
		t.Error("submission not recorded as a retry override")
	}
}

func TestTerminateAndCancel(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{MaxRunning: 1, Executor: func(ctx context.Context, _ batchtest.ExecJob) (int, error) {
		<-ctx.Done()
		return 143, nil
	}})
	c := client(srv)
	register(t, c, &types.RetryStrategy{Attempts: aws.Int32(3)})
	running := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("running")})
	queued := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("queued")})
	for srv.Attempts(running) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx := context.Background()
	// CancelJob leaves running jobs alone but cancels queued ones.
	if _, err := c.CancelJob(ctx, &batch.CancelJobInput{JobId: aws.String(running), Reason: aws.String("cancel")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelJob(ctx, &batch.CancelJobInput{JobId: aws.String(queued), Reason: aws.String("cancel")}); err != nil {
		t.Fatal(err)
	}
	if q := waitTerminal(t, c, queued); q.Status != types.JobStatusFailed || aws.ToString(q.StatusReason) != "cancel" || len(q.Attempts) != 0 {
		t.Errorf("queued job %s %q after %d attempts", q.Status, aws.ToString(q.StatusReason), len(q.Attempts))
	}
	if st, _, _ := srv.JobStatus(running); st != batchtest.Running {
		t.Errorf("running job is %s after CancelJob, want RUNNING", st)
	}
	// TerminateJob kills it, and it is not retried.
	if _, err := c.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(running), Reason: aws.String("stop")}); err != nil {
		t.Fatal(err)
	}
	r := waitTerminal(t, c, running)
	if r.Status != types.JobStatusFailed || aws.ToString(r.StatusReason) != "stop" || len(r.Attempts) != 1 || !aws.ToBool(r.IsTerminated) {
		t.Errorf("terminated job %s %q after %d attempts", r.Status, aws.ToString(r.StatusReason), len(r.Attempts))
	}
	_, err := c.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String("nope"), Reason: aws.String("x")})
	if apiCode(err) != "ClientException" {
		t.Errorf("terminate of an unknown job: %v", err)
	}
}

func TestListAndDescribeLimits(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{MaxRunning: 1000, Executor: func(ctx context.Context, _ batchtest.ExecJob) (int, error) {
		<-ctx.Done()
		return 0, nil
	}})
	c := client(srv)
	register(t, c, nil)
	ctx := context.Background()
	arr := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("arr"), ArrayProperties: &types.ArrayProperties{Size: aws.Int32(250)}})
	// Wait until every child runs.
	for {
		out, err := c.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{arr}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Jobs[0].ArrayProperties.StatusSummary["RUNNING"] == 250 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Without a status ListJobs returns RUNNING jobs, paginated.
	n, pages := 0, 0
	p := batch.NewListJobsPaginator(c, &batch.ListJobsInput{ArrayJobId: aws.String(arr)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.JobSummaryList)
		pages++
	}
	if n != 250 || pages < 2 {
		t.Errorf("listed %d children in %d pages, want 250 in several", n, pages)
	}
	out, err := c.ListJobs(ctx, &batch.ListJobsInput{ArrayJobId: aws.String(arr), JobStatus: types.JobStatusSucceeded})
	if err != nil || len(out.JobSummaryList) != 0 {
		t.Errorf("SUCCEEDED children: %v %d", err, len(out.JobSummaryList))
	}
	if _, err := c.ListJobs(ctx, &batch.ListJobsInput{}); apiCode(err) != "ClientException" {
		t.Errorf("ListJobs without queue or array: %v", err)
	}
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s:%d", arr, i)
	}
	if _, err := c.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: ids}); apiCode(err) != "ClientException" {
		t.Errorf("DescribeJobs of 101 jobs: %v", err)
	}
	got, err := c.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: ids[:100]})
	if err != nil || len(got.Jobs) != 100 {
		t.Errorf("DescribeJobs of 100 children: %v, %d jobs", err, len(got.Jobs))
	}
	if _, err := c.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String(arr), Reason: aws.String("done")}); err != nil {
		t.Fatal(err)
	}
	if p := waitTerminal(t, c, arr); p.Status != types.JobStatusFailed || p.ArrayProperties.StatusSummary["FAILED"] != 250 {
		t.Errorf("terminated array %s %v", p.Status, p.ArrayProperties.StatusSummary)
	}
}

func TestJobDefinitionRevisions(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	c := client(srv)
	for i := 1; i <= 3; i++ {
		if arn := register(t, c, nil); !strings.HasSuffix(arn, fmt.Sprintf("job-definition/def:%d", i)) {
			t.Errorf("registration %d got %s", i, arn)
		}
	}
	ctx := context.Background()
	if _, err := c.DeregisterJobDefinition(ctx, &batch.DeregisterJobDefinitionInput{JobDefinition: aws.String("def:3")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitionName: aws.String("def"), Status: aws.String("ACTIVE")})
	if err != nil || len(out.JobDefinitions) != 2 {
		t.Fatalf("ACTIVE revisions: %v, %d", err, len(out.JobDefinitions))
	}
	// Submitting by name uses the latest ACTIVE revision.
	id := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("j"), JobDefinition: aws.String("def")})
	d := waitTerminal(t, c, id)
	if !strings.HasSuffix(aws.ToString(d.JobDefinition), "def:2") {
		t.Errorf("job ran %s, want revision 2", aws.ToString(d.JobDefinition))
	}
	if _, err := c.RegisterJobDefinition(ctx, &batch.RegisterJobDefinitionInput{
		JobDefinitionName: aws.String("fg"), Type: types.JobDefinitionTypeContainer,
		PlatformCapabilities: []types.PlatformCapability{types.PlatformCapabilityFargate},
		ContainerProperties:  &types.ContainerProperties{Image: aws.String("img")},
	}); apiCode(err) != "ClientException" {
		t.Errorf("Fargate definition without execution role: %v", err)
	}
	if _, err := c.RegisterJobDefinition(ctx, &batch.RegisterJobDefinitionInput{
		JobDefinitionName: aws.String("r"), Type: types.JobDefinitionTypeContainer,
		ContainerProperties: &types.ContainerProperties{Image: aws.String("img")},
		RetryStrategy:       &types.RetryStrategy{Attempts: aws.Int32(11)},
	}); apiCode(err) != "ClientException" {
		t.Errorf("11 attempts: %v", err)
	}
}

func TestFaultsAndCounters(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	srv.SetFaults(0.5, 7)
	c := client(srv)
	codes := map[string]int{}
	for range 100 {
		_, err := c.DescribeJobDefinitions(context.Background(), &batch.DescribeJobDefinitionsInput{})
		codes[apiCode(err)]++
	}
	if codes["TooManyRequestsException"] == 0 || codes["ServerException"] == 0 || codes[""] == 0 {
		t.Fatalf("answers %v: want successes, 429s and 500s", codes)
	}
	if got := srv.Calls()["DescribeJobDefinitions"]; got != 100 {
		t.Errorf("counted %d calls, want 100", got)
	}
	if got := srv.Faulted()["DescribeJobDefinitions"]; got != codes["TooManyRequestsException"]+codes["ServerException"] {
		t.Errorf("counted %d faults, answers %v", got, codes)
	}
	// The SDK's standard retryer treats both as retryable.
	var ae smithy.APIError
	_, err := c.DescribeJobDefinitions(context.Background(), &batch.DescribeJobDefinitionsInput{}, func(o *batch.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = 20; so.MaxBackoff = time.Millisecond })
	})
	if errors.As(err, &ae) {
		t.Errorf("with retries: %v", err)
	}
	srv.ResetCalls()
	if len(srv.Calls()) != 0 {
		t.Errorf("calls after reset: %v", srv.Calls())
	}
}

// Queues are described with their scheduling policy and compute
// environments; a fair-share queue refuses jobs without a share identifier
// (and a plain queue jobs with one), as Batch does.
func TestQueueSettings(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{QueueSettings: map[string]batchtest.QueueSettings{
		"fair":    {SchedulingPolicyARN: "arn:aws:batch:us-east-1:123456789012:scheduling-policy/p"},
		"fargate": {ComputeType: "FARGATE"},
		"plain":   {},
	}})
	c := client(srv)
	ctx := context.Background()
	register(t, c, nil)
	qs, err := c.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{JobQueues: []string{"fair", "fargate", "plain", "missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(qs.JobQueues) != 3 {
		t.Fatalf("%d queues described, want the 3 that exist", len(qs.JobQueues))
	}
	ceTypes := map[string]string{}
	for _, q := range qs.JobQueues {
		name := aws.ToString(q.JobQueueName)
		if (name == "fair") != (aws.ToString(q.SchedulingPolicyArn) != "") {
			t.Errorf("queue %s has scheduling policy %q", name, aws.ToString(q.SchedulingPolicyArn))
		}
		ce := aws.ToString(q.ComputeEnvironmentOrder[0].ComputeEnvironment)
		out, err := c.DescribeComputeEnvironments(ctx, &batch.DescribeComputeEnvironmentsInput{ComputeEnvironments: []string{ce}})
		if err != nil || len(out.ComputeEnvironments) != 1 {
			t.Fatalf("DescribeComputeEnvironments(%s) = %+v, %v", ce, out, err)
		}
		ceTypes[name] = string(out.ComputeEnvironments[0].ComputeResources.Type)
	}
	if ceTypes["fargate"] != "FARGATE" || ceTypes["plain"] != "EC2" || ceTypes["fair"] != "EC2" {
		t.Errorf("compute environment types %v", ceTypes)
	}

	tests := []struct {
		queue, share string
		ok           bool
	}{
		{"fair", "", false},
		{"fair", "team1", true},
		{"plain", "", true},
		{"plain", "team1", false},
		{"missing", "", false},
	}
	for _, tc := range tests {
		in := &batch.SubmitJobInput{JobName: aws.String("j"), JobQueue: aws.String(tc.queue), JobDefinition: aws.String("def")}
		if tc.share != "" {
			in.ShareIdentifier = aws.String(tc.share)
		}
		_, err := c.SubmitJob(ctx, in)
		if (err == nil) != tc.ok {
			t.Errorf("SubmitJob to %s with share identifier %q: %v, want ok=%v", tc.queue, tc.share, err, tc.ok)
		}
	}
}
