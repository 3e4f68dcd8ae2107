package batchtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/framefleet/framefleet/internal/batchtest"
)

// helperEnv makes the test binary act as a container process (TestHelperContainer).
const helperEnv = "BATCHTEST_HELPER_DIR"

// TestHelperContainer is not a test: run by Process with helperEnv set, it
// stands for a worker. On its first attempt it writes "started" and waits;
// on SIGTERM it writes "sigterm" and exits 143 unless BATCHTEST_HELPER_IGNORE
// says to ignore SIGTERM (then only SIGKILL ends it). Later attempts exit 0.
func TestHelperContainer(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	attempt := os.Getenv("AWS_BATCH_JOB_ATTEMPT")
	if attempt != "1" {
		os.Exit(0)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if err := os.WriteFile(filepath.Join(dir, "started"), nil, 0o644); err != nil {
		os.Exit(2)
	}
	<-term
	_ = os.WriteFile(filepath.Join(dir, "sigterm"), nil, 0o644)
	if os.Getenv("BATCHTEST_HELPER_IGNORE") != "" {
		time.Sleep(time.Hour)
	}
	os.Exit(143)
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// TestProcessStops checks how WorkerProcess stops a running container:
// TerminateJob sends SIGTERM (and SIGKILL after the grace period if it is
// ignored); a Spot reclaim mid-attempt kills at once, without SIGTERM, and
// the retry strategy runs the attempt again.
func TestProcessStops(t *testing.T) {
	tests := []struct {
		name        string
		ignoreTerm  bool
		reclaim     bool
		wantSIGTERM bool
		wantStatus  types.JobStatus
		wantReason  string
		wantTries   int
	}{
		{name: "terminate", wantSIGTERM: true, wantStatus: types.JobStatusFailed, wantReason: "stop", wantTries: 1},
		{name: "terminate ignoring SIGTERM", ignoreTerm: true, wantSIGTERM: true, wantStatus: types.JobStatusFailed, wantReason: "stop", wantTries: 1},
		{name: "reclaim", reclaim: true, wantStatus: types.JobStatusSucceeded, wantReason: batchtest.SpotReclaimReason, wantTries: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			exec := batchtest.Process{Bin: os.Args[0], StopGrace: 200 * time.Millisecond}.Run
			srv := batchtest.Start(t, batchtest.Options{Executor: exec})
			c := client(srv)
			register(t, c, &types.RetryStrategy{Attempts: aws.Int32(2), EvaluateOnExit: []types.EvaluateOnExit{
				{Action: types.RetryActionRetry, OnStatusReason: aws.String("Host EC2*")},
				{Action: types.RetryActionExit, OnReason: aws.String("*")},
			}})
			env := []types.KeyValuePair{{Name: aws.String(helperEnv), Value: aws.String(dir)}}
			if tc.ignoreTerm {
				env = append(env, types.KeyValuePair{Name: aws.String("BATCHTEST_HELPER_IGNORE"), Value: aws.String("1")})
			}
			id := submit(t, c, &batch.SubmitJobInput{JobName: aws.String("helper"), ContainerOverrides: &types.ContainerOverrides{
				Command: []string{"-test.run=^TestHelperContainer$"}, Environment: env,
			}})
			waitFile(t, filepath.Join(dir, "started"))
			if tc.reclaim {
				if !srv.Reclaim(id) {
					t.Fatal("Reclaim found no running attempt")
				}
				if srv.Reclaim(id) {
					t.Error("a second Reclaim of the same attempt succeeded")
				}
			} else if _, err := c.TerminateJob(context.Background(), &batch.TerminateJobInput{JobId: aws.String(id), Reason: aws.String("stop")}); err != nil {
				t.Fatal(err)
			}
			d := waitTerminal(t, c, id)
			if got := exists(filepath.Join(dir, "sigterm")); got != tc.wantSIGTERM {
				t.Errorf("container got SIGTERM: %v, want %v", got, tc.wantSIGTERM)
			}
			if d.Status != tc.wantStatus || len(d.Attempts) != tc.wantTries {
				t.Fatalf("job %s after %d attempts, want %s after %d", d.Status, len(d.Attempts), tc.wantStatus, tc.wantTries)
			}
			if got := aws.ToString(d.Attempts[0].StatusReason); got != tc.wantReason {
				t.Errorf("first attempt's reason %q, want %q", got, tc.wantReason)
			}
		})
	}
}

// TestStopCause checks the context cause each way of stopping gives the executor.
func TestStopCause(t *testing.T) {
	causes := make(chan error, 1)
	srv := batchtest.Start(t, batchtest.Options{Executor: func(ctx context.Context, j batchtest.ExecJob) (int, error) {
		if j.Attempt > 1 {
			return 0, nil
		}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return 137, nil
	}})
	c := client(srv)
	register(t, c, &types.RetryStrategy{Attempts: aws.Int32(2)})
	for _, tc := range []struct {
		name     string
		stop     func(id string)
		want     error
		graceful bool
	}{
		{"terminate", func(id string) {
			_, _ = c.TerminateJob(context.Background(), &batch.TerminateJobInput{JobId: aws.String(id), Reason: aws.String("stop")})
		}, batchtest.ErrJobTerminated, true},
		{"reclaim", func(id string) { srv.Reclaim(id) }, batchtest.ErrHostReclaimed, false},
	} {
		id := submit(t, c, &batch.SubmitJobInput{JobName: aws.String(tc.name)})
		for srv.Attempts(id) == 0 {
			time.Sleep(time.Millisecond)
		}
		tc.stop(id)
		got := <-causes
		if !errors.Is(got, tc.want) || batchtest.Graceful(got) != tc.graceful {
			t.Errorf("%s: cause %v (graceful %v), want %v (graceful %v)", tc.name, got, batchtest.Graceful(got), tc.want, tc.graceful)
		}
		waitTerminal(t, c, id)
	}
	if !batchtest.Graceful(batchtest.ErrAttemptTimedOut) {
		t.Error("a timed-out attempt must be stopped gracefully")
	}
}

// TestListJobsNameFilter follows ListJobs' JOB_NAME filter: a
// case-insensitive exact match, or a prefix with a trailing '*'; the filter
// overrides jobStatus and lists every status, most recent first.
func TestListJobsNameFilter(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	c := client(srv)
	register(t, c, nil)
	ctx := context.Background()
	var ids []string
	for _, name := range []string{"ff-run1-render", "ff-run1-stitch", "ff-run10-render", "other"} {
		ids = append(ids, submit(t, c, &batch.SubmitJobInput{JobName: aws.String(name)}))
		time.Sleep(2 * time.Millisecond) // distinct createdAt
	}
	for _, id := range ids {
		waitTerminal(t, c, id)
	}
	list := func(in *batch.ListJobsInput) ([]string, error) {
		var names []string
		p := batch.NewListJobsPaginator(c, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for _, s := range page.JobSummaryList {
				names = append(names, aws.ToString(s.JobName))
			}
		}
		return names, nil
	}
	byName := func(v string) []types.KeyValuesPair {
		return []types.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{v}}}
	}
	tests := []struct {
		filter string
		status types.JobStatus
		want   []string
	}{
		{"ff-run1-render", "", []string{"ff-run1-render"}},
		{"FF-Run1-Render", "", []string{"ff-run1-render"}},
		{"ff-run1-render", types.JobStatusRunning, []string{"ff-run1-render"}}, // the filter overrides jobStatus
		{"ff-run1*", "", []string{"ff-run10-render", "ff-run1-stitch", "ff-run1-render"}},
		{"ff-run1-", "", nil},
		{"ff-run2-render", "", nil},
	}
	for _, tc := range tests {
		got, err := list(&batch.ListJobsInput{JobQueue: aws.String("q"), JobStatus: tc.status, Filters: byName(tc.filter)})
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("JOB_NAME %q (status %q): %q, want %q", tc.filter, tc.status, got, tc.want)
		}
	}
	// Without a filter nothing is RUNNING any more.
	if got, err := list(&batch.ListJobsInput{JobQueue: aws.String("q")}); err != nil || len(got) != 0 {
		t.Errorf("unfiltered list: %q, %v", got, err)
	}
	for _, bad := range [][]types.KeyValuesPair{
		{{Name: aws.String("JOB_NAME"), Values: []string{"a"}}, {Name: aws.String("JOB_NAME"), Values: []string{"b"}}},
		{{Name: aws.String("JOB_NAME")}},
	} {
		if _, err := c.ListJobs(ctx, &batch.ListJobsInput{JobQueue: aws.String("q"), Filters: bad}); apiCode(err) != "ClientException" {
			t.Errorf("filters %v: %v, want ClientException", bad, err)
		}
	}
}

