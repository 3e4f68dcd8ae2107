package batchtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// DefaultStopGrace is how long WorkerProcess waits between SIGTERM and
// SIGKILL. Batch waits 30 s; tests need not.
const DefaultStopGrace = 2 * time.Second

// Process runs each attempt as the container would: the real framefleet
// binary at Bin, given the job's command (its leading "framefleet", the
// image's entrypoint, dropped) and the job's environment plus this machine's
// PATH, HOME and TMPDIR.
type Process struct {
	Bin string
	// Logf, when not nil, receives each attempt's output.
	Logf func(format string, args ...any)
	// StopGrace is the time between SIGTERM and SIGKILL when the attempt is
	// terminated or times out (default DefaultStopGrace). A reclaimed host
	// gives none: the process group is killed at once.
	StopGrace time.Duration
}

// WorkerProcess returns the Executor of Process{Bin: bin, Logf: logf}.
func WorkerProcess(bin string, logf func(format string, args ...any)) Executor {
	return Process{Bin: bin, Logf: logf}.Run
}

// Run is an Executor.
func (p Process) Run(ctx context.Context, j ExecJob) (int, error) {
	grace := p.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	args := j.Command
	if len(args) > 0 && args[0] == "framefleet" {
		args = args[1:]
	}
	cmd := exec.Command(p.Bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}, j.Environ()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group stands for the container: killing the group
	// kills everything in it, as the container's end does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Output pipes held open by an orphan must not block Wait for ever.
	cmd.WaitDelay = grace + 10*time.Second
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		killGroup := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		if !Graceful(context.Cause(ctx)) {
			killGroup()
			return
		}
		// Docker's stop: SIGTERM to the container's main process, SIGKILL
		// to everything once the grace period is over.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
			killGroup()
		}
	}()
	err := cmd.Wait()
	close(exited)
	<-stopped
	if p.Logf != nil {
		p.Logf("%s attempt %d (%s): %v (stop: %v)\n%s", j.JobID, j.Attempt, strings.Join(j.Command, " "), err, context.Cause(ctx), lastBytes(out.String(), 2000))
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		if code := exit.ExitCode(); code >= 0 {
			return code, nil
		}
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil // as Docker reports a signalled container
		}
		return 137, nil
	}
	return 0, err
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
