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

// WorkerProcess returns an Executor that runs each attempt as the container
// would: the real framefleet binary at bin, given the job's command (its
// leading "framefleet", the image's entrypoint, dropped) and the job's
// environment plus this machine's PATH, HOME and TMPDIR. logf, when not nil,
// receives each attempt's output.
func WorkerProcess(bin string, logf func(format string, args ...any)) Executor {
	return func(ctx context.Context, j ExecJob) (int, error) {
		args := j.Command
		if len(args) > 0 && args[0] == "framefleet" {
			args = args[1:]
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}, j.Environ()...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		// A reclaimed host dies at once: no grace period.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
		cmd.WaitDelay = 10 * time.Second
		err := cmd.Run()
		if logf != nil {
			logf("%s attempt %d (%s): %v\n%s", j.JobID, j.Attempt, strings.Join(j.Command, " "), err, lastBytes(out.String(), 2000))
		}
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, nil
		case errors.As(err, &exit):
			if code := exit.ExitCode(); code >= 0 {
				return code, nil
			}
			return 137, nil // killed by a signal, as Docker reports it
		}
		return 0, err
	}
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
