package pipeline

import (
	"context"
	"encoding/json"
	"github.com/framefleet/framefleet/pipeline/store"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/plan"
)

func readFixture(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile("testdata/view/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func TestShapeFailure(t *testing.T) {
	// A real local run of a scene without a camera (testdata: its record).
	var noCamera RunRecord
	readFixture(t, "failed-no-camera.run.json", &noCamera)
	exit1 := 1
	tests := []struct {
		name                 string
		engine               string
		cf                   ChildFailure
		wantSummary, wantFix string // substrings
		wantBlender          string
		wantStream           string
	}{
		{
			name: "no camera on the local engine", engine: "local", cf: noCamera.Failure.Failures[0],
			wantSummary: "no active camera", wantFix: "Add a camera", wantBlender: "Error: Cannot render, no camera",
		},
		{
			name: "no camera on Batch keeps the CloudWatch stream", engine: "batch",
			cf: ChildFailure{Index: 2, Attempts: 1, Reason: "Essential container in task exited", ExitCode: &exit1,
				LogStream: "framefleet/default/abc", WorkerError: "blender failed rendering frames 5-6: blender: exit status 1: Error: Cannot render, no camera"},
			wantSummary: "no active camera", wantFix: "Add a camera", wantBlender: "Error: Cannot render, no camera", wantStream: "framefleet/default/abc",
		},
		{
			name: "an unknown Blender error is quoted once, without paths", engine: "local",
			cf:          ChildFailure{Index: 0, Attempts: 1, Reason: "Essential container in task exited: exit code 1: Error: Cannot read file '/tmp/framefleet-local-1/work/tex.png' | Error: Cannot read file '/tmp/framefleet-local-1/work/tex.png' (worker log: /tmp/framefleet-local-1/c.err)"},
			wantSummary: "Blender failed: Cannot read file 'tex.png'.", wantFix: "Blender's log", wantBlender: "Error: Cannot read file 'tex.png'",
		},
		{
			name: "the engine's reason alone, AWS wording dropped", engine: "local",
			cf:          ChildFailure{Index: 1, Attempts: 3, Reason: "Essential container in task exited: exit code 1", ExitCode: &exit1},
			wantSummary: "The worker exited with code 1.", wantFix: "Blender's log",
		},
		{
			name: "a timeout", engine: "batch",
			cf:          ChildFailure{Index: 0, Attempts: 3, Reason: "Job attempt duration exceeded timeout"},
			wantSummary: "longer than the time allowed", wantFix: "attempt_timeout",
		},
		{
			name: "the worker's own first line", engine: "batch",
			cf: ChildFailure{Index: 4, Attempts: 1, Reason: "Essential container in task exited",
				WorkerError: "get runs/abc/scene.blend: AccessDenied: S3 refused the worker's credentials\nmore detail"},
			wantSummary: "Get runs/abc/scene.blend: AccessDenied: S3 refused the worker's credentials.", wantFix: "Blender's log",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv := ShapeFailure(tt.engine, tt.cf)
			if !strings.Contains(fv.Summary, tt.wantSummary) {
				t.Errorf("summary %q, want it to contain %q", fv.Summary, tt.wantSummary)
			}
			if !strings.Contains(fv.Fix, tt.wantFix) {
				t.Errorf("fix %q, want it to contain %q", fv.Fix, tt.wantFix)
			}
			if fv.BlenderError != tt.wantBlender {
				t.Errorf("blender error %q, want %q", fv.BlenderError, tt.wantBlender)
			}
			if fv.LogStream != tt.wantStream {
				t.Errorf("log stream %q, want %q", fv.LogStream, tt.wantStream)
			}
			for _, bad := range []string{"Essential container", "/tmp/", "worker log"} {
				if strings.Contains(fv.Summary+fv.BlenderError, bad) {
					t.Errorf("summary %q / blender error %q contains %q", fv.Summary, fv.BlenderError, bad)
				}
			}
			if n := len([]rune(fv.Summary)); n > maxSummary {
				t.Errorf("summary is %d characters, want at most %d", n, maxSummary)
			}
			if fv.BlenderError != "" && strings.Count(fv.Summary+" "+fv.BlenderError, "Cannot") > 2 {
				t.Errorf("Blender's error repeated: %q", fv.Summary)
			}
		})
	}
}

