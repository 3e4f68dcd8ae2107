package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/logstest"
	"github.com/framefleet/framefleet/internal/testenv"
)

// These tests run the built binary as separate processes, as a person (or
// a CI job, or a bot) would: a render killed with SIGKILL and started again,
// detached Batch runs followed from new processes, a cancel from another
// process, and identical renders started together.

// startFF starts framefleet in the background; the test's end kills it.
func startFF(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(framefleetBinary(t), args...)
	cmd.Env = env
	return startProc(t, cmd, 0)
}

// ff runs framefleet to its end; a failure fails the test.
func ff(t *testing.T, env []string, args ...string) string {
	t.Helper()
	p := startFF(t, env, args...)
	if err := p.wait(t, 5*time.Minute); err != nil {
		t.Fatalf("framefleet %s: %v\nstderr:\n%s", strings.Join(args, " "), err, p.stderr.String())
	}
	return p.stdout.String()
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not the JSON expected: %v\n%s", err, s)
	}
	return v
}

// eventually polls cond until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type cliResult struct {
	RunID      string `json:"run_id"`
	Video      string `json:"video"`
	VideoPath  string `json:"video_path"`
	FrameCount int    `json:"frame_count"`
	Chunks     []struct {
		Index    int   `json:"index"`
		Rendered []int `json:"rendered"`
		Skipped  []int `json:"skipped"`
	} `json:"chunks"`
}

type cliRecord struct {
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Labels    map[string]string `json:"labels"`
	RawHandle struct {
		RenderID string `json:"render_job_id"`
		StitchID string `json:"stitch_job_id"`
	} `json:"handle"`
	Progress struct {
		FramesDone int `json:"frames_done"`
	} `json:"progress"`
	Failure *struct {
		CancelReason string `json:"cancel_reason"`
	} `json:"failure"`
}

func localEnv(t *testing.T) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}
}

// videoFrames counts the frames of a video with ffprobe.
func videoFrames(t *testing.T, path string) int {
	t.Helper()
	_, ffprobe := testenv.FFmpeg(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("ffprobe said %q", out)
	}
	return n
}

// TestRenderKilledThenAgainResumes: `framefleet render` killed with SIGKILL
// mid-run, then the same command again: the same run finishes, the frames
// stored before the kill are skipped, and the video has every frame.
func TestRenderKilledThenAgainResumes(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	scene := filepath.Join(testenv.RepoRoot(), "examples", "demo.blend")
	out := filepath.Join(t.TempDir(), "renders")
	env := localEnv(t)
	args := []string{"render", scene, "--out", out, "--frames", "1-16", "--chunk", "4", "--workers", "1", "--resolution", "10", "--samples", "1"}

	first := startFF(t, env, args...)
	var before []string
	eventually(t, 3*time.Minute, "4 stored frames", func() bool {
		before, _ = filepath.Glob(filepath.Join(out, "runs", "*", "frames", "*.png"))
		return len(before) >= 4
	})
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL: no clean-up at all
		t.Fatal(err)
	}
	<-first.done
	time.Sleep(500 * time.Millisecond) // its workers die with it (parent-death signal)
	before, _ = filepath.Glob(filepath.Join(out, "runs", "*", "frames", "*.png"))
	if len(before) >= 16 {
		t.Fatalf("the first render stored all %d frames before it was killed: nothing left to resume", len(before))
	}
	runID := filepath.Base(filepath.Dir(filepath.Dir(before[0])))
	// The killed process ran on this machine and is gone: its run is
	// interrupted at once, long before its lease would lapse, so the next
	// render resumes it without waiting.
	st := decodeJSON[struct {
		Run cliRecord `json:"run"`
	}](t, ff(t, env, "status", runID, "--out", out, "--json"))
	if st.Run.State != "interrupted" {
		t.Fatalf("killed run %s is %q, want interrupted", runID, st.Run.State)
	}

	res := decodeJSON[cliResult](t, ff(t, env, append(args, "--json")...))
	if res.RunID != runID {
		t.Fatalf("second render finished run %s, want the killed run %s", res.RunID, runID)
	}
	skipped := map[int]bool{}
	for _, c := range res.Chunks {
		for _, f := range c.Skipped {
			skipped[f] = true
		}
	}
	for _, path := range before {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "frame_"), ".png"))
		if err != nil {
			t.Fatal(err)
		}
		if !skipped[n] {
			t.Errorf("frame %d was stored before the kill but the chunk reports do not show it skipped: %+v", n, res.Chunks)
		}
	}
	if res.FrameCount != 16 || videoFrames(t, res.VideoPath) != 16 {
		t.Errorf("result has %d frames and the video %d, want 16", res.FrameCount, videoFrames(t, res.VideoPath))
	}
	if recs, _ := filepath.Glob(filepath.Join(out, "runs", "*", "run.json")); len(recs) != 1 {
		t.Errorf("%d run records, want the one resumed run", len(recs))
	}
}

