package local

import (
	"bytes"
	"context"
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
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// taggedProcesses lists live processes of a local-engine attempt (they carry
// markerVar) whose environment also holds tag.
func taggedProcesses(tag string) []int {
	var out []int
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range envs {
		env, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		if !slices.Contains(vars, tag) || !slices.ContainsFunc(vars, func(v string) bool { return strings.HasPrefix(v, markerVar+"=") }) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// A `framefleet render` that dies (kill -9) or whose terminal closes
// (SIGHUP) takes its workers and their Blenders with it.
func TestDeadRenderStopsItsWorkers(t *testing.T) {
	bin := buildFramefleet(t)
	// Far more frames than a worker renders in the seconds it gets to stop.
	const frames = 300
	scene := makeScene(t, map[string]any{"start": 1, "end": frames, "width": 96, "height": 54, "samples": 16})
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			tag := fmt.Sprintf("FRAMEFLEET_TEST_TAG=%s-%d", t.Name(), time.Now().UnixNano())
			t.Cleanup(func() { // a failed test leaves nothing running either
				for _, pid := range taggedProcesses(tag) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			tmp, out := t.TempDir(), t.TempDir()
			cmd := exec.Command(bin, "render", scene, "--out", out, "--workers", "1", "--chunk", strconv.Itoa(frames))
			cmd.Env = append(os.Environ(), tag, "TMPDIR="+tmp)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Wait for the worker and its Blender.
			deadline := time.Now().Add(time.Minute)
			for len(taggedProcesses(tag)) < 2 {
				select {
				case err := <-exited:
					t.Fatalf("render ended before its worker started Blender: %v\n%s", err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no worker with Blender within a minute\n%s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if sig == syscall.SIGHUP && (!errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signaled()) {
					t.Errorf("after SIGHUP render ended with %v, want it to stop its run and exit non-zero\n%s", err, stderr.String())
				}
			case <-time.After(time.Minute):
				t.Fatal("render did not end")
			}
			// The workers store what they finished, then stop.
			stopBy := time.Now().Add(15 * time.Second)
			for {
				left := taggedProcesses(tag)
				if len(left) == 0 {
					break
				}
				if time.Now().After(stopBy) {
					t.Fatalf("processes %v of the run still run 15 s after framefleet ended", left)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// They were stopped, not left to finish the chunk.
			st, err := store.NewFile(out)
			if err != nil {
				t.Fatal(err)
			}
			ids := runIDs(t, st)
			if len(ids) != 1 {
				t.Fatalf("runs %v in the store, want one", ids)
			}
			if n := len(storedFrames(t, st, ids[0])); n == frames {
				t.Errorf("the worker rendered all %d frames after framefleet ended: nothing stopped it", n)
			} else {
				t.Logf("%d of %d frames stored before the workers stopped", n, frames)
			}
		})
	}
}

// Blender killed on its own (the OOM killer) fails the attempt transiently:
// the chunk is retried, resumes from the stored frames, and the video is made.
func TestKilledBlenderIsRetried(t *testing.T) {
	const frames = 12
	scene := makeScene(t, map[string]any{"start": 1, "end": frames, "width": 128, "height": 72, "samples": 8})
	e := realEngine(t, 1)
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := pipeline.Request{BlendPath: scene, Chunk: frames, Parallelism: 1, Threads: 1, PollInterval: 100 * time.Millisecond}
	var mu sync.Mutex
	var handle pipeline.Handle
	var retried []pipeline.ChildFailure
	type outcome struct {
		res *pipeline.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := pipelinetest.Render(context.Background(), e, st, req, func(ev pipeline.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Handle != nil {
				handle = *ev.Handle
			}
			if ev.Kind == pipeline.EventChunkRetried && ev.Failure != nil {
				retried = append(retried, *ev.Failure)
			}
		})
		done <- outcome{res, err}
	}()
	runID := waitForFirstFrame(t, st)
	mu.Lock()
	marker := handle.RenderID + "#1"
	mu.Unlock()
	var blender []int
	for _, pid := range markedProcesses(marker) {
		if !isWorker(fmt.Sprintf("/proc/%d", pid)) {
			blender = append(blender, pid)
		}
	}
	if len(blender) == 0 {
		t.Fatalf("no Blender under attempt %s to kill", marker)
	}
	for _, pid := range blender {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 Blender %d: %v", pid, err)
		}
	}
	if before := storedFrames(t, st, runID); len(before) == frames {
		t.Fatalf("all %d frames were stored before the kill landed: the test needs a longer chunk", frames)
	}
	var out outcome
	select {
	case out = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("render did not finish")
	}
	if out.err != nil {
		t.Fatalf("render failed after Blender was killed: %v", out.err)
	}
	if len(out.res.Chunks) != 1 || out.res.Chunks[0].Attempt != 2 {
		t.Errorf("chunk reports %+v: want chunk 0 finished by attempt 2", out.res.Chunks)
	}
	if n, _ := probe(t, out.res.VideoPath); n != frames {
		t.Errorf("video has %d frames, want %d", n, frames)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(retried) != 1 || retried[0].ExitCode == nil || *retried[0].ExitCode != pipeline.ExitTransient {
		t.Errorf("retries %+v: want one, after the worker's transient exit %d", retried, pipeline.ExitTransient)
	}
}

// The failure reason ends with the worker's own one-line error, not with
// Blender's progress lines.
func TestFailureReasonIsTheWorkersError(t *testing.T) {
	scene := makeScene(t, map[string]any{"start": 1, "end": 2})
	e := realEngine(t, 1)
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A Blender at the process edge that fails after a screenful of progress.
	fake := filepath.Join(t.TempDir(), "blender")
	script := "#!/bin/sh\necho 'Error: Not enough memory for the BVH'\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo \"Fra:1 Mem:900M (Peak 900M) | Time:00:01.$i | Sample $i/64\"; done\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	req := pipeline.Request{BlendPath: scene, Chunk: 2, PollInterval: 100 * time.Millisecond,
		Env: map[string]string{"FRAMEFLEET_BLENDER": fake}}
	_, err = pipelinetest.Render(context.Background(), e, st, req, nil)
	var rf *pipeline.RunFailedError
	if !errors.As(err, &rf) || len(rf.Failures) != 1 {
		t.Fatalf("err = %v, want one failed chunk", err)
	}
	r := rf.Failures[0].Reason
	// The reason is the end of the worker's stderr, then where its log is.
	tail, _, _ := strings.Cut(r, " (worker log: ")
	last := tail[strings.LastIndex(tail, " | ")+1:]
	if !strings.Contains(last, "framefleet: blender failed rendering frames 1,2") || !strings.Contains(last, "Not enough memory") {
		t.Errorf("reason %q ends with %q: want the worker's one-line error with Blender's error line", r, last)
	}
	if strings.Contains(r, "Fra:") {
		t.Errorf("reason %q has Blender's progress lines", r)
	}
}
