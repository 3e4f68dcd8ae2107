// Package bot is framefleet's Slack front-end: `/render` in a channel starts
// a render whose home is a thread — a parent message edited in place with
// the progress, milestone replies, and the video playing in the thread when
// it is done. It drives the same durable runs as the CLI (see Runs), keeps
// its own small state in the runs' store (see Markers), and reaches Slack
// through Socket Mode (default) or signed HTTP requests.
package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Labels the bot puts on every run it submits.
const (
	LabelChannel     = "slack.channel"
	LabelThread      = "slack.thread"
	LabelRequestedBy = "requested_by"
	LabelVia         = "via"
	via              = "slack"
)

// Options configure a Bot.
type Options struct {
	Config  config.Slack
	Slack   SlackAPI
	Runs    Runs
	Markers Markers
	Fetcher *Fetcher
	Logger  *slog.Logger
	// Now and Sleep are the clock (tests and benchmarks may replace them).
	Now   func() time.Time
	Sleep func(context.Context, time.Duration) error
	// HTTPClient posts to response_url (default http.DefaultClient).
	HTTPClient *http.Client
	// BodyTimeout bounds reading an HTTP request's body (default 10 s).
	BodyTimeout time.Duration
}

// Bot handles commands and button clicks and keeps every run's thread.
type Bot struct {
	cfg      config.Slack
	api      SlackAPI
	runs     Runs
	markers  Markers
	fetch    *Fetcher
	log      *slog.Logger
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	http     *http.Client
	interval time.Duration
	// bodyTimeout bounds reading an HTTP request's body.
	bodyTimeout time.Duration
	auth        *authorizer
	queue       *queue // nil unless the engine is local
	// preparing bounds the renders posting their message and fetching
	// their source at once, so a burst of commands neither starves the
	// acknowledgements of CPU nor runs into Slack's per-channel post limit.
	preparing chan struct{}

	ctx context.Context // the bot's lifetime; background work uses it
	wg  sync.WaitGroup

	mu      sync.Mutex
	threads map[string]*thread // by channel + "/" + ts
	// seen holds recent trigger IDs: a command Slack delivers again (a
	// Socket Mode redelivery, a retried request) starts nothing twice.
	seen map[string]time.Time
	// edits spaces chat.update calls across all threads: Slack's Tier 3
	// allows about 50 a minute per workspace, whatever the thread.
	edits *editQueue
	// finishing serialises the final reports of one run's threads.
	finishing runLocks
}

// New returns a Bot; call Start before handing it commands.
func New(o Options) *Bot {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	b := &Bot{
		cfg: o.Config, api: o.Slack, runs: o.Runs, markers: o.Markers, fetch: o.Fetcher, log: o.Logger,
		now: o.Now, sleep: o.Sleep, http: o.HTTPClient, interval: time.Duration(o.Config.UpdateInterval),
		threads: map[string]*thread{}, ctx: context.Background(), preparing: make(chan struct{}, maxPreparing),
		seen: map[string]time.Time{}, edits: newEditQueue(time.Minute/editsPerMinute, o.Now),
	}
	if b.interval <= 0 {
		b.interval = time.Duration(config.SlackDefaults().UpdateInterval)
	}
	b.bodyTimeout = o.BodyTimeout
	if b.bodyTimeout <= 0 {
		b.bodyTimeout = 10 * time.Second
	}
	b.auth = &authorizer{cfg: o.Config, api: o.Slack, now: o.Now}
	if o.Runs.EngineName() == config.EngineLocal {
		b.queue = newQueue(o.Config.Concurrency)
	}
	return b
}

// Start resumes the threads of runs a previous bot left unfinished or
// unreported, and the requests it had accepted but not submitted. The
// background work lives until ctx ends; Wait waits for it.
func (b *Bot) Start(ctx context.Context) error {
	b.ctx = ctx
	if err := b.resume(ctx); err != nil {
		return fmt.Errorf("resume the runs of an earlier bot: %w", err)
	}
	b.spawn(func() {
		for {
			b.forgetSeen(ctx)
			if sleepCtx(ctx, time.Minute) != nil {
				return
			}
		}
	})
	return nil
}

// Wait returns when every background render goroutine has ended.
func (b *Bot) Wait() { b.wg.Wait() }

