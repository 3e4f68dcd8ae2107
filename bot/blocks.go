package bot

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/pipeline"
)

// ActionCancel is the Cancel button's action_id; its value is the run ID.
const ActionCancel = "render_cancel"

// View is everything the parent message shows; Parent turns it into blocks.
type View struct {
	Source string // as the user named it
	// Scene is the scene rendered, shown only when the file has several
	// ("" otherwise): people know a render by its file, and a single scene
	// is mostly Blender's default "Scene".
	Scene       string
	RequestedBy string // user ID
	Run         Run    // zero ID: not submitted yet
	// Phase is what the thread is doing before and around the run.
	Phase Phase
	// QueuePosition is 1-based while Phase is PhaseQueued.
	QueuePosition int
	// Note is a short line under the progress (e.g. "Fetching the scene…").
	Note string
	// Thumbnail is an https image URL or a Slack file ID (ThumbnailFileID).
	ThumbnailURL    string
	ThumbnailFileID string
	CancelledBy     string
	// VideoURL (https) adds an "Open video" button once done.
	VideoURL string
	Now      time.Time
}

// title names the render as people know it: the file, and the scene when
// the file has several.
func (v View) title() string {
	return renderTitle(v.Source, v.Scene)
}

func renderTitle(source, scene string) string {
	name := fileBase(source)
	if scene != "" {
		name += " · " + scene
	}
	return name
}

// fileBase is the file name in a source as shown ("s3://b/shots/a.blend",
// "acme/film/a.blend@main", "a.blend" all give "a.blend").
func fileBase(source string) string {
	s, _, _ := strings.Cut(source, "@")
	if !strings.HasSuffix(s, ".blend") {
		return source // "the newest .blend in this channel", or a run from elsewhere
	}
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// Phase is the thread's state, a superset of the run's.
type Phase string

const (
	PhasePreparing Phase = "preparing" // fetching the source
	PhaseQueued    Phase = "queued"    // waiting for the local engine
	PhaseRunning   Phase = "running"   // submitted; see Run.State
	PhaseDone      Phase = "done"      // succeeded
	PhaseFailed    Phase = "failed"
	PhaseCancelled Phase = "cancelled"
)

// Final reports whether nothing will change any more.
func (p Phase) Final() bool { return p == PhaseDone || p == PhaseFailed || p == PhaseCancelled }

// Parent returns the parent message's fallback text and blocks.
func Parent(v View) (string, []slack.Block) {
	name := v.title()
	var title, status string
	switch v.Phase {
	case PhasePreparing:
		title, status = "🎬 Preparing "+name, "Fetching the scene"
	case PhaseQueued:
		title, status = "⏳ Queued: "+name, fmt.Sprintf("Queued — position %d", v.QueuePosition)
	case PhaseRunning:
		title, status = "🎬 Rendering "+name, runStatus(v.Run)
	case PhaseDone:
		title, status = "✅ Rendered "+name, "Done"
	case PhaseFailed:
		title, status = "❌ Render failed: "+name, "Failed"
	case PhaseCancelled:
		title, status = "🛑 Cancelled: "+name, "Cancelled"
		if v.CancelledBy != "" {
			status = "Cancelled by <@" + v.CancelledBy + ">"
		}
	}
	// The header is plain text; the fallback is mrkdwn, so the name in it
	// is escaped (a file named "<!here> x.blend" must not notify anyone).
	fallback := fmt.Sprintf("%s — %s", escText(title), plainStatus(v, status))

	fields := []*slack.TextBlockObject{
		mrkdwn("*Source*\n" + esc(v.Source)),
		mrkdwn("*Requested by*\n<@" + v.RequestedBy + ">"),
		mrkdwn("*Status*\n" + status),
	}
	if v.Run.FramesTotal > 0 {
		frames := fmt.Sprintf("%d", v.Run.FramesTotal)
		if v.Run.Frames != "" {
			frames = fmt.Sprintf("%s (%d)", esc(v.Run.Frames), v.Run.FramesTotal)
		}
		fields = append(fields, mrkdwn("*Frames*\n"+frames))
	}
	if v.Run.Width > 0 {
		fields = append(fields, mrkdwn(fmt.Sprintf("*Size*\n%d×%d", v.Run.Width, v.Run.Height)))
	}
	if eta := ETA(v.Run, v.Now); v.Phase == PhaseRunning && eta > 0 {
		fields = append(fields, mrkdwn("*ETA*\n"+roundDuration(eta)))
	} else if v.Phase == PhaseDone && !v.Run.FinishedAt.IsZero() && !v.Run.CreatedAt.IsZero() {
		fields = append(fields, mrkdwn("*Took*\n"+roundDuration(v.Run.FinishedAt.Sub(v.Run.CreatedAt))))
	}

	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clip(title, 150), true, false)),
		slack.NewSectionBlock(nil, fields, nil),
	}
	progress := ProgressBar(v.Run.FramesDone, v.Run.FramesTotal, 20)
	if v.Run.FramesTotal > 0 {
		progress += fmt.Sprintf("  %d / %d frames", v.Run.FramesDone, v.Run.FramesTotal)
		if v.Run.LatestFrame > 0 {
			progress += fmt.Sprintf(" · newest: frame %d", v.Run.LatestFrame)
		}
	}
	if v.Note != "" {
		progress += "\n" + esc(v.Note)
	}
	var accessory *slack.Accessory
	switch {
	case v.ThumbnailURL != "":
		accessory = slack.NewAccessory(slack.NewImageBlockElement(v.ThumbnailURL, "newest frame"))
	case v.ThumbnailFileID != "":
		accessory = slack.NewAccessory(slack.NewImageBlockElementSlackFile(&slack.SlackFileObject{ID: v.ThumbnailFileID}, "newest frame"))
	}
	blocks = append(blocks, slack.NewSectionBlock(mrkdwn(progress), nil, accessory))

	ctx := "Thread below has the milestones"
	if v.Run.ID != "" {
		ctx = fmt.Sprintf("Run `%s` · %s engine · updated <!date^%d^{time_secs}|%s>", v.Run.ID, orDash(v.Run.Engine), v.Now.Unix(), v.Now.UTC().Format("15:04:05 UTC"))
	}
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn(ctx)))
	if !v.Phase.Final() && v.Run.ID != "" || v.Phase == PhaseQueued {
		id := v.Run.ID
		btn := slack.NewButtonBlockElement(ActionCancel, id, slack.NewTextBlockObject(slack.PlainTextType, "Cancel render", false, false)).
			WithStyle(slack.StyleDanger).
			WithConfirm(slack.NewConfirmationBlockObject(
				slack.NewTextBlockObject(slack.PlainTextType, "Cancel this render?", false, false),
				mrkdwn(fmt.Sprintf("Stops `%s`. Frames already rendered are kept; the video is not made.", esc(name))),
				slack.NewTextBlockObject(slack.PlainTextType, "Cancel render", false, false),
				slack.NewTextBlockObject(slack.PlainTextType, "Keep rendering", false, false),
			).WithStyle(slack.StyleDanger))
		blocks = append(blocks, slack.NewActionBlock("run_actions", btn))
	}
	if v.Phase == PhaseDone && strings.HasPrefix(v.VideoURL, "https://") {
		open := slack.NewButtonBlockElement("open_video", v.Run.ID, slack.NewTextBlockObject(slack.PlainTextType, "Open video", false, false)).
			WithStyle(slack.StylePrimary).WithURL(v.VideoURL)
		blocks = append(blocks, slack.NewActionBlock("done_actions", open))
	}
	return fallback, blocks
}