// TestFaultsAfterWork: a call answered 500 after it took effect has done
// its work all the same.
func TestFaultsAfterWork(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	c := client(srv)
	register(t, c, nil)
	srv.FailAfterWork("SubmitJob", 1)
	ctx := context.Background()
	_, err := c.SubmitJob(ctx, &batch.SubmitJobInput{JobName: aws.String("lost"), JobQueue: aws.String("q"), JobDefinition: aws.String("def")})
	if apiCode(err) != "ServerException" {
		t.Fatalf("SubmitJob: %v, want ServerException", err)
	}
	subs := srv.Submissions()
	if len(subs) != 1 || subs[0].JobName != "lost" {
		t.Fatalf("submissions %+v: the job should exist despite the error", subs)
	}
	if _, err := c.SubmitJob(ctx, &batch.SubmitJobInput{JobName: aws.String("next"), JobQueue: aws.String("q"), JobDefinition: aws.String("def")}); err != nil {
		t.Errorf("only one call was to fail: %v", err)
	}
	if got := srv.Faulted()["SubmitJob"]; got != 1 {
		t.Errorf("faulted %d, want 1", got)
	}

	srv.SetFaultsAfterWork(0.5, 3)
	lost := 0
	for i := range 40 {
		if _, err := c.SubmitJob(ctx, &batch.SubmitJobInput{JobName: aws.String(fmt.Sprintf("j%d", i)), JobQueue: aws.String("q"), JobDefinition: aws.String("def")}); err != nil {
			lost++
		}
	}
	if lost == 0 || lost == 40 {
		t.Errorf("%d of 40 answers lost, want some", lost)
	}
	if got := len(srv.Submissions()); got != 42 {
		t.Errorf("%d jobs exist, want 42: every call took effect", got)
	}
}
