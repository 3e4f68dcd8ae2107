// Package local runs a framefleet plan on this machine with AWS Batch's
// semantics: an array of worker subprocesses (child i gets
// AWS_BATCH_JOB_ARRAY_INDEX=i), attempts retried by the same evaluateOnExit
// rules as on Batch, a per-attempt timeout, and a stitch job that runs only
// when every child succeeded.
package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/framefleet/framefleet/pipeline"
)

// Name is the engine's name in handles and on the command line.
const Name = "local"

// Options configure the local engine; zero fields get defaults.
type Options struct {
	// WorkerCommand is the worker program and its leading arguments; "render"
	// or "stitch" is appended. Default: this executable's "worker" command.
	WorkerCommand []string
	// Workers is how many array children of a run run at once (default 1);
	// like a compute environment's vCPU limit, it bounds the run, not the queue.
	Workers int
	// VCPUsPerWorker is recorded in each attempt for the cost figures
	// (default: this machine's CPUs divided among the workers).
	VCPUsPerWorker float64
	// Attempts per child when the job does not say (default pipeline.DefaultAttempts).
	Attempts int
	// RetryRules decide which failed attempts are retried (default pipeline.DefaultRetryRules).
	RetryRules []pipeline.RetryRule
	// RetryBackoff is the wait before a failed attempt's retry, doubled for
	// each further attempt (with jitter) up to MaxRetryBackoff, so retries
	// ride out an outage (a store that is down) instead of burning every
	// attempt within seconds. Default 15 s, at most 2 min.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// KillGrace is how long a timed-out or cancelled worker gets between
	// SIGTERM and SIGKILL (Batch waits 30 s; default 5 s).
	KillGrace time.Duration
	// Blender is the Blender program the workers run, for BlenderVersion (default "blender").
	Blender string
	// LogDir keeps the stdout and stderr of failed attempts (default: the
	// run's temp directory, removed when the run succeeds). Only the last
	// keptLogBytes of each log are kept.
	LogDir string
	// Logger receives state changes at debug level (default: discard).
	Logger *slog.Logger
	// VersionCache is a file remembering `blender --version` per Blender
	// binary (path, size, modification time), which saves a Blender start
	// (~0.3 s) per render. Default: framefleet/blender-versions.json in the
	// user cache directory; "-" turns it off.
	VersionCache string
}

// Engine runs jobs as local subprocesses. Create it with New.
type Engine struct {
	Options

	mu      sync.Mutex
	runs    map[string]*run // by render job id
	version string          // cached BlenderVersion
}

// New returns an engine with defaults filled in for the zero fields of o.
func New(o Options) (*Engine, error) {
	out := &Engine{Options: o, runs: map[string]*run{}}
	if len(out.WorkerCommand) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local engine: find this program to run workers: %w", err)
		}
		out.WorkerCommand = []string{self, "worker"}
	}
	if out.Workers <= 0 {
		out.Workers = 1
	}
	if out.VCPUsPerWorker <= 0 {
		out.VCPUsPerWorker = defaultVCPUs(runtime.NumCPU(), out.Workers)
	}
	if out.Attempts <= 0 {
		out.Attempts = pipeline.DefaultAttempts
	}
	if err := pipeline.CheckAttempts(out.Attempts); err != nil {
		return nil, fmt.Errorf("local engine: %w", err)
	}
	if out.RetryRules == nil {
		out.RetryRules = pipeline.DefaultRetryRules()
	}
	if out.RetryBackoff <= 0 {
		out.RetryBackoff = 15 * time.Second
	}
	if out.MaxRetryBackoff <= 0 {
		out.MaxRetryBackoff = 2 * time.Minute
	}
	if out.KillGrace <= 0 {
		out.KillGrace = 5 * time.Second
	}
	if out.Blender == "" {
		out.Blender = "blender"
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	// A killed framefleet (kill -9, a crash) cannot remove its run's temp
	// directory; the next engine does, once it is surely not in use.
	pruneRunDirs(os.TempDir(), staleRunDir, time.Now())
	if out.VersionCache == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			out.VersionCache = filepath.Join(dir, "framefleet", "blender-versions.json")
		}
	}
	return out, nil
}

