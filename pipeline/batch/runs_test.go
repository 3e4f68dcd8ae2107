package batch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/store"
)

// batchRuns is what a new framefleet process would build: its own engine
// (a fresh client) over the same Batch server and store.
func batchRuns(t *testing.T, srv *batchtest.Server, st store.Store) *pipeline.Runs {
	return &pipeline.Runs{Store: st, EngineName: "batch", Engine: func(ctx context.Context, name string) (pipeline.Engine, error) {
		return newEngine(t, srv, testSpec()), nil
	}}
}

// Durable runs on Batch: submitted by one process, listed, watched and
// cancelled by others; identical submissions make one run; a record whose
// jobs Batch no longer knows fails clearly.
func TestRunsOnBatch(t *testing.T) {
	scene, _, st := runFixture(t, store.Options{})
	release := make(chan struct{})
	srv := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, release)})
	ctx := context.Background()
	req := pipeline.Request{BlendPath: scene, Chunk: 5, PollInterval: 20 * time.Millisecond,
		Labels: map[string]string{"github.pr": "7"}}

	// Two identical submissions at once: one run.
	recs := make([]*pipeline.RunRecord, 2)
	var wg sync.WaitGroup
	for i := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := batchRuns(t, srv, st).Submit(ctx, req)
			if err != nil {
				t.Error(err)
			}
			recs[i] = rec
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if recs[0].ID != recs[1].ID || len(srv.Submissions()) != 2 {
		t.Fatalf("runs %s and %s, %d SubmitJob calls: want one run (render + stitch)", recs[0].ID, recs[1].ID, len(srv.Submissions()))
	}
	id := recs[0].ID

	watcher := batchRuns(t, srv, st)
	page, err := watcher.List(ctx, pipeline.ListFilter{Labels: map[string]string{"github.pr": "7"}})
	if err != nil || len(page.Runs) != 1 || page.Runs[0].ID != id || page.Runs[0].Handle == nil {
		t.Fatalf("list: %+v, %v: want run %s with its jobs", page.Runs, err, id)
	}
	close(release)
	res, err := watcher.Watch(ctx, id[:5], nil)
	if err != nil || res.RunID != id || res.FrameCount != 15 {
		t.Fatalf("watch: %+v, %v", res, err)
	}
	if fresh, err := batchRuns(t, srv, st).Result(ctx, id); err != nil || fresh.Video == "" || fresh.FrameCount != 15 {
		t.Errorf("result signed anew: %+v, %v", fresh, err)
	}
	// Asked again from a Slack thread: the finished run is reused, and the
	// thread's labels join the PR's, which keep their values.
	fromSlack := req
	fromSlack.Labels = map[string]string{"github.pr": "8", "slack.thread": "1700000000.000100"}
	again, err := batchRuns(t, srv, st).Submit(ctx, fromSlack)
	if err != nil || again.ID != id || again.Result == nil || !again.Result.Cached {
		t.Errorf("the same render again: %+v, %v; want run %s, cached", again, err, id)
	}
	page, err = watcher.List(ctx, pipeline.ListFilter{Labels: map[string]string{"slack.thread": "1700000000.000100", "github.pr": "7"}})
	if err != nil || len(page.Runs) != 1 || page.Runs[0].ID != id {
		t.Errorf("list by the thread's label: %+v, %v; want run %s with both requests' labels", page.Runs, err, id)
	}

	t.Run("cancel from another process while watching", func(t *testing.T) {
		held := make(chan struct{}) // never closed: the children run until terminated
		srv2 := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, held)})
		other := req
		other.Frames = "1-10"
		rec, err := batchRuns(t, srv2, st).Submit(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		var events []pipeline.Event
		done := make(chan error, 1)
		go func() {
			_, err := batchRuns(t, srv2, st).Watch(ctx, rec.ID, func(ev pipeline.Event) { events = append(events, ev) })
			done <- err
		}()
		time.Sleep(100 * time.Millisecond) // let the watcher poll a few times
		if _, err := batchRuns(t, srv2, st).Cancel(ctx, rec.ID, "cancelled by @ana"); err != nil {
			t.Fatal(err)
		}
		err = <-done
		var ce *pipeline.RunCancelledError
		if !errors.As(err, &ce) || ce.Reason != "cancelled by @ana" {
			t.Fatalf("watch ended with %v, want the cancel", err)
		}
		if last := events[len(events)-1]; last.Kind != pipeline.EventCancelled {
			t.Errorf("last event %s, want cancelled", last.Kind)
		}
		for _, job := range []string{rec.Handle.RenderID, rec.Handle.StitchID} {
			if status, _, _ := srv2.JobStatus(job); status != "FAILED" {
				t.Errorf("job %s is %s after the cancel, want terminated", job, status)
			}
		}
		got, err := batchRuns(t, srv2, st).Get(ctx, rec.ID)
		if err != nil || got.State != pipeline.RunCancelled || got.Failure == nil || got.Failure.CancelReason != "cancelled by @ana" {
			t.Errorf("record after the cancel: %+v, %v", got, err)
		}
	})

	t.Run("jobs the engine no longer knows", func(t *testing.T) {
		other := req
		other.Frames = "1-5"
		rec, err := batchRuns(t, srv, st).Submit(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		forgetful := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, nil)}) // knows no jobs
		_, err = batchRuns(t, forgetful, st).Watch(ctx, rec.ID, nil)
		var lost *pipeline.JobsLostError
		if !errors.As(err, &lost) || !errors.Is(err, pipeline.ErrUnknownJob) {
			t.Fatalf("watch: %v, want a *JobsLostError", err)
		}
		got, err := batchRuns(t, forgetful, st).Get(ctx, rec.ID)
		if err != nil || got.State != pipeline.RunFailed || got.Failure == nil || got.Failure.Message != lost.Error() {
			t.Errorf("record: %+v, %v; want failed, saying the jobs are unknown", got, err)
		}
		if page, err := batchRuns(t, forgetful, st).List(ctx, pipeline.ListFilter{}); err != nil || len(page.Runs) != 3 {
			t.Errorf("list after: %d runs, %v; want all 3", len(page.Runs), err)
		}
	})
}

