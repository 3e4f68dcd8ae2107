package container

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// command builds an exec.Cmd that runs in its own process group and, when ctx
// is cancelled, kills the whole group: Blender and FFmpeg start helper
// processes and threads, and none may outlive a cancelled job.
func command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd)
	cmd.Cancel = func() error {
		// A negative pid signals the process group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Do not wait forever for pipes held open by a stray grandchild.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// runLines runs cmd and calls onLine for every line of its combined stdout
// and stderr, in order of arrival.
func runLines(cmd *exec.Cmd, onLine func(string)) error {
	runtime.LockOSThread() // see runCmd
	defer runtime.UnlockOSThread()
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			onLine(sc.Text())
		}
		// Keep draining so the process never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	return err
}

// runCmd runs cmd with the calling goroutine locked to its OS thread from
// Start to Wait: Pdeathsig (dieWithParent) fires when the thread that forked
// the child exits, and the Go runtime ends a thread that another goroutine
// locked and left locked; held by us, this one cannot be.
func runCmd(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}
