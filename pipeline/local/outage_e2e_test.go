package local

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// The S3 server refuses connections once before anything is submitted and
// once mid-render, the second time for longer than three immediate attempts
// of a chunk would last: the client rides both out under one budget, the
// chunks' retries back off past the outage, and the run completes.
func TestRunRidesOutStoreOutages(t *testing.T) {
	testenv.FFmpeg(t)
	const frames = 8
	scene := makeScene(t, map[string]any{"start": 1, "end": frames, "width": 64, "height": 36})
	srv := s3test.Start(t)
	ctx := context.Background()
	// Each S3 call gives up fast, so only the run's own retrying can ride the outages out.
	st, err := store.NewS3(ctx, srv.Bucket, "outage", store.Options{Region: srv.Region, Endpoint: srv.Endpoint,
		UsePathStyle: true, Credentials: srv.Credentials(), MaxAttempts: 2, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const backoff = 10 * time.Second
	e := realEngine(t, 1)
	e.RetryBackoff = backoff
	env := maps.Clone(srv.WorkerEnv())
	env["FRAMEFLEET_S3_MAX_ATTEMPTS"] = "2"
	req := pipeline.Request{BlendPath: scene, Chunk: 2, Parallelism: 1, Threads: 1, Env: env,
		PollInterval: 100 * time.Millisecond, StoreOutageBudget: 2 * time.Minute}

	events := make(chan pipeline.Event, 10000)
	type outcome struct {
		res *pipeline.Result
		err error
	}
	done := make(chan outcome, 1)
	srv.Down() // before the first byte
	go func() {
		res, err := pipelinetest.Render(ctx, e, st, req, func(ev pipeline.Event) { events <- ev })
		done <- outcome{res, err}
	}()
	time.Sleep(3 * time.Second) // far beyond two quick tries of each call
	srv.Up()

	var down time.Time
	var firstFailure time.Duration
	failures := map[int]int{}
	var out outcome
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case ev := <-events:
			switch ev.Kind {
			case pipeline.EventFirstFrame:
				srv.Down()
				down = time.Now()
				t.Log("store down after the first frame")
			case pipeline.EventChunkRetried:
				failures[ev.Failure.Index]++
				if firstFailure == 0 {
					firstFailure = time.Since(down)
					if firstFailure*2 >= backoff*3-2*time.Second {
						t.Fatalf("a failing attempt took %s: too long for this test's %s backoff", firstFailure, backoff)
					}
				}
			case pipeline.EventChunkFailed:
				t.Errorf("chunk %d failed for good: %s", ev.Failure.Index, ev.Failure.Reason)
			}
		case <-tick.C:
			if srv.IsDown() && firstFailure > 0 && time.Since(down) >= 3*firstFailure+time.Second && maxCount(failures) >= 2 {
				t.Logf("store up after %s: an attempt failed in %s, chunks failed %v times", time.Since(down).Round(time.Millisecond), firstFailure, failures)
				srv.Up()
			}
		case out = <-done:
			break wait
		case <-time.After(5 * time.Minute):
			t.Fatal("the run did not end within 5 minutes")
		}
	}
	if out.err != nil {
		t.Fatalf("run failed: %v", out.err)
	}
	if down.IsZero() || firstFailure == 0 {
		t.Fatal("the mid-render outage never made an attempt fail: the test tested nothing")
	}
	if out.res.FrameCount != frames {
		t.Errorf("video of %d frames, want %d", out.res.FrameCount, frames)
	}
}

func maxCount(m map[int]int) int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
}
