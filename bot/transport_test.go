package bot

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/pipeline/config"
)

// TestHTTPRefusalsStartNothing: forged, stale, unknown user or channel, and
// too-large sources are refused and no run is recorded.
func TestHTTPRefusalsStartNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.slack.AddFile(slackfake.File{ID: "F1", Name: "huge.blend", Channel: testChannel, Created: time.Now(), Data: []byte("x"), Size: 5 << 20})
	now := time.Now()
	for _, tc := range []struct {
		name       string
		user, ch   string
		text       string
		secret     string
		ts         time.Time
		wantStatus int
		wantText   string // in the ephemeral reply
	}{
		{"forged signature", testUser, testChannel, "s3://bucket/a.blend", "not-the-secret", now, 401, ""},
		{"stale timestamp", testUser, testChannel, "s3://bucket/a.blend", testSecret, now.Add(-6 * time.Minute), 401, ""},
		{"future timestamp", testUser, testChannel, "s3://bucket/a.blend", testSecret, now.Add(6 * time.Minute), 401, ""},
		{"unknown user", "U0MALLORY", testChannel, "s3://bucket/a.blend", testSecret, now, 200, "not on the list"},
		{"unknown channel", testUser, "C0RANDOM", "s3://bucket/a.blend", testSecret, now, 200, "not enabled in this channel"},
		{"s3 outside slack.sources.s3_buckets", testUser, testChannel, "s3://payroll/salaries.blend", testSecret, now, 200, "not one this bot may read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.post(PathCommands, h.command(tc.user, tc.ch, tc.text), tc.secret, tc.ts)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", status, tc.wantStatus, body)
			}
			if tc.wantText != "" && !strings.Contains(ephemeral(t, body), tc.wantText) {
				t.Errorf("reply %q lacks %q", body, tc.wantText)
			}
		})
	}
	// The interactivity endpoint refuses forged clicks the same way.
	if status, _ := h.post(PathInteractivity, map[string][]string{"payload": {`{"type":"block_actions"}`}}, "wrong", now); status != 401 {
		t.Errorf("forged click: status %d, want 401", status)
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Errorf("refused requests posted %d messages", n)
	}

	// Too large: accepted, then refused in its thread before any download.
	status, body := h.post(PathCommands, h.command(testUser, testChannel, "file:huge.blend"), testSecret, now)
	if status != 200 || !strings.Contains(ephemeral(t, body), "On it") {
		t.Fatalf("large file: %d %q", status, body)
	}
	eventually(t, 10*time.Second, "the refusal in the thread", func() bool {
		ps := h.slack.Parents()
		return len(ps) == 1 && len(h.slack.Replies(ps[0].TS)) == 1
	})
	parent := h.slack.Parents()[0]
	reply := h.slack.Replies(parent.TS)[0]
	if !strings.Contains(reply.Text, "5.0 MiB, more than the 1.0 MiB") {
		t.Errorf("refusal reply %q does not name the sizes", reply.Text)
	}
	eventually(t, 5*time.Second, "the parent marked failed", func() bool {
		p := h.slack.Parents()[0]
		return len(p.Edits) > 0 && strings.Contains(p.Edits[len(p.Edits)-1].Text, "failed")
	})
	if h.slack.Downloads() != 0 {
		t.Errorf("the too-large file was downloaded")
	}
	if n := h.runCount(); n != 0 {
		t.Errorf("%d runs recorded, want 0", n)
	}
	// The request's marker goes after its last reply: wait for it, not for a poll.
	eventually(t, 5*time.Second, "no pending requests left behind", func() bool {
		keys, err := h.runs.ListMarkers(t.Context(), "slack/pending/")
		return err == nil && len(keys) == 0
	})
}

// TestHTTPMalformedArgumentsAnswerEphemerally: each error names the bad
// argument and shows the right form; nothing is posted in the channel.
func TestHTTPMalformedArgumentsAnswerEphemerally(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct{ text, want string }{
		{"", "*Sources you can use here*"},
		{"shot.blend", "file:shot.blend"},
		{"s3://bucket/a.blend frames=1-x", "`frames=1-x` is not a frame list"},
		{"s3://bucket/a.blend resolution=40000", "`resolution=40000` is out of range: give a percentage from 1 to 1000"},
		{"s3://bucket/a.blend quality=high", "`quality` is not a setting"},
		{"s3://bucket/a.blend samples", "`samples` is not a setting"},
		{"owner/repo/a.blend@main; rm -rf /", "`@main;` is not a git ref"},
		{"owner/repo/../a.blend@main", "invalid path part"},
		{"cancel", "needs exactly one run ID"},
		{"status a b", "at most one run"},
		{"help", "Render a Blender scene"},
	} {
		status, body := h.post(PathCommands, h.command(testUser, testChannel, tc.text), testSecret, time.Now())
		text := ephemeral(t, body)
		if status != 200 || !strings.Contains(text, tc.want) {
			t.Errorf("/render %s: %d %q, want it to contain %q", tc.text, status, text, tc.want)
		}
		if tc.text != "help" && tc.text != "" && !strings.Contains(text, "Usage: `/render") {
			t.Errorf("/render %s: the reply shows no usage: %q", tc.text, text)
		}
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Errorf("malformed commands posted %d messages", n)
	}
	if n := h.runCount(); n != 0 {
		t.Errorf("%d runs recorded, want 0", n)
	}
}

