package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/pipeline"
)

// status answers `/render status [run]` and `/render runs` through
// response_url. Only the channel's runs are shown (a run another channel
// started counts when this channel joined it), unless the user is an admin.
func (b *Bot) status(sc slack.SlashCommand, id string) {
	ctx := b.ctx
	admin := slices.Contains(b.cfg.Admins, sc.UserID)
	if id != "" {
		r, err := b.runs.Get(ctx, id)
		if err == nil && !admin && !b.runInChannel(ctx, r, sc.ChannelID) {
			err = fmt.Errorf("%w: not in this channel", ErrRunNotFound)
		}
		if err != nil {
			b.respond(ctx, sc.ResponseURL, "⚠️ "+runError(id, err))
			return
		}
		b.respond(ctx, sc.ResponseURL, statusLine(r))
		return
	}
	labels, title := map[string]string{LabelVia: via, LabelChannel: sc.ChannelID}, "*Newest runs in this channel*"
	if admin {
		labels, title = map[string]string{LabelVia: via}, "*Newest runs in every channel* (you are an admin)"
	}
	runs, err := b.runs.List(ctx, labels, 10)
	if err != nil {
		b.log.Warn("could not list the runs", "err", err)
		b.respond(ctx, sc.ResponseURL, "⚠️ Could not list the runs just now: try again in a minute.")
		return
	}
	if len(runs) == 0 {
		b.respond(ctx, sc.ResponseURL, fmt.Sprintf("No runs in this channel yet. Start one with `%s <source>`.", b.cfg.Command))
		return
	}
	lines := []string{title}
	for _, r := range runs {
		lines = append(lines, "• "+statusLine(r))
	}
	b.respond(ctx, sc.ResponseURL, strings.Join(lines, "\n"))
}

// runInChannel reports whether r was asked for in channel: its labels, or
// a thread of this channel that joined it.
func (b *Bot) runInChannel(ctx context.Context, r Run, channel string) bool {
	if r.Labels[LabelChannel] == channel {
		return true
	}
	keys, err := b.markers.ListMarkers(ctx, subscriptionPrefix()+r.ID+"/"+channel+"-")
	return err == nil && len(keys) > 0
}

func statusLine(r Run) string {
	line := fmt.Sprintf("`%s` %s — %s, %d/%d frames", r.ID, esc(orDash(r.SourceName)), r.State, r.FramesDone, r.FramesTotal)
	if who := r.Labels[LabelRequestedBy]; who != "" {
		line += ", asked by <@" + who + ">"
	}
	if ch, ts := r.Labels[LabelChannel], r.Labels[LabelThread]; ch != "" && ts != "" {
		line += fmt.Sprintf(" (<https://slack.com/archives/%s/p%s|thread>)", ch, strings.ReplaceAll(ts, ".", ""))
	}
	return line
}

func runError(id string, err error) string {
	if errors.Is(err, ErrRunNotFound) {
		return fmt.Sprintf("There is no run `%s` in this channel: `/render runs` lists this channel's runs.", esc(id))
	}
	return fmt.Sprintf("Could not look up run `%s`: %s", esc(id), escText(err.Error()))
}

// cancelByCommand handles `/render cancel <run>`.
func (b *Bot) cancelByCommand(sc slack.SlashCommand, id string) {
	ctx := b.ctx
	r, err := b.runs.Get(ctx, id)
	if err != nil {
		b.respond(ctx, sc.ResponseURL, "⚠️ "+runError(id, err))
		return
	}
	b.respond(ctx, sc.ResponseURL, b.cancelRun(ctx, r, sc.UserID))
}