func (b *Bot) spawn(f func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

// Reply is the immediate (acknowledgement) answer to a command or click:
// empty, an ephemeral text only the user sees, or a modal's field errors.
type Reply struct {
	Text string
	// Errors keeps a submitted modal open with a message under each field
	// (by block ID).
	Errors map[string]string
}

// Body is the reply as Slack takes it in an HTTP response or a Socket Mode ack.
func (r Reply) Body() map[string]any {
	if len(r.Errors) > 0 {
		return map[string]any{"response_action": "errors", "errors": r.Errors}
	}
	if r.Text == "" {
		return nil
	}
	return map[string]any{"response_type": "ephemeral", "text": r.Text}
}

// HandleCommand answers a slash command at once; work it starts carries on
// in the background. It never blocks on Slack, GitHub, S3 or the engine,
// except to check user group membership (cached).
func (b *Bot) HandleCommand(ctx context.Context, sc slack.SlashCommand) Reply {
	return b.handleCommand(ctx, sc, ackLookupTimeout)
}

// ackLookupTimeout bounds a user group lookup an acknowledgement waits for
// (Slack allows 3 s); lateLookupTimeout one made after acknowledging.
const (
	ackLookupTimeout  = 2 * time.Second
	lateLookupTimeout = 30 * time.Second
)

func (b *Bot) handleCommand(ctx context.Context, sc slack.SlashCommand, lookupTimeout time.Duration) Reply {
	if sc.Command != "" && sc.Command != b.cfg.Command {
		return Reply{Text: fmt.Sprintf("I only know `%s`; `%s` is configured as slack.command.", esc(sc.Command), b.cfg.Command)}
	}
	cmd, err := ParseCommand(b.cfg.Command, sc.Text)
	if err != nil {
		return Reply{Text: "⚠️ " + err.Error()}
	}

	actx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	if err := b.auth.check(actx, sc.ChannelID, sc.UserID); err != nil {
		b.log.Info("refused", "user", sc.UserID, "channel", sc.ChannelID, "command", cmd.Kind, "reason", err)
		return Reply{Text: "🚫 " + err.Error()}
	}
	if cmd.Kind == CmdHelp {
		return Reply{Text: b.helpText(sc.UserID)}
	}
	if (cmd.Kind == CmdRender || cmd.Kind == CmdCancel) && b.again(sc.TriggerID) {
		b.log.Info("ignored a command delivered again", "trigger", sc.TriggerID)
		return Reply{}
	}
	switch cmd.Kind {
	case CmdRender:
		if cmd.Source.Kind == SourceS3 && (b.fetch == nil || b.fetch.AllowS3 == nil || !b.fetch.AllowS3(cmd.Source.Bucket, cmd.Source.Key)) {
			b.log.Info("refused an s3:// source outside slack.sources.s3_buckets", "user", sc.UserID, "channel", sc.ChannelID, "bucket", cmd.Source.Bucket)
			return Reply{Text: "🚫 " + capitalize(NotAllowedS3) + "."}
		}
		b.spawn(func() {
			b.render(renderRequest{Channel: sc.ChannelID, User: sc.UserID, Text: sc.Text, ResponseURL: sc.ResponseURL}, cmd)
		})
		return Reply{Text: fmt.Sprintf("🎬 On it: %s. Follow along in the thread I am starting here.", esc(cmd.Source.String()))}
	case CmdStatus:
		b.spawn(func() { b.status(sc, cmd.RunID) })
	case CmdRuns:
		b.spawn(func() { b.status(sc, "") })
	case CmdCancel:
		b.spawn(func() { b.cancelByCommand(sc, cmd.RunID) })
	}
	return Reply{}
}

// HandleAction answers a button click at once (the Cancel button).
func (b *Bot) HandleAction(ctx context.Context, ic slack.InteractionCallback) Reply {
	switch {
	case ic.Type == slack.InteractionTypeMessageAction && ic.CallbackID == CallbackRenderFile:
		// trigger_id lasts about 3 s: the modal is opened right away.
		b.spawn(func() { b.openRenderModal(ic) })
		return Reply{}
	case ic.Type == slack.InteractionTypeViewSubmission && ic.View.CallbackID == CallbackRenderModal:
		return b.submitRenderModal(ic)
	case ic.Type != slack.InteractionTypeBlockActions:
		return Reply{}
	}
	for _, a := range ic.ActionCallback.BlockActions {
		if a.ActionID != ActionCancel {
			continue
		}
		channel, ts := ic.Container.ChannelID, ic.Container.MessageTs
		if channel == "" {
			channel = ic.Channel.ID
		}
		user, runID, responseURL := ic.User.ID, a.Value, ic.ResponseURL
		b.spawn(func() { b.cancelByButton(channel, ts, user, runID, responseURL) })
	}
	return Reply{}
}

// pendingRequest is a render accepted but not yet submitted, kept in the
// store so a restarted bot finishes what it promised.
type pendingRequest struct {
	Channel string `json:"channel"`
	Thread  string `json:"thread"` // the render's status message
	// Root is the thread the status message is in (a file's message, for
	// the shortcut); "" when the status message starts the thread.
	Root        string    `json:"root,omitempty"`
	User        string    `json:"user"`
	Text        string    `json:"text"`
	ResponseURL string    `json:"response_url,omitempty"`
	Accepted    time.Time `json:"accepted"`
}

// maxPreparing is how many renders post their message and fetch at once.
const maxPreparing = 4

// renderRequest is who asked for a render, where, and in what words.
type renderRequest struct {
	Channel, User, Text, ResponseURL string
	// Root: post the status message into this message's thread (the
	// shortcut's file message) instead of starting a thread.
	Root string
}

// render runs one render: post the status message, fetch, queue, submit, watch.
func (b *Bot) render(sc renderRequest, cmd Command) {
	ctx := b.ctx
	select {
	case b.preparing <- struct{}{}:
	case <-ctx.Done():
		return
	}
	prepared := false
	release := func() {
		if !prepared {
			prepared = true
			<-b.preparing
		}
	}
	defer release()
	v := View{Source: cmd.Source.String(), RequestedBy: sc.User, Phase: PhasePreparing, Now: b.now()}
	text, blocks := Parent(v)
	var ts string
	err := withRetryAfter(ctx, b.sleep, func() error {
		var err error
		opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)}
		if sc.Root != "" {
			opts = append(opts, slack.MsgOptionTS(sc.Root))
		}
		_, ts, err = b.api.PostMessageContext(ctx, sc.Channel, opts...)
		return err
	})
	if err != nil {
		b.log.Warn("could not post the run's message", "channel", sc.Channel, "err", err)
		msg := "I could not post in this channel (" + slackErrorCode(err) + ")."
		if c := slackErrorCode(err); c == "not_in_channel" || c == "channel_not_found" {
			msg = "I am not in this channel yet: type `/invite @framefleet` here, then run the command again."
		}
		b.respond(ctx, sc.ResponseURL, "⚠️ "+msg)
		return
	}
	p := pendingRequest{Channel: sc.Channel, Thread: ts, Root: sc.Root, User: sc.User, Text: sc.Text, ResponseURL: sc.ResponseURL, Accepted: b.now()}
	if data, err := json.Marshal(p); err == nil {
		if _, err := b.markers.PutMarker(ctx, pendingKey(sc.Channel, ts), data, ""); err != nil {
			b.log.Warn("could not record the pending request", "err", err)
		}
	}
	t := b.newThreadIn(sc.Channel, ts, sc.Root, v)
	b.addThread(t)
	b.prepareAndRun(t, p, cmd, release)
}