// defaultVCPUs is the Blender threads each worker gets by default: the
// render command gives Blender -t NumCPU/workers (at least 1), so that is
// what an attempt costs, not a fraction of a core.
func defaultVCPUs(numCPU, workers int) float64 {
	return float64(max(1, numCPU/max(1, workers)))
}

// runDirPattern names a run's temp directory (work directories, and the
// logs when Options.LogDir is unset).
const runDirPattern = "framefleet-local-"

// staleRunDir is how old a run's temp directory must be before a later
// engine removes it: no live run goes that long without a new attempt.
const staleRunDir = 24 * time.Hour

// pruneRunDirs removes run temp directories in dir last modified before
// now-age: the leftovers of killed framefleet processes and failed runs.
func pruneRunDirs(dir string, age time.Duration, now time.Time) {
	olds, _ := filepath.Glob(filepath.Join(dir, runDirPattern+"*"))
	for _, d := range olds {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() || now.Sub(fi.ModTime()) < age {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// job is one schedulable unit: an array child, or the stitch job (index -1).
type job struct {
	id       string
	index    int
	state    pipeline.JobState
	attempts int    // attempts started
	reason   string // status reason of the last failed attempt
	exitCode *int
	logPath  string
	proc     *os.Process // the running attempt, nil otherwise
	// killedFor says why the engine itself signalled the running attempt
	// ("timeout" or "cancel"), so the exit is not mistaken for a lost host.
	killedFor string
}

// run is one submitted render array plus its stitch job.
type run struct {
	handle   pipeline.Handle
	spec     pipeline.Job
	attempts int
	tmpDir   string // the run's temp directory: attempts' work directories (and logs)
	logDir   string
	tempLogs bool // logDir is tmpDir

	mu        sync.Mutex
	cond      *sync.Cond
	render    pipeline.JobState
	children  []*job
	stitch    *job
	queue     []int // RUNNABLE children, in order
	history   []pipeline.Attempt
	cancelled string // cancel reason, once cancelled
	done      chan struct{}
	changed   chan struct{} // closed and replaced on every state change
}

// notify wakes every Changes watcher; r.mu must be held.
func (r *run) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// runIDVar names the run in a worker's environment.
const runIDVar = "FRAMEFLEET_RUN_ID"

// leftoverWait bounds how long a resumed run waits for the workers of the
// killed process that hosted it before: their stop budget after SIGTERM
// (container's stopBudget), with a margin.
const leftoverWait = 30 * time.Second

// awaitLeftovers waits until no worker of a killed framefleet still works on
// run runID (a run taken over at once when its host died), so they cannot
// store a chunk report over the resumed workers' ones, and the frames they
// still store are skipped rather than rendered twice. After leftoverWait it
// goes on: a worker still there is stuck past its stop budget.
func (e *Engine) awaitLeftovers(ctx context.Context, runID string) error {
	deadline := time.Now().Add(leftoverWait)
	for logged := false; ; logged = true {
		pids := leftoverWorkers(runID)
		if len(pids) == 0 || time.Now().After(deadline) {
			return nil
		}
		if !logged {
			e.Logger.Info("waiting for the workers of the stopped framefleet to store what they finished", "run", runID, "pids", pids)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Submit implements pipeline.Engine. The jobs outlive ctx, as on Batch;
// stop them with Cancel.
func (e *Engine) Submit(ctx context.Context, spec pipeline.Job) (pipeline.Handle, error) {
	if err := ctx.Err(); err != nil {
		return pipeline.Handle{}, err
	}
	if spec.Chunks < 1 || spec.Chunks > 10000 {
		return pipeline.Handle{}, fmt.Errorf("local engine: array size %d: it must be 1 to 10000", spec.Chunks)
	}
	if spec.RunID == "" || spec.StoreURI == "" {
		return pipeline.Handle{}, errors.New("local engine: job needs a run id and a store URI")
	}
	attempts := e.Attempts
	if spec.Attempts > 0 {
		attempts = spec.Attempts
	}
	if err := pipeline.CheckAttempts(attempts); err != nil {
		return pipeline.Handle{}, fmt.Errorf("local engine: %w", err)
	}
	if err := e.awaitLeftovers(ctx, spec.RunID); err != nil {
		return pipeline.Handle{}, err
	}
	id, err := newJobID()
	if err != nil {
		return pipeline.Handle{}, err
	}
	tmpDir, err := os.MkdirTemp("", runDirPattern)
	if err != nil {
		return pipeline.Handle{}, fmt.Errorf("local engine: temp directory: %w", err)
	}
	logDir := tmpDir
	if e.LogDir != "" {
		logDir = filepath.Join(e.LogDir, id)
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			os.RemoveAll(tmpDir)
			return pipeline.Handle{}, fmt.Errorf("local engine: log directory: %w", err)
		}
	}
	r := &run{
		handle:   pipeline.Handle{Engine: Name, RenderID: id, StitchID: id + "-stitch"},
		spec:     spec,
		attempts: attempts,
		tmpDir:   tmpDir,
		logDir:   logDir,
		tempLogs: e.LogDir == "",
		render:   pipeline.StateSubmitted,
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
	}
	r.cond = sync.NewCond(&r.mu)
	for i := range spec.Chunks {
		r.children = append(r.children, &job{id: fmt.Sprintf("%s:%d", id, i), index: i, state: pipeline.StateSubmitted})
	}
	if spec.Chunks == 1 {
		// Batch rejects an array of size 1, so a one-chunk plan is a plain job:
		// its own id and no AWS_BATCH_JOB_ARRAY_* variables (the worker then
		// renders chunk 0). Doing the same here tests that path locally.
		r.children[0].id = id
	}
	r.stitch = &job{id: r.handle.StitchID, index: -1, state: pipeline.StateSubmitted}

	e.mu.Lock()
	e.runs[id] = r
	e.mu.Unlock()
	e.Logger.Debug("submitted", "render_job", id, "run", spec.RunID, "chunks", spec.Chunks, "workers", e.Workers)
	go e.execute(r)
	return r.handle, nil
}

// execute drives a run to its end: the array, then the stitch job.
func (e *Engine) execute(r *run) {
	defer close(r.done)
	r.mu.Lock()
	// The parent is PENDING as soon as a child is RUNNABLE; the stitch job
	// waits on its dependency in PENDING.
	r.render = pipeline.StatePending
	r.stitch.state = pipeline.StatePending
	for _, c := range r.children {
		c.state = pipeline.StateRunnable
		r.queue = append(r.queue, c.index)
	}
	r.notify()
	r.mu.Unlock()

	var wg sync.WaitGroup
	for range min(e.Workers, len(r.children)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.workLoop(r)
		}()
	}
	wg.Wait()

	r.mu.Lock()
	failed := 0
	for _, c := range r.children {
		if c.state != pipeline.StateSucceeded {
			failed++
		}
	}
	if failed > 0 {
		r.render = pipeline.StateFailed
		r.stitch.state = pipeline.StateFailed
		if r.cancelled != "" {
			r.stitch.reason = "cancelled: " + r.cancelled
		} else {
			r.stitch.reason = fmt.Sprintf("Dependent job %s failed: %d of %d render children failed", r.handle.RenderID, failed, len(r.children))
		}
		r.notify()
		r.mu.Unlock()
		e.Logger.Debug("render failed", "render_job", r.handle.RenderID, "failed_children", failed)
		r.cleanup(false)
		return
	}
	r.render = pipeline.StateSucceeded
	r.stitch.state = pipeline.StateRunnable
	r.notify()
	r.mu.Unlock()
	for e.runAttempt(r, r.stitch, "stitch") {
	}
	r.mu.Lock()
	ok := r.stitch.state == pipeline.StateSucceeded
	r.mu.Unlock()
	r.cleanup(ok)
}

// cleanup removes the run's temp directory, or when the run failed and its
// logs live there, everything but the failed attempts' logs.
func (r *run) cleanup(succeeded bool) {
	if succeeded || !r.tempLogs {
		_ = os.RemoveAll(r.tmpDir)
		return
	}
	_ = os.RemoveAll(filepath.Join(r.tmpDir, "work"))
}

// workLoop takes RUNNABLE children off the queue until none is left.
func (e *Engine) workLoop(r *run) {
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.arrayDone() {
			r.cond.Wait()
		}
		if len(r.queue) == 0 {
			r.mu.Unlock()
			r.cond.Broadcast()
			return
		}
		c := r.children[r.queue[0]]
		r.queue = r.queue[1:]
		r.mu.Unlock()

		if e.runAttempt(r, c, "render") {
			// Back in the queue only after the backoff: a RUNNABLE child
			// that is not queued keeps the array open meanwhile.
			r.mu.Lock()
			delay := retryDelay(e.RetryBackoff, e.MaxRetryBackoff, c.attempts, randomFraction())
			r.mu.Unlock()
			e.Logger.Debug("retry after backoff", "job", c.id, "delay", delay)
			time.AfterFunc(delay, func() {
				r.mu.Lock()
				if c.state == pipeline.StateRunnable && r.cancelled == "" {
					r.queue = append(r.queue, c.index)
				}
				r.mu.Unlock()
				r.cond.Broadcast()
			})
		}
		r.cond.Broadcast()
	}
}

// retryDelay is the wait before attempt attempts+1: base doubled for each
// attempt after the first, capped at most, then jittered to [d/2, d] by
// fraction (in [0, 1)) so the children of a run do not retry in lock-step.
func retryDelay(base, most time.Duration, attempts int, fraction float64) time.Duration {
	d := base
	for i := 1; i < attempts && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return d/2 + time.Duration(fraction*float64(d/2))
}

func randomFraction() float64 { return mrand.Float64() }

// arrayDone reports whether every child is terminal; r.mu must be held.
func (r *run) arrayDone() bool {
	for _, c := range r.children {
		if !c.state.Terminal() {
			return false
		}
	}
	return true
}

// runAttempt runs one attempt of j and records it. It returns true when
// the job went back to RUNNABLE for another attempt.
func (e *Engine) runAttempt(r *run, j *job, sub string) bool {
	r.mu.Lock()
	if r.cancelled != "" {
		j.state = pipeline.StateFailed
		j.reason = "cancelled: " + r.cancelled
		r.mu.Unlock()
		return false
	}
	j.attempts++
	number := j.attempts
	r.mu.Unlock()

	name := fmt.Sprintf("chunk-%05d", j.index)
	if j.index < 0 {
		name = "stitch"
	}
	attemptName := fmt.Sprintf("%s.attempt-%d", name, number)
	// The worker's downloads and frames live in a directory of the attempt
	// that the engine removes after it, however the worker ended (kill -9
	// included), instead of a temp directory only the worker knows.
	workDir := filepath.Join(r.tmpDir, "work", attemptName)
	defer os.RemoveAll(workDir)

	argv := append(append([]string{}, e.WorkerCommand...), sub)
	cmd := exec.Command(argv[0], argv[1:]...)
	// Its own process group, so a timeout or a cancel kills Blender too, and a
	// Ctrl-C on the terminal reaches only us (we then cancel).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd.SysProcAttr)
	cmd.Env = e.env(r, j, number, workDir)
	base := filepath.Join(r.logDir, attemptName)
	stdout, err1 := os.Create(base + ".out")
	stderr, err2 := os.Create(base + ".err")
	err3 := os.MkdirAll(workDir, 0o755)
	// A fresh modification time tells pruneRunDirs this run is alive.
	_ = os.Chtimes(r.tmpDir, time.Now(), time.Now())
	if err := errors.Join(err1, err2, err3); err != nil {
		closeAll(stdout, stderr)
		return e.finish(r, j, pipeline.Attempt{Index: j.index, Number: number, StartedAt: time.Now(), StoppedAt: time.Now(), VCPUs: e.VCPUsPerWorker},
			"CannotStartContainerError: "+err.Error(), nil, "")
	}
	// Files, not pipes: Wait then returns when the worker exits even if a
	// stray grandchild still holds its output open.
	cmd.Stdout, cmd.Stderr = stdout, stderr

	r.mu.Lock()
	if r.cancelled != "" {
		r.mu.Unlock()
		closeAll(stdout, stderr)
		return e.finish(r, j, pipeline.Attempt{Index: j.index, Number: number, StartedAt: time.Now(), StoppedAt: time.Now(), VCPUs: e.VCPUsPerWorker},
			"cancelled: "+r.cancelled, nil, "")
	}
	att := pipeline.Attempt{Index: j.index, Number: number, StartedAt: time.Now(), VCPUs: e.VCPUsPerWorker}
	// Pdeathsig is tied to the thread that forks the worker: hold this thread
	// until the worker is reaped, so no other goroutine can lock it and end
	// it (which would SIGTERM a healthy worker).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := cmd.Start()
	if err == nil {
		j.state = pipeline.StateRunning
		j.proc = cmd.Process
		j.killedFor = ""
		j.logPath = base + ".err"
		r.notify()
	}
	r.mu.Unlock()
	if err != nil {
		closeAll(stdout, stderr)
		att.StoppedAt = time.Now()
		return e.finish(r, j, att, "CannotStartContainerError: "+err.Error(), nil, "")
	}
	e.Logger.Debug("attempt started", "job", j.id, "attempt", number, "pid", cmd.Process.Pid)

	var timer *time.Timer
	if t := r.spec.AttemptTimeout; t > 0 {
		timer = time.AfterFunc(t, func() { e.kill(r, j, "timeout") })
	}
	waitErr := cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	att.StoppedAt = time.Now()
	// Whatever the worker left behind goes too: its group, and processes it
	// moved to groups of their own (Blender) that carry this attempt's marker.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	killMarked(attemptMarker(j, number))
	closeAll(stdout, stderr)

	r.mu.Lock()
	j.proc = nil
	killedFor := j.killedFor
	r.mu.Unlock()

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	var exitCode *int
	statusReason, reason := "", ""
	switch {
	case waitErr == nil:
		code := 0
		exitCode = &code
	case killedFor == "timeout":
		statusReason = fmt.Sprintf("Job attempt duration exceeded timeout (%s)", r.spec.AttemptTimeout)
	case killedFor == "cancel":
		statusReason = "cancelled: " + r.cancelledReason()
	case ws.Signaled():
		// The local analogue of a reclaimed Spot host.
		statusReason = fmt.Sprintf("Host local (pid %d) terminated.", cmd.Process.Pid)
		reason = "worker killed by signal " + ws.Signal().String()
	case ws.Exited():
		code := ws.ExitStatus()
		exitCode = &code
		statusReason = "Essential container in task exited"
		reason = fmt.Sprintf("exit code %d", code)
		if code == pipeline.ExitTransient {
			reason += " (transient)"
		}
	default:
		statusReason = "worker failed: " + waitErr.Error()
	}
	if exitCode != nil && *exitCode == 0 {
		// Only failures need a log (the worker stores Blender's log tail
		// with each chunk).
		_ = os.Remove(base + ".out")
		_ = os.Remove(base + ".err")
		return e.finish(r, j, att, "", exitCode, "")
	}
	if tail := tailLines(base+".err", 5); tail != "" {
		reason = strings.TrimSpace(reason + ": " + tail)
	}
	keepTail(base+".out", keptLogBytes)
	keepTail(base+".err", keptLogBytes)
	reason += " (worker log: " + base + ".err)"
	return e.finish(r, j, att, statusReason, exitCode, reason)
}

// finish records an attempt and moves the job to its next state. It returns
// true when the job is RUNNABLE again.
func (e *Engine) finish(r *run, j *job, att pipeline.Attempt, statusReason string, exitCode *int, reason string) bool {
	att.ExitCode = exitCode
	full := statusReason
	if reason != "" {
		full = strings.TrimPrefix(full+": "+reason, ": ")
	}
	att.Reason = full

	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.notify()
	r.history = append(r.history, att)
	j.exitCode = exitCode
	if exitCode != nil && *exitCode == 0 {
		j.state = pipeline.StateSucceeded
		j.reason = ""
		e.Logger.Debug("attempt succeeded", "job", j.id, "attempt", att.Number)
		return false
	}
	j.reason = full
	retryable := r.cancelled == "" && j.killedFor == "" &&
		!strings.HasPrefix(statusReason, "CannotStartContainerError") &&
		pipeline.EvaluateOnExit(e.RetryRules, statusReason, reason, exitCode) == pipeline.ActionRetry
	if retryable && j.attempts < r.attempts {
		j.state = pipeline.StateRunnable
		e.Logger.Debug("attempt failed, retrying", "job", j.id, "attempt", att.Number, "reason", full)
		return true
	}
	j.state = pipeline.StateFailed
	e.Logger.Debug("job failed", "job", j.id, "attempts", j.attempts, "reason", full)
	return false
}

func (r *run) cancelledReason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancelled
}

// kill stops j's running attempt: SIGTERM to its process group, then SIGKILL
// after the grace period, as Batch does on a timeout or a terminate.
func (e *Engine) kill(r *run, j *job, why string) {
	r.mu.Lock()
	p := j.proc
	if p == nil {
		r.mu.Unlock()
		return
	}
	j.killedFor = why
	r.mu.Unlock()
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	time.AfterFunc(e.KillGrace, func() {
		r.mu.Lock()
		still := j.proc == p
		r.mu.Unlock()
		if still {
			_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		}
	})
}

// env is the worker's environment: ours, the job's, then Batch's own
// variables, which a job cannot override (as on Batch).
func (e *Engine) env(r *run, j *job, attempt int, workDir string) []string {
	vars := map[string]string{}
	for k, v := range r.spec.Env {
		if !strings.HasPrefix(k, "AWS_BATCH_") {
			vars[k] = v
		}
	}
	vars["FRAMEFLEET_STORE"] = r.spec.StoreURI
	vars[runIDVar] = r.spec.RunID
	vars["FRAMEFLEET_WORKDIR"] = workDir
	vars["AWS_BATCH_JOB_ID"] = j.id
	vars["AWS_BATCH_JOB_ATTEMPT"] = strconv.Itoa(attempt)
	vars[markerVar] = attemptMarker(j, attempt)
	vars["AWS_BATCH_CE_NAME"] = Name
	vars["AWS_BATCH_JQ_NAME"] = Name
	if j.index >= 0 && len(r.children) > 1 {
		vars["AWS_BATCH_JOB_ARRAY_INDEX"] = strconv.Itoa(j.index)
		vars["AWS_BATCH_JOB_ARRAY_SIZE"] = strconv.Itoa(len(r.children))
	}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := vars[k]; set || strings.HasPrefix(k, "AWS_BATCH_JOB_ARRAY_") {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// markerVar tags every process of an attempt, so none can outlive it.
const markerVar = "FRAMEFLEET_LOCAL_ATTEMPT"

func attemptMarker(j *job, attempt int) string { return fmt.Sprintf("%s#%d", j.id, attempt) }

// killMarked SIGKILLs every process whose environment carries this attempt's
// marker: a worker may start Blender in a process group of its own, which a
// group kill misses when the worker itself dies (kill -9, SIGKILL after the
// grace period). Without /proc (not Linux) it does nothing.
func killMarked(marker string) {
	want := []byte(markerVar + "=" + marker + "\x00")
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	self := os.Getpid()
	for _, p := range envs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Status implements pipeline.Engine from memory.
func (e *Engine) Status(ctx context.Context, h pipeline.Handle) (pipeline.Status, error) {
	r, err := e.lookup(h)
	if err != nil {
		return pipeline.Status{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := pipeline.Status{
		Render:       r.render,
		Children:     map[pipeline.JobState]int{},
		Stitch:       r.stitch.state,
		StitchReason: r.stitch.reason,
		Attempts:     append([]pipeline.Attempt(nil), r.history...),
	}
	if st.Stitch != pipeline.StateFailed {
		st.StitchReason = ""
	}
	for _, c := range r.children {
		st.Children[c.state]++
		// A chunk stopped by the run's cancel did not fail: reporting each
		// would make one "chunk failed" per queued chunk of a cancelled run.
		if c.state == pipeline.StateFailed && (r.cancelled == "" || !strings.HasPrefix(c.reason, "cancelled: "+r.cancelled)) {
			st.Failures = append(st.Failures, pipeline.ChildFailure{
				Index: c.index, Attempts: c.attempts, Reason: c.reason, ExitCode: c.exitCode, LogStream: c.logPath,
			})
		}
	}
	if r.stitch.state == pipeline.StateFailed && r.stitch.attempts > 0 {
		st.Failures = append(st.Failures, pipeline.ChildFailure{
			Index: -1, Attempts: r.stitch.attempts, Reason: r.stitch.reason, ExitCode: r.stitch.exitCode, LogStream: r.stitch.logPath,
		})
	}
	return st, nil
}

// Cancel implements pipeline.Engine: queued jobs fail at once, running
// attempts get SIGTERM then SIGKILL on their whole process group. It returns
// when no worker of the run is left, or when ctx ends.
func (e *Engine) Cancel(ctx context.Context, h pipeline.Handle, reason string) error {
	r, err := e.lookup(h)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "cancelled by user"
	}
	r.mu.Lock()
	if r.cancelled == "" {
		r.cancelled = reason
	}
	// Queued children, and those waiting out a retry's backoff, fail at once.
	for _, c := range r.children {
		if c.state == pipeline.StateRunnable && c.proc == nil {
			c.state = pipeline.StateFailed
			c.reason = "cancelled: " + reason
		}
	}
	r.queue = nil
	r.notify()
	var running []*job
	for _, c := range append(append([]*job{}, r.children...), r.stitch) {
		if c.proc != nil {
			running = append(running, c)
		}
	}
	r.mu.Unlock()
	r.cond.Broadcast()
	for _, j := range running {
		e.kill(r, j, "cancel")
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("local engine: cancel %s: workers still stopping: %w", h.RenderID, ctx.Err())
	}
}

// Changes returns a channel that is closed at the run's next state change,
// so a watcher need not wait a whole poll interval (pipeline.Run uses it).
func (e *Engine) Changes(h pipeline.Handle) <-chan struct{} {
	r, err := e.lookup(h)
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Wait blocks until the run's jobs are all terminal (for tests and tools).
func (e *Engine) Wait(ctx context.Context, h pipeline.Handle) error {
	r, err := e.lookup(h)
	if err != nil {
		return err
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) lookup(h pipeline.Handle) (*run, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.runs[h.RenderID]
	if !ok || h.Engine != Name {
		return nil, fmt.Errorf("local engine: job %q: %w: local jobs live only as long as the framefleet process that submitted them", h.RenderID, pipeline.ErrUnknownJob)
	}
	return r, nil
}

// Name implements pipeline's engine naming (the record's engine).
func (e *Engine) Name() string { return Name }

// HostBound implements pipeline.HostBound: the workers are this process's
// children and die with it.
func (e *Engine) HostBound() bool { return true }

// WorkerLogs implements pipeline.LogLocator: failed attempts keep their
// stdout and stderr in the run's log directory.
func (e *Engine) WorkerLogs(h pipeline.Handle) string {
	r, err := e.lookup(h)
	if err != nil {
		return ""
	}
	return "failed attempts' worker logs (*.err, *.out) in " + r.logDir
}

var blenderVersionRE = regexp.MustCompile(`Blender (\d+\.\d+(?:\.\d+)?)`)

// BlenderVersion implements pipeline.Engine by asking the Blender program.
func (e *Engine) BlenderVersion(ctx context.Context) (string, error) {
	e.mu.Lock()
	v := e.version
	e.mu.Unlock()
	if v != "" {
		return v, nil
	}
	path, err := exec.LookPath(e.Blender)
	if err != nil {
		return "", fmt.Errorf("find Blender %q: %w: install Blender (apt-get install blender) or point the blender setting at it", e.Blender, err)
	}
	key := binaryKey(path)
	if v = e.cachedVersion(key); v == "" {
		out, err := exec.CommandContext(ctx, path, "--version").Output()
		if err != nil {
			return "", fmt.Errorf("run %s --version: %w: install Blender (apt-get install blender) or point the blender setting at it", path, err)
		}
		if v, err = ParseBlenderVersion(out); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		e.storeVersion(key, v)
	}
	e.mu.Lock()
	e.version = v
	e.mu.Unlock()
	return v, nil
}

// binaryKey identifies one build of a program: a replaced binary gets a new key.
func binaryKey(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s|%d|%d", abs, fi.Size(), fi.ModTime().UnixNano())
}

func (e *Engine) readVersionCache() map[string]string {
	m := map[string]string{}
	if e.VersionCache == "" || e.VersionCache == "-" {
		return m
	}
	if b, err := os.ReadFile(e.VersionCache); err == nil {
		_ = json.Unmarshal(b, &m) // a damaged cache only costs one `blender --version`
	}
	return m
}

func (e *Engine) cachedVersion(key string) string {
	if key == "" {
		return ""
	}
	return e.readVersionCache()[key]
}

// storeVersion remembers a version; failing to is harmless.
func (e *Engine) storeVersion(key, v string) {
	if key == "" || e.VersionCache == "" || e.VersionCache == "-" {
		return
	}
	m := e.readVersionCache()
	m[key] = v
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(e.VersionCache), 0o755); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(e.VersionCache), ".blender-versions-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	if err := os.Rename(tmp.Name(), e.VersionCache); err != nil {
		os.Remove(tmp.Name())
	}
}

// ParseBlenderVersion finds "Blender X.Y[.Z]" in `blender --version` output.
func ParseBlenderVersion(out []byte) (string, error) {
	m := blenderVersionRE.FindSubmatch(out)
	if m == nil {
		first, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
		return "", fmt.Errorf("no Blender version in %q", first)
	}
	return string(m[1]), nil
}

func newJobID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("local engine: job id: %w", err)
	}
	return "local-" + hex.EncodeToString(b), nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// tailLines returns the last n non-empty lines of a file, joined with " | ".
func tailLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 8 << 10
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, fi.Size()-window)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(buf), "\n") {
		if l = strings.TrimSpace(l); l != "" && !isProgressLine(l) {
			lines = append(lines, l)
		}
	}
	lines = lines[max(0, len(lines)-n):]
	return strings.Join(lines, " | ")
}

// isProgressLine tells Blender's per-tile progress ("Fra:3 Mem:... | Sample
// 5/16"), which would push the worker's own error out of a short tail.
func isProgressLine(l string) bool {
	if _, rest, ok := strings.Cut(l, "| "); ok && strings.HasPrefix(rest, "Fra:") {
		return true // Blender 5's "render | " prefix
	}
	return strings.HasPrefix(l, "Fra:")
}

// keptLogBytes bounds what a failed attempt's log keeps: its end, which
// holds the error; Blender's progress before it can run to megabytes.
const keptLogBytes = 64 << 10

// keepTail cuts the file at path down to its last n bytes.
func keepTail(path string, n int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= n {
		return
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-n); err != nil {
		return
	}
	if i := bytes.IndexByte(buf, '\n'); i >= 0 && i < len(buf)-1 {
		buf = buf[i+1:] // start at a whole line
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return
	}
	_ = f.Truncate(int64(len(buf)))
}
