package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
)

// TestRenderBatchEngine runs `framefleet render --engine batch` as a user
// would, configured only through FRAMEFLEET_* variables: the CLI talks to the
// Batch test server and the S3 server, each Batch attempt runs the real
// worker binary, and the result's video link is a presigned S3 URL that
// serves the video.
func TestRenderBatchEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	testenv.Blender(t)
	testenv.FFmpeg(t)
	bin := framefleetBinary(t)
	scene := testenv.MakeScene(t, map[string]any{"start": 1, "end": 4})

	s3 := s3test.Start(t)
	creds := map[string]string{
		"AWS_ACCESS_KEY_ID":           s3test.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       s3test.SecretKey,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	}
	var logMu sync.Mutex
	worker := batchtest.WorkerProcess(bin, func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Logf(format, args...)
	})
	srv := batchtest.Start(t, batchtest.Options{
		MaxRunning: 2,
		// Containers get credentials from the job role on Batch; here from the environment.
		Executor: func(ctx context.Context, j batchtest.ExecJob) (int, error) {
			j.Env = maps.Clone(j.Env)
			maps.Copy(j.Env, creds)
			return worker(ctx, j)
		},
	})

	cmd := exec.Command(bin, "render", scene, "--engine", "batch", "--chunk", "2", "--resolution", "50", "--samples", "1", "--json")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir(),
		"FRAMEFLEET_BUCKET=" + s3.Bucket,
		"FRAMEFLEET_PREFIX=cli",
		"FRAMEFLEET_REGION=" + s3.Region,
		"FRAMEFLEET_S3_ENDPOINT=" + s3.Endpoint,
		"FRAMEFLEET_S3_PATH_STYLE=true",
		"FRAMEFLEET_JOB_QUEUE=renders",
		"FRAMEFLEET_IMAGE=123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet:test",
		"FRAMEFLEET_BLENDER_VERSION=3.4.1",
		"AWS_ENDPOINT_URL_BATCH=" + srv.URL,
	}
	for k, v := range creds {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("render --engine batch: %v\n%s", err, stderr.String())
	}
	var res struct {
		RunID      string `json:"run_id"`
		Video      string `json:"video"`
		FrameCount int    `json:"frame_count"`
		Store      string `json:"store"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not the result: %v\n%s", err, stdout.String())
	}
	if res.FrameCount != 4 || !strings.HasPrefix(res.Store, "s3://"+s3.Bucket+"/cli") {
		t.Fatalf("result %+v: want 4 frames in s3://%s/cli", res, s3.Bucket)
	}
	subs := srv.Submissions()
	if len(subs) != 2 {
		t.Fatalf("%d Batch submissions, want the render array and the stitch job", len(subs))
	}
	resp, err := http.Get(res.Video)
	if err != nil {
		t.Fatalf("fetch the video link: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) < 100 || !bytes.Contains(body[:min(len(body), 64)], []byte("ftyp")) {
		t.Fatalf("video link answered %d with %d bytes, want an MP4", resp.StatusCode, len(body))
	}
}
