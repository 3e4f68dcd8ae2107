package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/ecrtest"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline/store"
)

// setupEnv points the AWS SDK at the test servers: Batch through
// AWS_ENDPOINT_URL_BATCH (as any SDK user could), S3 through the config file.
func setupEnv(t *testing.T, batchURL string) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_BATCH":      batchURL,
		"AWS_ACCESS_KEY_ID":           s3test.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       s3test.SecretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"FRAMEFLEET_IMAGE":            "",
		"FRAMEFLEET_JOB_QUEUE":        "",
		"FRAMEFLEET_CONFIG":           "",
	} {
		t.Setenv(k, v)
	}
}

func writeSetupConfig(t *testing.T, s3 *s3test.Server, bucket, queue string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "framefleet.yaml")
	yaml := `engine: local
region: us-east-1
bucket: ` + bucket + `
prefix: renders
s3:
  endpoint: ` + s3.Endpoint + `
  path_style: true
batch:
  job_queue: ` + queue + `
  job_definition: framefleet
  image: registry.example/framefleet:1
  blender_version: "3.4.1"
  job_role_arn: arn:aws:iam::123456789012:role/framefleet-job
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSetup(t *testing.T) {
	s3 := s3test.Start(t)
	srv := batchtest.Start(t, batchtest.Options{Queues: []string{"renders"}})
	setupEnv(t, srv.URL)
	good := writeSetupConfig(t, s3, s3.Bucket, "renders")
	ecr := ecrtest.Start(t, []string{"framefleet"}, ecrtest.Image{Repository: "framefleet", Tag: "3.4.1",
		Digest: "sha256:" + strings.Repeat("0f", 32), Size: 900 << 20, PushedAt: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), User: "10001:10001"},
		ecrtest.Image{Repository: "framefleet", Tag: "rooted", Digest: "sha256:" + strings.Repeat("0e", 32), Size: 900 << 20,
			PushedAt: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)})
	t.Setenv("AWS_ENDPOINT_URL_ECR", ecr.URL)
	const ecrImage = "123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet"

	steps := []struct {
		name      string
		config    string
		image     string   // FRAMEFLEET_IMAGE override
		sets      []string // --set flags
		wantErr   string
		wantOut   []string
		registers int // RegisterJobDefinition calls so far
	}{
		{name: "first run registers", config: good, registers: 1, wantOut: []string{
			"bucket        s3://" + s3.Bucket + "/renders: reachable",
			"conditional writes honoured",
			"job queue     renders: ENABLED, VALID",
			"image         registry.example/framefleet:1",
			"job definition framefleet: registered (arn:aws:batch:us-east-1:123456789012:job-definition/framefleet:1)",
		}},
		{name: "second run changes nothing", config: good, registers: 1, wantOut: []string{
			"job definition framefleet: unchanged (arn:aws:batch:us-east-1:123456789012:job-definition/framefleet:1)",
		}},
		{name: "new image registers a revision", config: good, image: "registry.example/framefleet:2", registers: 2, wantOut: []string{
			"image         registry.example/framefleet:2",
			"job definition framefleet: registered (arn:aws:batch:us-east-1:123456789012:job-definition/framefleet:2)",
		}},
		{name: "missing queue", config: writeSetupConfig(t, s3, s3.Bucket, "nope"), registers: 2, wantErr: "job queue nope not found"},
		// --set overrides the file (the queue is right again). Going back to
		// image :1 reuses revision 1, which has the same spec.
		{name: "--set overrides the file", config: writeSetupConfig(t, s3, s3.Bucket, "nope"), sets: []string{"batch.job_queue=renders"}, registers: 2, wantOut: []string{
			"job queue     renders: ENABLED, VALID",
			"job definition framefleet: unchanged (arn:aws:batch:us-east-1:123456789012:job-definition/framefleet:1)",
		}},
		// An ECR image is looked up: a pushed tag is reported, a missing one stops setup.
		{name: "pushed ECR image", config: good, image: ecrImage + ":3.4.1", registers: 3, wantOut: []string{
			"image         " + ecrImage + ":3.4.1: pushed 2026-11-20 12:00 UTC (sha256:0f0f",
			"image user    10001:10001",
		}},
		// The metadata block holds only for non-root processes: a root image is refused, nothing registered.
		{name: "ECR image that runs as root", config: good, image: ecrImage + ":rooted", registers: 3, wantErr: `runs as root (USER "")`},
		{name: "ECR tag never pushed", config: good, image: ecrImage + ":3.5.0", registers: 3, wantErr: "framefleet:3.5.0 is not in ECR repository framefleet: image not found: build and push it"},
		{name: "--set without =", config: good, sets: []string{"batch.job_queue"}, registers: 3, wantErr: `--set "batch.job_queue": give KEY=VALUE`},
		{name: "--set unknown key", config: good, sets: []string{"batch.jobqueue=x"}, registers: 3, wantErr: "--set batch.jobqueue=x"},
		{name: "--set bad value", config: good, sets: []string{"batch.memory_mib=lots"}, registers: 3, wantErr: "--set batch.memory_mib=lots"},
		// Workers without a job role would fall back to the instance role and fail every chunk.
		{name: "EC2 definition without job role", config: good, sets: []string{"batch.job_role_arn="}, registers: 3, wantErr: "the EC2 job definition has no job role"},
		{name: "missing bucket", config: writeSetupConfig(t, s3, "no-such-bucket", "renders"), registers: 3, wantErr: "create it (aws s3 mb s3://no-such-bucket)"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			t.Setenv("FRAMEFLEET_IMAGE", s.image)
			var stdout, stderr bytes.Buffer
			args := []string{"setup", "--config", s.config}
			for _, kv := range s.sets {
				args = append(args, "--set", kv)
			}
			code := run(context.Background(), args, &stdout, &stderr)
			if s.wantErr != "" {
				if code == 0 || !strings.Contains(stderr.String(), s.wantErr) {
					t.Fatalf("exit %d, stderr %q; want a failure mentioning %q", code, stderr.String(), s.wantErr)
				}
			} else if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			t.Logf("stdout:\n%s", stdout.String())
			for _, want := range s.wantOut {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, stdout.String())
				}
			}
			if got := srv.Calls()["RegisterJobDefinition"]; got != s.registers {
				t.Errorf("RegisterJobDefinition calls = %d, want %d", got, s.registers)
			}
		})
	}
	if defs := srv.JobDefinitions("framefleet"); len(defs) != 3 || defs[1].Image() != "registry.example/framefleet:2" || defs[1].Env()["FRAMEFLEET_BLENDER_VERSION"] != "3.4.1" {
		t.Errorf("definitions %+v", defs)
	}
}

func TestSetupRefusesStoreWithoutConditionalWrites(t *testing.T) {
	s3 := s3test.Start(t, s3test.WithoutConditionalWrites())
	srv := batchtest.Start(t, batchtest.Options{Queues: []string{"renders"}})
	setupEnv(t, srv.URL)
	config := writeSetupConfig(t, s3, s3.Bucket, "renders")
	for _, tc := range []struct {
		name    string
		sets    []string
		wantErr string
		wantOut string
	}{
		{name: "refused", wantErr: "ignores conditional writes (a create with If-None-Match: * replaced an existing object; " +
			"a replace with If-Match and a wrong ETag succeeded)"},
		{name: "accepted by the setting", sets: []string{"s3.unsafe_no_conditional_writes=true"},
			wantOut: "conditional writes IGNORED (a create with If-None-Match: * replaced an existing object; a replace with If-Match and a wrong ETag succeeded), " +
				"accepted by s3.unsafe_no_conditional_writes: runs are not deduplicated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"setup", "--config", config}
			for _, kv := range tc.sets {
				args = append(args, "--set", kv)
			}
			code := run(context.Background(), args, &stdout, &stderr)
			if tc.wantErr != "" {
				if code == 0 || !strings.Contains(stderr.String(), tc.wantErr) || !strings.Contains(stderr.String(), "s3.unsafe_no_conditional_writes: true") {
					t.Fatalf("exit %d, stderr %q; want a refusal naming the reason and the setting", code, stderr.String())
				}
				if srv.Calls()["RegisterJobDefinition"] != 0 {
					t.Error("setup went on after refusing the store")
				}
				return
			}
			if code != 0 || !strings.Contains(stdout.String(), tc.wantOut) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, stdout.String(), stderr.String(), tc.wantOut)
			}
		})
	}
	if _, err := s3.Backend.HeadObject(s3.Bucket, "renders/"+store.ConditionalCheckKey); err != nil {
		t.Errorf("the probe's result is not recorded in the store: %v", err)
	}
}