// cancelByButton handles a click on a parent message's Cancel button.
func (b *Bot) cancelByButton(channel, ts, user, runID, responseURL string) {
	ctx := b.ctx
	if runID == "" { // queued or still fetching: nothing submitted yet
		t := b.thread(channel, ts)
		if t == nil {
			b.respond(ctx, responseURL, "This render is not waiting any more.")
			return
		}
		if !b.auth.mayCancel(user, t.requester()) {
			b.respond(ctx, responseURL, "🚫 Only <@"+t.requester()+"> or an admin can cancel this render.")
			return
		}
		t.mu.Lock()
		cancel := t.cancel
		t.view.CancelledBy = user
		t.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		return
	}
	r, err := b.runs.Get(ctx, runID)
	if err != nil {
		b.respond(ctx, responseURL, "⚠️ "+runError(runID, err))
		return
	}
	b.respond(ctx, responseURL, b.cancelRun(ctx, r, user))
}

// cancelRun cancels r for user when they may; it returns the answer to show.
func (b *Bot) cancelRun(ctx context.Context, r Run, user string) string {
	if !b.auth.mayCancel(user, r.Labels[LabelRequestedBy]) {
		return fmt.Sprintf("🚫 Only <@%s> (who asked for it) or an admin can cancel run `%s`.", r.Labels[LabelRequestedBy], r.ID)
	}
	if r.Final {
		return fmt.Sprintf("Run `%s` already ended: %s.", r.ID, r.State)
	}
	if t := b.thread(r.Labels[LabelChannel], r.Labels[LabelThread]); t != nil {
		t.set(func(v *View) { v.CancelledBy = user; v.Note = "Cancelling…" })
	}
	if _, err := b.runs.Cancel(ctx, r.ID, cancelReason(user)); err != nil {
		return fmt.Sprintf("⚠️ Could not cancel run `%s`: %s", r.ID, esc(err.Error()))
	}
	return fmt.Sprintf("🛑 Cancelling run `%s`; its thread shows when it stopped.", r.ID)
}

// resume picks up where an earlier bot stopped: the threads of runs it
// submitted or joined that are unfinished or whose final report was not
// completed, then requests it accepted but had not submitted.
func (b *Bot) resume(ctx context.Context) error {
	runs, err := b.runs.List(ctx, map[string]string{LabelVia: via}, 500)
	if err != nil {
		return err
	}
	subs, err := b.subscriptions(ctx)
	if err != nil {
		return err
	}
	posted, legacy, err := b.finishedReports(ctx)
	if err != nil {
		return err
	}
	byID := map[string]Run{}
	for _, r := range runs {
		byID[r.ID] = r
	}
	// The run's labelled thread (an earlier bot recorded only that one),
	// then every recorded thread.
	threads := map[string]bool{}
	var todo []subscription
	add := func(s subscription, isLabelled bool) {
		k := s.Channel + "/" + s.Thread
		if s.Channel == "" || s.Thread == "" || threads[s.RunID+"/"+k] {
			return
		}
		threads[s.RunID+"/"+k] = true
		threads[k] = true
		if posted[s.RunID+"/"+threadName(s.Channel, s.Thread)] || isLabelled && legacy[s.RunID] {
			return
		}
		todo = append(todo, s)
	}
	for _, s := range subs {
		labelled := false
		if r, ok := byID[s.RunID]; ok {
			labelled = r.Labels[LabelChannel] == s.Channel && r.Labels[LabelThread] == s.Thread
		}
		add(s, labelled)
	}
	for _, r := range runs {
		add(subscription{RunID: r.ID, Channel: r.Labels[LabelChannel], Thread: r.Labels[LabelThread], User: r.Labels[LabelRequestedBy], Source: r.SourceName}, true)
	}
	for _, s := range todo {
		r, ok := byID[s.RunID]
		if !ok {
			var err error
			if r, err = b.runs.Get(ctx, s.RunID); err != nil {
				b.log.Warn("a thread's run is gone; not resuming it", "run", s.RunID, "err", err)
				continue
			}
		}
		b.log.Info("resuming the thread of a run", "run", r.ID, "state", r.State, "channel", s.Channel, "thread", s.Thread)
		v := View{Source: orDash(s.Source), Scene: s.Scene, RequestedBy: s.User, Run: r, Phase: PhaseRunning, Now: b.now()}
		t := b.newThreadIn(s.Channel, s.Thread, s.Root, v)
		t.firstFrame = r.FramesDone > 0 // posted by the earlier bot
		b.addThread(t)
		var release func()
		if b.queue != nil && !r.Final && r.Labels[LabelThread] == s.Thread {
			release = b.queue.take() // one slot per run, held by its first thread
		}
		b.spawn(func() {
			if release != nil {
				defer release()
			}
			if r.Final {
				// List's runs lack the video's size and the failed frames
				// the report needs.
				if full, err := b.runs.Get(ctx, r.ID); err == nil {
					r = full
				}
				b.finish(t, r)
				return
			}
			b.watch(t, r)
		})
	}

	pending, err := b.markers.ListMarkers(ctx, "slack/pending/")
	if err != nil {
		return err
	}
	sort.Strings(pending)
	for _, key := range pending {
		data, _, err := b.markers.GetMarker(ctx, key)
		if err != nil {
			continue
		}
		var p pendingRequest
		if json.Unmarshal(data, &p) != nil {
			continue
		}
		if threads[p.Channel+"/"+p.Thread] { // submitted just before the earlier bot stopped
			_ = b.markers.DeleteMarker(ctx, key)
			continue
		}
		cmd, err := ParseCommand(b.cfg.Command, p.Text)
		if err != nil {
			_ = b.markers.DeleteMarker(ctx, key)
			continue
		}
		b.log.Info("resuming an accepted request", "channel", p.Channel, "thread", p.Thread)
		t := b.newThreadIn(p.Channel, p.Thread, p.Root, View{Source: cmd.Source.String(), RequestedBy: p.User, Phase: PhasePreparing, Now: b.now()})
		b.addThread(t)
		b.spawn(func() { b.prepareAndRun(t, p, cmd, func() {}) })
	}
	return nil
}

