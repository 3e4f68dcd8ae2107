package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/plan"
)

// The "Render with framefleet" message shortcut: on a message carrying a
// .blend file it opens a form (frames, resolution, samples, engine) filled
// from the file, and its submission starts the same render as /render in
// that message's thread.

// CallbackRenderModal is the form's callback_id.
const CallbackRenderModal = "render_file_modal"

// Form block and action IDs (each input block has one element, same ID).
const (
	fieldFrames     = "frames"
	fieldResolution = "resolution"
	fieldSamples    = "samples"
	fieldEngine     = "engine"
)

// inspectWithin bounds downloading and reading the file to fill the form:
// the trigger to open it expires about 3 s after the click.
const inspectWithin = 1500 * time.Millisecond

// modalContext travels in the form's private_metadata.
type modalContext struct {
	Channel  string `json:"channel"`
	Root     string `json:"root"` // the file message's ts
	FileID   string `json:"file_id"`
	FileName string `json:"file_name"`
}

func (b *Bot) openRenderModal(ic slack.InteractionCallback) {
	ctx := b.ctx
	channel, user := ic.Channel.ID, ic.User.ID
	actx, cancel := context.WithTimeout(ctx, ackLookupTimeout)
	err := b.auth.check(actx, channel, user)
	cancel()
	if err != nil {
		b.respond(ctx, ic.ResponseURL, "🚫 "+err.Error())
		return
	}
	var file *slack.File
	for i := range ic.Message.Files {
		if strings.HasSuffix(strings.ToLower(ic.Message.Files[i].Name), ".blend") {
			file = &ic.Message.Files[i]
			break
		}
	}
	if file == nil {
		b.respond(ctx, ic.ResponseURL, "⚠️ This message carries no .blend file: use *Render with framefleet* on the message where the .blend was shared.")
		return
	}
	root := ic.Message.ThreadTimestamp
	if root == "" {
		root = ic.Message.Timestamp
	}
	if root == "" {
		root = ic.MessageTs
	}
	mc := modalContext{Channel: channel, Root: root, FileID: file.ID, FileName: file.Name}
	info := b.inspectShared(ctx, file.ID, channel)
	if _, err := b.api.OpenViewContext(ctx, ic.TriggerID, renderModal(mc, info, b.runs.EngineName())); err != nil {
		b.log.Warn("could not open the render form", "user", user, "err", err)
		b.respond(ctx, ic.ResponseURL, "⚠️ I could not open the form ("+slackErrorCode(err)+"): try again, or use `"+b.cfg.Command+" file:"+esc(file.Name)+"`.")
	}
}

// inspectShared reads the shared file's render settings, or nil when that
// takes too long or fails (the form then shows the scene's settings as
// empty fields).
func (b *Bot) inspectShared(ctx context.Context, fileID, channel string) *blend.Info {
	if b.fetch == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, inspectWithin)
	defer cancel()
	path, _, err := b.fetch.Fetch(ctx, Source{Kind: SourceSlackFile, FileID: fileID}, channel)
	if err != nil {
		b.log.Info("could not read the shared file to fill the form", "file", fileID, "err", err)
		return nil
	}
	defer os.Remove(path)
	info, err := blend.ReadFile(path)
	if err != nil {
		return nil
	}
	return info
}

