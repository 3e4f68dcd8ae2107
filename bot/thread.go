package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// thread is one render's home in Slack: the parent message (edited in place,
// at most once per update interval, always with the newest state) and its
// milestone replies.
type thread struct {
	b       *Bot
	channel string
	ts      string // the status message's ts, edited in place; the thread's ID
	// root is the thread the replies go to: ts, or the message the status
	// message replies to (a shared file's message, for the shortcut).
	root string

	mu         sync.Mutex
	view       View
	lastEdit   time.Time
	firstFrame bool               // the first-frame milestone was posted
	failures   failureLog         // which chunk failures were posted
	cancel     context.CancelFunc // stops a queued or preparing render

	dirty chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

func (b *Bot) newThread(channel, ts string, v View) *thread {
	return b.newThreadIn(channel, ts, "", v)
}

// newThreadIn is newThread for a status message inside root's thread.
func (b *Bot) newThreadIn(channel, ts, root string, v View) *thread {
	if root == "" {
		root = ts
	}
	t := &thread{
		b: b, channel: channel, ts: ts, root: root, view: v, failures: failureLog{seen: map[int]bool{}},
		dirty: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	b.spawn(t.flusher)
	return t
}

// set changes the view and schedules an edit of the parent message.
func (t *thread) set(change func(v *View)) {
	t.mu.Lock()
	change(&t.view)
	t.mu.Unlock()
	select {
	case t.dirty <- struct{}{}:
	default: // an edit is already pending; it will carry this change too
	}
}

// flusher edits the parent message whenever the view changed, no more often
// than the update interval, coalescing every change in between.
func (t *thread) flusher() {
	defer close(t.done)
	for {
		select {
		case <-t.stop:
			return
		case <-t.b.ctx.Done():
			return // the bot is stopping; the next one resumes the thread
		case <-t.dirty:
		}
		t.mu.Lock()
		wait := t.lastEdit.Add(t.b.interval).Sub(t.b.now())
		t.mu.Unlock()
		if wait > 0 {
			select {
			case <-t.stop:
				return
			case <-t.b.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		// Then wait for a turn among every thread's edits; changes made
		// meanwhile ride along in the same edit.
		if !t.b.edits.wait(t.stop, t.b.ctx.Done()) {
			return
		}
		t.edit(t.b.ctx)
	}
}

// edit writes the current view into the parent message now.
func (t *thread) edit(ctx context.Context) {
	t.mu.Lock()
	v := t.view
	v.Now = t.b.now()
	t.lastEdit = v.Now
	t.mu.Unlock()
	text, blocks := Parent(v)
	err := withRetryAfter(ctx, t.b.sleep, func() error {
		_, _, _, err := t.b.api.UpdateMessageContext(ctx, t.channel, t.ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		t.b.log.Warn("could not update the run's message", "channel", t.channel, "ts", t.ts, "err", err)
	}
}

// close stops the flusher and makes one last edit, still honouring the
// update interval since the previous one.
func (t *thread) close(ctx context.Context) {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
	t.mu.Lock()
	wait := t.lastEdit.Add(t.b.interval).Sub(t.b.now())
	t.mu.Unlock()
	if wait > 0 {
		_ = t.b.sleep(ctx, wait)
	}
	t.edit(ctx)
}

// reply posts a milestone into the thread; broadcast also shows it in the channel.
func (t *thread) reply(ctx context.Context, text string, broadcast bool, meta *slack.SlackMetadata) (string, error) {
	var ts string
	err := withRetryAfter(ctx, t.b.sleep, func() error {
		var err error
		ts, err = t.post(ctx, text, broadcast, meta)
		return err
	})
	if err != nil {
		t.b.log.Warn("could not post to the run's thread", "channel", t.channel, "thread", t.ts, "err", err)
	}
	return ts, err
}

// post makes one attempt at posting into the thread.
func (t *thread) post(ctx context.Context, text string, broadcast bool, meta *slack.SlackMetadata) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionTS(t.root)}
	if broadcast {
		opts = append(opts, slack.MsgOptionBroadcast())
	}
	if meta != nil {
		opts = append(opts, slack.MsgOptionMetadata(*meta))
	}
	_, ts, err := t.b.api.PostMessageContext(ctx, t.channel, opts...)
	return ts, err
}

// observe turns the pipeline's updates into view changes and milestones.
func (t *thread) observe(ctx context.Context, u Update) {
	r := u.Run
	t.set(func(v *View) {
		v.Phase = PhaseRunning
		v.Run = r
		v.Note = ""
		if u.Kind == UpdateStalled && u.Message != "" {
			v.Note = u.Message
		}
	})
	switch u.Kind {
	case UpdateProgress, UpdateFirstFrame:
		if r.FramesDone > 0 {
			t.postFirstFrame(ctx, r)
			t.refreshThumbnail(ctx, r) // signing only: no request per frame
		}
	case UpdateChunkFailed:
		reason := r.Failure
		if u.Message != "" {
			reason = u.Message
		}
		t.mu.Lock()
		line, detail := t.failures.add(r.FailedChunk, reason, t.view.CancelledBy != "")
		t.mu.Unlock()
		if detail {
			line += failureLine(r, u.Message)
		}
		if line != "" {
			_, _ = t.reply(ctx, line, false, nil)
		}
	case UpdateResumed:
		_, _ = t.reply(ctx, fmt.Sprintf("🔁 Picked up again after an interruption: %d of %d frames were already done and are kept.", r.FramesDone, r.FramesTotal), false, nil)
	case UpdateStitching:
		// shown in the parent; a thread reply would only be noise
	}
}

// maxFrameUpload is the largest frame shown as the first-frame milestone
// when the workers made no thumbnail.
const maxFrameUpload = 8 << 20

func (t *thread) postFirstFrame(ctx context.Context, r Run) {
	t.mu.Lock()
	if t.firstFrame {
		t.mu.Unlock()
		return
	}
	t.firstFrame = true
	t.mu.Unlock()
	text := fmt.Sprintf("🖼️ First frame rendered: frame %d (%d of %d frames done).", r.LatestFrame, r.FramesDone, r.FramesTotal)
	// The worker's small JPEG, else the frame itself when it is not large.
	key := r.ThumbnailKey
	if key == "" && r.FrameKey != "" {
		if rc, size, err := t.b.runs.Open(ctx, r.FrameKey); err == nil {
			rc.Close()
			if size <= maxFrameUpload {
				key = r.FrameKey
			}
		}
	}
	if key == "" {
		_, _ = t.reply(ctx, text, false, nil)
		return
	}
	if link, err := t.b.runs.Link(ctx, key); err == nil && strings.HasPrefix(link, "https://") {
		t.set(func(v *View) { v.ThumbnailURL = link })
	}
	id, err := t.b.upload(ctx, t.channel, t.root, key, fmt.Sprintf("frame-%d%s", r.LatestFrame, ext(key)), text)
	if err != nil {
		_, _ = t.reply(ctx, text, false, nil)
		return
	}
	t.set(func(v *View) {
		if v.ThumbnailURL == "" {
			v.ThumbnailFileID = id
		}
	})
}

// refreshThumbnail points the parent at the newest frame when the store
// gives links Slack can load (S3); a local store's first frame stays.
func (t *thread) refreshThumbnail(ctx context.Context, r Run) {
	if r.ThumbnailKey == "" {
		return
	}
	if link, err := t.b.runs.Link(ctx, r.ThumbnailKey); err == nil && strings.HasPrefix(link, "https://") {
		t.set(func(v *View) { v.ThumbnailURL = link })
	}
}

func failureLine(r Run, msg string) string {
	where := "A chunk"
	if r.FailedChunk >= 0 {
		where = fmt.Sprintf("Chunk %d", r.FailedChunk)
	}
	if r.FailedFrames != "" {
		where += " (frames " + r.FailedFrames + ")"
	}
	reason := r.Failure
	if msg != "" {
		reason = msg
	}
	return fmt.Sprintf("%s failed: %s", where, esc(clip(reason, 1500)))
}

func ext(key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		return key[i:]
	}
	return ""
}

// maxFailureReplies is how many chunk failures a thread shows one by one;
// the rest are counted and summarised before the final reply.
const maxFailureReplies = 3

// failureLog decides which chunk failures get a reply: the first few, one
// line for all those a cancel caused, and a count of the rest. It is pure
// state; the thread holds its lock.
type failureLog struct {
	seen      map[int]bool
	shown     int
	cancelled bool // the one cancel line was posted
	// more counts failures not shown; same is false once their reasons differ.
	more       int
	same       bool
	lastReason string
}

// add records a failed chunk and returns the reply ("" for none); detail
// says the chunk's failure line follows it. cancelling says the run is
// being cancelled.
func (f *failureLog) add(chunk int, reason string, cancelling bool) (string, bool) {
	if f.seen[chunk] {
		return "", false
	}
	f.seen[chunk] = true
	if cancelling || causedByCancel(reason) {
		if f.cancelled {
			return "", false
		}
		f.cancelled = true
		return "🛑 Cancelling: the chunks not rendered yet are stopped; frames already rendered are kept.", false
	}
	if f.shown < maxFailureReplies {
		f.shown++
		f.lastReason = reason
		return "⚠️ ", true
	}
	if f.more == 0 {
		f.same = true
	}
	if reason != f.lastReason {
		f.same = false
	}
	f.more++
	return "", false
}

// summary is the line for the failures not shown ("" when none).
func (f *failureLog) summary() string {
	if f.more == 0 {
		return ""
	}
	cause := "same cause"
	if !f.same {
		cause = "various causes; `status` has each"
	}
	return fmt.Sprintf("⚠️ … and %s failed: %s.", plural(f.more, "more chunk"), cause)
}

// causedByCancel reports a chunk the pipeline stopped because its run was
// cancelled (the engines word it "cancelled: <reason>").
func causedByCancel(reason string) bool {
	r := strings.ToLower(reason)
	return strings.HasPrefix(r, "cancelled") || strings.HasPrefix(r, "canceled") || strings.Contains(r, "job cancelled") || strings.Contains(r, "terminated: cancel")
}

// failureSummary returns the thread's summary of unshown chunk failures once.
func (t *thread) failureSummary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.failures.summary()
	t.failures.more = 0
	return s
}
