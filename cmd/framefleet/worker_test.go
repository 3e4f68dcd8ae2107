package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/container"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

func workerRun(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append([]string{"worker"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// workerStore stores a two-frame, two-chunk plan of a tiny scene and returns the store.
func workerStore(t *testing.T) *store.File {
	t.Helper()
	testenv.FFmpeg(t)
	blend := testenv.MakeScene(t, map[string]any{"start": 1, "end": 2})
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := plan.Plan{Schema: plan.Schema, RunID: "cli", CreatedAt: time.Now().UTC(), Blend: plan.Blend{Key: store.BlendKey("cli")},
		Scene: "Scene", Frames: []int{1, 2}, ChunkSize: 1, FrameRate: plan.FrameRate{Num: 25, Den: 1},
		Render: plan.RenderSettings{ImageFormat: "PNG", Threads: 2}, Stitch: plan.StitchConcat}
	if err := st.PutFile(ctx, p.Blend.Key, blend); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	if err := st.Put(ctx, store.PlanKey(p.RunID), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return st
}

// The worker commands read their job from the environment, as on AWS Batch.
func TestWorkerCommands(t *testing.T) {
	st := workerStore(t)
	t.Setenv("FRAMEFLEET_STORE", st.URI())
	t.Setenv("FRAMEFLEET_RUN_ID", "cli")
	t.Setenv("AWS_BATCH_JOB_ATTEMPT", "2")
	ctx := context.Background()
	for _, i := range []string{"0", "1"} {
		t.Setenv("AWS_BATCH_JOB_ARRAY_INDEX", i)
		if code, _, stderr := workerRun(t, ctx, "render", "--workdir", t.TempDir()); code != 0 {
			t.Fatalf("worker render (index %s) exit %d:\n%s", i, code, stderr)
		}
	}
	rc, err := st.Get(ctx, store.ChunkReportKey("cli", 1))
	if err != nil {
		t.Fatal(err)
	}
	var rep pipeline.ChunkReport
	err = json.NewDecoder(rc).Decode(&rep)
	rc.Close()
	if err != nil || rep.Index != 1 || rep.Attempt != 2 || len(rep.Frames) != 1 || rep.Frames[0] != 2 {
		t.Errorf("chunk 1 report %+v, %v", rep, err)
	}
	code, stdout, stderr := workerRun(t, ctx, "stitch", "--stitch", "encode")
	if code != 0 {
		t.Fatalf("worker stitch exit %d:\n%s", code, stderr)
	}
	if got := strings.TrimSpace(stdout); got != store.VideoKey("cli", "Scene") {
		t.Errorf("stitch printed %q", got)
	}
	if code, _, stderr := workerRun(t, ctx, "stitch", "--stitch", "fast"); code != container.ExitPermanent || !strings.Contains(stderr, `unknown stitch mode "fast"`) {
		t.Errorf("bad --stitch: exit %d, %s", code, stderr)
	}
}

func TestWorkerExitCodes(t *testing.T) {
	st := workerStore(t)
	t.Setenv("FRAMEFLEET_RUN_ID", "cli")
	t.Setenv("FRAMEFLEET_STORE", "")
	if code, _, stderr := workerRun(t, context.Background(), "render"); code != container.ExitPermanent || !strings.Contains(stderr, "FRAMEFLEET_STORE") {
		t.Errorf("no store: exit %d, %s", code, stderr)
	}
	t.Setenv("FRAMEFLEET_STORE", st.URI())
	t.Setenv("AWS_BATCH_JOB_ARRAY_INDEX", "7")
	if code, _, stderr := workerRun(t, context.Background(), "render"); code != container.ExitPermanent || !strings.Contains(stderr, "out of range") {
		t.Errorf("index out of range: exit %d, %s", code, stderr)
	}
	// SIGTERM (a cancelled context) means "try again".
	t.Setenv("AWS_BATCH_JOB_ARRAY_INDEX", "0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code, _, stderr := workerRun(t, ctx, "render"); code != container.ExitTransient {
		t.Errorf("cancelled: exit %d, want %d:\n%s", code, container.ExitTransient, stderr)
	}
}
