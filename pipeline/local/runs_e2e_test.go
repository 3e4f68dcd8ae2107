package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// The test binary doubles as a framefleet process hosting a run: with
// hostEnv set, hostMain renders the JSON request in it through pipeline.Runs
// on a local engine and prints each event as a JSON line.
const (
	hostEnv     = "FRAMEFLEET_TEST_HOST"         // the store directory
	hostReqEnv  = "FRAMEFLEET_TEST_HOST_REQUEST" // the pipeline.Request, JSON
	hostWorker  = "FRAMEFLEET_TEST_HOST_WORKER"  // the framefleet binary the workers run
	hostBlender = "FRAMEFLEET_TEST_HOST_BLENDER"
	// testLeaseTTL is long: a killed host's run is taken over because its
	// process is gone (same machine), never because its lease lapsed.
	testLeaseTTL = time.Hour
)

func hostMain() int {
	st, err := store.NewFile(os.Getenv(hostEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var req pipeline.Request
	if err := json.Unmarshal([]byte(os.Getenv(hostReqEnv)), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	runs := testRuns(st, os.Getenv(hostWorker), os.Getenv(hostBlender))
	enc := json.NewEncoder(os.Stdout)
	var mu sync.Mutex
	_, err = runs.Render(context.Background(), req, func(ev pipeline.Event) {
		mu.Lock()
		defer mu.Unlock()
		ev.Record = nil
		_ = enc.Encode(ev)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		return 3
	}
	return 0
}

// testRuns is the Runs every test process uses: a real local engine with
// quick retries and a long host lease.
func testRuns(st store.Store, worker, blender string) *pipeline.Runs {
	return &pipeline.Runs{
		Store: st, EngineName: Name, LeaseTTL: testLeaseTTL,
		Engine: func(ctx context.Context, name string) (pipeline.Engine, error) {
			return New(Options{WorkerCommand: []string{worker, "worker"}, Workers: 1, Blender: blender,
				VersionCache: "-", RetryBackoff: 100 * time.Millisecond})
		},
	}
}

// hostProcess is a running hostMain.
type hostProcess struct {
	cmd    *exec.Cmd
	events chan pipeline.Event
	stderr *strings.Builder
	exited chan error
}

func startHost(t *testing.T, dir string, req pipeline.Request, tag string) *hostProcess {
	t.Helper()
	reqJSON, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hostEnv+"="+dir, hostReqEnv+"="+string(reqJSON),
		hostWorker+"="+buildFramefleet(t), hostBlender+"="+testenv.Blender(t), tag)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &hostProcess{cmd: cmd, events: make(chan pipeline.Event, 10000), stderr: &strings.Builder{}, exited: make(chan error, 1)}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev pipeline.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				h.events <- ev
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		h.exited <- cmd.Wait()
		close(h.events)
	}()
	return h
}

// waitEvent returns the first event of kind (draining the others).
func (h *hostProcess) waitEvent(t *testing.T, kind pipeline.EventKind) pipeline.Event {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-h.events:
			if !ok {
				t.Fatalf("host ended before a %s event: %s", kind, h.stderr)
			}
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 2 minutes", kind)
		}
	}
}

func (h *hostProcess) wait(t *testing.T) error {
	t.Helper()
	for range h.events {
	}
	select {
	case err := <-h.exited:
		return err
	case <-time.After(3 * time.Minute):
		t.Fatal("host did not end")
		return nil
	}
}

