package bot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/config"
)

const otherChannel = "C0OTHERS"

// shareDemoIn shares the same demo.blend in each channel.
func shareDemoIn(t *testing.T, h *harness, channels ...string) {
	t.Helper()
	demo, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "demo.blend"))
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range channels {
		h.slack.AddFile(slackfake.File{ID: "F0DEMO" + string(rune('A'+i)), Name: "demo.blend", Channel: ch, Created: time.Now(), Data: demo})
	}
}

// parentIn returns the parent message in channel (the test posts one each).
func parentIn(h *harness, channel string) (slackfake.Message, bool) {
	for _, p := range h.slack.Parents() {
		if p.Channel == channel {
			return p, true
		}
	}
	return slackfake.Message{}, false
}

func videosIn(h *harness, channel, ts string) int {
	n := 0
	for _, u := range h.slack.Uploads() {
		if u.Channel == channel && u.ThreadTS == ts && strings.HasSuffix(u.Name, ".mp4") {
			n++
		}
	}
	return n
}

// TestEveryRequesterIsAnswered: two users ask for the same render in two
// channels; the second request joins the first one's run, and each thread
// gets the final reply and the video exactly once, also when the bot is
// restarted between the submissions and the end of the run.
func TestEveryRequesterIsAnswered(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "no restart"
		if restart {
			name = "restart between submit and end"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				c.Slack.AllowedChannels = []string{testChannel, otherChannel}
				c.Slack.AllowedUsers = []string{testUser, "U0BOB"}
			})
			h.useFastEngine(&fastEngine{duration: 6 * time.Second})
			shareDemoIn(t, h, testChannel, otherChannel)
			h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-12"), testSecret, time.Now())
			eventually(t, 30*time.Second, "the first run", func() bool { return h.runCount() == 1 })
			h.post(PathCommands, h.command("U0BOB", otherChannel, "file frames=1-12"), testSecret, time.Now())
			var second slackfake.Message
			eventually(t, 30*time.Second, "the second thread joining the run", func() bool {
				p, ok := parentIn(h, otherChannel)
				if !ok {
					return false
				}
				second = p
				for _, r := range h.slack.Replies(p.TS) {
					// It joins the running render (not waiting in the local
					// queue for it to end).
					if strings.Contains(r.Text, "already running as run") {
						return true
					}
				}
				return false
			})
			if n := h.runCount(); n != 1 {
				t.Fatalf("%d runs, want the second request to join the first", n)
			}
			if restart {
				h.restart()
			}
			first, _ := parentIn(h, testChannel)
			for _, p := range []slackfake.Message{first, second} {
				eventually(t, 60*time.Second, "the final report in "+p.Channel, func() bool {
					return len(finalOf(h, p.TS)) >= 1 && videosIn(h, p.Channel, p.TS) >= 1
				})
			}
			// Nothing is still posting once both posted markers exist.
			run, _ := h.runs.List(context.Background(), nil, 1)
			eventually(t, 10*time.Second, "both reports complete", func() bool {
				keys, _ := h.runs.ListMarkers(context.Background(), "slack/posted/"+run[0].ID+"/")
				return len(keys) == 2
			})
			h.restart() // a later start posts nothing again
			time.Sleep(500 * time.Millisecond)
			for _, p := range []slackfake.Message{first, second} {
				if n := len(finalOf(h, p.TS)); n != 1 {
					t.Errorf("%s: %d final replies, want 1", p.Channel, n)
				}
				if n := videosIn(h, p.Channel, p.TS); n != 1 {
					t.Errorf("%s: %d videos, want 1", p.Channel, n)
				}
			}
			if !restart && !progressShown(h, second.TS, 12) {
				t.Errorf("the second thread's message never showed the run's progress")
			}
			if f := finalOf(h, second.TS); len(f) == 1 && !strings.Contains(f[0].Text, "<@U0BOB>") {
				t.Errorf("the second thread's final reply does not address its requester: %q", f[0].Text)
			}
		})
	}
}

// TestSameChannelLinksTheFirstUpload: a second request for the same render
// in the same channel gets its final reply and a link to the video already
// uploaded there, not a second upload.
func TestSameChannelLinksTheFirstUpload(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Slack.AllowedUsers = []string{testUser, "U0BOB"} })
	h.useFastEngine(&fastEngine{duration: 3 * time.Second})
	shareDemo(t, h)
	h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-6"), testSecret, time.Now())
	eventually(t, 30*time.Second, "the first run", func() bool { return h.runCount() == 1 })
	h.post(PathCommands, h.command("U0BOB", testChannel, "file frames=1-6"), testSecret, time.Now())
	eventually(t, 60*time.Second, "both final replies", func() bool {
		ps := h.slack.Parents()
		return len(ps) == 2 && len(finalOf(h, ps[0].TS)) == 1 && len(finalOf(h, ps[1].TS)) == 1
	})
	ps := h.slack.Parents()
	eventually(t, 10*time.Second, "one upload and one link", func() bool {
		var videos []slackfake.Upload
		for _, u := range h.slack.Uploads() {
			if strings.HasSuffix(u.Name, ".mp4") {
				videos = append(videos, u)
			}
		}
		if len(videos) != 1 {
			return false
		}
		other := ps[0].TS
		if videos[0].ThreadTS == other {
			other = ps[1].TS
		}
		for _, r := range h.slack.Replies(other) {
			if strings.Contains(r.Text, h.slack.Permalink(videos[0].ID)) {
				return true
			}
		}
		return false
	})
	if n := h.runCount(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// progressShown reports whether the parent ts was edited to show some but
// not all of total frames done (the run's progress, not only its end).
func progressShown(h *harness, ts string, total int) bool {
	for _, m := range h.slack.Messages() {
		if m.TS != ts {
			continue
		}
		for _, e := range m.Edits {
			for done := 1; done < total; done++ {
				if strings.Contains(e.Text, fmt.Sprintf(" %d/%d frames", done, total)) {
					return true
				}
			}
		}
	}
	return false
}
