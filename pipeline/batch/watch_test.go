package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// These tests drive pipeline.Run through the real Batch engine and S3 store,
// against the Batch and S3 test servers. Children do what a worker does to
// the store (frames, chunk report, video, manifest) without Blender, so the
// watcher's own behaviour is what is tested.

// fakeWorkers writes what workers would. failChunk >= 0 makes that chunk
// fail like a worker whose Blender could not read the file. release, when
// not nil, holds render children until it is closed.
func fakeWorkers(t *testing.T, st store.Store, failChunk int, release <-chan struct{}) batchtest.Executor {
	return func(ctx context.Context, j batchtest.ExecJob) (int, error) {
		run := j.Env["FRAMEFLEET_RUN_ID"]
		var p plan.Plan
		rc, err := st.Get(ctx, store.PlanKey(run))
		if err != nil {
			return 75, nil
		}
		err = json.NewDecoder(rc).Decode(&p)
		rc.Close()
		if err != nil {
			return 1, nil
		}
		put := func(key, body string) bool { return st.Put(ctx, key, strings.NewReader(body)) == nil }
		if j.Command[len(j.Command)-1] == "render" {
			if release != nil {
				select {
				case <-release:
				case <-ctx.Done():
					return 143, nil
				}
			}
			index := max(j.ArrayIndex, 0)
			frames, _ := p.Chunk(index)
			report := pipeline.ChunkReport{Index: index, Attempt: j.Attempt, Frames: frames}
			if index == failChunk {
				report.Error = "Blender: Failed to read blend file 'scene.blend': File format is not supported"
				report.ExitCode = 1
				b, _ := json.Marshal(report)
				put(store.ChunkReportKey(run, index), string(b))
				return 1, nil
			}
			for _, f := range frames {
				if !put(store.FrameKey(run, f, "png"), "png") {
					return 75, nil
				}
			}
			report.Rendered = frames
			b, _ := json.Marshal(report)
			put(store.ChunkReportKey(run, index), string(b))
			return 0, nil
		}
		m := pipeline.Manifest{RunID: run, Scene: p.Scene, VideoKey: store.VideoKey(run, p.Scene), FrameCount: len(p.Frames), FPS: p.FrameRate.String()}
		for _, f := range p.Frames {
			m.Frames = append(m.Frames, store.FrameKey(run, f, "png"))
		}
		b, _ := json.Marshal(m)
		if !put(m.VideoKey, "mp4") || !put(store.ManifestKey(run), string(b)) {
			return 75, nil
		}
		return 0, nil
	}
}

// runFixture is a scene and an S3 store on a fresh test server.
func runFixture(t *testing.T, s3opts store.Options) (string, *s3test.Server, store.Store) {
	t.Helper()
	scene := filepath.Join(testenv.Shared(t), "blendfiles", "12_anim_range_sampled.blend") // 3.1, frames 1-15
	s3 := s3test.Start(t)
	s3opts.Region, s3opts.Endpoint, s3opts.UsePathStyle, s3opts.Credentials = s3.Region, s3.Endpoint, true, s3.Credentials()
	st, err := store.NewS3(context.Background(), s3.Bucket, "watch", s3opts)
	if err != nil {
		t.Fatal(err)
	}
	return scene, s3, st
}

// eventLog collects a run's events for a test to wait on.
type eventLog struct {
	mu     sync.Mutex
	events []pipeline.Event
	seen   chan pipeline.EventKind
}

func newEventLog() *eventLog { return &eventLog{seen: make(chan pipeline.EventKind, 1000)} }

func (l *eventLog) add(ev pipeline.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	l.seen <- ev.Kind
}

func (l *eventLog) waitFor(t *testing.T, kind pipeline.EventKind) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case k := <-l.seen:
			if k == kind {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event within 30s", kind)
		}
	}
}