// waitFrames waits until at least n frames of the run are stored.
func waitFrames(t *testing.T, st store.Store, runID string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if got := storedFrames(t, st, runID); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d frames stored within 2 minutes", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A render whose process is killed (SIGKILL) is interrupted: watching it from
// another process resumes the same run id, the frames stored before the kill
// are skipped (the chunk reports say so), and the video has every frame.
func TestKilledRunResumesUnderTheSameID(t *testing.T) {
	testenv.FFmpeg(t)
	const frames = 16
	scene := makeScene(t, map[string]any{"start": 1, "end": frames, "width": 64, "height": 36, "samples": 4})
	dir := t.TempDir()
	st, err := store.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	req := pipeline.Request{BlendPath: scene, Chunk: 4, Parallelism: 1, Threads: 1, PollInterval: 100 * time.Millisecond}
	host := startHost(t, dir, req, "FRAMEFLEET_TEST_TAG=resume")
	id := host.waitEvent(t, pipeline.EventSubmitted).RunID
	before := waitFrames(t, st, id, 5)
	if err := host.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = host.wait(t)
	// Its workers got SIGTERM and store what they finished; the resume
	// waits for them too (awaitLeftovers).
	for deadline := time.Now().Add(time.Minute); len(leftoverWorkers(id)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed host's workers %v are still running", leftoverWorkers(id))
		}
	}
	before = storedFrames(t, st, id) // what survived the kill, uploads included
	if len(before) == frames {
		t.Fatalf("all %d frames were stored before the kill: nothing left to resume", frames)
	}

	runs := testRuns(st, buildFramefleet(t), testenv.Blender(t))
	ctx := context.Background()
	// At once, an hour before its host's lease would lapse: the host ran on
	// this machine and its process is gone.
	if rec, err := runs.Get(ctx, id[:4]); err != nil || rec.State != pipeline.RunInterrupted {
		t.Fatalf("killed run: %+v, %v; want interrupted", rec, err)
	}
	var kinds []pipeline.EventKind
	res, err := runs.Watch(ctx, id, func(ev pipeline.Event) { kinds = append(kinds, ev.Kind) })
	if err != nil {
		t.Fatal(err)
	}
	if res.RunID != id || res.FrameCount != frames {
		t.Fatalf("result run %s with %d frames, want run %s with %d", res.RunID, res.FrameCount, id, frames)
	}
	if !slices.Contains(kinds, pipeline.EventResumed) || !slices.Contains(kinds, pipeline.EventSucceeded) {
		t.Errorf("events %v, want resumed ... succeeded", kinds)
	}
	var skipped, rendered []int
	for _, c := range res.Chunks {
		skipped = append(skipped, c.Skipped...)
		rendered = append(rendered, c.Rendered...)
	}
	sort.Ints(skipped)
	sort.Ints(rendered)
	if !slices.Equal(skipped, before) {
		t.Errorf("chunk reports skipped %v, want exactly the frames stored before the kill %v", skipped, before)
	}
	if len(skipped)+len(rendered) != frames {
		t.Errorf("skipped %v + rendered %v do not make the %d frames", skipped, rendered, frames)
	}
	if n, _ := probe(t, res.VideoPath); n != frames {
		t.Errorf("video has %d frames, want %d", n, frames)
	}
	rec, err := runs.Get(ctx, id)
	if err != nil || rec.State != pipeline.RunSucceeded || rec.Submissions != 2 {
		t.Fatalf("record %+v, %v: want succeeded after 2 submissions", rec, err)
	}
	if res.VCPUSeconds <= rec.PriorVCPUSeconds {
		t.Errorf("cost %.1f vCPU-s does not add the resumed attempts to the %.1f before the kill", res.VCPUSeconds, rec.PriorVCPUSeconds)
	}
	page, err := runs.List(ctx, pipeline.ListFilter{})
	if err != nil || len(page.Runs) != 1 {
		t.Errorf("runs %+v, %v: want the one run", page.Runs, err)
	}
	t.Logf("%d frames stored before the kill, %d rendered after", len(before), len(rendered))
}

