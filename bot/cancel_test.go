package bot

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/pipeline/config"
)

// TestQueuedRenderShowsPositionAndCancels: with the local engine busy, a
// render waits in the bot's queue, its message shows the position, only the
// requester or an admin may cancel it, and a cancelled one starts no run.
func TestQueuedRenderShowsPositionAndCancels(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Slack.Admins = []string{"U0ADMIN"}
		c.Slack.AllowedUsers = []string{testUser, "U0BOB"}
	})
	release := h.bot.queue.take() // another render holds the only slot
	defer release()
	h.slack.AddFile(slackfake.File{ID: "F1", Name: "a.blend", Channel: testChannel, Created: time.Now(), Data: []byte("BLENDER-v304")})
	h.slack.AddFile(slackfake.File{ID: "F2", Name: "b.blend", Channel: testChannel, Created: time.Now(), Data: []byte("BLENDER-v304")})

	for i, text := range []string{"file:a.blend", "file:b.blend"} {
		if status, body := h.post(PathCommands, h.command(testUser, testChannel, text), testSecret, time.Now()); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		eventually(t, 10*time.Second, "the message of "+text, func() bool { return len(h.slack.Parents()) == i+1 })
	}
	// Queue order is the order the sources finished downloading.
	var first, second slackfake.Message
	eventually(t, 10*time.Second, "both queued", func() bool {
		ps := h.slack.Parents()
		switch {
		case lastEdit(ps[0], "position 1") && lastEdit(ps[1], "position 2"):
			first, second = ps[0], ps[1]
		case lastEdit(ps[1], "position 1") && lastEdit(ps[0], "position 2"):
			first, second = ps[1], ps[0]
		default:
			return false
		}
		return true
	})
	message := func(ts string) slackfake.Message {
		for _, p := range h.slack.Parents() {
			if p.TS == ts {
				return p
			}
		}
		t.Fatalf("no message %s", ts)
		return slackfake.Message{}
	}

	click := func(user, ts string) {
		payload, _ := json.Marshal(map[string]any{
			"type": "block_actions", "user": map[string]string{"id": user},
			"container":    map[string]string{"type": "message", "channel_id": testChannel, "message_ts": ts},
			"actions":      []map[string]string{{"action_id": ActionCancel, "block_id": "run_actions", "value": "", "type": "button"}},
			"response_url": h.slack.ResponseURL("click"),
		})
		if status, body := h.post(PathInteractivity, url.Values{"payload": {string(payload)}}, testSecret, time.Now()); status != 200 {
			t.Fatalf("click: %d %s", status, body)
		}
	}
	click("U0BOB", first.TS) // not the requester, not an admin
	eventually(t, 5*time.Second, "the refusal", func() bool {
		for _, r := range h.slack.Responses() {
			if strings.Contains(r, "Only <@"+testUser+"> or an admin can cancel") {
				return true
			}
		}
		return false
	})
	click("U0ADMIN", first.TS)
	eventually(t, 10*time.Second, "the first cancelled and the second moved up", func() bool {
		return lastEdit(message(first.TS), "Cancelled") && lastEdit(message(second.TS), "position 1")
	})
	replies := h.slack.Replies(first.TS)
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "Cancelled by <@U0ADMIN> before it started") {
		t.Errorf("thread of the cancelled render: %+v", replies)
	}
	click(testUser, second.TS)
	eventually(t, 10*time.Second, "the second cancelled", func() bool { return lastEdit(message(second.TS), "Cancelled") })
	if n := h.runCount(); n != 0 {
		t.Errorf("%d runs recorded, want 0", n)
	}
	// The request's marker goes after its last reply: wait for it, not for a poll.
	eventually(t, 5*time.Second, "no pending requests left behind", func() bool {
		keys, err := h.runs.ListMarkers(t.Context(), "slack/pending/")
		return err == nil && len(keys) == 0
	})
}

func lastEdit(m slackfake.Message, want string) bool {
	return len(m.Edits) > 0 && strings.Contains(m.Edits[len(m.Edits)-1].Text, want)
}
