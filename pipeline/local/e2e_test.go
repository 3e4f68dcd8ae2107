package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/store"
)

// makeScene saves a tiny Cycles scene with the worker's test script
// (container/testdata/make_scene.py) and the given options.
func makeScene(t *testing.T, opts map[string]any) string {
	t.Helper()
	return testenv.MakeScene(t, opts)
}

// realEngine runs the freshly built framefleet as the worker.
func realEngine(t *testing.T, workers int) *Engine {
	t.Helper()
	testenv.FFmpeg(t)
	e, err := New(Options{
		WorkerCommand: []string{buildFramefleet(t), "worker"},
		Workers:       workers,
		Blender:       testenv.Blender(t),
		LogDir:        t.TempDir(),
		RetryBackoff:  100 * time.Millisecond,
		VersionCache:  "-",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// probe returns the video's decoded frame count and frame rate.
func probe(t *testing.T, path string) (frames int, rate string) {
	t.Helper()
	_, ffprobe := testenv.FFmpeg(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames,r_frame_rate", "-of", "default=nw=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "nb_read_frames":
			frames, _ = strconv.Atoi(v)
		case "r_frame_rate":
			rate = v
		}
	}
	return frames, rate
}

// storedFrames lists the frame numbers a run stored.
func storedFrames(t *testing.T, st store.Store, runID string) []int {
	t.Helper()
	objs, err := st.List(context.Background(), store.FramesPrefix(runID))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, store.FramesPrefix(runID))
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "frame_"), ".png"))
		if err != nil {
			t.Fatalf("unexpected object %s", o.Key)
		}
		out = append(out, n)
	}
	return out
}

