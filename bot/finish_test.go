package bot

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/pipeline"
)

// finishHarness stores a finished run's video and preview, posts its parent
// message, and returns a thread for it on bot b.
func postParent(t *testing.T, h *harness) string {
	t.Helper()
	api := slack.New("xoxb-test", slack.OptionAPIURL(h.slack.APIURL()))
	_, ts, err := api.PostMessage(testChannel, slack.MsgOptionText("parent", false))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func succeededRun(t *testing.T, h *harness, videoBytes int) Run {
	t.Helper()
	ctx := context.Background()
	st := h.runs.Fleet.Store
	if err := st.Put(ctx, "runs/r1/Scene.mp4", strings.NewReader(strings.Repeat("v", videoBytes))); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "runs/r1/preview.gif", strings.NewReader("GIF89a")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return Run{ID: "r1", State: pipeline.RunSucceeded, Final: true, Scene: "Scene", FramesDone: 3, FramesTotal: 3,
		CreatedAt: now.Add(-time.Minute), FinishedAt: now, VideoKey: "runs/r1/Scene.mp4", VideoSize: int64(videoBytes),
		PreviewKey: "runs/r1/preview.gif", FailedChunk: -1, Labels: map[string]string{LabelRequestedBy: testUser}}
}

func (h *harness) finishOn(b *Bot, ts string, r Run) {
	t := b.newThread(testChannel, ts, View{Source: "a.blend", RequestedBy: testUser, Phase: PhaseRunning, Run: r})
	b.addThread(t)
	b.finish(t, r)
}

func (h *harness) restartBot() *Bot {
	return New(Options{Config: h.cfg, Slack: h.bot.api, Runs: h.runs, Markers: h.runs, Fetcher: h.bot.fetch, Logger: h.bot.log, Sleep: h.sleeps.sleep})
}

// TestFinalReportPostedOnce: the final reply, the video and the preview are
// posted once, whether the bot finishes twice (a restart after posting) or
// died after posting the reply but before recording it.
func TestFinalReportPostedOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness, ts string) // state an earlier bot left
	}{
		{"finished twice", func(h *harness, ts string) {}},
		{"died after the reply, before recording it", func(h *harness, ts string) {
			api := slack.New("xoxb-test", slack.OptionAPIURL(h.slack.APIURL()))
			_, _, err := api.PostMessage(testChannel, slack.MsgOptionText("✅ Done — run `r1`", false), slack.MsgOptionTS(ts),
				slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "framefleet_final", EventPayload: map[string]any{"run_id": "r1"}}))
			if err != nil {
				t.Fatal(err)
			}
			m, _ := json.Marshal(finalMarker{State: "posting", Channel: testChannel, Thread: ts})
			if _, err := h.runs.PutMarker(context.Background(), finalKey("r1", testChannel, ts), m, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"died after the video's upload, before recording it", func(h *harness, ts string) {
			api := slack.New("xoxb-test", slack.OptionAPIURL(h.slack.APIURL()))
			_, replyTS, err := api.PostMessage(testChannel, slack.MsgOptionText("✅ Done — run `r1`", false), slack.MsgOptionTS(ts),
				slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "framefleet_final", EventPayload: map[string]any{"run_id": "r1"}}))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := api.UploadFile(slack.UploadFileParameters{Reader: strings.NewReader(strings.Repeat("v", 4096)), FileSize: 4096,
				Filename: "a.mp4", Title: "a.mp4", Channel: testChannel, ThreadTimestamp: ts}); err != nil {
				t.Fatal(err)
			}
			m, _ := json.Marshal(finalMarker{State: "posting", ReplyTS: replyTS, VideoStarted: true, Channel: testChannel, Thread: ts})
			if _, err := h.runs.PutMarker(context.Background(), finalKey("r1", testChannel, ts), m, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"an earlier bot's per-run marker, reply posted", func(h *harness, ts string) {
			api := slack.New("xoxb-test", slack.OptionAPIURL(h.slack.APIURL()))
			_, replyTS, err := api.PostMessage(testChannel, slack.MsgOptionText("✅ Done — run `r1`", false), slack.MsgOptionTS(ts),
				slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "framefleet_final", EventPayload: map[string]any{"run_id": "r1"}}))
			if err != nil {
				t.Fatal(err)
			}
			m, _ := json.Marshal(finalMarker{State: "posting", ReplyTS: replyTS, Channel: testChannel, Thread: ts})
			if _, err := h.runs.PutMarker(context.Background(), "slack/final/r1.json", m, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"died before the reply", func(h *harness, ts string) {
			m, _ := json.Marshal(finalMarker{State: "posting", Channel: testChannel, Thread: ts})
			if _, err := h.runs.PutMarker(context.Background(), finalKey("r1", testChannel, ts), m, ""); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ts := postParent(t, h)
			r := succeededRun(t, h, 4096)
			tc.setup(h, ts)
			h.finishOn(h.bot, ts, r)
			h.finishOn(h.restartBot(), ts, r) // a restarted bot finds the run again

			var finals int
			for _, m := range h.slack.Replies(ts) {
				if strings.Contains(m.Metadata, "framefleet_final") {
					finals++
				}
			}
			if finals != 1 {
				t.Errorf("%d final replies, want 1", finals)
			}
			var videos, gifs int
			for _, u := range h.slack.Uploads() {
				if u.ThreadTS != ts || u.Channel != testChannel {
					t.Errorf("upload outside the thread: %+v", u)
				}
				switch {
				case strings.HasSuffix(u.Name, ".mp4") && u.Size == 4096:
					videos++
				case strings.HasSuffix(u.Name, "-preview.gif"):
					gifs++
				}
			}
			if videos != 1 || gifs != 1 {
				t.Errorf("%d videos and %d previews uploaded, want 1 each", videos, gifs)
			}
			p := h.slack.Parents()[0]
			if last := p.Edits[len(p.Edits)-1]; !strings.Contains(last.Text, "Rendered") || strings.Contains(last.Blocks, ActionCancel) {
				t.Errorf("parent's last edit %q", last.Text)
			}
		})
	}
}