func plainStatus(v View, status string) string {
	if v.Run.FramesTotal > 0 && !v.Phase.Final() {
		return fmt.Sprintf("%s, %d/%d frames", status, v.Run.FramesDone, v.Run.FramesTotal)
	}
	return status
}

func runStatus(r Run) string {
	switch r.State {
	case pipeline.RunPlanned, pipeline.RunSubmitted:
		return "Submitted, waiting for workers"
	case pipeline.RunStitching:
		return "Stitching the video"
	case pipeline.RunInterrupted:
		return "Interrupted, resuming"
	case "":
		return "Submitting"
	}
	if r.FramesDone == 0 {
		return "Rendering the first frames"
	}
	return "Rendering"
}

// ProgressBar draws done/total as a bar of width cells with the percentage.
func ProgressBar(done, total, width int) string {
	frac := 0.0
	if total > 0 {
		frac = math.Min(1, float64(done)/float64(total))
	}
	full := int(math.Round(frac * float64(width)))
	return fmt.Sprintf("`%s%s` %d%%", strings.Repeat("█", full), strings.Repeat("░", width-full), int(frac*100))
}

// ETA estimates the time left from the frame rate since the run was
// created (0: unknown).
func ETA(r Run, now time.Time) time.Duration {
	start := r.CreatedAt
	if r.FramesDone == 0 || r.FramesTotal <= r.FramesDone || start.IsZero() || !now.After(start) {
		return 0
	}
	perFrame := now.Sub(start) / time.Duration(r.FramesDone)
	return perFrame * time.Duration(r.FramesTotal-r.FramesDone)
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, clip(s, 2900), false, false)
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
