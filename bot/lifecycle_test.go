package bot

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
)

func shareDemo(t *testing.T, h *harness) {
	t.Helper()
	demo, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "demo.blend"))
	if err != nil {
		t.Fatal(err)
	}
	h.slack.AddFile(slackfake.File{ID: "F0DEMO", Name: "demo.blend", Channel: testChannel, Created: time.Now(), Data: demo})
}

func (h *harness) click(user, ts, runID string) {
	h.t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]string{"id": user},
		"container":    map[string]string{"type": "message", "channel_id": testChannel, "message_ts": ts},
		"actions":      []map[string]string{{"action_id": ActionCancel, "block_id": "run_actions", "value": runID, "type": "button"}},
		"response_url": h.slack.ResponseURL("click"),
	})
	if status, body := h.post(PathInteractivity, url.Values{"payload": {string(payload)}}, testSecret, time.Now()); status != 200 {
		h.t.Fatalf("click: %d %s", status, body)
	}
}

func (h *harness) responded(want string) func() bool {
	return func() bool {
		for _, r := range h.slack.Responses() {
			if strings.Contains(r, want) {
				return true
			}
		}
		return false
	}
}

// TestCancelRunningRender: the Cancel button on a running render's message
// is refused for others, stops the run for its requester, and the thread
// says who cancelled it, once.
func TestCancelRunningRender(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Slack.AllowedUsers = []string{testUser, "U0BOB"} })
	h.useFastEngine(&fastEngine{duration: time.Minute})
	shareDemo(t, h)
	h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-100"), testSecret, time.Now())
	var runID, ts string
	eventually(t, 30*time.Second, "the run's first frame", func() bool {
		ps := h.slack.Parents()
		if len(ps) != 1 || len(ps[0].Edits) == 0 {
			return false
		}
		runs, _ := h.runs.List(context.Background(), nil, 10)
		if len(runs) != 1 || runs[0].FramesDone == 0 {
			return false
		}
		runID, ts = runs[0].ID, ps[0].TS
		return true
	})
	if !strings.Contains(h.slack.Replies(ts)[0].Text, "Submitted run `"+runID+"`: 100 frames") {
		t.Errorf("submitted milestone: %q", h.slack.Replies(ts)[0].Text)
	}
	h.click("U0BOB", ts, runID)
	eventually(t, 10*time.Second, "Bob's refusal", h.responded("Only <@"+testUser+"> (who asked for it) or an admin can cancel run `"+runID+"`"))
	if r, _ := h.runs.Get(context.Background(), runID); r.Final {
		t.Fatalf("Bob cancelled the run: %s", r.State)
	}
	// `/render status <run>` answers with the run's state.
	h.post(PathCommands, h.command("U0BOB", testChannel, "status "+runID), testSecret, time.Now())
	eventually(t, 10*time.Second, "the status answer", h.responded("`"+runID+"` demo.blend — running"))

	h.click(testUser, ts, runID)
	eventually(t, 20*time.Second, "the cancelled thread", func() bool {
		p := h.slack.Parents()[0]
		return lastEdit(p, "Cancelled") && len(finalOf(h, ts)) == 1
	})
	if r, _ := h.runs.Get(context.Background(), runID); r.State != pipeline.RunCancelled {
		t.Errorf("run state %s, want cancelled", r.State)
	}
	final := finalOf(h, ts)[0]
	if !strings.Contains(final.Text, "was cancelled by <@"+testUser+">") {
		t.Errorf("final reply %q", final.Text)
	}
	p := h.slack.Parents()[0]
	if last := p.Edits[len(p.Edits)-1]; strings.Contains(last.Blocks, ActionCancel) || !strings.Contains(last.Blocks, "Cancelled by \\u003c@"+testUser) {
		t.Errorf("parent after cancel: %s", last.Blocks)
	}
	for _, u := range h.slack.Uploads() {
		if strings.HasSuffix(u.Name, ".mp4") {
			t.Errorf("a cancelled run uploaded a video: %+v", u)
		}
	}
}

func finalOf(h *harness, ts string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range h.slack.Replies(ts) {
		if strings.Contains(m.Metadata, "framefleet_final") {
			out = append(out, m)
		}
	}
	return out
}

// TestFailedChunkIsReported: a chunk that fails for good is reported in the
// thread with its reason and frames, and the final reply says so.
func TestFailedChunkIsReported(t *testing.T) {
	h := newHarness(t, nil)
	h.useFastEngine(&fastEngine{duration: 4 * time.Second, failAfter: 3})
	shareDemo(t, h)
	h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-20 chunk=10"), testSecret, time.Now())
	eventually(t, 30*time.Second, "the final reply", func() bool {
		ps := h.slack.Parents()
		return len(ps) == 1 && len(finalOf(h, ps[0].TS)) == 1
	})
	ts := h.slack.Parents()[0].TS
	var all []string
	for _, m := range h.slack.Replies(ts) {
		all = append(all, m.Text)
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{"Chunk 0 (frames 1–10) failed: Blender failed: Cannot read file 'wood.png': No such file or directory. Fix: ", "❌ <@" + testUser + "> Run `"} {
		if !strings.Contains(text, want) {
			t.Errorf("thread lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Read prefs") || strings.Contains(text, "Blender 3.4.1 (hash") || strings.Contains(text, "/tmp/") {
		t.Errorf("the thread shows Blender's preamble or a temporary path:\n%s", text)
	}
	if f := finalOf(h, ts)[0]; !f.Broadcast || !strings.Contains(f.Text, "frames 1–10") {
		t.Errorf("final reply %q (broadcast %v)", f.Text, f.Broadcast)
	}
	if p := h.slack.Parents()[0]; !lastEdit(p, "Render failed") {
		t.Errorf("parent's last edit: %+v", p.Edits[len(p.Edits)-1].Text)
	}
}

// TestAcceptedRequestSurvivesRestart: a request the bot accepted (message
// posted) but had not submitted when it stopped is submitted by the next bot
// in the same thread.
func TestAcceptedRequestSurvivesRestart(t *testing.T) {
	h := newHarness(t, nil)
	h.useFastEngine(&fastEngine{duration: 2 * time.Second})
	shareDemo(t, h)
	ts := postParent(t, h) // what the earlier bot had posted
	p, _ := json.Marshal(pendingRequest{Channel: testChannel, Thread: ts, User: testUser, Text: "file frames=1-5", Accepted: time.Now()})
	if _, err := h.runs.PutMarker(context.Background(), pendingKey(testChannel, ts), p, ""); err != nil {
		t.Fatal(err)
	}
	h.restart()
	eventually(t, 30*time.Second, "the final reply in the same thread", func() bool { return len(finalOf(h, ts)) == 1 })
	if n := len(h.slack.Parents()); n != 1 {
		t.Errorf("%d parent messages, want the earlier one only", n)
	}
	runs, _ := h.runs.List(context.Background(), nil, 10)
	if len(runs) != 1 || runs[0].Labels[LabelThread] != ts || runs[0].Labels[LabelRequestedBy] != testUser {
		t.Errorf("runs %+v", runs)
	}
	if keys, _ := h.runs.ListMarkers(context.Background(), "slack/pending/"); len(keys) != 0 {
		t.Errorf("pending request left: %v", keys)
	}
}