// TestIdenticalRendersTogetherMakeOneRun (local engine).
func TestIdenticalRendersTogetherMakeOneRun(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	scene := filepath.Join(testenv.RepoRoot(), "examples", "demo.blend")
	out := filepath.Join(t.TempDir(), "renders")
	env := localEnv(t)
	args := []string{"render", scene, "--out", out, "--frames", "1-4", "--workers", "1", "--resolution", "10", "--samples", "1", "--json"}
	a, b := startFF(t, env, args...), startFF(t, env, args...)
	for _, p := range []*proc{a, b} {
		if err := p.wait(t, 5*time.Minute); err != nil {
			t.Fatalf("render: %v\n%s", err, p.stderr.String())
		}
	}
	ra, rb := decodeJSON[cliResult](t, a.stdout.String()), decodeJSON[cliResult](t, b.stdout.String())
	if ra.RunID != rb.RunID || ra.FrameCount != 4 || rb.FrameCount != 4 {
		t.Errorf("runs %s (%d frames) and %s (%d frames): want one run of 4 frames", ra.RunID, ra.FrameCount, rb.RunID, rb.FrameCount)
	}
	if recs, _ := filepath.Glob(filepath.Join(out, "runs", "*", "run.json")); len(recs) != 1 {
		t.Errorf("%d run records, want 1", len(recs))
	}
}

// TestBatchDetachedRun: `render --detach`, then `runs`, `status` and
// `watch` from new processes through to the video; a `watch` killed and
// started again picks the run up without submitting it again.
func TestBatchDetachedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	rig := startBatchRig(t, batchRigOptions{prefix: "cli", env: []string{"FRAMEFLEET_ENGINE=batch"}}) // no capacity yet: the run waits in RUNNABLE
	scene := testenv.MakeScene(t, map[string]any{"start": 1, "end": 4})
	rec := decodeJSON[cliRecord](t, ff(t, rig.env, "render", scene, "--chunk", "2", "--resolution", "50", "--samples", "1",
		"--detach", "--label", "ticket=PRJ-7", "--poll", "500ms", "--json"))
	if rec.ID == "" || rec.RawHandle.RenderID == "" || rec.State != "submitted" {
		t.Fatalf("detached render returned %+v: want a submitted run with its jobs", rec)
	}
	if subs := rig.srv.Submissions(); len(subs) != 2 {
		t.Fatalf("%d submissions, want the render array and the stitch job", len(subs))
	}

	listed := decodeJSON[struct {
		Runs []cliRecord `json:"runs"`
	}](t, ff(t, rig.env, "runs", "--label", "ticket=PRJ-7", "--json"))
	if len(listed.Runs) != 1 || listed.Runs[0].ID != rec.ID {
		t.Fatalf("runs --label ticket=PRJ-7 listed %+v, want run %s", listed.Runs, rec.ID)
	}
	table := ff(t, rig.env, "runs")
	if !strings.Contains(table, rec.ID) || !strings.Contains(table, "ticket=PRJ-7") {
		t.Errorf("runs table lacks the run:\n%s", table)
	}
	if st := rig.status(t, rec.ID[:4]); st.ID != rec.ID || st.State != "submitted" {
		t.Errorf("status of prefix %s: %+v, want run %s submitted", rec.ID[:4], st, rec.ID)
	}

	// A first watcher follows the run until a chunk is done, and is killed.
	rig.srv.SetCapacity(1)
	w1 := startFF(t, rig.env, "watch", rec.ID)
	eventually(t, 3*time.Minute, "the watcher to record progress", func() bool {
		return rig.status(t, rec.ID).Progress.FramesDone >= 2
	})
	_ = w1.cmd.Process.Kill()
	<-w1.done
	rig.srv.SetCapacity(2)

	// A new watcher picks it up and follows it to the video.
	res := decodeJSON[cliResult](t, ff(t, rig.env, "watch", rec.ID, "--json"))
	if res.RunID != rec.ID || res.FrameCount != 4 || !strings.HasPrefix(res.Video, "http") {
		t.Errorf("watch result %+v: want run %s's 4 frames and a video link", res, rec.ID)
	}
	if subs := rig.srv.Submissions(); len(subs) != 2 {
		t.Errorf("%d submissions after the watchers, want the first 2 only", len(subs))
	}
	if st := rig.status(t, rec.ID); st.State != "succeeded" {
		t.Errorf("record state %s, want succeeded", st.State)
	}
	human := ff(t, rig.env, "status", rec.ID)
	for _, want := range []string{"succeeded", "video", "http", "cost"} {
		if !strings.Contains(human, want) {
			t.Errorf("status table lacks %q:\n%s", want, human)
		}
	}

	// Identical renders started together make one run (this one cached).
	t.Run("identical renders together", func(t *testing.T) {
		args := []string{"render", scene, "--frames", "1-2", "--resolution", "50", "--samples", "1", "--poll", "500ms", "--json"}
		a, b := startFF(t, rig.env, args...), startFF(t, rig.env, args...)
		for _, p := range []*proc{a, b} {
			if err := p.wait(t, 5*time.Minute); err != nil {
				t.Fatalf("render: %v\n%s", err, p.stderr.String())
			}
		}
		ra, rb := decodeJSON[cliResult](t, a.stdout.String()), decodeJSON[cliResult](t, b.stdout.String())
		if ra.RunID != rb.RunID || ra.FrameCount != 2 {
			t.Errorf("runs %s and %s (%d frames): want one run of 2 frames", ra.RunID, rb.RunID, ra.FrameCount)
		}
		if subs := rig.srv.Submissions(); len(subs) != 4 {
			t.Errorf("%d submissions, want 4: one render job and one stitch job more for both commands", len(subs))
		}
	})
}