// A request that attaches to an identical unfinished run merges its labels
// into the run's record: new keys are added, the run's own keep their values.
func TestAttachingMergesLabels(t *testing.T) {
	scene, _, st := runFixture(t, store.Options{})
	held := make(chan struct{}) // the runs stay unfinished
	t.Cleanup(func() { close(held) })
	srv := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, held)})
	ctx := context.Background()
	tests := []struct {
		name          string
		frames        string
		first, second map[string]string
		want          map[string]string
	}{
		{"a Slack thread joins a PR's run", "1-5",
			map[string]string{"github.pr": "7", "requested_by": "ana"},
			map[string]string{"slack.thread": "1700000000.000100", "requested_by": "bob"},
			map[string]string{"github.pr": "7", "requested_by": "ana", "slack.thread": "1700000000.000100"}},
		{"no labels of its own", "6-10", map[string]string{"github.pr": "7"}, nil, map[string]string{"github.pr": "7"}},
		{"a run without labels gets the request's", "11-15", nil, map[string]string{"ticket": "PRJ-12"}, map[string]string{"ticket": "PRJ-12"}},
		{"the same labels", "1-15x2", map[string]string{"github.pr": "7"}, map[string]string{"github.pr": "7"}, map[string]string{"github.pr": "7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := pipeline.Request{BlendPath: scene, Chunk: 5, Frames: tc.frames, PollInterval: 20 * time.Millisecond, Labels: tc.first}
			first, err := batchRuns(t, srv, st).Submit(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			req.Labels = tc.second
			second, err := batchRuns(t, srv, st).Submit(ctx, req)
			if err != nil || second.ID != first.ID {
				t.Fatalf("second request: %+v, %v; want it attached to run %s", second, err, first.ID)
			}
			if !maps.Equal(second.Labels, tc.want) {
				t.Errorf("attached record's labels %v, want %v", second.Labels, tc.want)
			}
			stored, err := batchRuns(t, srv, st).Get(ctx, first.ID)
			if err != nil || !maps.Equal(stored.Labels, tc.want) {
				t.Errorf("stored labels %v (%v), want %v", stored.Labels, err, tc.want)
			}
			page, err := batchRuns(t, srv, st).List(ctx, pipeline.ListFilter{Labels: tc.want})
			if err != nil || !slices.ContainsFunc(page.Runs, func(r pipeline.RunRecord) bool { return r.ID == first.ID }) {
				t.Errorf("listing by %v: %d runs, %v; want run %s among them", tc.want, len(page.Runs), err, first.ID)
			}
		})
	}
}

// A cancel that lands while Submit is recording the jobs it just submitted
// ends Submit with the cancel at once: it is a decision about the run, not a
// store outage to ride out (the budget here is an hour).
func TestCancelWhileSubmittingIsNotRetried(t *testing.T) {
	scene, _, st := runFixture(t, store.Options{})
	srv := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, make(chan struct{}))})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Between the engine submitting the stitch job and Submit recording it,
	// another process cancels the run (found by its label).
	var once sync.Once
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.HasSuffix(r.URL.Path, "/submitjob") && bytes.Contains(body, []byte("dependsOn")) {
			once.Do(func() {
				page, err := batchRuns(t, srv, st).List(ctx, pipeline.ListFilter{Labels: map[string]string{"ticket": "cancel-mid-submit"}})
				if err != nil || len(page.Runs) != 1 {
					t.Errorf("the run being submitted: %+v, %v", page.Runs, err)
					return
				}
				if _, err := batchRuns(t, srv, st).Cancel(ctx, page.Runs[0].ID, "cancelled by @ana"); err != nil {
					t.Error(err)
				}
			})
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	runs := &pipeline.Runs{Store: st, EngineName: "batch", Engine: func(ctx context.Context, name string) (pipeline.Engine, error) {
		e, err := batch.New(awsConfig(), batch.Options{Queue: queue, Definition: testSpec(), Endpoint: front.URL, MaxBackoff: 20 * time.Millisecond})
		if err == nil && testSpec().Registers() {
			_, _, err = e.EnsureJobDefinition(ctx, testSpec())
		}
		return e, err
	}}

	req := pipeline.Request{BlendPath: scene, Chunk: 5, PollInterval: 20 * time.Millisecond, StoreOutageBudget: time.Hour,
		Labels: map[string]string{"ticket": "cancel-mid-submit"}}
	_, err := runs.Submit(ctx, req)
	var ce *pipeline.RunCancelledError
	if !errors.As(err, &ce) || ce.Reason != "cancelled by @ana" {
		t.Fatalf("submit ended with %v, want the cancel", err)
	}
}
