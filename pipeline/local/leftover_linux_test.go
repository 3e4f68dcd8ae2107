package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startOrphan starts a process with run runID in its environment whose
// parent exits at once, like a worker of a framefleet killed with SIGKILL.
func startOrphan(t *testing.T, runID string) int {
	t.Helper()
	sh := exec.Command("sh", "-c", "sleep 120 </dev/null >/dev/null 2>&1 & echo $!")
	sh.Env = append(os.Environ(), runIDVar+"="+runID)
	out, err := sh.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("sh said %q", out)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

func TestLeftoverWorkers(t *testing.T) {
	runID := "left" + strconv.Itoa(os.Getpid())
	orphan := startOrphan(t, runID)
	own := exec.Command("sleep", "120") // a worker this process started
	own.Env = append(os.Environ(), runIDVar+"="+runID)
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = own.Process.Kill(); _ = own.Wait() })

	if got := leftoverWorkers(runID); !slices.Equal(got, []int{orphan}) {
		t.Errorf("leftoverWorkers = %v, want the orphan %d and not this process's own worker %d", got, orphan, own.Process.Pid)
	}
	if got := leftoverWorkers(runID + "x"); len(got) != 0 {
		t.Errorf("workers of another run counted: %v", got)
	}

	e, err := New(Options{WorkerCommand: []string{"true"}, Workers: 1, Blender: "blender", VersionCache: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.awaitLeftovers(ctx, runID); !errors.Is(err, context.Canceled) {
		t.Errorf("awaitLeftovers with the orphan alive = %v, want it waiting (until ctx ended)", err)
	}
	if err := syscall.Kill(orphan, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(leftoverWorkers(runID)) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the killed orphan is still counted")
		}
	}
	if err := e.awaitLeftovers(context.Background(), runID); err != nil {
		t.Errorf("awaitLeftovers with no orphan left = %v", err)
	}
}
