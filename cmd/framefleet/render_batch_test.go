package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

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

	rig := startBatchRig(t, batchRigOptions{capacity: 2, prefix: "cli"})
	srv, s3 := rig.srv, rig.s3
	cmd := exec.Command(bin, "render", scene, "--engine", "batch", "--chunk", "2", "--resolution", "50", "--samples", "1", "--json")
	cmd.Env = rig.env
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
