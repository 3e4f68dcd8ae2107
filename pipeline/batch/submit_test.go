package batch_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	awsbatch "github.com/aws/aws-sdk-go-v2/service/batch"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/batch"
)

// edgeAPI is the SDK client with two network mishaps the test server cannot
// stage deterministically: a SubmitJob whose caller is cancelled while the
// job is being created, and a job list that has not caught up yet.
type edgeAPI struct {
	batch.API
	mu sync.Mutex
	// cancelOnSubmit, when set, is called once SubmitJob took effect, and
	// the call then fails as a cancelled one does.
	cancelOnSubmit func()
	// hideLists is how many ListJobs calls answer with an empty list.
	hideLists int
}

func (a *edgeAPI) SubmitJob(ctx context.Context, in *awsbatch.SubmitJobInput, o ...func(*awsbatch.Options)) (*awsbatch.SubmitJobOutput, error) {
	out, err := a.API.SubmitJob(context.WithoutCancel(ctx), in, o...)
	a.mu.Lock()
	cancel := a.cancelOnSubmit
	a.cancelOnSubmit = nil
	a.mu.Unlock()
	if cancel != nil && err == nil {
		cancel()
		return nil, ctx.Err()
	}
	return out, err
}

func (a *edgeAPI) ListJobs(ctx context.Context, in *awsbatch.ListJobsInput, o ...func(*awsbatch.Options)) (*awsbatch.ListJobsOutput, error) {
	a.mu.Lock()
	hide := a.hideLists > 0
	if hide {
		a.hideLists--
	}
	a.mu.Unlock()
	if hide {
		return &awsbatch.ListJobsOutput{}, nil
	}
	return a.API.ListJobs(ctx, in, o...)
}

func edgeEngine(t *testing.T, srv *batchtest.Server) (*batch.Engine, *edgeAPI) {
	t.Helper()
	newEngine(t, srv, testSpec()) // setup registers the definition
	api := &edgeAPI{API: awsbatch.NewFromConfig(awsConfig(), func(o *awsbatch.Options) { o.BaseEndpoint = &srv.URL })}
	return batch.NewWithAPI(api, batch.Options{Queue: queue, Definition: testSpec(), MaxBackoff: 1}), api
}

// A submission cancelled while Batch was creating the job is looked up all
// the same, on a context of its own, and the job it created is terminated:
// nobody would watch it.
func TestCancelledSubmissionIsLookedUpAndTerminated(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	e, api := edgeEngine(t, srv)
	srv.SetCapacity(0) // the job stays queued: what is terminated is still live
	ctx, cancel := context.WithCancel(context.Background())
	api.cancelOnSubmit = cancel
	if _, err := e.Submit(ctx, testJob("cancelled-submit", 3)); err == nil {
		t.Fatal("Submit succeeded although it was cancelled")
	}
	subs := srv.Submissions()
	if len(subs) != 1 {
		t.Fatalf("jobs created %v, want the one render array the cancelled call made", jobNames(subs))
	}
	status, reason, _ := srv.JobStatus(subs[0].JobID)
	if status != "FAILED" || !strings.Contains(reason, "cancelled") {
		t.Errorf("the cancelled submission's job is %s (%q), want it terminated", status, reason)
	}
	if c := srv.Calls(); c["ListJobs"] == 0 || c["TerminateJob"] == 0 {
		t.Errorf("calls %v: want a look-up and a termination", c)
	}
}

// A lost submission that shows only after the job was submitted again is a
// duplicate: it is terminated, and the run keeps the job it watches.
func TestDuplicateFoundLaterIsTerminated(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	e, api := edgeEngine(t, srv)
	srv.SetCapacity(0) // nothing runs (or finishes) until the submission is over
	srv.FailAfterWork("SubmitJob", 1)
	api.hideLists = 4 // every look-up after the lost answer misses it
	h, err := e.Submit(context.Background(), testJob("late-duplicate", 3))
	if err != nil {
		t.Fatal(err)
	}
	subs := srv.Submissions()
	if len(subs) != 3 {
		t.Fatalf("jobs created %v, want the lost render, its resubmission and the stitch", jobNames(subs))
	}
	lostID := subs[0].JobID
	if h.RenderID == lostID || h.RenderID != subs[1].JobID {
		t.Fatalf("handle %+v: want the resubmitted render %s", h, subs[1].JobID)
	}
	if status, reason, _ := srv.JobStatus(lostID); status != "FAILED" || !strings.Contains(reason, "duplicate") {
		t.Errorf("the lost duplicate %s is %s (%q), want it terminated", lostID, status, reason)
	}
	srv.SetCapacity(4)
	st := wait(t, e, h)
	if st.Render != pipeline.StateSucceeded || st.Stitch != pipeline.StateSucceeded {
		t.Errorf("the kept jobs: %+v, want both SUCCEEDED", st)
	}
}

// Every job carries its run's trust scope, which the stack's roles check
// before they let a requester tag or stop it.
func TestJobsCarryTheirScope(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	e := newEngine(t, srv, testSpec())
	for uri, want := range map[string]string{"s3://bucket/renders": "trusted", "s3://bucket/renders?scope=preview": "preview"} {
		job := testJob("scope-"+want, 2)
		job.StoreURI = uri
		if _, err := e.Submit(context.Background(), job); err != nil {
			t.Fatal(err)
		}
		for _, s := range srv.Submissions() {
			if s.Env["FRAMEFLEET_STORE"] == uri && s.Tags[batch.ScopeTag] != want {
				t.Errorf("%s (store %s) tagged %s=%q, want %s", s.JobName, uri, batch.ScopeTag, s.Tags[batch.ScopeTag], want)
			}
		}
	}
}
