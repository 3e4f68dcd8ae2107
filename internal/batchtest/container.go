package batchtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Container runs each attempt as Batch does, in a container of the job's
// image: `docker run` (or `podman run`) with the job's command as the
// arguments of the image's entrypoint and the job's environment. Where
// Process stands a process group in for the container, this runs the real
// image, so a test can check what an image build produced. The container
// shares the host's network, as Batch's awsvpc-less EC2 hosts do, so it
// reaches test servers listening on the loopback address.
type Container struct {
	// Runtime is the container CLI and its global options, e.g. {"docker"} or
	// {"podman", "--runtime", "/path/to/runtime"}.
	Runtime []string
	// Image, when set, replaces the job's image (a job definition names a
	// registry; a test runs the image it has just built).
	Image string
	// Env is added to every attempt's environment: what the job role and the
	// host give a container on Batch (credentials, the S3 endpoint's CA).
	Env map[string]string
	// Logf, when not nil, receives each attempt's output.
	Logf func(format string, args ...any)
	// StopGrace is the time between SIGTERM and SIGKILL when the attempt is
	// terminated or times out (default DefaultStopGrace); a reclaimed host
	// gives none.
	StopGrace time.Duration
}

// containerNameUnsafe matches what `run --name` refuses (names are [a-zA-Z0-9][a-zA-Z0-9_.-]*).
var containerNameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// Run is an Executor.
func (c Container) Run(ctx context.Context, j ExecJob) (int, error) {
	if len(c.Runtime) == 0 {
		return 0, errors.New("batchtest: Container.Runtime is empty: set it to {\"docker\"} or {\"podman\"}")
	}
	grace := c.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	image := c.Image
	if image == "" {
		image = j.Image
	}
	if image == "" {
		return 0, fmt.Errorf("batchtest: job %s names no image and Container.Image is empty", j.JobID)
	}
	env := maps.Clone(j.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, c.Env)
	name := containerNameUnsafe.ReplaceAllString(fmt.Sprintf("batchtest-%s-%d", j.JobID, j.Attempt), "-")

	args := append(slices.Clone(c.Runtime[1:]), "run", "--rm", "--name", name, "--network", "host")
	for _, k := range slices.Sorted(maps.Keys(env)) {
		// The value travels in the CLI's environment, not on its command line.
		args = append(args, "--env", k)
	}
	args = append(append(args, image), j.Command...)
	cmd := exec.Command(c.Runtime[0], args...)
	cmd.Env = append(cmd.Environ(), j.Environ()...)
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		cmd.Env = append(cmd.Env, k+"="+c.Env[k])
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = grace + 30*time.Second
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("batchtest: start %s: %w", c.Runtime[0], err)
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
		// The container, not the CLI, is stopped: the CLI then reports its exit.
		stop := []string{"kill", name}
		if Graceful(context.Cause(ctx)) {
			stop = []string{"stop", "-t", strconv.Itoa(int(grace.Seconds() + 0.5)), name}
		}
		// The container may not exist yet (the CLI is still creating it):
		// try again until it has ended.
		for {
			out, err := exec.Command(c.Runtime[0], append(slices.Clone(c.Runtime[1:]), stop...)...).CombinedOutput()
			if err == nil {
				return
			}
			if c.Logf != nil {
				c.Logf("%s %s: %v\n%s", c.Runtime[0], strings.Join(stop, " "), err, out)
			}
			select {
			case <-exited:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	err := cmd.Wait()
	close(exited)
	<-stopped
	if c.Logf != nil {
		c.Logf("%s attempt %d in %s (%s): %v (stop: %v)\n%s", j.JobID, j.Attempt, image, strings.Join(j.Command, " "), err, context.Cause(ctx), lastBytes(out.String(), 4000))
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		code := exit.ExitCode()
		// 125: the CLI or daemon failed; 126, 127: the entrypoint cannot
		// run. Batch reports such a container as never started.
		if code == 125 || (code >= 126 && code <= 127 && ctx.Err() == nil) {
			return 0, fmt.Errorf("batchtest: %s run %s exited %d: %s", c.Runtime[0], image, code, lastBytes(strings.TrimSpace(out.String()), 2000))
		}
		if code >= 0 {
			return code, nil
		}
		return 137, nil
	}
	return 0, err
}
