package container

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/store"
)

// A worker whose credentials S3 refuses (a job definition without a job
// role, or a job role without the bucket) fails at once: one attempt on
// Batch, not every attempt of every chunk, with a message that names the job
// role.
func TestAccessDeniedInAWorkerIsPermanent(t *testing.T) {
	ctx := context.Background()
	s3 := s3test.Start(t, s3test.WithFaults(1, 1, 403)) // every request: 403 AccessDenied
	st, err := store.NewS3(ctx, s3.Bucket, "renders", store.Options{
		Region: s3.Region, Endpoint: s3.Endpoint, UsePathStyle: true, Credentials: s3.Credentials(), MaxAttempts: 2,
	})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var failures []string
	srv := batchtest.Start(t, batchtest.Options{Executor: func(ctx context.Context, j batchtest.ExecJob) (int, error) {
		w := &Worker{Store: st, RunID: j.Env[batch.RunIDEnv], Attempt: j.Attempt, WorkDir: t.TempDir()}
		var err error
		if j.ArrayIndex >= 0 {
			_, err = w.RenderChunk(ctx, j.ArrayIndex)
		} else {
			_, err = w.Stitch(ctx, "")
		}
		if err == nil {
			t.Error("the worker succeeded although S3 refused every request")
			return 0, nil
		}
		mu.Lock()
		failures = append(failures, err.Error())
		mu.Unlock()
		return exitCode(err), nil
	}})
	eng, err := batch.New(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")},
		batch.Options{Queue: "q", Endpoint: srv.URL, MaxBackoff: 10 * time.Millisecond, Definition: batch.Spec{
			Image: "registry.example/framefleet:1", JobRoleARN: "arn:aws:iam::123456789012:role/framefleet-job",
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.EnsureJobDefinition(ctx, batch.Spec{Image: "registry.example/framefleet:1", JobRoleARN: "arn:aws:iam::123456789012:role/framefleet-job"}); err != nil {
		t.Fatal(err)
	}
	h, err := eng.Submit(ctx, pipeline.Job{RunID: "denied", StoreURI: st.URI(), Chunks: 2, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := eng.Status(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if s.Render.Terminal() && s.Stitch.Terminal() {
			if s.Render != pipeline.StateFailed {
				t.Fatalf("render %s, want FAILED", s.Render)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not end: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 2 {
		if n := srv.Attempts(h.RenderID + ":" + string(rune('0'+i))); n != 1 {
			t.Errorf("chunk %d made %d attempts, want 1 (AccessDenied is not worth retrying)", i, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) != 2 {
		t.Fatalf("%d worker failures, want one per chunk: %q", len(failures), failures)
	}
	for _, f := range failures {
		if !strings.Contains(f, "AccessDenied") || !strings.Contains(f, "job role") || !strings.Contains(f, "batch.job_role_arn") {
			t.Errorf("failure %q does not say S3 refused access and name the job role", f)
		}
	}
}

// Other answers a retry cannot change are permanent too; a store outage is not.
func TestStoreErrorClassification(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		want    int
		mention string
	}{
		{"access denied", 403, ExitPermanent, "job role"},
		{"server error", 500, ExitTransient, ""},
		{"slow down", 503, ExitTransient, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s3 := s3test.Start(t, s3test.WithFaults(1, 1, tc.status))
			st, err := store.NewS3(context.Background(), s3.Bucket, "", store.Options{
				Region: s3.Region, Endpoint: s3.Endpoint, UsePathStyle: true, Credentials: s3.Credentials(), MaxAttempts: 1,
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = (&Worker{Store: st, RunID: "r"}).LoadPlan(context.Background())
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.want || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("LoadPlan against S3 answering %d: %v; want exit code %d mentioning %q", tc.status, err, tc.want, tc.mention)
			}
		})
	}
}

// The worker's stop budget fits ECS's stop timeout: what it does after
// SIGTERM (uploading saved frames, then saving the chunk report) ends before
// SIGKILL.
func TestStopBudgetFitsECSStopTimeout(t *testing.T) {
	if !(uploadGrace < stopBudget && stopBudget < ecsStopTimeout) {
		t.Fatalf("upload grace %s, stop budget %s, ECS stop timeout %s: want grace < budget < timeout", uploadGrace, stopBudget, ecsStopTimeout)
	}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		now, stopped time.Time
		want         time.Time
	}{
		{"not stopped", t0, time.Time{}, t0.Add(reportTimeout)},
		{"stopped just now", t0, t0, t0.Add(reportTimeout)},
		{"stopped after the upload grace", t0.Add(uploadGrace), t0, t0.Add(stopBudget)},
		{"stopped long ago", t0.Add(time.Minute), t0, t0.Add(stopBudget)},
	}
	for _, tc := range tests {
		got := reportDeadline(tc.now, tc.stopped)
		if !got.Equal(tc.want) {
			t.Errorf("%s: deadline %s, want %s", tc.name, got.Sub(t0), tc.want.Sub(t0))
		}
		if !tc.stopped.IsZero() && got.Sub(tc.stopped) >= ecsStopTimeout {
			t.Errorf("%s: the report would be saved %s after SIGTERM, past ECS's SIGKILL at %s", tc.name, got.Sub(tc.stopped), ecsStopTimeout)
		}
	}
}
