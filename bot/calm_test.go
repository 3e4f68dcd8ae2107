package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/slackfake"
)

func texts(ms []slackfake.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return strings.Join(out, "\n")
}

// submittedRun waits for the only parent's "Submitted" milestone and
// returns the thread and the run ID.
func submittedRun(t *testing.T, h *harness) (string, string) {
	t.Helper()
	var ts, runID string
	eventually(t, 60*time.Second, "the submitted milestone", func() bool {
		ps := h.slack.Parents()
		if len(ps) != 1 {
			return false
		}
		for _, r := range h.slack.Replies(ps[0].TS) {
			if _, rest, ok := strings.Cut(r.Text, "Submitted run `"); ok {
				ts, runID, _ = ps[0].TS, rest, false
				runID, _, _ = strings.Cut(runID, "`")
				return true
			}
		}
		return false
	})
	return ts, runID
}

// TestCancelOfManyChunksIsCalm: cancelling a 2,000-chunk run whose engine
// reports every stopped chunk as failed posts a handful of replies, among
// them the final "cancelled" one.
func TestCancelOfManyChunksIsCalm(t *testing.T) {
	h := newHarness(t, nil)
	h.useFastEngine(&fastEngine{duration: 10 * time.Minute, reportCancelled: true})
	shareDemo(t, h)
	h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-2000 chunk=1"), testSecret, time.Now())
	ts, runID := submittedRun(t, h)
	h.click(testUser, ts, runID)
	eventually(t, 60*time.Second, "the final reply", func() bool { return len(finalOf(h, ts)) == 1 })
	time.Sleep(300 * time.Millisecond) // anything posted late would show now
	replies := h.slack.Replies(ts)
	if len(replies) > 5 {
		t.Errorf("%d replies after cancelling, want a handful:\n%s", len(replies), texts(replies))
	}
	if f := finalOf(h, ts)[0]; !strings.Contains(f.Text, "was cancelled by <@"+testUser+">") {
		t.Errorf("final reply %q", f.Text)
	}
	if strings.Contains(texts(replies), "Chunk 17") {
		t.Errorf("a cancelled chunk is reported one by one:\n%s", texts(replies))
	}
}

// TestChunkFailuresAreCapped: 40 chunks failing at once give three failure
// lines, one summary of the rest, and the final reply.
func TestChunkFailuresAreCapped(t *testing.T) {
	h := newHarness(t, nil)
	h.useFastEngine(&fastEngine{duration: 10 * time.Minute, failChunks: 40})
	shareDemo(t, h)
	h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-40 chunk=1"), testSecret, time.Now())
	ts, _ := submittedRun(t, h)
	eventually(t, 60*time.Second, "the final reply", func() bool { return len(finalOf(h, ts)) == 1 })
	all := texts(h.slack.Replies(ts))
	if n := strings.Count(all, "⚠️ Chunk "); n != 3 {
		t.Errorf("%d chunk failure lines, want 3:\n%s", n, all)
	}
	if !strings.Contains(all, "… and 37 more chunks failed: same cause.") {
		t.Errorf("no summary of the other failures:\n%s", all)
	}
	if n := len(h.slack.Replies(ts)); n != 6 { // submitted, 3 failures, summary, final
		t.Errorf("%d replies, want 6:\n%s", n, all)
	}
}

// TestProgressAfterBurstOfFailures: after 100 commands that fail at once,
// a new render still gets its progress edits and its Cancel button.
func TestProgressAfterBurstOfFailures(t *testing.T) {
	h := newHarness(t, nil)
	h.useFastEngine(&fastEngine{duration: 5 * time.Minute})
	shareDemo(t, h)
	for range 100 {
		h.post(PathCommands, h.command(testUser, testChannel, "file:missing.blend"), testSecret, time.Now())
	}
	eventually(t, 60*time.Second, "the 100 failures", func() bool {
		n := 0
		for _, p := range h.slack.Parents() {
			n += len(h.slack.Replies(p.TS))
		}
		return n == 100
	})
	h.post(PathCommands, h.command(testUser, testChannel, "file frames=1-300"), testSecret, time.Now())
	var render slackfake.Message
	eventually(t, 30*time.Second, "the render's message", func() bool {
		ps := h.slack.Parents()
		render = ps[len(ps)-1]
		return len(ps) == 101
	})
	eventually(t, 45*time.Second, "an edit with progress and the Cancel button", func() bool {
		for _, p := range h.slack.Parents() {
			if p.TS != render.TS {
				continue
			}
			for _, e := range p.Edits {
				if strings.Contains(e.Blocks, ActionCancel) && strings.Contains(e.Text, "/300 frames") && !strings.Contains(e.Text, " 0/300 frames") {
					return true
				}
			}
		}
		return false
	})
}
