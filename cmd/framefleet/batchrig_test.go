package main

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
)

// batchRig is the Batch test server and the S3 server, with the environment
// a framefleet process needs to use them.
type batchRig struct {
	srv *batchtest.Server
	s3  *s3test.Server
	env []string
}

// batchRigOptions shape a batchRig.
type batchRigOptions struct {
	capacity int                // Batch jobs running at once
	exec     batchtest.Executor // nil: each attempt runs the real worker (Blender)
	prefix   string             // the store's prefix in the bucket
	env      []string           // more of the environment (the engine, GitHub's variables, ...)
}

// startBatchRig starts the servers and, as an administrator would once,
// registers the job definition with `framefleet setup`.
func startBatchRig(t *testing.T, o batchRigOptions) *batchRig {
	t.Helper()
	bin := framefleetBinary(t)
	s3 := s3test.Start(t)
	creds := jobCredentials()
	run := o.exec
	if run == nil {
		testenv.Blender(t)
		testenv.FFmpeg(t)
		var logMu sync.Mutex
		worker := batchtest.WorkerProcess(bin, func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			t.Logf(format, args...)
		})
		run = func(ctx context.Context, j batchtest.ExecJob) (int, error) {
			j.Env = maps.Clone(j.Env)
			maps.Copy(j.Env, creds)
			return worker(ctx, j)
		}
	}
	srv := batchtest.Start(t, batchtest.Options{MaxRunning: o.capacity, Executor: run})
	srv.SetCapacity(o.capacity) // Options reads 0 as its default
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir(),
		"FRAMEFLEET_BUCKET=" + s3.Bucket,
		"FRAMEFLEET_PREFIX=" + o.prefix,
		"FRAMEFLEET_REGION=" + s3.Region,
		"FRAMEFLEET_S3_ENDPOINT=" + s3.Endpoint,
		"FRAMEFLEET_S3_PATH_STYLE=true",
		"FRAMEFLEET_JOB_QUEUE=renders",
		"FRAMEFLEET_IMAGE=registry.example/framefleet:test",
		"FRAMEFLEET_BLENDER_VERSION=3.4.1",
		"FRAMEFLEET_JOB_ROLE_ARN=arn:aws:iam::123456789012:role/framefleet-job",
		"AWS_ENDPOINT_URL_BATCH=" + srv.URL,
	}
	for k, v := range creds {
		env = append(env, k+"="+v)
	}
	env = append(env, o.env...)
	setup := exec.Command(bin, "setup")
	setup.Dir, setup.Env = t.TempDir(), env
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("framefleet setup: %v\n%s", err, out)
	}
	return &batchRig{srv: srv, s3: s3, env: env}
}

// jobCredentials is what a Batch container gets from its job role: here,
// the S3 test server's keys, and no other source of AWS configuration.
func jobCredentials() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           s3test.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       s3test.SecretKey,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	}
}

func (r *batchRig) status(t *testing.T, id string) cliRecord {
	t.Helper()
	st := decodeJSON[struct {
		Run cliRecord `json:"run"`
	}](t, ff(t, r.env, "status", id, "--json"))
	return st.Run
}