// Two identical renders started together, in two processes or two
// goroutines, make one run; a cancel from another process stops it and both
// report the cancel.
func TestIdenticalRendersMakeOneRun(t *testing.T) {
	testenv.FFmpeg(t)
	scene := makeScene(t, map[string]any{"start": 1, "end": 6, "width": 64, "height": 36})
	req := pipeline.Request{BlendPath: scene, Chunk: 3, Parallelism: 1, Threads: 1, PollInterval: 100 * time.Millisecond}

	t.Run("processes", func(t *testing.T) {
		dir := t.TempDir()
		a, b := startHost(t, dir, req, "FRAMEFLEET_TEST_TAG=a"), startHost(t, dir, req, "FRAMEFLEET_TEST_TAG=b")
		ids := map[string]bool{}
		for _, h := range []*hostProcess{a, b} {
			var last pipeline.Event
			for ev := range h.events {
				last = ev
				ids[ev.RunID] = true
			}
			if err := h.wait(t); err != nil || last.Kind != pipeline.EventSucceeded {
				t.Errorf("host ended with %v after %s: %s", err, last.Kind, h.stderr)
			}
		}
		st, _ := store.NewFile(dir)
		if runs := runIDs(t, st); len(runs) != 1 || len(ids) != 1 {
			t.Errorf("runs %v (events named %v), want one", runs, ids)
		}
	})
	t.Run("goroutines", func(t *testing.T) {
		st, err := store.NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]*pipeline.Result, 3)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Separate Runs, as separate front-ends in one process would be.
				res, err := testRuns(st, buildFramefleet(t), testenv.Blender(t)).Render(context.Background(), req, nil)
				if err != nil {
					t.Error(err)
				}
				results[i] = res
			}()
		}
		wg.Wait()
		if runs := runIDs(t, st); len(runs) != 1 {
			t.Fatalf("runs %v, want one", runs)
		}
		for _, r := range results {
			if r == nil || r.FrameCount != 6 {
				t.Errorf("result %+v, want the run's 6 frames", r)
			}
		}
	})
	t.Run("cancel from another process", func(t *testing.T) {
		dir := t.TempDir()
		slow := req
		slow.Frames = "1-6"
		slow.Samples = 64 // a different render, and slow enough to cancel
		host := startHost(t, dir, slow, "FRAMEFLEET_TEST_TAG=cancel")
		id := host.waitEvent(t, pipeline.EventSubmitted).RunID
		st, _ := store.NewFile(dir)
		waitFrames(t, st, id, 1)
		runs := testRuns(st, buildFramefleet(t), testenv.Blender(t))
		rec, err := runs.Cancel(context.Background(), id, "stopped by the test")
		if err != nil || rec.State != pipeline.RunCancelled {
			t.Fatalf("cancel: %+v, %v", rec, err)
		}
		ev := host.waitEvent(t, pipeline.EventCancelled)
		if ev.Message != "stopped by the test" {
			t.Errorf("cancel event says %q", ev.Message)
		}
		err = host.wait(t)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(host.stderr.String(), "cancelled") {
			t.Errorf("host ended with %v, want a cancelled render: %s", err, host.stderr)
		}
		if left := taggedProcesses("FRAMEFLEET_TEST_TAG=cancel"); len(left) > 0 {
			t.Errorf("processes %v still run after the cancel", left)
		}
		_, err = runs.Watch(context.Background(), id, nil)
		var ce *pipeline.RunCancelledError
		if !errors.As(err, &ce) || ce.Reason != "stopped by the test" {
			t.Errorf("watching the cancelled run: %v", err)
		}
	})
}

// A watcher hosting a local run that stops (its context ends: Ctrl-C) stops
// the workers and leaves the run interrupted with its lease released: the
// next Watch resumes it at once, under the same id.
func TestStoppedHostLeavesTheRunInterrupted(t *testing.T) {
	testenv.FFmpeg(t)
	scene := makeScene(t, map[string]any{"start": 1, "end": 8, "width": 64, "height": 36, "samples": 4})
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := pipeline.Request{BlendPath: scene, Chunk: 2, Parallelism: 1, Threads: 1, PollInterval: 100 * time.Millisecond}
	first := testRuns(st, buildFramefleet(t), testenv.Blender(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	var id string
	_, err = first.Render(ctx, req, func(ev pipeline.Event) {
		if ev.Kind == pipeline.EventFirstFrame {
			id = ev.RunID
			once.Do(cancel)
		}
	})
	if !errors.Is(err, context.Canceled) || id == "" {
		t.Fatalf("render ended with %v (run %q), want the cancelled context", err, id)
	}
	rec, err := first.Get(context.Background(), id)
	if err != nil || rec.State != pipeline.RunInterrupted {
		t.Fatalf("record %+v, %v: want interrupted", rec, err)
	}
	second := testRuns(st, buildFramefleet(t), testenv.Blender(t))
	second.LeaseTTL = time.Hour // resumes because the lease was released, not because it lapsed
	res, err := second.Watch(context.Background(), id, nil)
	if err != nil || res.FrameCount != 8 {
		t.Fatalf("watch: %+v, %v", res, err)
	}
	if rec, err := second.Get(context.Background(), id); err != nil || rec.Submissions != 2 || rec.Progress.VCPUSeconds <= 0 {
		t.Errorf("record %+v, %v: want 2 submissions and the cost so far", rec, err)
	}
}
