package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/golden"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
)

// statusCase builds the status of one run state, as lookUpStatus would.
func statusCases(t *testing.T) (map[string]*runStatus, time.Time) {
	t.Helper()
	created := time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	now := created.Add(20 * time.Minute)
	finished := created.Add(90 * time.Second)
	expires := created.Add(7 * 24 * time.Hour)
	base := func(state pipeline.RunState) *pipeline.RunRecord {
		return &pipeline.RunRecord{
			ID: "k3x9p2ad", State: state, Engine: "batch", Scene: "Shot", FramesTotal: 48, ChunkTotal: 4,
			Width: 320, Height: 180, FrameRate: "24", CreatedAt: created, UpdatedAt: created.Add(time.Minute),
			Source:   pipeline.RunSource{Name: "octo-org/scenes/shots/shot.blend@abc1234", SHA256: "0123456789abcdef0123", Size: 1000},
			Handle:   &pipeline.Handle{Engine: "batch", RenderID: "r-1", StitchID: "s-1"},
			Settings: pipeline.RunSettings{Frames: "1-48"},
			Progress: pipeline.Progress{FramesTotal: 48},
			Labels:   map[string]string{"ticket": "PRJ-7"},
		}
	}
	view := func(in pipeline.ViewInput) *pipeline.RunView { v := pipeline.NewRunView(in); return &v }
	out := map[string]*runStatus{}

	queued := base(pipeline.RunSubmitted)
	out["queued"] = &runStatus{View: view(pipeline.ViewInput{Record: queued})}

	rendering := base(pipeline.RunRunning)
	rendering.Progress = pipeline.Progress{FramesDone: 12, FramesTotal: 48, LatestFrame: 12,
		LatestFrameKey: "runs/k3x9p2ad/frames/frame_000012.png", LatestThumbnailKey: "runs/k3x9p2ad/thumbs/frame_000012.jpg",
		Chunks: map[pipeline.JobState]int{pipeline.StateRunning: 2, pipeline.StateRunnable: 1, pipeline.StateSucceeded: 1}, VCPUSeconds: 360, CostUSD: 0.0041}
	v := view(pipeline.ViewInput{Record: rendering})
	v.Latest.FrameLink = "https://renders.example.com/runs/k3x9p2ad/frames/frame_000012.png"
	out["rendering"] = &runStatus{View: v}

	succeeded := base(pipeline.RunSucceeded)
	succeeded.FinishedAt = &finished
	v = view(pipeline.ViewInput{Record: succeeded, Manifest: &pipeline.Manifest{VideoKey: "runs/k3x9p2ad/Shot.mp4", PreviewKey: "runs/k3x9p2ad/preview.gif",
		VCPUSeconds: 1800, CostUSD: 0.02, Chunks: []pipeline.ChunkReport{{Warnings: []string{"denoising is off: this Blender has no OpenImageDenoise"}}}}})
	v.Links.Video, v.Links.Preview, v.Links.ExpiresAt = "https://renders.example.com/runs/k3x9p2ad/Shot.mp4", "https://renders.example.com/runs/k3x9p2ad/preview.gif", &expires
	out["succeeded"] = &runStatus{View: v}

	// A real local run of a scene without a camera.
	var noCamera pipeline.RunRecord
	var noCameraPlan plan.Plan
	readJSON(t, "../../pipeline/testdata/view/failed-no-camera.run.json", &noCamera)
	readJSON(t, "../../pipeline/testdata/view/failed-no-camera.plan.json", &noCameraPlan)
	noCamera.CreatedAt, noCamera.UpdatedAt, noCamera.FinishedAt, noCamera.Source.Name = created, finished, &finished, "nocam.blend"
	out["failed"] = &runStatus{View: view(pipeline.ViewInput{Record: &noCamera, Plan: &noCameraPlan}),
		LogTails: map[int]string{0: "Blender 3.4.1\nRead blend: scene.blend\nError: Cannot render, no camera\nBlender quit\n"}}

	cancelled := base(pipeline.RunCancelled)
	cancelled.FinishedAt = &finished
	cancelled.Progress.FramesDone = 20
	cancelled.Failure = &pipeline.RunFailure{Message: "cancelled: wrong camera", CancelReason: "wrong camera", CancelledBy: "alice"}
	out["cancelled"] = &runStatus{View: view(pipeline.ViewInput{Record: cancelled})}

	interrupted := base(pipeline.RunInterrupted)
	interrupted.Engine, interrupted.HostBound = "local", true
	interrupted.Progress.FramesDone = 30
	out["interrupted"] = &runStatus{View: view(pipeline.ViewInput{Record: interrupted}),
		Notes: []string{"cost: known when the run ends (its workers are children of another framefleet process)"}}

	missing := base(pipeline.RunFailed)
	missing.FinishedAt = &finished
	missing.Failure = &pipeline.RunFailure{Message: "the scene needs 2 files that were not found"}
	v = view(pipeline.ViewInput{Record: missing})
	v.MissingInputs = []pipeline.MissingInput{{StoredPath: "//textures/wood.png", Kind: "image", UsedBy: []string{"IMwood"}}, {StoredPath: "//lib/props.blend", Kind: "library", UsedBy: []string{"OBprops"}}}
	v.Scope = "octo-org/scenes"
	out["missing-inputs"] = &runStatus{View: v}
	return out, now
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func TestStatusGolden(t *testing.T) {
	cases, now := statusCases(t)
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			printStatus(&b, st, 10, now)
			out := b.String()
			golden.Check(t, "status/"+name+".txt", out)
			// What a reader must never see, whatever the golden file says.
			for _, bad := range []string{"Essential container", "/tmp/", "context canceled"} {
				if strings.Contains(out, bad) {
					t.Errorf("status shows %q:\n%s", bad, out)
				}
			}
		})
	}
}