// TestBatchCancelWhileWatched: `cancel` from another process while `watch`
// runs: both jobs are terminated, watch reports the cancel, and the record
// says cancelled.
func TestBatchCancelWhileWatched(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	rig := startBatchRig(t, batchRigOptions{prefix: "cli", env: []string{"FRAMEFLEET_ENGINE=batch"}})
	scene := testenv.MakeScene(t, map[string]any{"start": 1, "end": 4})
	rec := decodeJSON[cliRecord](t, ff(t, rig.env, "render", scene, "--chunk", "2", "--detach", "--poll", "500ms", "--json"))
	w := startFF(t, rig.env, "watch", rec.ID)
	eventually(t, time.Minute, "the watcher to start", func() bool { return strings.Contains(w.stderr.String(), "progress") })

	out := ff(t, rig.env, "cancel", rec.ID, "--reason", "wrong camera")
	if !strings.Contains(out, rec.ID) || !strings.Contains(out, "wrong camera") {
		t.Errorf("cancel printed %q", out)
	}
	err := w.wait(t, 2*time.Minute)
	if err == nil {
		t.Fatalf("watch exited 0 after a cancel:\n%s", w.stderr.String())
	}
	if !strings.Contains(w.stderr.String(), "cancelled") || !strings.Contains(w.stderr.String(), "wrong camera") {
		t.Errorf("watch did not report the cancel:\n%s", w.stderr.String())
	}
	for _, id := range []string{rec.RawHandle.RenderID, rec.RawHandle.StitchID} {
		eventually(t, time.Minute, "job "+id+" to end", func() bool {
			s, _, _ := rig.srv.JobStatus(id)
			return s == "FAILED"
		})
	}
	st := rig.status(t, rec.ID)
	if st.State != "cancelled" || st.Failure == nil || st.Failure.CancelReason != "wrong camera" {
		t.Errorf("record %+v: want cancelled for \"wrong camera\"", st)
	}
	again := startFF(t, rig.env, "cancel", rec.ID)
	if err := again.wait(t, time.Minute); err == nil || !strings.Contains(again.stderr.String(), "already cancelled") {
		t.Errorf("second cancel: %v %q, want it refused as already cancelled", err, again.stderr.String())
	}
}