// A Batch API outage in the middle of a run is ridden out: the watcher says
// so, keeps asking with backoff, and the run completes when the API is back.
func TestRunRidesOutABatchOutage(t *testing.T) {
	scene, _, st := runFixture(t, store.Options{})
	release := make(chan struct{})
	srv := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, release)})
	e := newEngine(t, srv, testSpec())
	events := newEventLog()

	type outcome struct {
		res *pipeline.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := pipelinetest.Render(context.Background(), e, st, pipeline.Request{
			BlendPath: scene, Chunk: 5, PollInterval: 20 * time.Millisecond, WatchErrorBudget: time.Minute,
		}, events.add)
		done <- outcome{res, err}
	}()
	events.waitFor(t, pipeline.EventSubmitted)
	srv.SetFaults(1, 1) // every Batch call fails
	events.waitFor(t, pipeline.EventWatchError)
	srv.SetFaults(0, 1)
	close(release)
	out := <-done
	if out.err != nil {
		t.Fatalf("Run after the outage: %v", out.err)
	}
	if out.res.FrameCount != 15 {
		t.Fatalf("result has %d frames, want 15", out.res.FrameCount)
	}
}

// When the run cannot be watched for longer than the budget, Run gives up
// and cancels the jobs instead of leaving them running unwatched.
func TestRunGivesUpAndCancelsWhenItCannotWatch(t *testing.T) {
	scene, s3, st := runFixture(t, store.Options{MaxAttempts: 2, MaxBackoff: 10 * time.Millisecond})
	release := make(chan struct{}) // never closed: the children run until terminated
	srv := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, release)})
	e := newEngine(t, srv, testSpec())
	events := newEventLog()
	var h *pipeline.Handle
	go func() {
		events.waitFor(t, pipeline.EventSubmitted)
		s3.SetFaultRate(1) // the store can no longer be listed
	}()
	_, err := pipelinetest.Render(context.Background(), e, st, pipeline.Request{
		BlendPath: scene, Chunk: 5, PollInterval: 20 * time.Millisecond, WatchErrorBudget: 300 * time.Millisecond,
	}, func(ev pipeline.Event) {
		if ev.Handle != nil {
			h = ev.Handle
		}
		events.add(ev)
	})
	if err == nil || !strings.Contains(err.Error(), "gave up") || !strings.Contains(err.Error(), "cancelled its jobs") {
		t.Fatalf("Run error = %v, want it to give up and cancel", err)
	}
	// It says where the workers' logs are: the group, and how the run's streams are named.
	for _, want := range []string{"CloudWatch Logs group " + batch.DefaultLogGroup, testSpec().Name + "/default/", "render job " + h.RenderID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run error does not say %q:\n%v", want, err)
		}
	}
	for _, id := range []string{h.RenderID, h.StitchID} {
		if status, reason, _ := srv.JobStatus(id); status != "FAILED" {
			t.Errorf("job %s is %s (%q) after Run gave up, want it terminated", id, status, reason)
		}
	}
	if n := srv.Calls()["TerminateJob"]; n < 2 {
		t.Errorf("%d TerminateJob calls, want the render and the stitch terminated", n)
	}
}