// TestNotInChannelExplainsInvite: when the bot cannot post in the channel,
// the requester is told privately how to invite it, and nothing starts.
func TestNotInChannelExplainsInvite(t *testing.T) {
	h := newHarness(t, nil)
	h.slack.Fail("chat.postMessage", "not_in_channel")
	status, body := h.post(PathCommands, h.command(testUser, testChannel, "s3://bucket/a.blend"), testSecret, time.Now())
	if status != 200 || !strings.Contains(ephemeral(t, body), "On it") {
		t.Fatalf("ack: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "the invite advice", func() bool {
		for _, r := range h.slack.Responses() {
			if strings.Contains(r, "type `/invite @framefleet` here") {
				return true
			}
		}
		return false
	})
	if n := h.runCount(); n != 0 {
		t.Errorf("%d runs recorded, want 0", n)
	}
	keys, _ := h.runs.ListMarkers(t.Context(), "slack/")
	for _, k := range keys {
		if !strings.HasPrefix(k, seenPrefix) { // the signatures seen stay for the replay window
			t.Errorf("marker left: %v", k)
		}
	}
}

// TestReplayIsRefusedAfterRestart: a signed request sent again, within
// the five minutes, to a restarted bot is refused and starts nothing.
func TestReplayIsRefusedAfterRestart(t *testing.T) {
	h := newHarness(t, nil)
	h.useFastEngine(&fastEngine{duration: time.Second})
	shareDemo(t, h)
	form, at := h.command(testUser, testChannel, "file frames=1-2"), time.Now()
	if status, body := h.post(PathCommands, form, testSecret, at); status != 200 {
		t.Fatalf("first: %d %s", status, body)
	}
	ts, _ := submittedRun(t, h)
	eventually(t, 30*time.Second, "the final reply", func() bool { return len(finalOf(h, ts)) == 1 })
	h.restart()
	if status, body := h.post(PathCommands, form, testSecret, at); status != 401 || !strings.Contains(body, "replay") {
		t.Errorf("replay after a restart: %d %q, want 401", status, body)
	}
	if status, _ := h.post(PathCommands, form, testSecret, at); status != 401 {
		t.Errorf("second replay: %d, want 401", status)
	}
	time.Sleep(200 * time.Millisecond) // a render it started would post now
	if n := len(h.slack.Parents()); n != 1 {
		t.Errorf("%d messages, want the first request's only", n)
	}
	// A new request (new timestamp or body) is still welcome.
	if status, _ := h.post(PathCommands, h.command(testUser, testChannel, "runs"), testSecret, time.Now()); status != 200 {
		t.Errorf("a fresh request: %d", status)
	}
}

// TestSlowBodyIsTimedOut: a request whose body does not arrive in time is
// answered 408 and the connection is not held.
func TestSlowBodyIsTimedOut(t *testing.T) {
	h := newHarness(t, nil)
	h.bot.bodyTimeout = 200 * time.Millisecond
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: bot\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\ntoken=slow", PathCommands)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang guard, not a timing bound
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a slow body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
}

// TestRedeliveredCommandStartsOnce: the same /render delivered twice (same
// trigger ID) starts one render.
func TestRedeliveredCommandStartsOnce(t *testing.T) {
	h := newHarness(t, nil)
	form := h.command(testUser, testChannel, "s3://bucket/a.blend")
	if status, _ := h.post(PathCommands, form, testSecret, time.Now()); status != 200 {
		t.Fatal(status)
	}
	// Sent again: the same trigger ID, signed anew (a later second) or as
	// is (a replay, refused with 401).
	for _, at := range []time.Time{time.Now().Add(2 * time.Second), time.Now().Add(2 * time.Second)} {
		if status, _ := h.post(PathCommands, form, testSecret, at); status != 200 && status != 401 {
			t.Fatal(status)
		}
	}
	eventually(t, 10*time.Second, "the render's message", func() bool { return len(h.slack.Parents()) == 1 })
	time.Sleep(300 * time.Millisecond) // a second message would come now
	if n := len(h.slack.Parents()); n != 1 {
		t.Errorf("%d messages for one command delivered twice", n)
	}
}

// TestUsergroupMembersMayRender: members of an allowed user group may
// render, others are refused; memberships are asked for once and cached.
func TestUsergroupMembersMayRender(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Slack.AllowedUsergroups = []string{"S0ARTISTS"} })
	h.slack.SetGroup("S0ARTISTS", "U0CAROL", "U0ERIN")
	for _, tc := range []struct{ user, want string }{
		{"U0CAROL", "On it"},
		{"U0DAVE", "not on the list"},
		{"U0ERIN", "On it"},
		{testUser, "On it"}, // allowed_users still counts
	} {
		_, body := h.post(PathCommands, h.command(tc.user, testChannel, "s3://bucket/a.blend"), testSecret, time.Now())
		if got := ephemeral(t, body); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.user, got, tc.want)
		}
	}
	if n := h.slack.Calls()["usergroups.users.list"]; n != 1 {
		t.Errorf("usergroups.users.list called %d times, want 1 (cached)", n)
	}
}
