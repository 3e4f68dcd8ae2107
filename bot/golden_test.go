package bot

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/golden"
	"github.com/framefleet/framefleet/pipeline"
)

// TestGoldenMessages: what people read in Slack, for each phase of a
// render: the parent message (fallback text and blocks) and the thread's
// replies. Update with go test ./bot -run TestGoldenMessages -update.
func TestGoldenMessages(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	base := Run{ID: "k3x9p2ad", State: pipeline.RunRunning, Scene: "Shot", SourceName: "chase.blend", Frames: "1-400", FramesDone: 0, FramesTotal: 400,
		ChunksTotal: 40, Width: 1920, Height: 1080, FrameRate: "24", Engine: "batch", CreatedAt: now.Add(-10 * time.Minute), FailedChunk: -1,
		Labels: map[string]string{LabelChannel: "C1", LabelThread: "1.0001", LabelRequestedBy: "U1"}}
	view := func(phase Phase, r Run) View {
		return View{Source: "chase.blend", RequestedBy: "U1", Phase: phase, Run: r, Now: now}
	}
	running := base
	running.FramesDone, running.LatestFrame = 150, 151
	succeeded := base
	succeeded.State, succeeded.Final, succeeded.FramesDone, succeeded.FinishedAt, succeeded.CostUSD = pipeline.RunSucceeded, true, 400, now, 1.27
	failed := base
	failed.State, failed.Final, failed.FramesDone, failed.FailedChunk, failed.FailedFrames = pipeline.RunFailed, true, 120, 13, "131–140"
	failed.Failure = failureText("batch", pipeline.ChildFailure{Index: 13, Attempts: 3, Reason: "Essential container in task exited", WorkerError: blenderLog})
	cancelled := base
	cancelled.State, cancelled.Final, cancelled.FramesDone, cancelled.Failure = pipeline.RunCancelled, true, 80, cancelReason("U2")

	queued := view(PhaseQueued, Run{FailedChunk: -1})
	queued.QueuePosition = 2
	cancelledView := view(PhaseCancelled, cancelled)
	cancelledView.CancelledBy = "U2"
	doneView := view(PhaseDone, succeeded)
	doneView.VideoURL = "https://renders.example.com/k3x9p2ad/chase.mp4"

	var fl failureLog
	fl.seen = map[int]bool{}
	for i := range 40 {
		fl.add(i, failed.Failure, false)
	}
	cases := []struct {
		name    string
		parent  View
		replies []string
	}{
		{"queued", queued, nil},
		{"rendering", view(PhaseRunning, running), []string{
			submittedText(base, pendingRequest{Channel: "C1", Thread: "1.0001", User: "U1"}),
			submittedText(running, pendingRequest{Channel: "C2", Thread: "2.0001", User: "U3"}),
			"🖼️ First frame rendered: frame 151 (150 of 400 frames done).",
		}},
		{"succeeded", doneView, []string{finalText(succeeded, "U1")}},
		{"failed", view(PhaseFailed, failed), []string{
			"⚠️ " + failureLine(failed, ""), fl.summary(), finalText(failed, "U1"),
		}},
		{"cancelled", cancelledView, []string{
			"🛑 Cancelling: the chunks not rendered yet are stopped; frames already rendered are kept.", finalText(cancelled, "U1"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text, blocks := Parent(tc.parent)
			js, err := json.MarshalIndent(blocks, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.WriteString("# parent: fallback text\n" + text + "\n\n# parent: blocks\n" + string(js) + "\n")
			for i, r := range tc.replies {
				buf.WriteString("\n# reply " + string(rune('1'+i)) + "\n" + r + "\n")
			}
			golden.Check(t, filepath.Join("golden", tc.name+".txt"), buf.String())
			if strings.Contains(buf.String(), "Scene") {
				t.Errorf("%s names Blender's default scene instead of the file", tc.name)
			}
		})
	}
}

// TestFailureTextNeverCutsBlindly: the failure shown is the run view's
// sentence with Blender's error line and the fix, whatever comes before it.
func TestFailureTextNeverCutsBlindly(t *testing.T) {
	long := strings.Repeat("Fra:1 Mem:12.00M (Peak 12.00M) | Time:00:00.05 | Syncing\n", 40)
	for _, tc := range []struct {
		name string
		cf   pipeline.ChildFailure
		want []string
		not  []string
	}{
		{"error after a long preamble", pipeline.ChildFailure{Index: 2, Reason: "Blender exited with code 1", WorkerError: long + "Error: Cannot read file '/tmp/w/tex/a.png': No such file or directory\n"},
			[]string{"Blender failed: Cannot read file 'a.png': No such file or directory.", "Fix: "}, []string{"Fra:1", "/tmp/"}},
		{"known cause", pipeline.ChildFailure{Index: 0, Reason: "Blender exited with code 1", WorkerError: long + "Error: Cannot render, no camera\n"},
			[]string{"The scene has no active camera", "Fix: Add a camera"}, []string{"Fra:1"}},
		{"no Blender error", pipeline.ChildFailure{Index: 1, Reason: "Essential container in task exited", ExitCode: func() *int { c := 137; return &c }()},
			[]string{"Fix: "}, []string{"Essential container"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failureText("batch", tc.cf)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%q contains %q", got, n)
				}
			}
		})
	}
}