// A chunk that fails on Batch reports the worker's own error, not only
// Batch's "Essential container in task exited", and is not retried; the
// error names the CloudWatch Logs group (batch.log_group, else Batch's
// default) and the failed attempt's stream.
func TestRunFailureNamesTheWorkersError(t *testing.T) {
	for _, tc := range []struct{ logGroup, want string }{
		{"", batch.DefaultLogGroup},
		{"/framefleet/workers", "/framefleet/workers"},
	} {
		t.Run("log group "+tc.want, func(t *testing.T) {
			scene, _, st := runFixture(t, store.Options{})
			srv := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, 1, nil)})
			spec := testSpec()
			spec.LogGroup = tc.logGroup
			e := newEngine(t, srv, spec)
			_, err := pipelinetest.Render(context.Background(), e, st, pipeline.Request{
				BlendPath: scene, Chunk: 5, PollInterval: 20 * time.Millisecond,
			}, nil)
			var rf *pipeline.RunFailedError
			if !errors.As(err, &rf) {
				t.Fatalf("Run error = %v, want a RunFailedError", err)
			}
			if !strings.Contains(err.Error(), "Failed to read blend file") || !strings.Contains(err.Error(), "chunk 1") {
				t.Errorf("error does not name the failed chunk and the worker's message:\n%v", err)
			}
			if n := srv.Attempts(srv.Submissions()[0].JobID + ":1"); n != 1 {
				t.Errorf("the failed chunk ran %d times, want 1 (exit 1 is not retried)", n)
			}
			var stream string
			for _, f := range rf.Failures {
				if f.Index == 1 {
					stream = f.LogStream
				}
			}
			if !strings.HasPrefix(stream, spec.Name+"/default/") {
				t.Fatalf("chunk 1's failure names stream %q, want the attempt's %s/default/<task>", stream, spec.Name)
			}
			for _, want := range []string{"CloudWatch Logs group " + tc.want, "log stream: " + stream} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

// WorkerLogs names the streams of the failed attempts the engine has seen
// while a run is still going (the moment a watcher gives up).
func TestWorkerLogsNamesFailedAttemptsStreams(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Executor: func(ctx context.Context, j batchtest.ExecJob) (int, error) {
		if j.ArrayIndex == 0 {
			return 1, nil // fails at once
		}
		<-ctx.Done() // the others run until terminated
		return 143, nil
	}})
	e := newEngine(t, srv, testSpec())
	h, err := e.Submit(context.Background(), testJob("logs0001", 2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Cancel(context.Background(), h, "test over") })
	deadline := time.Now().Add(30 * time.Second)
	var st pipeline.Status
	for st.Children[pipeline.StateFailed] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("chunk 0 did not fail within 30s: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
		if st, err = e.Status(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.Failures) != 1 || st.Failures[0].LogStream == "" {
		t.Fatalf("failures %+v: want chunk 0's, with its stream", st.Failures)
	}
	got := e.WorkerLogs(h)
	if want := "CloudWatch Logs group " + batch.DefaultLogGroup + ", streams chunk 0: " + st.Failures[0].LogStream; got != want {
		t.Errorf("WorkerLogs = %q, want %q", got, want)
	}
}

// Chunks that wait for capacity with none running (a compute environment
// that cannot start instances) are reported once, with what to check, and
// the run goes on when capacity arrives.
func TestRunWarnsWhenChunksWaitForCapacity(t *testing.T) {
	scene, _, st := runFixture(t, store.Options{})
	srv := batchtest.Start(t, batchtest.Options{Executor: fakeWorkers(t, st, -1, nil)})
	srv.SetCapacity(0)
	e := newEngine(t, srv, testSpec())
	events := newEventLog()
	var mu sync.Mutex
	var stalled []pipeline.Event
	go func() {
		events.waitFor(t, pipeline.EventStalled)
		srv.SetCapacity(4)
	}()
	res, err := pipelinetest.Render(context.Background(), e, st, pipeline.Request{
		BlendPath: scene, Chunk: 5, PollInterval: 20 * time.Millisecond, StallWarning: 200 * time.Millisecond,
	}, func(ev pipeline.Event) {
		if ev.Kind == pipeline.EventStalled {
			mu.Lock()
			stalled = append(stalled, ev)
			mu.Unlock()
		}
		events.add(ev)
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.FrameCount != 15 {
		t.Errorf("result has %d frames, want 15", res.FrameCount)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stalled) != 1 || !strings.Contains(stalled[0].Message, "compute environments") || stalled[0].Chunks[pipeline.StateRunnable] != 3 {
		t.Fatalf("stall events %+v: want one naming the 3 waiting chunks and what to check", stalled)
	}
}
