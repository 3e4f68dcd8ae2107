package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/pipeline/config"
)

// TestSocketModeAcksEnvelopes drives the bot with real Socket Mode envelopes
// over a WebSocket the test's fake Slack serves (apps.connections.open
// returns its URL): every envelope is acknowledged, with the ephemeral
// answer as the ack's payload.
func TestSocketModeAcksEnvelopes(t *testing.T) {
	h := newHarness(t, nil)
	serveSocket(t, h)

	cmd := func(user, channel, text string) slack.SlashCommand {
		return slack.SlashCommand{TeamID: "T0TEAM", ChannelID: channel, UserID: user, Command: "/render", Text: text, ResponseURL: h.slack.ResponseURL("s1")}
	}
	for i, tc := range []struct {
		cmd  slack.SlashCommand
		want string // in the ack's text; "" for an empty ack
	}{
		{cmd(testUser, testChannel, "help"), "Render a Blender scene"},
		{cmd(testUser, testChannel, "s3://bucket/a.blend chunk=-3"), "`chunk=-3` is out of range: give a positive number of frames per chunk"},
		{cmd("U0MALLORY", testChannel, "s3://bucket/a.blend"), "not on the list"},
		{cmd(testUser, "C0ELSEWHERE", "runs"), "not enabled in this channel"},
		{cmd(testUser, testChannel, "runs"), ""},
	} {
		id := "env-" + string(rune('a'+i))
		if err := h.slack.Send(slackfake.SlashEnvelope(id, tc.cmd)); err != nil {
			t.Fatal(err)
		}
		select {
		case ack := <-h.slack.Acks():
			if ack.EnvelopeID != id {
				t.Fatalf("ack for %q, want %q", ack.EnvelopeID, id)
			}
			var p struct{ Text string }
			if len(ack.Payload) > 0 {
				_ = json.Unmarshal(ack.Payload, &p)
			}
			if tc.want == "" && p.Text != "" || !strings.Contains(p.Text, tc.want) {
				t.Errorf("/render %s: ack text %q, want %q", tc.cmd.Text, p.Text, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no ack for envelope %s", id)
		}
	}
	// `runs` answers through response_url once listed.
	eventually(t, 5*time.Second, "the runs answer", func() bool {
		for _, r := range h.slack.Responses() {
			if strings.Contains(r, "No runs in this channel yet") {
				return true
			}
		}
		return false
	})

	// A click on a Cancel button (interactive envelope) is acknowledged too.
	click := map[string]any{
		"type": "block_actions", "user": map[string]string{"id": "U0BOB"},
		"container":    map[string]string{"type": "message", "channel_id": testChannel, "message_ts": "1.000001"},
		"actions":      []map[string]string{{"action_id": ActionCancel, "block_id": "run_actions", "value": "abcdefgh", "type": "button"}},
		"response_url": h.slack.ResponseURL("c1"),
	}
	if err := h.slack.Send(slackfake.InteractiveEnvelope("env-click", click)); err != nil {
		t.Fatal(err)
	}
	select {
	case ack := <-h.slack.Acks():
		if ack.EnvelopeID != "env-click" {
			t.Fatalf("ack for %q", ack.EnvelopeID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ack for the click")
	}
	eventually(t, 5*time.Second, "the unknown run's answer", func() bool {
		for _, r := range h.slack.Responses() {
			if strings.Contains(r, "There is no run `abcdefgh`") {
				return true
			}
		}
		return false
	})
	if n := h.runCount(); n != 0 {
		t.Errorf("%d runs recorded, want 0", n)
	}
}

// TestSocketModeAcksBeforeSlowLookups: ten commands that need a user group
// lookup are all acknowledged while the lookup is still held (the fake
// Slack releases it only after the tenth ack), then answered through
// response_url once it ends: members get their answer, others the refusal.
func TestSocketModeAcksBeforeSlowLookups(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Slack.AllowedUsers = nil
		c.Slack.AllowedUsergroups = []string{"S0TEAM"}
	})
	h.slack.SetGroup("S0TEAM", testUser)
	release := h.slack.HoldGroupLookups()
	defer release()
	serveSocket(t, h)
	for i := range 10 {
		user := testUser
		if i == 9 {
			user = "U0MALLORY"
		}
		sc := slack.SlashCommand{TeamID: "T0TEAM", ChannelID: testChannel, UserID: user, Command: "/render", Text: "runs", ResponseURL: h.slack.ResponseURL("s")}
		if err := h.slack.Send(slackfake.SlashEnvelope(fmt.Sprintf("env-%d", i), sc)); err != nil {
			t.Fatal(err)
		}
	}
	acked := map[string]bool{}
	for len(acked) < 10 {
		select {
		case ack := <-h.slack.Acks():
			acked[ack.EnvelopeID] = true
			if len(ack.Payload) > 0 && string(ack.Payload) != "null" {
				t.Errorf("ack %s carries %s before the lookup ended", ack.EnvelopeID, ack.Payload)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a timing bound
			t.Fatalf("%d acks while the lookup is held, want 10", len(acked))
		}
	}
	// The lookup is under way (and held): nobody has an answer yet.
	eventually(t, 30*time.Second, "the held user group lookup", func() bool { return h.slack.GroupLookups() > 0 })
	if n := len(h.slack.Responses()); n != 0 {
		t.Fatalf("%d answers before the lookup ended", n)
	}
	release()
	eventually(t, 30*time.Second, "the ten answers", func() bool { return len(h.slack.Responses()) == 10 })
	var answers, refusals int
	for _, r := range h.slack.Responses() {
		switch {
		case strings.Contains(r, "No runs in this channel yet"):
			answers++
		case strings.Contains(r, "not on the list"):
			refusals++
		}
	}
	if answers != 9 || refusals != 1 {
		t.Errorf("%d answers and %d refusals, want 9 and 1: %q", answers, refusals, h.slack.Responses())
	}
}

// TestSocketModeFormErrors: a form submitted over Socket Mode with a bad
// field is acknowledged with the field's error, so the form stays open.
func TestSocketModeFormErrors(t *testing.T) {
	h := newHarness(t, nil)
	serveSocket(t, h)
	meta, _ := json.Marshal(modalContext{Channel: testChannel, Root: "1.000100", FileID: "F0DEMO", FileName: "demo.blend"})
	submission := map[string]any{
		"type": "view_submission", "user": map[string]string{"id": testUser},
		"view": map[string]any{"id": "V9", "callback_id": CallbackRenderModal, "private_metadata": string(meta),
			"state": map[string]any{"values": map[string]any{fieldResolution: map[string]any{fieldResolution: map[string]any{"type": "plain_text_input", "value": "32767"}}}}},
	}
	if err := h.slack.Send(slackfake.InteractiveEnvelope("env-form", submission)); err != nil {
		t.Fatal(err)
	}
	select {
	case ack := <-h.slack.Acks():
		if ack.EnvelopeID != "env-form" || !strings.Contains(string(ack.Payload), `"response_action":"errors"`) ||
			!strings.Contains(string(ack.Payload), "give a percentage from 1 to 1000") {
			t.Errorf("ack %s: %s", ack.EnvelopeID, ack.Payload)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing bound
		t.Fatal("no ack for the form")
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Errorf("a refused form posted %d messages", n)
	}
}

// serveSocket runs the bot over Socket Mode against the harness's fake
// Slack until the test ends, once the connection is up.
func serveSocket(t *testing.T, h *harness) {
	t.Helper()
	api := slack.New("xoxb-test", slack.OptionAPIURL(h.slack.APIURL()), slack.OptionAppLevelToken("xapp-test"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.bot.ServeSocket(ctx, socketmode.New(api)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually(t, 10*time.Second, "the socket mode connection", h.slack.Connected)
}