func TestNewRunView(t *testing.T) {
	var noCamera RunRecord
	readFixture(t, "failed-no-camera.run.json", &noCamera)
	var noCameraPlan plan.Plan
	readFixture(t, "failed-no-camera.plan.json", &noCameraPlan)
	created := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	finished := created.Add(3 * time.Minute)
	base := func(state RunState) *RunRecord {
		return &RunRecord{Schema: RecordSchema, ID: "k3x9p2ad", State: state, Scene: "Shot", Engine: "batch",
			Source: RunSource{Name: "o/r/shot.blend@abc"}, FramesTotal: 48, ChunkTotal: 4, Width: 320, Height: 180,
			Progress: Progress{FramesDone: 12, FramesTotal: 48, LatestFrame: 12, LatestFrameKey: "runs/k3x9p2ad/frames/frame_000012.png",
				LatestThumbnailKey: "runs/k3x9p2ad/thumbs/frame_000012.jpg", VCPUSeconds: 36, CostUSD: 0.01},
			CreatedAt: created, UpdatedAt: created}
	}
	tests := []struct {
		name  string
		in    func() ViewInput
		check func(t *testing.T, v RunView)
	}{
		{"rendering shows the newest frame and the cost so far", func() ViewInput { return ViewInput{Record: base(RunRunning)} }, func(t *testing.T, v RunView) {
			if v.Final || v.Latest == nil || v.Latest.Frame != 12 || v.Latest.ThumbnailKey == "" {
				t.Errorf("latest = %+v, final %v", v.Latest, v.Final)
			}
			if v.Progress.Percent() != 25 || v.Cost.VCPUSeconds != 36 || v.Cost.Final {
				t.Errorf("progress %+v cost %+v", v.Progress, v.Cost)
			}
		}},
		{"succeeded takes the video key from the manifest", func() ViewInput {
			rec := base(RunSucceeded)
			rec.FinishedAt = &finished
			return ViewInput{Record: rec, Manifest: &Manifest{VideoKey: "runs/k3x9p2ad/video-from-manifest.mp4", PreviewKey: "runs/k3x9p2ad/preview.gif",
				VCPUSeconds: 400, CostUSD: 0.5, Chunks: []ChunkReport{{Warnings: []string{"denoise off"}}, {Warnings: []string{"denoise off"}}}}}
		}, func(t *testing.T, v RunView) {
			if v.Links == nil || v.Links.VideoKey != "runs/k3x9p2ad/video-from-manifest.mp4" || v.Links.PreviewKey == "" {
				t.Errorf("links = %+v", v.Links)
			}
			if v.Latest != nil || v.Progress.FramesDone != 48 || v.Cost.USD != 0.5 || !v.Cost.Final || len(v.Warnings) != 1 {
				t.Errorf("view = %+v", v)
			}
		}},
		{"cancelled is its own state and says who", func() ViewInput {
			rec := base(RunCancelled)
			rec.FinishedAt = &finished
			rec.Failure = &RunFailure{Message: "cancelled: superseded by a newer push", CancelReason: "superseded by a newer push", CancelledBy: "GitHub Actions"}
			return ViewInput{Record: rec}
		}, func(t *testing.T, v RunView) {
			if v.Cancelled == nil || v.Cancelled.By != "GitHub Actions" || v.Cancelled.Reason != "superseded by a newer push" || !v.Cancelled.At.Equal(finished) {
				t.Errorf("cancelled = %+v", v.Cancelled)
			}
			if len(v.Failures) != 0 {
				t.Errorf("a cancelled run has failures %+v", v.Failures)
			}
		}},
		{"failed: one shaped failure per chunk with its frames and log", func() ViewInput {
			return ViewInput{Record: &noCamera, Plan: &noCameraPlan}
		}, func(t *testing.T, v RunView) {
			if len(v.Failures) != 1 {
				t.Fatalf("failures = %+v", v.Failures)
			}
			f := v.Failures[0]
			if f.Frames != "1,2" || f.LogKey != "runs/k7tjvnk7/logs/chunk_00000.log" || f.LogStream != "" || f.Fix == "" {
				t.Errorf("failure = %+v", f)
			}
		}},
		{"failed before any chunk ran: the run's own message, first line, no paths", func() ViewInput {
			rec := base(RunFailed)
			rec.Failure = &RunFailure{Message: "upload the scene: open /tmp/framefleet-action-123/shot.blend: permission denied\nmore"}
			return ViewInput{Record: rec}
		}, func(t *testing.T, v RunView) {
			if len(v.Failures) != 1 || v.Failures[0].Chunk != RunChunk || v.Failures[0].Summary != "Upload the scene: open 'shot.blend': permission denied." {
				t.Errorf("failures = %+v", v.Failures)
			}
		}},
		{"the stitch's failure when no chunk failed", func() ViewInput {
			rec := base(RunFailed)
			rec.Failure = &RunFailure{Message: "run failed", StitchReason: "Essential container in task exited: exit code 1: ffmpeg: Invalid data found"}
			return ViewInput{Record: rec}
		}, func(t *testing.T, v RunView) {
			if len(v.Failures) != 1 || v.Failures[0].Chunk != StitchChunk || v.Failures[0].Summary != "Ffmpeg: Invalid data found." {
				t.Errorf("failures = %+v", v.Failures)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, NewRunView(tt.in())) })
	}
}