// prepareAndRun fetches the source, waits for the local queue, submits and
// watches. It owns the pending marker: removed once the run is submitted or
// the request ended.
// prepared is called once the source is fetched.
func (b *Bot) prepareAndRun(t *thread, p pendingRequest, cmd Command, prepared func()) {
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	t.mu.Lock()
	t.cancel = cancel
	t.mu.Unlock()
	key := pendingKey(p.Channel, p.Thread)
	endPending := func() {
		if err := b.markers.DeleteMarker(b.ctx, key); err != nil {
			b.log.Warn("could not remove the pending request", "key", key, "err", err)
		}
	}
	fail := func(reason string) {
		t.set(func(v *View) { v.Phase, v.Note = PhaseFailed, reason })
		t.close(b.ctx)
		_, _ = t.reply(b.ctx, "❌ "+reason, true, nil)
		endPending()
		b.dropThread(t)
	}

	proj, err := b.fetch.FetchProject(ctx, cmd.Source, p.Channel)
	prepared()
	if b.cancelled(t, ctx, endPending) {
		proj.Remove()
		return
	}
	if err != nil {
		var se *SourceError
		if errors.As(err, &se) && se.Cause != nil {
			b.log.Warn("could not fetch a source", "source", cmd.Source.String(), "channel", p.Channel, "err", se.Cause)
		}
		fail("Could not get the scene: " + escText(err.Error()))
		return
	}
	defer proj.Remove()
	name := proj.Name
	scene := ""
	if info, err := blend.ReadFile(proj.Blend); err == nil && len(info.Scenes) > 1 {
		scene = info.Scene // the file has several: say which one renders
	}
	t.set(func(v *View) { v.Source, v.Scene = name, scene })

	sub := Submission{
		BlendPath: proj.Blend, Root: proj.Root, SourceName: name, Frames: cmd.Frames, Chunk: cmd.Chunk,
		Resolution: cmd.Resolution, Samples: cmd.Samples,
		Labels: map[string]string{LabelChannel: p.Channel, LabelThread: p.Thread, LabelRequestedBy: p.User, LabelVia: via},
	}
	release := func() {}
	// A request that joins a run already rendering takes no slot: it
	// follows that run's milestones instead of waiting for it to end.
	joins := false
	if b.queue != nil {
		_, joins = b.runs.Rendering(ctx, sub)
	}
	if b.queue != nil && !joins {
		rel, err := b.queue.acquire(ctx, func(pos int) {
			t.set(func(v *View) { v.Phase, v.QueuePosition = PhaseQueued, pos })
		})
		if b.cancelled(t, ctx, endPending) {
			return
		}
		if err != nil {
			fail("Could not start: " + err.Error())
			return
		}
		release = rel
	}
	defer release()
	t.set(func(v *View) { v.Phase, v.Note = PhaseRunning, "Submitting" })

	// The parent message says what the pipeline waits for while submitting.
	var warning string // read after Submit returns, which delivered every notice
	run, err := b.runs.Submit(pipeline.WithNotices(ctx, func(ev pipeline.Event) {
		if ev.Kind == pipeline.EventWarning {
			warning = "\n⚠️ " + ev.Message
		}
		t.set(func(v *View) { v.Note = ev.Message })
	}), sub)
	if b.cancelled(t, ctx, endPending) {
		if err == nil { // submitted as the click came in: stop it too
			_, _ = b.runs.Cancel(b.ctx, run.ID, "cancelled in Slack")
		}
		return
	}
	if err != nil {
		fail("Could not start the render: " + err.Error())
		return
	}
	// The thread is recorded before the pending request goes, so a restart
	// in between resumes one or the other (a resubmission attaches again).
	if err := b.subscribe(b.ctx, run.ID, p, name, scene); err != nil {
		b.log.Error("could not record the run's thread; a restart would resubmit the request (and attach to this run)", "run", run.ID, "err", err)
	} else {
		endPending()
	}
	t.mu.Lock()
	t.cancel = nil
	t.mu.Unlock()
	t.set(func(v *View) { v.Run, v.Note = run, "" })
	_, _ = t.reply(b.ctx, submittedText(run, p)+warning, false, nil)
	b.watch(t, run)
}