// helpText is the answer to `/render` and `/render help`: the usage, then
// what this bot may read and render, for someone allowed in this channel.
func (b *Bot) helpText(user string) string {
	lines := []string{HelpText(b.cfg.Command), "", "*Sources you can use here*"}
	lines = append(lines, "• `file` / `file:name.blend`: a .blend shared in this channel")
	if b.fetch != nil && b.fetch.GitHub != nil {
		host := strings.TrimPrefix(strings.TrimPrefix(b.cfg.GitHubLFSURL(), "https://"), "http://")
		lines = append(lines, "• `owner/repo/path.blend@ref`: files the bot's token can read on "+esc(host)+" (Git LFS included)")
	}
	if len(b.cfg.Sources.S3Buckets) > 0 {
		var where []string
		for _, e := range b.cfg.Sources.S3Buckets {
			if !strings.Contains(e, "/") {
				e += "/"
			}
			where = append(where, "`s3://"+esc(e)+"…`")
		}
		lines = append(lines, "• "+strings.Join(where, ", "))
	} else {
		lines = append(lines, "• no `s3://` sources (an admin can allow buckets with `slack.sources.s3_buckets`)")
	}
	lines = append(lines, "", "*Limits*",
		fmt.Sprintf("• files up to %d MiB; at most %d frames per render; `resolution` 1–%d%%; `samples` 1–%d",
			b.cfg.MaxFileMiB, pipeline.MaxRequestFrames, pipeline.MaxResolutionPercentage, pipeline.MaxSamples),
		fmt.Sprintf("• videos up to %d MiB play in the thread; larger ones are linked", b.cfg.MaxUploadMiB))
	if b.queue != nil {
		lines = append(lines, fmt.Sprintf("• %s at once on the bot's host; the others wait in line", plural(b.cfg.Concurrency, "render")))
	}
	if slices.Contains(b.cfg.Admins, user) {
		lines = append(lines, "• you are an admin: you may cancel any run, and `status`/`runs` show every channel's")
	} else {
		lines = append(lines, "• `status` and `runs` show this channel's runs; you may cancel the runs you asked for")
	}
	if len(b.cfg.AllowedChannels) > 0 {
		lines = append(lines, "• rendering is enabled in this channel")
	}
	return strings.Join(lines, "\n")
}