func TestRunsViewSignsTheManifestsKeys(t *testing.T) {
	st := newFileStore(t)
	ctx := context.Background()
	created := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	done := created.Add(time.Minute)
	// The video's key is the manifest's, whatever the scene is called.
	m := Manifest{RunID: "view0001", Scene: "Shot", VideoKey: "runs/view0001/some-other-name.mp4", PreviewKey: "runs/view0001/preview.gif", CostUSD: 0.25}
	data, _ := json.Marshal(m)
	for k, v := range map[string]string{store.ManifestKey("view0001"): string(data), m.VideoKey: "mp4", m.PreviewKey: "gif"} {
		if err := st.Put(ctx, k, strings.NewReader(v)); err != nil {
			t.Fatal(err)
		}
	}
	putRun(t, st, RunRecord{ID: "view0001", State: RunSucceeded, Scene: "Shot", Engine: "local", FramesTotal: 3, CreatedAt: created, FinishedAt: &done})
	runs := &Runs{Store: st}
	v, err := runs.View(ctx, "view0")
	if err != nil {
		t.Fatal(err)
	}
	if v.Links == nil || !strings.HasSuffix(v.Links.Video, "some-other-name.mp4") || !strings.HasSuffix(v.Links.VideoPath, "some-other-name.mp4") || v.Links.Preview == "" {
		t.Errorf("links = %+v", v.Links)
	}
	if v.Cost.USD != 0.25 || v.Progress.FramesDone != 3 {
		t.Errorf("view = %+v", v)
	}
}

func TestEventsCarryTheView(t *testing.T) {
	st := newFileStore(t)
	runs := &Runs{Store: st}
	rec := &RunRecord{ID: "ev000001", State: RunSubmitted, FramesTotal: 10, Progress: Progress{FramesTotal: 10}, Labels: map[string]string{"a": "b"}}
	var got []Event
	d := runs.newDeliverer(context.Background(), func(ev Event) { got = append(got, ev) })
	d.send(Event{Kind: EventSubmitted, RunID: rec.ID, Record: rec})
	running := *rec
	running.State, running.Progress = RunRunning, Progress{FramesDone: 4, FramesTotal: 10}
	v := NewRunView(ViewInput{Record: &running})
	d.send(Event{Kind: EventFirstFrame, RunID: rec.ID, View: &v, Preview: &FramePreview{Frame: 4, FrameKey: "runs/ev000001/frames/frame_000004.png"}})
	d.send(Event{Kind: EventChunkRetried, RunID: rec.ID, FramesDone: 5, FramesTotal: 10})
	d.close()
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	for i, ev := range got {
		if ev.View == nil || ev.View.ID != rec.ID || ev.View.Labels["a"] != "b" {
			t.Fatalf("event %d (%s) view = %+v", i, ev.Kind, ev.View)
		}
	}
	if got[0].View.State != RunSubmitted || got[1].View.State != RunRunning || got[2].View.State != RunRunning {
		t.Errorf("states %s %s %s", got[0].View.State, got[1].View.State, got[2].View.State)
	}
	if l := got[2].View.Latest; l == nil || l.Frame != 4 || l.FrameLink == "" || got[2].View.Progress.FramesDone != 5 {
		t.Errorf("last view: latest %+v progress %+v", l, got[2].View.Progress)
	}
}
