package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
)

// The test binary doubles as a fake worker: with FAKE_WORKER_DIR set it
// behaves as FAKE_WORKER_<index> says, records what it saw, and exits.
func TestMain(m *testing.M) {
	if dir := os.Getenv("FAKE_WORKER_DIR"); dir != "" {
		os.Exit(fakeWorker(dir))
	}
	if os.Getenv(hostEnv) != "" {
		os.Exit(hostMain())
	}
	code := m.Run()
	cleanupBinary()
	os.Exit(code)
}

func fakeWorker(dir string) int {
	sub := os.Args[len(os.Args)-1]
	index := os.Getenv("AWS_BATCH_JOB_ARRAY_INDEX")
	if index == "" {
		index = "0" // a one-chunk plan runs as a plain job, as on Batch
	}
	attempt, _ := strconv.Atoi(os.Getenv("AWS_BATCH_JOB_ATTEMPT"))
	name := sub + "-" + index
	if sub == "stitch" {
		name = "stitch"
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_BATCH_") || strings.HasPrefix(kv, "FRAMEFLEET_") || strings.HasPrefix(kv, "JOB_") {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	record := filepath.Join(dir, fmt.Sprintf("%s.attempt-%d", name, attempt))
	if err := os.WriteFile(record, []byte(strings.Join(env, "\n")), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Like the real worker, leave downloads in the work directory the engine gave.
	if wd := os.Getenv("FRAMEFLEET_WORKDIR"); wd != "" {
		if err := os.WriteFile(filepath.Join(wd, "scene.blend"), []byte("a copy of the scene"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	behaviour := os.Getenv("FAKE_WORKER_" + index)
	if sub == "stitch" {
		behaviour = os.Getenv("FAKE_WORKER_STITCH")
	}
	switch behaviour {
	case "", "ok":
		return 0
	case "exit1":
		fmt.Fprintln(os.Stderr, "rendering chunk\nError: boom, the scene is broken")
		return 1
	case "error-then-progress":
		// The real reason, then Blender's progress lines after it.
		fmt.Fprintln(os.Stderr, "framefleet: the real reason")
		for i := range 10 {
			fmt.Fprintf(os.Stderr, "Fra:1 Mem:12.00M (Peak 12.00M) | Time:00:00.%02d | Sample %d/16\n", i, i)
		}
		return 1
	case "loud-exit1":
		line := strings.Repeat("x", 99) + "\n"
		for range 2000 { // ~200 KiB
			fmt.Fprint(os.Stderr, line)
		}
		fmt.Fprintln(os.Stderr, "framefleet: loud failure")
		return 1
	case "kill-first":
		if attempt == 1 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return 0
	case "transient-first":
		if attempt == 1 {
			fmt.Fprintln(os.Stderr, "store unreachable")
			return pipeline.ExitTransient
		}
		return 0
	case "transient-always":
		return pipeline.ExitTransient
	case "hang":
		// A stand-in for Blender: a grandchild in the same process group.
		sleeper := exec.Command("sleep", "300")
		if err := sleeper.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pids := fmt.Sprintf("%d %d", os.Getpid(), sleeper.Process.Pid)
		if err := os.WriteFile(filepath.Join(dir, "pids-"+index), []byte(pids), 0o644); err != nil {
			return 1
		}
		_ = sleeper.Wait()
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown fake behaviour", behaviour)
	return 2
}

// fakeEngine runs the test binary as the worker, one behaviour per child.
func fakeEngine(t *testing.T, workers int) (*Engine, string) {
	t.Helper()
	dir := t.TempDir()
	e, err := New(Options{
		WorkerCommand: []string{os.Args[0], "-test.run=^$"},
		Workers:       workers,
		KillGrace:     200 * time.Millisecond,
		RetryBackoff:  20 * time.Millisecond,
		LogDir:        t.TempDir(),
		VersionCache:  "-",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, dir
}

func submitFake(t *testing.T, e *Engine, dir string, chunks int, behaviours map[string]string, mod func(*pipeline.Job)) pipeline.Handle {
	t.Helper()
	env := map[string]string{"FAKE_WORKER_DIR": dir, "JOB_EXTRA": "passed"}
	for k, v := range behaviours {
		env["FAKE_WORKER_"+k] = v
	}
	job := pipeline.Job{RunID: "run-1", StoreURI: "file:///nowhere", Chunks: chunks, Scene: "Scene", Env: env}
	if mod != nil {
		mod(&job)
	}
	h, err := e.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func waitDone(t *testing.T, e *Engine, h pipeline.Handle) pipeline.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.Wait(ctx, h); err != nil {
		t.Fatalf("run did not finish: %v", err)
	}
	st, err := e.Status(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// attemptsOf lists the recorded attempt numbers of one job ("render-0", "stitch").
func attemptsOf(t *testing.T, dir, name string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, name+".attempt-*"))
	var out []int
	for _, f := range files {
		n, err := strconv.Atoi(f[strings.LastIndexByte(f, '-')+1:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestRunOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		chunks     int
		behaviours map[string]string
		attempts   int
		// want
		render       pipeline.JobState
		stitch       pipeline.JobState
		childTries   map[string][]int // job name -> attempt numbers that ran
		failedIndex  []int
		reasonHas    string
		exitCode     *int
		stitchReason string
	}{
		{
			name: "all succeed, stitch runs once", chunks: 3,
			render: pipeline.StateSucceeded, stitch: pipeline.StateSucceeded,
			childTries: map[string][]int{"render-0": {1}, "render-1": {1}, "render-2": {1}, "stitch": {1}},
		},
		{
			name: "killed by a signal is retried", chunks: 2, behaviours: map[string]string{"0": "kill-first"},
			render: pipeline.StateSucceeded, stitch: pipeline.StateSucceeded,
			childTries: map[string][]int{"render-0": {1, 2}, "render-1": {1}, "stitch": {1}},
		},
		{
			name: "transient exit 75 is retried", chunks: 2, behaviours: map[string]string{"1": "transient-first"},
			render: pipeline.StateSucceeded, stitch: pipeline.StateSucceeded,
			childTries: map[string][]int{"render-0": {1}, "render-1": {1, 2}, "stitch": {1}},
		},
		{
			name: "transient exit 75 gives up after the attempts", chunks: 1, attempts: 2,
			behaviours: map[string]string{"0": "transient-always"},
			render:     pipeline.StateFailed, stitch: pipeline.StateFailed,
			childTries:  map[string][]int{"render-0": {1, 2}, "stitch": nil},
			failedIndex: []int{0}, reasonHas: "exit code 75", exitCode: ptr(75),
			stitchReason: "failed",
		},
		{
			name: "exit 1 fails at once and the stitch never runs", chunks: 3, behaviours: map[string]string{"1": "exit1"},
			render: pipeline.StateFailed, stitch: pipeline.StateFailed,
			childTries:  map[string][]int{"render-0": {1}, "render-1": {1}, "render-2": {1}, "stitch": nil},
			failedIndex: []int{1}, reasonHas: "boom, the scene is broken", exitCode: ptr(1),
			stitchReason: "Dependent job",
		},
		{
			name: "a failing stitch job fails the run", chunks: 2, behaviours: map[string]string{"STITCH": "exit1"},
			render: pipeline.StateSucceeded, stitch: pipeline.StateFailed,
			childTries:  map[string][]int{"render-0": {1}, "render-1": {1}, "stitch": {1}},
			failedIndex: []int{-1}, reasonHas: "boom", exitCode: ptr(1), stitchReason: "boom",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, dir := fakeEngine(t, 2)
			h := submitFake(t, e, dir, tc.chunks, tc.behaviours, func(j *pipeline.Job) { j.Attempts = tc.attempts })
			st := waitDone(t, e, h)
			if st.Render != tc.render || st.Stitch != tc.stitch {
				t.Fatalf("render %s stitch %s (%q), want %s and %s", st.Render, st.Stitch, st.StitchReason, tc.render, tc.stitch)
			}
			for name, want := range tc.childTries {
				if got := attemptsOf(t, dir, name); !slices.Equal(got, want) {
					t.Errorf("%s ran attempts %v, want %v", name, got, want)
				}
			}
			var failed []int
			for _, f := range st.Failures {
				failed = append(failed, f.Index)
				if !strings.Contains(f.Reason, tc.reasonHas) {
					t.Errorf("failure %d reason %q, want it to contain %q", f.Index, f.Reason, tc.reasonHas)
				}
				if tc.exitCode != nil && (f.ExitCode == nil || *f.ExitCode != *tc.exitCode) {
					t.Errorf("failure %d exit code %v, want %d", f.Index, f.ExitCode, *tc.exitCode)
				}
				if f.LogStream == "" {
					t.Errorf("failure %d names no log", f.Index)
				}
			}
			if !slices.Equal(failed, tc.failedIndex) {
				t.Errorf("failed children %v, want %v", failed, tc.failedIndex)
			}
			if !strings.Contains(st.StitchReason, tc.stitchReason) {
				t.Errorf("stitch reason %q, want it to contain %q", st.StitchReason, tc.stitchReason)
			}
			if sum := st.Children[pipeline.StateSucceeded] + st.Children[pipeline.StateFailed]; sum != tc.chunks {
				t.Errorf("children summary %v does not account for %d children", st.Children, tc.chunks)
			}
			// Every attempt that ran is in the history, with its times.
			ran := 0
			for name := range tc.childTries {
				ran += len(attemptsOf(t, dir, name))
			}
			if len(st.Attempts) != ran {
				t.Errorf("%d attempts recorded, %d ran", len(st.Attempts), ran)
			}
			var lastChild time.Time
			for _, a := range st.Attempts {
				if a.StoppedAt.Before(a.StartedAt) || a.StartedAt.IsZero() {
					t.Errorf("attempt %+v has bad times", a)
				}
				if a.Index >= 0 && a.StoppedAt.After(lastChild) {
					lastChild = a.StoppedAt
				}
			}
			for _, a := range st.Attempts {
				if a.Index == -1 && a.StartedAt.Before(lastChild) {
					t.Errorf("stitch started at %v, before the last child stopped at %v", a.StartedAt, lastChild)
				}
			}
		})
	}
}

func TestSignalledAttemptLooksLikeALostHost(t *testing.T) {
	e, dir := fakeEngine(t, 1)
	h := submitFake(t, e, dir, 1, map[string]string{"0": "kill-first"}, nil)
	st := waitDone(t, e, h)
	if len(st.Attempts) < 1 {
		t.Fatal("no attempts recorded")
	}
	first := st.Attempts[0]
	if first.ExitCode != nil || !strings.HasPrefix(first.Reason, "Host local") || !strings.Contains(first.Reason, "killed") {
		t.Errorf("first attempt %+v: want no exit code and a 'Host local ... terminated' reason naming the signal", first)
	}
}

func TestWorkerEnvironment(t *testing.T) {
	e, dir := fakeEngine(t, 2)
	h := submitFake(t, e, dir, 2, map[string]string{"1": "transient-first"}, func(j *pipeline.Job) {
		j.Env["AWS_BATCH_JOB_ARRAY_INDEX"] = "99" // protected: a job cannot set it
	})
	waitDone(t, e, h)
	read := func(name string) map[string]string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, "=")
			m[k] = v
		}
		return m
	}
	tests := []struct {
		file string
		want map[string]string
	}{
		{"render-0.attempt-1", map[string]string{
			"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "2", "AWS_BATCH_JOB_ATTEMPT": "1",
			"AWS_BATCH_JOB_ID": h.RenderID + ":0", "FRAMEFLEET_STORE": "file:///nowhere", "FRAMEFLEET_RUN_ID": "run-1", "JOB_EXTRA": "passed"}},
		{"render-1.attempt-2", map[string]string{
			"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ATTEMPT": "2", "AWS_BATCH_JOB_ID": h.RenderID + ":1"}},
		{"stitch.attempt-1", map[string]string{
			"AWS_BATCH_JOB_ARRAY_INDEX": "", "AWS_BATCH_JOB_ATTEMPT": "1", "AWS_BATCH_JOB_ID": h.StitchID, "FRAMEFLEET_RUN_ID": "run-1"}},
	}
	for _, tc := range tests {
		got := read(tc.file)
		if tc.file == "stitch.attempt-1" {
			if _, set := got["AWS_BATCH_JOB_ARRAY_SIZE"]; set {
				t.Errorf("the stitch job got AWS_BATCH_JOB_ARRAY_SIZE")
			}
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q", tc.file, k, got[k], v)
			}
		}
	}
}

func TestOneChunkRunsAsAPlainJob(t *testing.T) {
	e, dir := fakeEngine(t, 1)
	h := submitFake(t, e, dir, 1, nil, nil)
	if st := waitDone(t, e, h); st.Stitch != pipeline.StateSucceeded {
		t.Fatalf("stitch %s", st.Stitch)
	}
	b, err := os.ReadFile(filepath.Join(dir, "render-0.attempt-1"))
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	if strings.Contains(env, "AWS_BATCH_JOB_ARRAY_") || !strings.Contains(env, "AWS_BATCH_JOB_ID="+h.RenderID+"\n") {
		t.Errorf("environment of a one-chunk job:\n%s\nwant no array variables and the plain job id %s", env, h.RenderID)
	}
}

func TestTimeoutFailsWithoutRetry(t *testing.T) {
	e, dir := fakeEngine(t, 1)
	h := submitFake(t, e, dir, 1, map[string]string{"0": "hang"}, func(j *pipeline.Job) {
		j.AttemptTimeout = 500 * time.Millisecond
	})
	st := waitDone(t, e, h)
	if st.Render != pipeline.StateFailed || len(st.Failures) != 1 {
		t.Fatalf("render %s, failures %+v: want FAILED with one failure", st.Render, st.Failures)
	}
	if !strings.Contains(st.Failures[0].Reason, "timeout") {
		t.Errorf("reason %q does not mention the timeout", st.Failures[0].Reason)
	}
	if got := attemptsOf(t, dir, "render-0"); !slices.Equal(got, []int{1}) {
		t.Errorf("attempts %v: a timed-out attempt is not retried (as on Batch)", got)
	}
	assertGone(t, dir, "0")
}

// TestCancelKillsEveryProcess checks what a cancel guarantees: when Cancel
// returns, no worker or grandchild of the run is left, nothing runs or
// succeeds after it (the queued chunk and the stitch never start, no attempt
// is retried), and every job that did not finish fails with the cancel's
// reason. A running chunk may still end SUCCEEDED: its worker can exit 0
// before the signal lands (here the signal ends the fake's grandchild first),
// as on Batch a container can finish while TerminateJob is on its way.
func TestCancelKillsEveryProcess(t *testing.T) {
	e, dir := fakeEngine(t, 2)
	h := submitFake(t, e, dir, 3, map[string]string{"0": "hang", "1": "hang", "2": "hang"}, nil)
	for _, i := range []string{"0", "1"} {
		waitFor(t, func() bool { _, err := os.Stat(filepath.Join(dir, "pids-"+i)); return err == nil })
	}
	st, err := e.Status(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Children[pipeline.StateRunning] != 2 || st.Children[pipeline.StateRunnable] != 1 {
		t.Errorf("children %v: want 2 RUNNING (2 workers) and 1 RUNNABLE", st.Children)
	}
	if st.Render != pipeline.StatePending || st.Stitch != pipeline.StatePending {
		t.Errorf("render %s stitch %s while running: want PENDING and PENDING", st.Render, st.Stitch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Cancel(ctx, h, "user pressed Ctrl-C"); err != nil {
		t.Fatal(err)
	}
	// No process left: both hung workers and their grandchildren are gone.
	assertGone(t, dir, "0")
	assertGone(t, dir, "1")

	st, err = e.Status(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Render != pipeline.StateFailed || st.Stitch != pipeline.StateFailed {
		t.Errorf("after cancel: render %s stitch %s: want FAILED and FAILED (the queued chunk never ran)", st.Render, st.Stitch)
	}
	if n := st.Children[pipeline.StateFailed] + st.Children[pipeline.StateSucceeded]; n != 3 || st.Children[pipeline.StateFailed] < 1 {
		t.Errorf("after cancel: children %v: want all 3 ended, the queued one at least FAILED", st.Children)
	}
	// Chunks stopped by the cancel are counted, not listed as chunk failures
	// (one each would flood whoever shows them); the stitch job's entry may remain.
	for _, f := range st.Failures {
		if f.Index >= 0 {
			t.Errorf("child %d reported as failed after a cancel: %q", f.Index, f.Reason)
		}
	}
	t.Logf("after cancel: children %v", st.Children)
	// Nothing ran after the cancel: no retry of the running chunks, neither
	// the queued chunk nor the stitch started.
	for name, want := range map[string][]int{"render-0": {1}, "render-1": {1}, "render-2": nil, "stitch": nil} {
		if got := attemptsOf(t, dir, name); !slices.Equal(got, want) {
			t.Errorf("%s ran attempts %v, want %v: nothing starts after a cancel", name, got, want)
		}
	}
	// Nothing succeeds later either: the run is over, its status final.
	if err := e.Wait(ctx, h); err != nil {
		t.Fatal(err)
	}
	later, err := e.Status(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if later.Render != st.Render || later.Stitch != st.Stitch || !maps.Equal(later.Children, st.Children) {
		t.Errorf("status changed after the cancel returned: %s/%s %v, then %s/%s %v",
			st.Render, st.Stitch, st.Children, later.Render, later.Stitch, later.Children)
	}
}

func ptr(i int) *int { return &i }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertGone checks that the fake worker of child i and its grandchild are dead.
func assertGone(t *testing.T, dir, i string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "pids-"+i))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		waitFor(t, func() bool { return !alive(pid) })
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}

func TestParseBlenderVersion(t *testing.T) {
	tests := []struct {
		out, want string
		ok        bool
	}{
		{"Blender 3.4.1\n\tbuild date: 2023-03-07\n", "3.4.1", true},
		{"Blender 4.2.0 LTS\n", "4.2.0", true},
		{"Blender 2.79 (sub 0)\n", "2.79", true},
		{"Read prefs: /root/.config\nBlender 5.0.0 Alpha\n", "5.0.0", true},
		{"sh: blender: not found\n", "", false},
	}
	for _, tc := range tests {
		got, err := ParseBlenderVersion([]byte(tc.out))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBlenderVersion(%q) = %q, %v; want %q ok=%v", tc.out, got, err, tc.want, tc.ok)
		}
	}
}

func TestBlenderVersionOfRealBlender(t *testing.T) {
	e, err := New(Options{Blender: testenv.Blender(t), VersionCache: "-"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.BlenderVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBlenderVersion([]byte("Blender " + v)); err != nil || !strings.Contains(v, ".") {
		t.Errorf("version %q is not X.Y[.Z]", v)
	}
}

func TestBlenderVersionMissingBlender(t *testing.T) {
	e, err := New(Options{Blender: filepath.Join(t.TempDir(), "no-blender"), VersionCache: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.BlenderVersion(context.Background()); err == nil || !strings.Contains(err.Error(), "blender setting") {
		t.Errorf("err = %v, want one telling how to point at a Blender", err)
	}
}

// TestBlenderVersionIsCachedPerBinary: a second engine (a new framefleet
// process) asks the cache, not Blender; a replaced Blender is asked again.
func TestBlenderVersionIsCachedPerBinary(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "blender")
	write := func(version string) {
		script := "#!/bin/sh\necho x >> " + calls + "\necho 'Blender " + version + "'\n"
		if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	version := func() string {
		e, err := New(Options{Blender: fake, VersionCache: filepath.Join(dir, "cache", "versions.json")})
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.BlenderVersion(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ran := func() int {
		b, _ := os.ReadFile(calls)
		return strings.Count(string(b), "x")
	}
	write("4.1.0")
	if v1, v2 := version(), version(); v1 != "4.1.0" || v2 != "4.1.0" || ran() != 1 {
		t.Errorf("versions %s, %s with %d Blender runs; want 4.1.0 twice from one run", v1, v2, ran())
	}
	write("4.2.10 LTS") // a different binary (size changed)
	if v := version(); v != "4.2.10" || ran() != 2 {
		t.Errorf("after replacing Blender: version %s with %d runs; want 4.2.10 from a second run", v, ran())
	}
}

func TestSubmitRejectsBadJobs(t *testing.T) {
	e, _ := fakeEngine(t, 1)
	tests := []pipeline.Job{
		{RunID: "r", StoreURI: "file:///x", Chunks: 0},
		{RunID: "r", StoreURI: "file:///x", Chunks: 10001},
		{RunID: "", StoreURI: "file:///x", Chunks: 1},
		{RunID: "r", StoreURI: "file:///x", Chunks: 1, Attempts: 11},
	}
	for _, j := range tests {
		if _, err := e.Submit(context.Background(), j); err == nil {
			t.Errorf("Submit(%+v) succeeded, want an error", j)
		}
	}
	if _, err := e.Status(context.Background(), pipeline.Handle{Engine: Name, RenderID: "local-unknown"}); err == nil {
		t.Error("Status of an unknown handle succeeded")
	}
}

func TestFailureReasonSkipsProgressLines(t *testing.T) {
	e, dir := fakeEngine(t, 1)
	st := waitDone(t, e, submitFake(t, e, dir, 1, map[string]string{"0": "error-then-progress"}, nil))
	if len(st.Failures) != 1 {
		t.Fatalf("failures %+v, want chunk 0", st.Failures)
	}
	if r := st.Failures[0].Reason; !strings.Contains(r, "the real reason") || strings.Contains(r, "Fra:") {
		t.Errorf("reason %q: want the worker's error and no progress lines", r)
	}
}

// Work directories go with their attempt, whatever its end; logs stay only
// for failed attempts, bounded, and the failure says where they are.
func TestAttemptLeftoversAreRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	e, dir := fakeEngine(t, 2)
	e.LogDir = "" // logs in the run's temp directory
	h := submitFake(t, e, dir, 3, map[string]string{"0": "kill-first", "1": "loud-exit1"}, nil)
	st := waitDone(t, e, h)

	for _, rec := range []string{"render-0.attempt-1", "render-0.attempt-2", "render-1.attempt-1", "render-2.attempt-1"} {
		b, err := os.ReadFile(filepath.Join(dir, rec))
		if err != nil {
			t.Fatal(err)
		}
		var wd string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "FRAMEFLEET_WORKDIR="); ok {
				wd = v
			}
		}
		if !strings.HasPrefix(wd, tmp+string(filepath.Separator)) {
			t.Errorf("%s had FRAMEFLEET_WORKDIR %q, want a directory under the run's temp dir in %s", rec, wd, tmp)
		}
		if _, err := os.Stat(wd); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left its work directory %s (%v)", rec, wd, err)
		}
	}

	if len(st.Failures) != 1 || st.Failures[0].Index != 1 {
		t.Fatalf("failures %+v, want chunk 1", st.Failures)
	}
	f := st.Failures[0]
	if !strings.Contains(f.Reason, "worker log: "+f.LogStream) || !strings.Contains(f.Reason, "loud failure") {
		t.Errorf("reason %q: want the worker's error and where its log is (%s)", f.Reason, f.LogStream)
	}
	fi, err := os.Stat(f.LogStream)
	if err != nil {
		t.Fatalf("the failed attempt's log: %v", err)
	}
	if fi.Size() > keptLogBytes {
		t.Errorf("failed attempt's log is %d bytes, want at most %d", fi.Size(), keptLogBytes)
	}
	if b, _ := os.ReadFile(f.LogStream); !strings.HasSuffix(string(b), "framefleet: loud failure\n") {
		t.Errorf("kept log does not end with the worker's error")
	}
	// Only the failed attempts' logs are kept.
	var kept []string
	filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			kept = append(kept, filepath.Base(p))
		}
		return nil
	})
	slices.Sort(kept)
	want := []string{"chunk-00000.attempt-1.err", "chunk-00000.attempt-1.out", "chunk-00001.attempt-1.err", "chunk-00001.attempt-1.out"}
	if !slices.Equal(kept, want) {
		t.Errorf("temp files left %v, want only the failed attempts' logs %v", kept, want)
	}

	// A run that succeeds leaves nothing.
	h = submitFake(t, e, dir, 2, nil, nil)
	waitDone(t, e, h)
	runs, _ := filepath.Glob(filepath.Join(tmp, runDirPattern+"*"))
	if len(runs) != 1 {
		t.Errorf("run directories %v, want only the failed run's", runs)
	}
}

func TestKeepTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	keepTail(path, 1000)
	got, _ := os.ReadFile(path)
	if len(got) > 1000 || !strings.HasSuffix(string(got), "line 4999\n") || !strings.HasPrefix(string(got), "line ") {
		t.Errorf("kept %d bytes starting %q: want at most 1000 whole lines ending with the last", len(got), string(got[:min(20, len(got))]))
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("one\n"), 0o644)
	keepTail(short, 1000)
	if got, _ := os.ReadFile(short); string(got) != "one\n" {
		t.Errorf("short log changed to %q", got)
	}
}

func TestPruneRunDirs(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for name, age := range map[string]time.Duration{
		runDirPattern + "old":   48 * time.Hour,
		runDirPattern + "fresh": time.Hour,
		"someone-else-old":      48 * time.Hour,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "work"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	pruneRunDirs(dir, staleRunDir, now)
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{runDirPattern + "fresh", "someone-else-old"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// The vCPUs an attempt is charged are the Blender threads it runs with
// (the render command's -t is NumCPU/workers, at least 1).
func TestDefaultVCPUs(t *testing.T) {
	for _, tc := range []struct {
		cpus, workers int
		want          float64
	}{
		{2, 1, 2}, {2, 2, 1}, {2, 3, 1}, {4, 3, 1}, {8, 3, 2}, {16, 8, 2},
	} {
		if got := defaultVCPUs(tc.cpus, tc.workers); got != tc.want {
			t.Errorf("defaultVCPUs(%d cpus, %d workers) = %v, want %v", tc.cpus, tc.workers, got, tc.want)
		}
	}
}

func TestRetryDelayBacksOffWithJitter(t *testing.T) {
	base, most := 15*time.Second, 2*time.Minute
	tests := []struct {
		attempts int
		fraction float64
		want     time.Duration
	}{
		{1, 0, 7500 * time.Millisecond},
		{1, 0.999999, 15 * time.Second},
		{2, 0, 15 * time.Second},
		{3, 0.5, 45 * time.Second},
		{4, 0, 60 * time.Second},
		{9, 0, time.Minute}, // capped at most, then jittered down to half
		{9, 0.999999, 2 * time.Minute},
	}
	for _, tc := range tests {
		got := retryDelay(base, most, tc.attempts, tc.fraction)
		if got.Round(time.Millisecond) != tc.want {
			t.Errorf("retryDelay(after %d attempts, jitter %v) = %s, want %s", tc.attempts, tc.fraction, got, tc.want)
		}
	}
	for range 100 {
		if f := randomFraction(); f < 0 || f >= 1 {
			t.Fatalf("randomFraction() = %v, want [0, 1)", f)
		}
	}
}

// A cancel during a retry's backoff fails the waiting child at once.
func TestCancelDuringRetryBackoff(t *testing.T) {
	e, dir := fakeEngine(t, 1)
	e.RetryBackoff = time.Hour
	h := submitFake(t, e, dir, 1, map[string]string{"0": "transient-first"}, nil)
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := e.Status(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Attempts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never finished")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Cancel(ctx, h, "stop"); err != nil {
		t.Fatal(err)
	}
	st := waitDone(t, e, h)
	if st.Render != pipeline.StateFailed || len(st.Attempts) != 1 {
		t.Errorf("render %s after %d attempts, want failed after 1 (the retry never started)", st.Render, len(st.Attempts))
	}
}