// cancelled reports (and finishes the thread) when a queued or preparing
// render was cancelled from Slack.
func (b *Bot) cancelled(t *thread, ctx context.Context, endPending func()) bool {
	if ctx.Err() == nil || b.ctx.Err() != nil {
		return false // not cancelled, or the bot is stopping (resumed later)
	}
	t.set(func(v *View) { v.Phase = PhaseCancelled })
	t.close(b.ctx)
	t.mu.Lock()
	by := t.view.CancelledBy
	t.mu.Unlock()
	_, _ = t.reply(b.ctx, fmt.Sprintf("🛑 Cancelled by <@%s> before it started.", by), false, nil)
	endPending()
	b.dropThread(t)
	return true
}

// watch follows a submitted run to its end and posts the result once.
func (b *Bot) watch(t *thread, run Run) {
	ctx := b.ctx
	backoff := time.Second
	for {
		final, err := b.runs.Watch(ctx, run.ID, func(u Update) { t.observe(ctx, u) })
		if err == nil || final.Final {
			b.finish(t, final)
			return
		}
		if ctx.Err() != nil {
			return // the bot is stopping; the next one resumes this thread
		}
		b.log.Warn("watching the run failed; trying again", "run", run.ID, "err", err, "in", backoff)
		if b.sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// finalMarker records how far one thread's final report got, so it is
// posted once even when the bot dies in the middle of it.
type finalMarker struct {
	State   string `json:"state"` // posting, posted
	ReplyTS string `json:"reply_ts,omitempty"`
	// VideoStarted is set before the upload begins: a bot that finds it
	// without Video looks in the thread before uploading again.
	VideoStarted bool              `json:"video_started,omitempty"`
	Video        bool              `json:"video,omitempty"`
	Preview      bool              `json:"preview,omitempty"`
	Channel      string            `json:"channel"`
	Thread       string            `json:"thread"`
	Finished     pipeline.RunState `json:"finished"`
}

// finish edits the parent to its final state and posts the final reply,
// the video and the preview into the thread, exactly once across restarts.
// Every thread of a run gets its own report.
func (b *Bot) finish(t *thread, r Run) {
	ctx := b.ctx
	defer b.dropThread(t)
	t.set(func(v *View) {
		v.Run, v.Note = r, ""
		switch r.State {
		case pipeline.RunSucceeded:
			v.Phase = PhaseDone
		case pipeline.RunCancelled:
			v.Phase = PhaseCancelled
			if v.CancelledBy == "" {
				v.CancelledBy = cancelledBy(r.Failure)
			}
		default:
			v.Phase = PhaseFailed
			v.Note = r.Failure
		}
	})
	if r.State == pipeline.RunSucceeded {
		t.refreshThumbnail(ctx, r)
	}
	if r.VideoKey != "" {
		if link, err := b.runs.Link(ctx, r.VideoKey); err == nil {
			t.set(func(v *View) { v.VideoURL = link })
		}
	}
	t.close(ctx)
	unlock := b.finishing.lock(r.ID)
	defer unlock()

	key := finalKey(r.ID, t.channel, t.ts)
	data, ver, err := b.markers.GetMarker(ctx, key)
	var m finalMarker
	switch {
	case errors.Is(err, ErrNoMarker):
		m = finalMarker{State: "posting", Channel: t.channel, Thread: t.ts, Finished: r.State}
		if old, ok := b.legacyFinal(ctx, r.ID, t); ok {
			m = old // an earlier bot's report of this thread: go on from where it got
			if m.State == "posted" {
				b.markPosted(ctx, r.ID, t)
				return
			}
		}
		data, _ := json.Marshal(m)
		ver, err = b.markers.PutMarker(ctx, key, data, "")
		if errors.Is(err, ErrMarkerConflict) {
			return // another bot process is posting it
		}
		if err != nil {
			b.log.Error("could not record the final report; not posting it, so it is never posted twice", "run", r.ID, "err", err)
			return
		}
	case err != nil:
		b.log.Error("could not read the final report's marker", "run", r.ID, "err", err)
		return
	default:
		if err := json.Unmarshal(data, &m); err != nil {
			b.log.Error("final report marker is corrupt", "key", key, "err", err)
			return
		}
		if m.State == "posted" {
			b.markPosted(ctx, r.ID, t)
			return
		}
		if m.ReplyTS == "" {
			// Died between claiming and recording the reply: look for it.
			m.ReplyTS = b.findFinalReply(ctx, t, r.ID)
		}
	}
	save := func() bool {
		data, _ := json.Marshal(m)
		nv, err := b.markers.PutMarker(ctx, key, data, ver)
		if err != nil {
			b.log.Error("could not record the final report's progress", "run", r.ID, "err", err)
			return false
		}
		ver = nv
		return true
	}

	if m.ReplyTS == "" {
		if line := t.failureSummary(); line != "" {
			_, _ = t.reply(ctx, line, false, nil)
		}
		var ts string
		err := withRetryAfterN(ctx, b.sleep, maxFinalWaits, func() error {
			var err error
			ts, err = t.post(ctx, finalText(r, t.requester()), true, &slack.SlackMetadata{
				EventType: "framefleet_final", EventPayload: map[string]any{"run_id": r.ID},
			})
			return err
		})
		if err != nil {
			b.log.Warn("could not post the final reply; the next start posts it", "run", r.ID, "err", err)
			return // retried by the next start: the marker says posting, no reply
		}
		m.ReplyTS = ts
		if !save() {
			return
		}
	}
	if r.State == pipeline.RunSucceeded {
		if !m.Video {
			if m.VideoStarted && b.threadHasFile(ctx, t, videoName(t, r)) {
				b.log.Info("the video is already in the thread (a restart after the upload)", "run", r.ID)
			} else {
				m.VideoStarted = true
				if !save() {
					return
				}
				b.postVideo(ctx, t, r)
			}
			m.Video = true
			if !save() {
				return
			}
		}
		if !m.Preview && r.PreviewKey != "" {
			if !b.sharedInChannel(ctx, r.ID, t) {
				if _, err := b.upload(ctx, t.channel, t.root, r.PreviewKey, previewName(t, r), ""); err != nil {
					b.log.Warn("could not upload the preview", "run", r.ID, "err", err)
				}
			}
			m.Preview = true
		}
	}
	m.State = "posted"
	if save() {
		b.markPosted(ctx, r.ID, t)
	}
}

// legacyFinal reads the final marker an earlier bot kept per run
// (slack/final/<run>.json) when it is this thread's.
func (b *Bot) legacyFinal(ctx context.Context, runID string, t *thread) (finalMarker, bool) {
	data, _, err := b.markers.GetMarker(ctx, "slack/final/"+runID+".json")
	var m finalMarker
	if err != nil || json.Unmarshal(data, &m) != nil || m.Channel != t.channel || m.Thread != t.ts {
		return finalMarker{}, false
	}
	return m, true
}

func (b *Bot) markPosted(ctx context.Context, runID string, t *thread) {
	if _, err := b.markers.PutMarker(ctx, postedKey(runID, t.channel, t.ts), []byte("{}"), ""); err != nil && !errors.Is(err, ErrMarkerConflict) {
		b.log.Warn("could not record the report as complete; the next start checks it again", "run", runID, "err", err)
	}
}

// maxFinalWaits: the final reply waits out Slack's rate limit longer than
// a milestone does; it is the one reply that must come.
const maxFinalWaits = 30

// submittedText is the first milestone: a new run, or one this request joined.
func submittedText(run Run, p pendingRequest) string {
	first := run.Labels[LabelChannel] == p.Channel && run.Labels[LabelThread] == p.Thread
	switch {
	case first || run.Labels[LabelThread] == "" && !run.Final:
		return fmt.Sprintf("🚀 Submitted run `%s`: %s in %s on the %s engine.", run.ID, plural(run.FramesTotal, "frame"), plural(run.ChunksTotal, "chunk"), orDash(run.Engine))
	case run.Final:
		return fmt.Sprintf("♻️ This exact render was already made as run `%s`: %s. The result follows here.", run.ID, plural(run.FramesTotal, "frame"))
	}
	who := ""
	if u := run.Labels[LabelRequestedBy]; u != "" {
		who = fmt.Sprintf(" (asked for by <@%s>)", u)
	}
	return fmt.Sprintf("🔗 The same render is already running as run `%s`%s: %d of %d frames done. You get its milestones and the result here.", run.ID, who, run.FramesDone, run.FramesTotal)
}

func (t *thread) requester() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.view.RequestedBy
}

func finalText(r Run, requester string) string {
	who := ""
	if requester != "" {
		who = fmt.Sprintf("<@%s> ", requester)
	}
	switch r.State {
	case pipeline.RunSucceeded:
		took := ""
		if !r.FinishedAt.IsZero() && !r.CreatedAt.IsZero() {
			took = " in " + roundDuration(r.FinishedAt.Sub(r.CreatedAt))
		}
		size := ""
		if r.Width > 0 {
			size = fmt.Sprintf(", %d×%d", r.Width, r.Height)
		}
		fps := ""
		if r.FrameRate != "" {
			fps = " at " + r.FrameRate + " fps"
		}
		cost := ""
		if r.CostUSD >= 0.005 {
			cost = fmt.Sprintf(", about $%.2f", r.CostUSD)
		}
		return fmt.Sprintf("✅ %sDone%s: %s%s%s%s — run `%s`. The video is below.", who, took, plural(r.FramesTotal, "frame"), size, fps, cost, r.ID)
	case pipeline.RunCancelled:
		return fmt.Sprintf("🛑 Run `%s` was cancelled%s.", r.ID, byText(cancelledBy(r.Failure)))
	}
	line := "❌ " + who + fmt.Sprintf("Run `%s` failed", r.ID)
	if r.FailedChunk >= 0 || r.FailedFrames != "" {
		line += " — " + failureLine(r, "")
	} else if r.Failure != "" {
		line += ": " + esc(clip(r.Failure, 2000))
	}
	return line
}

func byText(user string) string {
	if user == "" {
		return ""
	}
	return " by <@" + user + ">"
}

// cancelReason and cancelledBy carry the Slack user through the pipeline's
// cancellation reason.
func cancelReason(user string) string { return "cancelled in Slack by " + user }

func cancelledBy(reason string) string {
	_, user, ok := strings.Cut(reason, "cancelled in Slack by ")
	if !ok {
		return ""
	}
	return strings.Fields(user + " ")[0]
}

// previewName and videoName name the uploads after the file (and the
// scene when the file has several), not after the scene alone, which is
// mostly Blender's default "Scene".
func previewName(t *thread, r Run) string {
	return strings.TrimSuffix(videoName(t, r), ".mp4") + "-preview.gif"
}

func videoName(t *thread, r Run) string {
	t.mu.Lock()
	source, scene := t.view.Source, t.view.Scene
	t.mu.Unlock()
	stem := ""
	for _, s := range []string{source, r.SourceName} {
		if f := fileBase(s); strings.HasSuffix(f, ".blend") {
			stem = strings.TrimSuffix(f, ".blend")
			break
		}
	}
	if stem == "" {
		stem = r.Scene
	}
	if scene != "" {
		stem += "-" + scene
	}
	if stem == "" {
		return "render.mp4"
	}
	return store.SafeName(stem) + ".mp4"
}

// postVideo uploads the video into the thread so it plays there, or links
// it when it is larger than Slack (or the configuration) allows. In a
// channel where another thread of the run already has it, it links to that
// upload instead of uploading the same video again.
func (b *Bot) postVideo(ctx context.Context, t *thread, r Run) {
	if r.VideoKey == "" {
		return
	}
	limit := int64(b.cfg.MaxUploadMiB) << 20
	if r.VideoSize > 0 && r.VideoSize <= limit {
		vm, ver, mine := b.claimVideo(ctx, r.ID, t)
		if !mine && vm.Thread != "" {
			_, _ = t.reply(ctx, firstUploadText(t.channel, vm), false, nil)
			return
		}
		id, err := b.upload(ctx, t.channel, t.root, r.VideoKey, videoName(t, r), "")
		if err == nil {
			if mine {
				vm.FileID, vm.Permalink = id, b.permalink(ctx, id)
				if data, err := json.Marshal(vm); err == nil {
					if _, err := b.markers.PutMarker(ctx, videoKey(r.ID, t.channel), data, ver); err != nil {
						b.log.Warn("could not record the video's upload", "run", r.ID, "err", err)
					}
				}
			}
			return
		}
		b.log.Warn("could not upload the video; linking it instead", "run", r.ID, "err", err)
	}
	link, err := b.runs.Link(ctx, r.VideoKey)
	if err != nil {
		_, _ = t.reply(ctx, fmt.Sprintf("🎞️ The video is stored as `%s` (no link: %s).", esc(r.VideoKey), esc(err.Error())), false, nil)
		return
	}
	text := fmt.Sprintf("🎞️ <%s|Download the video> (%.0f MiB, more than Slack takes in a thread).", link, float64(r.VideoSize)/(1<<20))
	if !strings.HasPrefix(link, "https://") && !strings.HasPrefix(link, "http://") {
		text = fmt.Sprintf("🎞️ The video (%.0f MiB) is on the bot's host: `%s`", float64(r.VideoSize)/(1<<20), esc(link))
	}
	_, _ = t.reply(ctx, text, false, nil)
}

// claimVideo returns the channel's video marker for the run, claiming it
// for t when no thread has it yet (mine). A marker t already holds (a
// restart mid-upload) is mine too.
func (b *Bot) claimVideo(ctx context.Context, runID string, t *thread) (videoMarker, string, bool) {
	key := videoKey(runID, t.channel)
	for range 3 {
		data, ver, err := b.markers.GetMarker(ctx, key)
		var vm videoMarker
		switch {
		case errors.Is(err, ErrNoMarker):
			vm = videoMarker{Thread: t.ts, Root: t.root}
			data, _ := json.Marshal(vm)
			ver, err := b.markers.PutMarker(ctx, key, data, "")
			if errors.Is(err, ErrMarkerConflict) {
				continue // another thread claimed it just now: read it
			}
			if err != nil {
				b.log.Warn("could not record the video's upload; uploading anyway", "run", runID, "err", err)
				return videoMarker{}, "", false
			}
			return vm, ver, true
		case err != nil:
			b.log.Warn("could not read the video's upload record; uploading anyway", "run", runID, "err", err)
			return videoMarker{}, "", false
		}
		if json.Unmarshal(data, &vm) != nil {
			return videoMarker{}, "", false
		}
		return vm, ver, vm.Thread == t.ts
	}
	return videoMarker{}, "", false
}

// sharedInChannel reports whether another thread in t's channel has the
// run's video (its preview is there too).
func (b *Bot) sharedInChannel(ctx context.Context, runID string, t *thread) bool {
	data, _, err := b.markers.GetMarker(ctx, videoKey(runID, t.channel))
	if err != nil {
		return false
	}
	var vm videoMarker
	return json.Unmarshal(data, &vm) == nil && vm.Thread != "" && vm.Thread != t.ts
}

// firstUploadText links a thread to the upload in another thread of the channel.
func firstUploadText(channel string, vm videoMarker) string {
	if vm.Permalink != "" {
		return fmt.Sprintf("🎞️ The video is already in this channel: <%s|open it> (or <%s|its thread>).", vm.Permalink, threadURL(channel, vm.root()))
	}
	return fmt.Sprintf("🎞️ The video is already in this channel, in <%s|the first thread of this render>.", threadURL(channel, vm.root()))
}

func threadURL(channel, ts string) string {
	return fmt.Sprintf("https://slack.com/archives/%s/p%s", channel, strings.ReplaceAll(ts, ".", ""))
}

// permalink is an uploaded file's link, or "" when Slack does not say.
func (b *Bot) permalink(ctx context.Context, fileID string) string {
	if fileID == "" {
		return ""
	}
	f, _, _, err := b.api.GetFileInfoContext(ctx, fileID, 0, 0)
	if err != nil || f == nil {
		return ""
	}
	return f.Permalink
}

// threadHasFile looks in t's thread for a file named name (an upload a
// killed bot made but did not record).
func (b *Bot) threadHasFile(ctx context.Context, t *thread, name string) bool {
	found := false
	b.scanThread(ctx, t, func(m slack.Message) bool {
		for _, f := range m.Files {
			if f.Name == name || f.Title == name {
				found = true
			}
		}
		return found
	})
	return found
}

// upload puts a stored object into the thread with the external upload flow
// (files.getUploadURLExternal, the bytes, files.completeUploadExternal) and
// returns the file's ID.
func (b *Bot) upload(ctx context.Context, channel, threadTS, key, name, comment string) (string, error) {
	var id string
	err := withRetryAfter(ctx, b.sleep, func() error {
		rc, size, err := b.runs.Open(ctx, key)
		if err != nil {
			return err
		}
		defer rc.Close()
		f, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{
			Reader: rc, FileSize: int(size), Filename: name, Title: name,
			Channel: channel, ThreadTimestamp: threadTS, InitialComment: comment,
		})
		if err != nil {
			return err
		}
		id = f.ID
		return nil
	})
	return id, err
}