// renderModal is the form, filled from info when known.
func renderModal(mc modalContext, info *blend.Info, engine string) slack.ModalViewRequest {
	meta, _ := json.Marshal(mc)
	plain := func(s string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
	}
	input := func(id, label, hint, initial, placeholder string) *slack.InputBlock {
		el := slack.NewPlainTextInputBlockElement(plain(placeholder), id)
		if initial != "" {
			el = el.WithInitialValue(initial)
		}
		blk := slack.NewInputBlock(id, plain(label), plain(hint), el)
		blk.Optional = true
		return blk
	}
	frames, resolution, about := "", "", "the scene's own settings apply to empty fields"
	if info != nil {
		frames = fmt.Sprintf("%d-%d", info.FrameStart, info.FrameEnd)
		if info.FrameStep > 1 {
			frames += fmt.Sprintf("x%d", info.FrameStep)
		}
		if info.ResolutionPercentage > 0 {
			resolution = strconv.Itoa(info.ResolutionPercentage)
		}
		about = fmt.Sprintf("scene *%s*: %d×%d, %s engine; filled from the file", esc(info.Scene), info.ResolutionX, info.ResolutionY, esc(orDash(info.Engine)))
	}
	opt := slack.NewOptionBlockObject(engine, plain(engine), nil)
	engineSelect := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("Engine"), fieldEngine, opt).WithInitialOption(opt)
	blocks := slack.Blocks{BlockSet: []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("Renders *%s* into the thread of its message (%s).", esc(mc.FileName), about), false, false), nil, nil),
		input(fieldFrames, "Frames", "e.g. 1-100, 1-100x5 (every 5th), 3,7,12-20 or -5--1", frames, "the scene's range"),
		input(fieldResolution, "Resolution (%)", fmt.Sprintf("percent of the scene's size, 1 to %d (25 for a quick preview)", pipeline.MaxResolutionPercentage), resolution, "the scene's"),
		input(fieldSamples, "Samples", fmt.Sprintf("1 to %d; empty keeps the scene's", pipeline.MaxSamples), "", "the scene's"),
		slack.NewInputBlock(fieldEngine, plain("Engine"), plain("where the render runs (as configured for this bot)"), engineSelect),
	}}
	return slack.ModalViewRequest{
		Type: slack.VTModal, CallbackID: CallbackRenderModal, PrivateMetadata: string(meta),
		Title: plain("Render with framefleet"), Submit: plain("Render"), Close: plain("Cancel"), Blocks: blocks,
	}
}

// submitRenderModal checks the form; errors keep it open with a message
// under the field, otherwise the render starts in the file's thread.
func (b *Bot) submitRenderModal(ic slack.InteractionCallback) Reply {
	var mc modalContext
	if err := json.Unmarshal([]byte(ic.View.PrivateMetadata), &mc); err != nil || mc.Channel == "" || mc.Root == "" || mc.FileID == "" {
		return Reply{Errors: map[string]string{fieldFrames: "This form lost track of its file: close it and use the shortcut on the file's message again."}}
	}
	value := func(id string) string {
		if ic.View.State == nil {
			return ""
		}
		a := ic.View.State.Values[id][id]
		if a.SelectedOption.Value != "" {
			return a.SelectedOption.Value
		}
		return strings.TrimSpace(a.Value)
	}
	text := "fileid:" + mc.FileID
	errs := map[string]string{}
	if f := value(fieldFrames); f != "" {
		frames, err := plan.ParseFrames(f)
		switch {
		case err != nil:
			errs[fieldFrames] = "Not a frame list: use 1-100, 1-100x5 (every 5th frame), 3,7,12-20 or -5--1."
		case pipeline.CheckFrameCount(len(frames)) != nil:
			errs[fieldFrames] = fmt.Sprintf("%d frames is more than the %d one render may have: split it into several renders.", len(frames), pipeline.MaxRequestFrames)
		default:
			text += " frames=" + f
		}
	}
	for _, s := range []struct {
		id    string
		check func(int) error
		what  string
	}{{fieldResolution, pipeline.CheckResolution, "a percentage"}, {fieldSamples, pipeline.CheckSamples, "a number of samples"}} {
		v := value(s.id)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err == nil && n > 0 {
			err = s.check(n)
		} else if err == nil {
			err = errors.New("")
		}
		if err != nil {
			reason := "give a whole number"
			var se *pipeline.SettingError
			if errors.As(err, &se) {
				reason = se.Reason
			}
			errs[s.id] = fmt.Sprintf("%s is not %s here: %s.", v, s.what, reason)
			continue
		}
		text += " " + s.id + "=" + v
	}
	if e := value(fieldEngine); e != "" && e != b.runs.EngineName() {
		errs[fieldEngine] = fmt.Sprintf("This bot renders on the %s engine only.", b.runs.EngineName())
	}
	if len(errs) > 0 {
		return Reply{Errors: errs}
	}
	cmd, err := ParseCommand(b.cfg.Command, text)
	if err != nil {
		return Reply{Errors: map[string]string{fieldFrames: err.Error()}}
	}
	actx, cancel := context.WithTimeout(b.ctx, ackLookupTimeout)
	defer cancel()
	if err := b.auth.check(actx, mc.Channel, ic.User.ID); err != nil {
		return Reply{Errors: map[string]string{fieldFrames: err.Error()}}
	}
	if b.again(ic.View.ID + "/" + ic.View.Hash) {
		return Reply{} // the same submission delivered again
	}
	req := renderRequest{Channel: mc.Channel, User: ic.User.ID, Text: text, Root: mc.Root}
	b.spawn(func() { b.render(req, cmd) })
	return Reply{}
}