// TestLargeVideoIsLinked: a video above slack.max_upload_mib is linked,
// and the preview GIF is still uploaded.
func TestLargeVideoIsLinked(t *testing.T) {
	h := newHarness(t, nil)
	h.bot.cfg.MaxUploadMiB = 1
	ts := postParent(t, h)
	r := succeededRun(t, h, 2<<20)
	h.finishOn(h.bot, ts, r)
	var linked bool
	for _, m := range h.slack.Replies(ts) {
		linked = linked || strings.Contains(m.Text, "The video (2 MiB) is on the bot's host") && strings.Contains(m.Text, "Scene.mp4")
	}
	if !linked {
		t.Errorf("no link to the large video in %+v", h.slack.Replies(ts))
	}
	ups := h.slack.Uploads()
	if len(ups) != 1 || !strings.HasSuffix(ups[0].Name, ".gif") {
		t.Errorf("uploads %+v, want only the preview", ups)
	}
}

// TestRateLimitIsHonoured: 429 answers are waited out for their
// Retry-After, then the call succeeds.
func TestRateLimitIsHonoured(t *testing.T) {
	h := newHarness(t, nil)
	ts := postParent(t, h)
	h.slack.RateLimit("chat.postMessage", 2)
	h.slack.RateLimit("files.getUploadURLExternal", 1)
	h.slack.RateLimit("chat.update", 1)
	h.finishOn(h.bot, ts, succeededRun(t, h, 100))
	if len(h.slack.Replies(ts)) != 1 || len(h.slack.Uploads()) != 2 {
		t.Fatalf("replies %d, uploads %d after rate limits", len(h.slack.Replies(ts)), len(h.slack.Uploads()))
	}
	var waits int
	for _, d := range h.sleeps.all() {
		if d == time.Second {
			waits++
		}
	}
	if waits < 4 {
		t.Errorf("waited Retry-After %d times, want 4 (sleeps %v)", waits, h.sleeps.all())
	}
}

// TestEditsAreCoalesced: a burst of progress makes at most one edit per
// update interval, and the last edit shows the newest state.
func TestEditsAreCoalesced(t *testing.T) {
	h := newHarness(t, nil)
	ts := postParent(t, h)
	th := h.bot.newThread(testChannel, ts, View{Source: "a.blend", RequestedBy: testUser, Phase: PhaseRunning})
	start := time.Now()
	for i := 1; i <= 500; i++ {
		th.observe(context.Background(), Update{Kind: UpdateProgress, Run: Run{ID: "r1", State: pipeline.RunRunning, FramesDone: i, FramesTotal: 1000, FailedChunk: -1}})
		time.Sleep(4 * time.Millisecond)
	}
	elapsed := time.Since(start)
	th.close(context.Background())
	edits := h.slack.Parents()[0].Edits
	if max := int(elapsed/time.Second) + 2; len(edits) > max {
		t.Errorf("%d edits in %s, want at most %d (one per second)", len(edits), elapsed, max)
	}
	if last := edits[len(edits)-1].Text; !strings.Contains(last, "500/1000 frames") {
		t.Errorf("last edit %q does not show the newest progress", last)
	}
}
