package bot

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/blend"
)

// fileMessageTS is the ts of the message the demo file was shared with.
const fileMessageTS = "1699999999.000100"

func (h *harness) interact(payload map[string]any) (int, string) {
	h.t.Helper()
	data, _ := json.Marshal(payload)
	return h.post(PathInteractivity, url.Values{"payload": {string(data)}}, testSecret, time.Now())
}

func (h *harness) shortcut(user string) {
	h.t.Helper()
	status, body := h.interact(map[string]any{
		"type": "message_action", "callback_id": CallbackRenderFile, "trigger_id": "trig-1",
		"user": map[string]string{"id": user}, "channel": map[string]string{"id": testChannel},
		"message_ts":   fileMessageTS,
		"message":      map[string]any{"ts": fileMessageTS, "text": "new cut", "files": []map[string]any{{"id": "F0DEMO", "name": "demo.blend"}}},
		"response_url": h.slack.ResponseURL("shortcut"),
	})
	if status != 200 || strings.TrimSpace(body) != "" {
		h.t.Fatalf("shortcut: %d %q", status, body)
	}
}

// submit sends the opened form back with the given field values.
func (h *harness) submit(view slackfake.OpenedView, values map[string]string) (int, string) {
	h.t.Helper()
	var v struct {
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
	}
	if err := json.Unmarshal(view.View, &v); err != nil {
		h.t.Fatal(err)
	}
	state := map[string]any{}
	for id, val := range values {
		if id == fieldEngine {
			state[id] = map[string]any{id: map[string]any{"type": "static_select", "selected_option": map[string]any{"value": val}}}
			continue
		}
		state[id] = map[string]any{id: map[string]any{"type": "plain_text_input", "value": val}}
	}
	return h.interact(map[string]any{
		"type": "view_submission", "user": map[string]string{"id": testUser},
		"view": map[string]any{"id": "V1", "hash": fmt.Sprint(len(values)) + values[fieldFrames], "callback_id": v.CallbackID,
			"private_metadata": v.PrivateMetadata, "state": map[string]any{"values": state}},
	})
}

// TestShortcutRendersIntoTheFilesThread: the message shortcut opens a form
// filled from the shared .blend; a bad field keeps it open with the reason;
// submitting renders into the thread of the file's message.
func TestShortcutRendersIntoTheFilesThread(t *testing.T) {
	h := newHarness(t, nil)
	h.useFastEngine(&fastEngine{duration: 2 * time.Second})
	shareDemo(t, h)
	demo, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "demo.blend"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := blend.ReadAt(strings.NewReader(string(demo)), int64(len(demo)))
	if err != nil {
		t.Fatal(err)
	}
	h.shortcut(testUser)
	eventually(t, 10*time.Second, "the form", func() bool { return len(h.slack.Views()) == 1 })
	view := h.slack.Views()[0]
	form := string(view.View)
	wantFrames := fmt.Sprintf("%d-%d", info.FrameStart, info.FrameEnd)
	if info.FrameStep > 1 {
		wantFrames += fmt.Sprintf("x%d", info.FrameStep)
	}
	for _, want := range []string{`"callback_id":"` + CallbackRenderModal + `"`, `"initial_value":"` + wantFrames + `"`,
		fmt.Sprintf(`"initial_value":"%d"`, info.ResolutionPercentage), `"action_id":"samples"`, `"action_id":"engine"`, "demo.blend"} {
		if !strings.Contains(form, want) {
			t.Errorf("form lacks %s:\n%s", want, form)
		}
	}
	if view.TriggerID != "trig-1" {
		t.Errorf("opened with trigger %q", view.TriggerID)
	}

	// A bad field keeps the form open and says why, under that field.
	status, body := h.submit(view, map[string]string{fieldFrames: "1-x", fieldSamples: "2000000000", fieldEngine: "local"})
	if status != 200 || !strings.Contains(body, `"response_action":"errors"`) || !strings.Contains(body, `"frames":"Not a frame list`) ||
		!strings.Contains(body, "at most 65536 samples") {
		t.Fatalf("bad form: %d %s", status, body)
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Fatalf("a refused form posted %d messages", n)
	}

	status, body = h.submit(view, map[string]string{fieldFrames: "1-4", fieldResolution: "25", fieldEngine: "local"})
	if status != 200 || strings.TrimSpace(body) != "" {
		t.Fatalf("submit: %d %q", status, body)
	}
	eventually(t, 60*time.Second, "the final reply in the file's thread", func() bool { return len(finalOf(h, fileMessageTS)) == 1 })
	if n := len(h.slack.Parents()); n != 0 {
		t.Errorf("%d messages outside the file's thread", n)
	}
	all := texts(h.slack.Replies(fileMessageTS))
	if !strings.Contains(all, "Submitted run `") || !strings.Contains(all, ": 4 frames") {
		t.Errorf("thread of the file:\n%s", all)
	}
	eventually(t, 10*time.Second, "the video", func() bool { return videosIn(h, testChannel, fileMessageTS) == 1 })
	var videos int
	for _, u := range h.slack.Uploads() {
		if strings.HasSuffix(u.Name, ".mp4") {
			videos++
			if u.ThreadTS != fileMessageTS || u.Name != "demo.mp4" {
				t.Errorf("video %+v, want demo.mp4 in the file's thread", u)
			}
		}
	}
	if videos != 1 {
		t.Errorf("%d videos", videos)
	}
	// The status message (the first reply) is edited in place.
	if st := h.slack.Replies(fileMessageTS)[0]; len(st.Edits) == 0 || !lastEdit(st, "Rendered demo.blend") {
		t.Errorf("status message: %+v", st)
	}
}
