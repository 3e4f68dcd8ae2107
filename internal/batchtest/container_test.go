package batchtest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
)

// fakeRuntime is a container CLI at the edge (docker's and podman's `run`,
// `stop` and `kill`, as Container uses them): `run` records its arguments and
// the values of the --env variables it was given, then exits as the
// command's first argument says ("exit:N", or "wait" until `stop`/`kill`
// names the container: 143 after stop, 137 after kill).
const fakeRuntime = `#!/usr/bin/env bash
set -euo pipefail
dir=$(dirname "$0")
cmd=$1; shift
case $cmd in
run)
	echo "$*" >"$dir/run.args"
	name="" envs=()
	while [ $# -gt 0 ]; do
		case $1 in
		--rm) shift ;;
		--name) name=$2; shift 2 ;;
		--network) shift 2 ;;
		--env) envs+=("$2"); shift 2 ;;
		*) break ;;
		esac
	done
	image=$1; shift
	for k in "${envs[@]}"; do echo "$k=${!k}"; done >"$dir/run.env"
	case $1 in
	exit:*) exit "${1#exit:}" ;;
	wait)
		while :; do
			[ ! -e "$dir/stop.$name" ] || exit 143
			[ ! -e "$dir/kill.$name" ] || exit 137
			sleep 0.05
		done ;;
	esac ;;
stop) echo "$*" >"$dir/stop.args"; touch "$dir/stop.${!#}" ;;
kill) echo "$*" >"$dir/kill.args"; touch "$dir/kill.${!#}" ;;
esac
`

func newFakeRuntime(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-runtime")
	if err := os.WriteFile(p, []byte(fakeRuntime), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestContainerRunsTheJob: the job's image (or the one set), command and
// environment (plus Container.Env, which wins) reach `run`, and the
// container's exit code is the attempt's; a CLI failure is an error.
func TestContainerRunsTheJob(t *testing.T) {
	rt := newFakeRuntime(t)
	dir := filepath.Dir(rt)
	tests := []struct {
		name    string
		image   string
		command []string
		code    int
		wantErr bool
		wantImg string
	}{
		{"exit 0 in the job's image", "", []string{"exit:0"}, 0, false, "registry.example/framefleet:1"},
		{"exit 3 in the image set", "framefleet:test", []string{"exit:3"}, 3, false, "framefleet:test"},
		{"the CLI fails", "", []string{"exit:125"}, 0, true, "registry.example/framefleet:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := batchtest.Container{Runtime: []string{rt}, Image: tt.image, Env: map[string]string{"AWS_ACCESS_KEY_ID": "test-key", "SHARED": "from Container.Env"}}
			job := batchtest.ExecJob{JobID: "9e37:1", Attempt: 2, Image: "registry.example/framefleet:1", Command: tt.command,
				Env: map[string]string{"AWS_BATCH_JOB_ARRAY_INDEX": "1", "SHARED": "from the job", "WITH_SPACE": "a b"}}
			code, err := c.Run(context.Background(), job)
			if (err != nil) != tt.wantErr || code != tt.code {
				t.Fatalf("Run: %d, %v; want %d, error %v", code, err, tt.code, tt.wantErr)
			}
			args := read(t, filepath.Join(dir, "run.args"))
			if !strings.Contains(args, "--name batchtest-9e37-1-2 ") || !strings.Contains(args, "--network host") ||
				!strings.HasSuffix(args, tt.wantImg+" "+strings.Join(tt.command, " ")) || strings.Contains(args, "test-key") {
				t.Errorf("run %s: want the sanitized name, the host's network, %s and the command, and no values on the command line", args, tt.wantImg)
			}
			env := read(t, filepath.Join(dir, "run.env"))
			for _, kv := range []string{"AWS_BATCH_JOB_ARRAY_INDEX=1", "AWS_ACCESS_KEY_ID=test-key", "SHARED=from Container.Env", "WITH_SPACE=a b"} {
				if !strings.Contains(env+"\n", kv+"\n") {
					t.Errorf("container environment lacks %s:\n%s", kv, env)
				}
			}
		})
	}
}

// TestContainerStops: a terminated job's container is stopped with the grace
// period (SIGTERM, then SIGKILL), a reclaimed host's killed at once.
func TestContainerStops(t *testing.T) {
	tests := []struct {
		cause    error
		stopFile string
		args     string
		code     int
	}{
		{batchtest.ErrJobTerminated, "stop.args", "-t 3 batchtest-j-1", 143},
		{batchtest.ErrHostReclaimed, "kill.args", "batchtest-j-1", 137},
	}
	for _, tt := range tests {
		t.Run(tt.cause.Error(), func(t *testing.T) {
			rt := newFakeRuntime(t)
			c := batchtest.Container{Runtime: []string{rt}, StopGrace: 3 * time.Second}
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan struct{})
			var code int
			var err error
			go func() {
				defer close(done)
				code, err = c.Run(ctx, batchtest.ExecJob{JobID: "j", Attempt: 1, Image: "img", Command: []string{"wait"}})
			}()
			// Stop once the container runs: the fake has recorded its run.
			for {
				if _, err := os.Stat(filepath.Join(filepath.Dir(rt), "run.env")); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel(tt.cause)
			<-done
			if err != nil || code != tt.code {
				t.Fatalf("Run: %d, %v; want %d", code, err, tt.code)
			}
			if got := read(t, filepath.Join(filepath.Dir(rt), tt.stopFile)); got != tt.args {
				t.Errorf("%s: %q, want %q", tt.stopFile, got, tt.args)
			}
		})
	}
}
