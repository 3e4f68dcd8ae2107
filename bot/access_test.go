package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/config"
)

// TestStatusShowsTheChannelsRuns: `status <run>` and `runs` show only the
// channel's runs, except to an admin.
func TestStatusShowsTheChannelsRuns(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Slack.AllowedChannels = []string{testChannel, otherChannel}
		c.Slack.AllowedUsers = []string{testUser, "U0BOB"}
		c.Slack.Admins = []string{"U0ADMIN"}
	})
	h.useFastEngine(&fastEngine{duration: time.Second})
	shareDemo(t, h)
	h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-3"), testSecret, time.Now())
	ts, runID := submittedRun(t, h)
	eventually(t, 30*time.Second, "the final reply", func() bool { return len(finalOf(h, ts)) == 1 })

	ask := func(user, text, want string) {
		t.Helper()
		before := len(h.slack.Responses())
		h.post(PathCommands, h.command(user, otherChannel, text), testSecret, time.Now())
		eventually(t, 10*time.Second, "the answer to "+text, func() bool { return len(h.slack.Responses()) > before })
		got := h.slack.Responses()[before]
		if !strings.Contains(got, want) {
			t.Errorf("%s asking %q in another channel: %q, want %q", user, text, got, want)
		}
		if text == "runs" && user != "U0ADMIN" && strings.Contains(got, runID) {
			t.Errorf("%s sees run %s of another channel: %q", user, runID, got)
		}
	}
	ask("U0BOB", "status "+runID, "There is no run `"+runID+"` in this channel")
	ask("U0BOB", "runs", "No runs in this channel yet")
	ask("U0ADMIN", "status "+runID, "`"+runID+"` demo.blend — succeeded")
	ask("U0ADMIN", "runs", "every channel")
	if got := h.slack.Responses(); !strings.Contains(got[len(got)-1], runID) {
		t.Errorf("the admin's runs lack %s: %q", runID, got[len(got)-1])
	}
}

// TestHelpShowsSourcesAndLimits: `/render` alone and `/render help` show
// the sources this bot may read and the limits, to someone allowed here.
func TestHelpShowsSourcesAndLimits(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Slack.Sources.S3Buckets = []string{"renders/shots/", "bucket"} })
	for _, text := range []string{"", "help"} {
		status, body := h.post(PathCommands, h.command(testUser, testChannel, text), testSecret, time.Now())
		got := ephemeral(t, body)
		if status != 200 {
			t.Fatalf("%q: %d", text, status)
		}
		for _, want := range []string{"`file` / `file:name.blend`", "`s3://renders/shots/…`", "`s3://bucket/…`",
			"files up to 1 MiB; at most 100000 frames per render; `resolution` 1–1000%; `samples` 1–65536",
			"1 render at once on the bot's host", "you may cancel the runs you asked for"} {
			if !strings.Contains(got, want) {
				t.Errorf("/render %s lacks %q:\n%s", text, want, got)
			}
		}
	}
	// Someone not allowed here learns nothing about the sources.
	_, body := h.post(PathCommands, h.command("U0MALLORY", testChannel, "help"), testSecret, time.Now())
	if got := ephemeral(t, body); strings.Contains(got, "s3://") || !strings.Contains(got, "not on the list") {
		t.Errorf("help for a stranger: %q", got)
	}
}