func runIDs(t *testing.T, st *store.File) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(st.Root(), "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

func TestRenderEndToEnd(t *testing.T) {
	scene := makeScene(t, map[string]any{"start": 5, "end": 20, "step": 3, "fps": 30, "fps_base": 1.001})
	e := realEngine(t, 2)
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := pipeline.Request{BlendPath: scene, Chunk: 2, Parallelism: 2, Threads: 1,
		PollInterval: 200 * time.Millisecond, PricePerVCPUHour: 0.04}
	var kinds []pipeline.EventKind
	res, err := pipelinetest.Render(context.Background(), e, st, req, func(ev pipeline.Event) { kinds = append(kinds, ev.Kind) })
	if err != nil {
		t.Fatal(err)
	}
	want := []int{5, 8, 11, 14, 17, 20}
	if got := storedFrames(t, st, res.RunID); !slices.Equal(got, want) {
		t.Errorf("stored frames %v, want exactly %v", got, want)
	}
	if res.FrameCount != len(want) || len(res.Frames) != len(want) || res.Cached {
		t.Errorf("result frame_count %d, %d frame links, cached %v; want %d, %d, false", res.FrameCount, len(res.Frames), res.Cached, len(want), len(want))
	}
	if n, rate := probe(t, res.VideoPath); n != len(want) || rate != "30000/1001" {
		t.Errorf("video has %d frames at %s, want %d at 30000/1001", n, rate, len(want))
	}
	if res.FrameRate != "30000/1001" || len(res.Chunks) != 3 {
		t.Errorf("frame_rate %q, %d chunk timings; want 30000/1001 and 3", res.FrameRate, len(res.Chunks))
	}
	if res.VCPUSeconds <= 0 || res.CostUSD != res.VCPUSeconds/3600*0.04 {
		t.Errorf("vcpu_seconds %v cost %v: want positive vCPU time priced at $0.04/vCPU-hour", res.VCPUSeconds, res.CostUSD)
	}
	var m map[string]any
	rc, err := st.Get(context.Background(), store.ManifestKey(res.RunID))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if m["cost_usd"] != res.CostUSD || m["video"] == nil || m["fps"] != res.FPS || m["frame_rate"] != res.FrameRate {
		t.Errorf("manifest cost_usd %v video %v fps %v frame_rate %v: want the cost added, the worker's fields kept, and the result's names and types",
			m["cost_usd"], m["video"], m["fps"], m["frame_rate"])
	}
	for _, k := range []pipeline.EventKind{pipeline.EventPlanned, pipeline.EventSubmitted, pipeline.EventProgress, pipeline.EventSucceeded} {
		if !slices.Contains(kinds, k) {
			t.Errorf("events %v lack %s", kinds, k)
		}
	}

	// The same inputs again: a cache hit, nothing submitted.
	again, err := pipelinetest.Render(context.Background(), e, st, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.RunID != res.RunID || again.VideoPath != res.VideoPath {
		t.Errorf("second run: cached %v run %s, want a cache hit of %s", again.Cached, again.RunID, res.RunID)
	}
	if ids := runIDs(t, st); len(ids) != 1 {
		t.Errorf("runs after a cache hit: %v, want only %s", ids, res.RunID)
	}

	// A different override is a different render.
	other := req
	other.Samples = 2
	if r, err := pipelinetest.Render(context.Background(), e, st, other, nil); err != nil || r.Cached {
		t.Errorf("render with other samples: cached %v, err %v; want a new render", r != nil && r.Cached, err)
	}

	// --force renders again.
	req.Force = true
	forced, err := pipelinetest.Render(context.Background(), e, st, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if forced.Cached || forced.RunID == res.RunID {
		t.Errorf("forced run: cached %v run %s, want a new run", forced.Cached, forced.RunID)
	}
	if ids := runIDs(t, st); len(ids) != 3 {
		t.Errorf("runs %v, want 3", ids)
	}
}

// TestKilledWorkerIsRetriedWithoutRerendering kills -9 a worker's whole
// process group (Blender included) once it stored its first frame, as a Spot
// reclaim would: the attempt is retried, only the missing frames render, and
// the killed worker's work directory does not outlive it.
func TestKilledWorkerIsRetriedWithoutRerendering(t *testing.T) {
	const frames = 12 // a chunk that cannot finish between its first stored frame and the kill
	scene := makeScene(t, map[string]any{"start": 1, "end": frames, "width": 128, "height": 72, "samples": 8})
	e := realEngine(t, 1)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // after the build: the run's and the workers' temp files land here
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := pipeline.Request{BlendPath: scene, Chunk: frames, Parallelism: 1, Threads: 1, PollInterval: 100 * time.Millisecond}
	all := make([]int, frames)
	for i := range all {
		all[i] = i + 1
	}

	var mu sync.Mutex
	var events []pipeline.Event
	var handle pipeline.Handle
	type outcome struct {
		res *pipeline.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := pipelinetest.Render(context.Background(), e, st, req, func(ev pipeline.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
			if ev.Handle != nil {
				handle = *ev.Handle
			}
		})
		done <- outcome{res, err}
	}()

	// Wait for chunk 0's first stored frame, then kill its worker's group.
	runID := waitForFirstFrame(t, st)
	mu.Lock()
	jobID := handle.RenderID // one chunk: a plain job, as on Batch
	mu.Unlock()
	pgid := workerGroup(t, jobID, "1")
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the worker group %d: %v", pgid, err)
	}
	killedAt := time.Now()
	before := storedFrames(t, st, runID)
	if len(before) == frames {
		t.Fatalf("all %d frames were stored before the kill landed: the test needs a longer chunk", frames)
	}
	// Blender runs in a group of its own; the engine sweeps it up once the worker is gone.
	waitFor(t, func() bool { return len(markedProcesses(jobID+"#1")) == 0 })

	var out outcome
	select {
	case out = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("render did not finish")
	}
	if out.err != nil {
		t.Fatal(out.err)
	}
	res := out.res
	if len(res.Chunks) != 1 || res.Chunks[0].Attempt != 2 {
		t.Fatalf("chunk reports %+v: want chunk 0 finished by attempt 2", res.Chunks)
	}
	c := res.Chunks[0]
	// Frames stored before the kill are skipped by the retry, the rest rendered once.
	if !slices.Equal(c.Skipped, before) {
		t.Errorf("attempt 2 skipped %v, want the frames stored before the kill %v", c.Skipped, before)
	}
	if got := slices.Sorted(slices.Values(append(slices.Clone(c.Skipped), c.Rendered...))); !slices.Equal(got, all) {
		t.Errorf("skipped %v + rendered %v is not every frame exactly once", c.Skipped, c.Rendered)
	}
	for _, f := range before {
		fi, err := os.Stat(st.Path(store.FrameKey(runID, f, "png")))
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().After(killedAt) {
			t.Errorf("frame %d was written again after the kill", f)
		}
	}
	if n, _ := probe(t, res.VideoPath); n != frames {
		t.Errorf("video has %d frames, want %d", n, frames)
	}
	// The killed worker's copy of the scene and its frames went with the
	// attempt; the successful run's temp directory went with the run.
	if left, _ := filepath.Glob(filepath.Join(tmp, "framefleet-*")); len(left) != 0 {
		t.Errorf("temp files left behind: %v", left)
	}
	mu.Lock()
	defer mu.Unlock()
	retried := false
	for _, ev := range events {
		if ev.Kind == pipeline.EventChunkRetried && ev.Failure.Index == 0 && strings.Contains(ev.Failure.Reason, "Host local") {
			retried = true
		}
	}
	if !retried {
		t.Error("no chunk_retried event naming the lost worker")
	}
}

// isWorker tells the worker ("framefleet worker render") from the Blender it
// started, which inherits the same environment.
func isWorker(procDir string) bool {
	cmdline, err := os.ReadFile(filepath.Join(procDir, "cmdline"))
	return err == nil && bytes.Contains(cmdline, []byte("\x00worker\x00"))
}

// workerGroup finds the process group of the worker running jobID's given attempt.
func workerGroup(t *testing.T, jobID, attempt string) int {
	t.Helper()
	var pgid int
	waitFor(t, func() bool {
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			env, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			vars := bytes.Split(env, []byte{0})
			if slices.ContainsFunc(vars, func(v []byte) bool { return string(v) == "AWS_BATCH_JOB_ID="+jobID }) &&
				slices.ContainsFunc(vars, func(v []byte) bool { return string(v) == "AWS_BATCH_JOB_ATTEMPT="+attempt }) &&
				isWorker(filepath.Dir(p)) {
				stat, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
				if err != nil {
					continue
				}
				s := string(stat)
				fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
				if len(fields) > 2 {
					pgid, _ = strconv.Atoi(fields[2])
					return pgid > 1
				}
			}
		}
		return false
	})
	return pgid
}

func TestBadInputFailsBeforeAnythingRuns(t *testing.T) {
	scene := makeScene(t, map[string]any{"start": 1, "end": 2})
	notBlend := filepath.Join(t.TempDir(), "notes.blend")
	if err := os.WriteFile(notBlend, []byte("these are my notes, not a scene\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A fake Blender at the process edge, older than the file's 3.x.
	oldBlender := filepath.Join(t.TempDir(), "blender")
	if err := os.WriteFile(oldBlender, []byte("#!/bin/sh\necho 'Blender 2.79 (sub 0)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		blender string
		frames  string
		check   func(error) bool
		mention []string
	}{
		{"not a blend", notBlend, "", "", func(err error) bool {
			var fe *blend.FormatError
			return errors.As(err, &fe) && errors.Is(err, blend.ErrNotBlend)
		}, []string{"notes.blend", "not a .blend"}},
		{"missing file", filepath.Join(t.TempDir(), "missing.blend"), "", "", func(err error) bool {
			return errors.Is(err, os.ErrNotExist)
		}, []string{"missing.blend"}},
		{"bad frames", scene, "", "1-x", func(err error) bool {
			return strings.Contains(err.Error(), "1-100")
		}, []string{"frames"}},
		{"blender too old", scene, oldBlender, "", func(err error) bool {
			var old *pipeline.BlenderTooOldError
			return errors.As(err, &old) && old.Blender == "2.79" && old.File != ""
		}, []string{"2.79", "blender setting", "install Blender"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl := tc.blender
			if bl == "" {
				bl = testenv.Blender(t)
			}
			e, err := New(Options{WorkerCommand: []string{"/bin/false"}, Blender: bl, VersionCache: "-"})
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.NewFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			_, err = pipelinetest.Render(context.Background(), e, st, pipeline.Request{BlendPath: tc.file, Frames: tc.frames}, nil)
			if err == nil || !tc.check(err) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			entries, _ := os.ReadDir(st.Root())
			if len(entries) != 0 {
				t.Errorf("store has %v after a refused input; want nothing written", entries)
			}
			e.mu.Lock()
			n := len(e.runs)
			e.mu.Unlock()
			if n != 0 {
				t.Errorf("%d jobs submitted for a refused input", n)
			}
		})
	}
}

// TestFailedChunkStopsTheRun: a permanent worker failure ends Run with the
// chunk and its reason, and the stitch job never runs.
func TestFailedChunkStopsTheRun(t *testing.T) {
	scene := makeScene(t, map[string]any{"start": 1, "end": 4})
	e := realEngine(t, 1)
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A Blender that cannot start: the worker fails permanently (exit 1).
	req := pipeline.Request{BlendPath: scene, Chunk: 2, PollInterval: 100 * time.Millisecond,
		Env: map[string]string{"FRAMEFLEET_BLENDER": filepath.Join(t.TempDir(), "no-such-blender")}}
	var failedEvents int
	_, err = pipelinetest.Render(context.Background(), e, st, req, func(ev pipeline.Event) {
		if ev.Kind == pipeline.EventChunkFailed {
			failedEvents++
		}
	})
	var rf *pipeline.RunFailedError
	if !errors.As(err, &rf) || len(rf.Failures) == 0 {
		t.Fatalf("err = %v, want a RunFailedError listing the failed chunk", err)
	}
	f := rf.Failures[0]
	if f.Attempts != 1 || f.ExitCode == nil || *f.ExitCode != 1 || !strings.Contains(err.Error(), fmt.Sprintf("chunk %d", f.Index)) {
		t.Errorf("failure %+v: want one attempt ending in exit 1, named in %q", f, err)
	}
	if failedEvents == 0 {
		t.Error("no chunk_failed event")
	}
	if _, err := st.Stat(context.Background(), store.ManifestKey(rf.RunID)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("manifest of the failed run: %v, want none (the stitch job must not run)", err)
	}
}

func TestCancelStopsARender(t *testing.T) {
	scene := makeScene(t, map[string]any{"start": 1, "end": 40, "width": 160, "height": 90, "samples": 16})
	e := realEngine(t, 2)
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var handle pipeline.Handle
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		_, err := pipelinetest.Render(ctx, e, st, pipeline.Request{BlendPath: scene, Chunk: 20, Parallelism: 2, Threads: 1,
			PollInterval: 100 * time.Millisecond}, func(ev pipeline.Event) {
			if ev.Handle != nil {
				mu.Lock()
				handle = *ev.Handle
				mu.Unlock()
			}
		})
		done <- err
	}()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return handle.RenderID != "" })
	markers := []string{handle.RenderID + ":0#1", handle.RenderID + ":1#1"}
	// Wait until Blender itself runs under a worker, then cancel.
	waitFor(t, func() bool { return len(markedProcesses(markers[0])) >= 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	for _, m := range markers {
		if pids := markedProcesses(m); len(pids) != 0 {
			t.Errorf("processes %v of attempt %s survived the cancel", pids, m)
		}
	}
	st2, err := e.Status(context.Background(), handle)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Render != pipeline.StateFailed || st2.Stitch != pipeline.StateFailed {
		t.Errorf("after cancel render %s stitch %s, want FAILED", st2.Render, st2.Stitch)
	}
}

// markedProcesses lists live processes (workers, Blender, FFmpeg) of one
// attempt, by the marker the engine puts in their environment.
func markedProcesses(marker string) []int {
	var out []int
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range envs {
		env, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if !slices.Contains(strings.Split(string(env), "\x00"), markerVar+"="+marker) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// waitForFirstFrame waits until the store's only run has a stored frame and
// returns that run's id.
func waitForFirstFrame(t *testing.T, st *store.File) string {
	t.Helper()
	var runID string
	waitFor(t, func() bool {
		ids := runIDs(t, st)
		if len(ids) == 0 {
			return false
		}
		runID = ids[0]
		return len(storedFrames(t, st, runID)) > 0
	})
	return runID
}