// findFinalReply looks for a final reply a killed bot posted but did not
// record.
func (b *Bot) findFinalReply(ctx context.Context, t *thread, runID string) string {
	ts := ""
	b.scanThread(ctx, t, func(m slack.Message) bool {
		if m.Metadata.EventType == "framefleet_final" && fmt.Sprint(m.Metadata.EventPayload["run_id"]) == runID {
			ts = m.Timestamp
		}
		return ts != ""
	})
	return ts
}

// scanThread calls found with each message of t's thread until it returns true.
func (b *Bot) scanThread(ctx context.Context, t *thread, found func(slack.Message) bool) {
	params := &slack.GetConversationRepliesParameters{ChannelID: t.channel, Timestamp: t.root, IncludeAllMetadata: true, Limit: 200}
	for {
		var msgs []slack.Message
		var more bool
		var cursor string
		err := withRetryAfter(ctx, b.sleep, func() error {
			var err error
			msgs, more, cursor, err = b.api.GetConversationRepliesContext(ctx, params)
			return err
		})
		if err != nil {
			b.log.Warn("could not read the thread", "err", err)
			return
		}
		for _, m := range msgs {
			if found(m) {
				return
			}
		}
		if !more || cursor == "" {
			return
		}
		params.Cursor = cursor
	}
}