// TestBatchLogsOfAFailedChunk: `framefleet logs` shows a failed Batch
// attempt's CloudWatch Logs stream (read from the CloudWatch Logs test
// server) beside the stored Blender log, and `status` names the stream.
func TestBatchLogsOfAFailedChunk(t *testing.T) {
	// The "container" of chunk 1 fails before it could store anything, as an
	// image that cannot reach the store does; chunk 0 and stitch succeed.
	rig := startBatchRig(t, batchRigOptions{capacity: 2, prefix: "cli", env: []string{"FRAMEFLEET_ENGINE=batch"},
		exec: func(ctx context.Context, j batchtest.ExecJob) (int, error) {
			if j.ArrayIndex == 1 {
				return 1, nil
			}
			return 0, nil
		}})
	logs := logstest.Start(t)
	rig.env = append(rig.env, "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="+logs.URL)
	scene := filepath.Join(testenv.RepoRoot(), "examples", "demo.blend")

	p := startFF(t, rig.env, "render", scene, "--frames", "1-4", "--chunk", "2", "--attempts", "1", "--json")
	if err := p.wait(t, 2*time.Minute); err == nil {
		t.Fatalf("render succeeded with a failing chunk:\n%s", p.stdout.String())
	}
	var id string
	for _, r := range decodeJSON[struct {
		Runs []cliRecord `json:"runs"`
	}](t, ff(t, rig.env, "runs", "--state", "failed", "--json")).Runs {
		id = r.ID
	}
	if id == "" {
		t.Fatalf("no failed run listed; render said:\n%s", p.stderr.String())
	}
	st := decodeJSON[struct {
		Run struct {
			Failure struct {
				Failures []struct {
					Index     int    `json:"index"`
					LogStream string `json:"log_stream"`
				} `json:"failures"`
			} `json:"failure"`
		} `json:"run"`
	}](t, ff(t, rig.env, "status", id, "--json"))
	if fs := st.Run.Failure.Failures; len(fs) != 1 || fs[0].Index != 1 || fs[0].LogStream == "" {
		t.Fatalf("status failures %+v: want chunk 1 with its log stream", fs)
	}
	stream := st.Run.Failure.Failures[0].LogStream
	logs.Append("/aws/batch/job", stream, "framefleet worker: chunk 1", "framefleet: open store: connection refused")

	got := decodeJSON[[]chunkLogs](t, ff(t, rig.env, "logs", id, "--json"))
	if len(got) != 1 || got[0].Chunk != 1 || got[0].Stream != stream || len(got[0].StreamLines) != 2 ||
		got[0].StreamLines[1].Message != "framefleet: open store: connection refused" {
		t.Fatalf("logs %+v: want chunk 1's two stream lines", got)
	}
	text := ff(t, rig.env, "logs", id, "--chunk", "1")
	for _, want := range []string{"==> chunk 1: CloudWatch Logs /aws/batch/job " + stream, "open store: connection refused", "no stored Blender log"} {
		if !strings.Contains(text, want) {
			t.Errorf("logs output lacks %q:\n%s", want, text)
		}
	}
	reqs := logs.Requests()
	if len(reqs) != 2 || reqs[0].LogGroupName != "/aws/batch/job" || reqs[0].LogStreamName != stream {
		t.Errorf("CloudWatch Logs requests %+v: want two GetLogEvents of the stream", reqs)
	}
}

// TestDamagedRecordsDoNotHideOtherRuns: a record from a newer framefleet and
// a damaged record each get a clear error, and the other runs still list.
func TestDamagedRecordsDoNotHideOtherRuns(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	scene := filepath.Join(testenv.RepoRoot(), "examples", "demo.blend")
	out := filepath.Join(t.TempDir(), "renders")
	env := localEnv(t)
	var ids []string
	for _, frames := range []string{"1-2", "3-4", "5-6"} {
		res := decodeJSON[cliResult](t, ff(t, env, "render", scene, "--out", out, "--frames", frames, "--workers", "1",
			"--resolution", "10", "--samples", "1", "--json"))
		ids = append(ids, res.RunID)
	}
	newer, damaged, good := ids[0], ids[1], ids[2]
	if err := os.WriteFile(filepath.Join(out, "runs", newer, "run.json"), []byte(`{"schema": 99, "id": "`+newer+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "runs", damaged, "run.json"), []byte(`{"schema": 1, "id": "`), 0o644); err != nil {
		t.Fatal(err)
	}

	p := startFF(t, env, "runs", "--out", out)
	if err := p.wait(t, time.Minute); err != nil {
		t.Fatalf("runs: %v\n%s", err, p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), good) || strings.Count(p.stdout.String(), "\n") != 2 {
		t.Errorf("runs listed:\n%s\nwant the header and run %s", p.stdout.String(), good)
	}
	for _, want := range []string{"warning: run " + newer + ": ", "newer framefleet", "warning: run " + damaged + ": ", "damaged"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("runs warnings lack %q:\n%s", want, p.stderr.String())
		}
	}
	for id, want := range map[string]string{newer: "upgrade framefleet", damaged: "is damaged"} {
		s := startFF(t, env, "status", id, "--out", out)
		if err := s.wait(t, time.Minute); err == nil || !strings.Contains(s.stderr.String(), want) {
			t.Errorf("status %s: %v %q, want an error saying %q", id, err, s.stderr.String(), want)
		}
	}
}
