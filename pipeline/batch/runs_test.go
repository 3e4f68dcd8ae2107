package batch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/pipeline"
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
	again, err := batchRuns(t, srv, st).Submit(ctx, req)
	if err != nil || again.ID != id || again.Result == nil || !again.Result.Cached {
		t.Errorf("the same render again: %+v, %v; want run %s, cached", again, err, id)
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