// respond posts an ephemeral message through a command's response_url.
func (b *Bot) respond(ctx context.Context, responseURL, text string) {
	if responseURL == "" {
		return
	}
	body, _ := json.Marshal(map[string]any{"response_type": "ephemeral", "text": text, "replace_original": false})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, responseURL, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		b.log.Warn("could not answer through response_url", "err", err)
		return
	}
	resp.Body.Close()
}

func (b *Bot) addThread(t *thread) {
	b.mu.Lock()
	b.threads[t.channel+"/"+t.ts] = t
	b.mu.Unlock()
}

func (b *Bot) dropThread(t *thread) {
	b.mu.Lock()
	delete(b.threads, t.channel+"/"+t.ts)
	b.mu.Unlock()
}

func (b *Bot) thread(channel, ts string) *thread {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.threads[channel+"/"+ts]
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// triggerMemory is how long a trigger ID is remembered (Slack's triggers
// expire much sooner).
const triggerMemory = 10 * time.Minute

// again reports whether a command with this trigger ID was already handled.
func (b *Bot) again(trigger string) bool {
	if trigger == "" {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for id, at := range b.seen {
		if now.Sub(at) > triggerMemory {
			delete(b.seen, id)
		}
	}
	if _, ok := b.seen[trigger]; ok {
		return true
	}
	b.seen[trigger] = now
	return false
}
