package pipeline

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/store"
)

// startLeaseHolder starts the test binary as a process hosting run
// leaseHolderRun in the store at dir, and returns once its lease is recorded.
func startLeaseHolder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leaseHolderEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "leased" {
		t.Fatalf("lease holder said %q, %v", line, err)
	}
	return cmd
}

// frozenWithinLease is a clock stopped a minute before the run's lease
// expires: only the holder's death can end the lease, never time.
func frozenWithinLease(t *testing.T, runs *Runs) {
	t.Helper()
	rec, _, err := readRecord(context.Background(), runs.Store, leaseHolderRun)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Host == nil || rec.Host.Boot == "" || rec.Host.Start == 0 {
		t.Fatalf("the lease %+v does not identify its process beyond the PID", rec.Host)
	}
	at := rec.Host.Expires.Add(-time.Minute)
	runs.Clock = frozenClock{at}
}

// A run hosted by a process on this machine that was killed (SIGKILL) is
// interrupted and taken over at once, long before its lease would expire;
// while the process lives, its lease is never taken.
func TestKilledHolderOnThisMachineIsTakenOverAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	holder := startLeaseHolder(t, dir)
	st, err := store.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	runs := &Runs{Store: st}
	frozenWithinLease(t, runs)
	ctx := context.Background()
	out := &outage{budget: time.Second, now: runs.now}

	rec, err := runs.Get(ctx, leaseHolderRun)
	if err != nil || rec.State != RunRunning {
		t.Fatalf("live holder's run: %+v, %v; want running", rec, err)
	}
	if _, took, err := runs.takeOver(ctx, out, leaseHolderRun, false); took || err != nil {
		t.Fatalf("a live process's lease was taken over (%v, %v)", took, err)
	}

	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie is as dead as a vanished PID.
	for {
		seen, err := probeProcess(holder.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if seen.Dead || !seen.Exists {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rec, err := runs.Get(ctx, leaseHolderRun); err != nil || rec.State != RunInterrupted {
		t.Fatalf("killed (unreaped) holder's run: %+v, %v; want interrupted", rec, err)
	}
	_ = holder.Wait()

	page, err := runs.List(ctx, ListFilter{States: []RunState{RunInterrupted}})
	if err != nil || !slices.ContainsFunc(page.Runs, func(r RunRecord) bool { return r.ID == leaseHolderRun }) {
		t.Errorf("interrupted runs %+v, %v: want the killed holder's", page.Runs, err)
	}
	_, took, err := runs.takeOver(ctx, out, leaseHolderRun, false)
	if err != nil || !took {
		t.Fatalf("takeOver of the killed holder's run = %v, %v; want taken at once", took, err)
	}
	rec, _, err = readRecord(ctx, runs.Store, leaseHolderRun)
	if err != nil || !runs.ours(rec.Host) || rec.State != RunInterrupted || rec.Host.PID != os.Getpid() {
		t.Errorf("record %+v, %v: want it interrupted and hosted by this process", rec, err)
	}
}

func TestThisProcessIdentity(t *testing.T) {
	self := thisProcess()
	if self.Boot == "" || self.PIDNS == "" || self.PID != os.Getpid() || self.Start == 0 {
		t.Fatalf("identity %+v: want boot id, PID namespace, PID and start time", self)
	}
	if holderGone(&RunHost{PID: self.PID, Boot: self.Boot, PIDNS: self.PIDNS, Start: self.Start}, self, probeProcess) {
		t.Error("this very process counts as gone")
	}
	if !holderGone(&RunHost{PID: self.PID, Boot: self.Boot, PIDNS: self.PIDNS, Start: self.Start - 1}, self, probeProcess) {
		t.Error("a lease naming this PID with another start time (a reused PID) does not count as gone")
	}
}

func TestReadStat(t *testing.T) {
	tests := []struct {
		name, stat string
		pid        int
		state      byte
		start      uint64
		bad        bool
	}{
		{"plain", "4242 (framefleet) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 8 0 123456 0 0", 4242, 'S', 123456, false},
		{"name with spaces and parentheses", "77 (a) b (c) Z 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", 77, 'Z', 99, false},
		{"truncated", "77 (x) S 1 2 3", 0, 0, 0, true},
		{"no name", "77 S 1", 0, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stat")
			if err := os.WriteFile(path, []byte(tc.stat+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			pid, state, start, err := readStat(path)
			if tc.bad {
				if err == nil {
					t.Errorf("readStat(%q) = %d %c %d, want an error", tc.stat, pid, state, start)
				}
				return
			}
			if err != nil || pid != tc.pid || state != tc.state || start != tc.start {
				t.Errorf("readStat = %d %c %d, %v; want %d %c %d", pid, state, start, err, tc.pid, tc.state, tc.start)
			}
		})
	}
}
