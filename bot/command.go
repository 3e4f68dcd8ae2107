package bot

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
)

// CommandKind is what a /render invocation asks for.
type CommandKind string

const (
	CmdRender CommandKind = "render"
	CmdStatus CommandKind = "status"
	CmdCancel CommandKind = "cancel"
	CmdRuns   CommandKind = "runs"
	CmdHelp   CommandKind = "help"
)

// Command is a parsed /render text. Every field has been checked: nothing
// here is passed to a shell, and the source is only ever a value to fetch.
type Command struct {
	Kind CommandKind
	// Source (render): the scene to render.
	Source Source
	// Settings (render); zero means the configuration's default.
	Frames     string
	Chunk      int
	Resolution int
	Samples    int
	// RunID (status, cancel): a run ID or a unique prefix.
	RunID string
}

// SourceKind says where a .blend comes from.
type SourceKind string

const (
	SourceS3     SourceKind = "s3"
	SourceGitHub SourceKind = "github"
	// SourceChannel is a .blend shared in the channel: Name is "" for the
	// newest one, or the file's name.
	SourceChannel SourceKind = "channel"
	// SourceSlackFile is one shared file by ID (the message shortcut's).
	SourceSlackFile SourceKind = "slackfile"
)

// Source is a .blend to fetch.
type Source struct {
	Kind SourceKind
	// S3: Bucket and Key. GitHub: Owner, Repo, Path and Ref. Channel: Name.
	Bucket, Key            string
	Owner, Repo, Path, Ref string
	Name                   string
	FileID                 string // SourceSlackFile
}

// String is the source as the user would type it.
func (s Source) String() string {
	switch s.Kind {
	case SourceS3:
		return "s3://" + s.Bucket + "/" + s.Key
	case SourceGitHub:
		return s.Owner + "/" + s.Repo + "/" + s.Path + "@" + s.Ref
	case SourceSlackFile:
		if s.Name != "" {
			return s.Name
		}
		return "the shared file"
	case SourceChannel:
		if s.Name == "" {
			return "the newest .blend in this channel"
		}
		return s.Name
	}
	return ""
}

// UsageError is a command the bot cannot run; its message names the problem
// and shows the right form. It is answered ephemerally.
type UsageError struct {
	Problem string
	Usage   string
}

func (e *UsageError) Error() string { return e.Problem + "\n" + e.Usage }

// Usage lines, with the configured command name substituted for %[1]s.
const (
	usageRender = "`%[1]s <source> [frames=1-100x2] [chunk=10] [resolution=50] [samples=16]`"
	usageSource = "a source is `s3://bucket/path/scene.blend`, `owner/repo/path/scene.blend@ref` (GitHub), `file` (the newest .blend shared in this channel) or `file:scene.blend` (one shared here, by name)"
	usageStatus = "`%[1]s status [run]`"
	usageCancel = "`%[1]s cancel <run>`"
)

// HelpText is the answer to `/render help`.
func HelpText(command string) string {
	return fmt.Sprintf(strings.Join([]string{
		"*Render a Blender scene to a video* — the render lives in a thread you can watch.",
		"• " + usageRender + " — " + usageSource + ".",
		"  `frames`: the scene's range by default; `1-100`, `1-100x5` (every 5th), `3,7,12-20`. `chunk`: frames per job. `resolution`: percent of the scene's (e.g. 25 for a quick preview). `samples`: Cycles samples.",
		"• " + usageStatus + " — one run, or the newest ones in this channel",
		"• " + usageCancel + " — stop a run (whoever asked for it, or an admin)",
		"• `%[1]s runs` — the runs of this channel",
		"• `%[1]s help` — this text",
	}, "\n"), command)
}

// patterns are the argument shapes ParseCommand accepts, compiled on first
// use so that commands other than the bot do not pay for them at start-up.
var patterns = sync.OnceValue(func() commandPatterns {
	return commandPatterns{
		runID:    regexp.MustCompile(`^[a-z0-9][a-z0-9-]{2,63}$`),
		ghPart:   regexp.MustCompile(`^[A-Za-z0-9_.-]+$`),
		ref:      regexp.MustCompile(`^[A-Za-z0-9_./-]+$`),
		bucket:   regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`),
		fileName: regexp.MustCompile(`^[^/\\\x00-\x1f]+\.blend$`),
		fileID:   regexp.MustCompile(`^F[A-Z0-9]{2,40}$`),
	}
})

type commandPatterns struct {
	runID, ghPart, ref, bucket, fileName, fileID *regexp.Regexp
}

// ParseCommand parses the text after the slash command. command is the
// command's name (e.g. "/render"), used in the usage it shows.
func ParseCommand(command, text string) (Command, error) {
	fields := strings.Fields(text)
	usage := func(form string) string { return "Usage: " + fmt.Sprintf(form, command) }
	if len(fields) == 0 {
		return Command{Kind: CmdHelp}, nil // what may be rendered here, and how
	}
	switch strings.ToLower(fields[0]) {
	case "help":
		if len(fields) > 1 {
			return Command{}, &UsageError{fmt.Sprintf("`help` takes no arguments, but got `%s`.", esc(fields[1])), usage("`%[1]s help`")}
		}
		return Command{Kind: CmdHelp}, nil
	case "runs":
		if len(fields) > 1 {
			return Command{}, &UsageError{fmt.Sprintf("`runs` takes no arguments, but got `%s`.", esc(fields[1])), usage("`%[1]s runs`")}
		}
		return Command{Kind: CmdRuns}, nil
	case "status":
		switch len(fields) {
		case 1:
			return Command{Kind: CmdStatus}, nil
		case 2:
			if !patterns().runID.MatchString(fields[1]) {
				return Command{}, &UsageError{fmt.Sprintf("`%s` is not a run ID: run IDs are letters and digits, as shown in the run's message.", esc(fields[1])), usage(usageStatus)}
			}
			return Command{Kind: CmdStatus, RunID: fields[1]}, nil
		}
		return Command{}, &UsageError{fmt.Sprintf("`status` takes at most one run, but got %d words.", len(fields)-1), usage(usageStatus)}
	case "cancel":
		if len(fields) != 2 {
			return Command{}, &UsageError{"`cancel` needs exactly one run ID.", usage(usageCancel)}
		}
		if !patterns().runID.MatchString(fields[1]) {
			return Command{}, &UsageError{fmt.Sprintf("`%s` is not a run ID: run IDs are letters and digits, as shown in the run's message.", esc(fields[1])), usage(usageCancel)}
		}
		return Command{Kind: CmdCancel, RunID: fields[1]}, nil
	}

	cmd := Command{Kind: CmdRender}
	src, err := ParseSource(fields[0])
	if err != nil {
		return Command{}, &UsageError{err.Error(), usage(usageRender) + "\n" + usageSource + "."}
	}
	cmd.Source = src
	seen := map[string]bool{}
	for _, arg := range fields[1:] {
		key, value, ok := strings.Cut(arg, "=")
		key = strings.ToLower(key)
		if !ok || value == "" {
			return Command{}, &UsageError{fmt.Sprintf("`%s` is not a setting: settings are `name=value` with no spaces, e.g. `frames=1-48`.", esc(arg)), usage(usageRender)}
		}
		if seen[key] {
			return Command{}, &UsageError{fmt.Sprintf("`%s` is given twice: give each setting once.", esc(key)), usage(usageRender)}
		}
		seen[key] = true
		switch key {
		case "frames":
			// The pipeline's own grammar and limits, so the bot accepts
			// exactly what a render accepts (negative frames included).
			frames, err := plan.ParseFrames(value)
			if err != nil {
				return Command{}, &UsageError{fmt.Sprintf("`frames=%s` is not a frame list: use `1-100`, `1-100x5` (every 5th frame), `3,7,12-20` or `-5--1`.", esc(value)), usage(usageRender)}
			}
			if err := pipeline.CheckFrameCount(len(frames)); err != nil {
				return Command{}, &UsageError{fmt.Sprintf("`frames=%s` is %d frames, more than the %d one render may have: split it into several renders.", esc(value), len(frames), pipeline.MaxRequestFrames), usage(usageRender)}
			}
			cmd.Frames = value
		case "chunk":
			n, err := setting(key, value, pipeline.CheckChunk, "`chunk=10`")
			if err != nil {
				return Command{}, &UsageError{err.Error(), usage(usageRender)}
			}
			cmd.Chunk = n
		case "resolution":
			n, err := setting(key, value, pipeline.CheckResolution, "`resolution=50`")
			if err != nil {
				return Command{}, &UsageError{err.Error(), usage(usageRender)}
			}
			cmd.Resolution = n
		case "samples":
			n, err := setting(key, value, pipeline.CheckSamples, "`samples=16`")
			if err != nil {
				return Command{}, &UsageError{err.Error(), usage(usageRender)}
			}
			cmd.Samples = n
		default:
			return Command{}, &UsageError{fmt.Sprintf("`%s` is not a setting: use frames, chunk, resolution or samples.", esc(key)), usage(usageRender)}
		}
	}
	return cmd, nil
}

// setting reads a whole-number setting and checks it against the
// pipeline's limit (each limit is defined once, there), worded for Slack.
func setting(key, value string, check func(int) error, example string) (int, error) {
	n, err := strconv.Atoi(value)
	if err != nil {
		return 0, fmt.Errorf("`%s=%s` is out of range: give a whole number, e.g. %s.", key, esc(value), example)
	}
	if err := check(n); err != nil {
		reason := err.Error()
		var se *pipeline.SettingError
		if errors.As(err, &se) {
			reason = se.Reason
		}
		return 0, fmt.Errorf("`%s=%s` is out of range: %s, e.g. %s.", key, esc(value), reason, example)
	}
	return n, nil
}

// ParseSource parses a source argument.
func ParseSource(arg string) (Source, error) {
	switch {
	case strings.HasPrefix(arg, "s3://"):
		bucket, key, _ := strings.Cut(strings.TrimPrefix(arg, "s3://"), "/")
		if !patterns().bucket.MatchString(bucket) {
			return Source{}, fmt.Errorf("`%s` has no valid bucket name: use `s3://bucket/path/scene.blend`.", esc(arg))
		}
		if !strings.HasSuffix(key, ".blend") || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
			return Source{}, fmt.Errorf("`%s` does not name a .blend file: use `s3://bucket/path/scene.blend`.", esc(arg))
		}
		return Source{Kind: SourceS3, Bucket: bucket, Key: key}, nil
	case arg == "file":
		return Source{Kind: SourceChannel}, nil
	case strings.HasPrefix(arg, "fileid:"):
		id := strings.TrimPrefix(arg, "fileid:")
		if !patterns().fileID.MatchString(id) {
			return Source{}, fmt.Errorf("`%s` is not a Slack file ID: use `file:scene.blend` for a file shared here.", esc(arg))
		}
		return Source{Kind: SourceSlackFile, FileID: id}, nil
	case strings.HasPrefix(arg, "file:"):
		name := strings.TrimPrefix(arg, "file:")
		if !patterns().fileName.MatchString(name) {
			return Source{}, fmt.Errorf("`%s` does not name a .blend file shared here: use `file:scene.blend`, or `file` for the newest one.", esc(arg))
		}
		return Source{Kind: SourceChannel, Name: name}, nil
	case strings.Contains(arg, "://"):
		return Source{}, fmt.Errorf("`%s` is not a source I can fetch: only s3:// URLs, GitHub paths and files shared in the channel.", esc(arg))
	}
	path, ref, ok := strings.Cut(arg, "@")
	parts := strings.Split(path, "/")
	if !ok || ref == "" || len(parts) < 3 {
		if strings.HasSuffix(arg, ".blend") && !strings.Contains(arg, "/") {
			return Source{}, fmt.Errorf("`%s` is not a source: for a file shared in this channel write `file:%s`.", esc(arg), esc(arg))
		}
		return Source{}, fmt.Errorf("`%s` is not a source: a GitHub file is `owner/repo/path/scene.blend@ref` (a branch, tag or commit).", esc(arg))
	}
	for i, p := range parts {
		if !patterns().ghPart.MatchString(p) || p == "." || p == ".." || (i < 2 && strings.HasPrefix(p, ".")) {
			return Source{}, fmt.Errorf("`%s` has an invalid path part `%s`: use `owner/repo/path/scene.blend@ref`.", esc(arg), esc(p))
		}
	}
	if !strings.HasSuffix(path, ".blend") {
		return Source{}, fmt.Errorf("`%s` does not name a .blend file: use `owner/repo/path/scene.blend@ref`.", esc(arg))
	}
	if !patterns().ref.MatchString(ref) || strings.Contains(ref, "..") {
		return Source{}, fmt.Errorf("`@%s` is not a git ref: give a branch, tag or commit, e.g. `@main`.", esc(ref))
	}
	return Source{Kind: SourceGitHub, Owner: parts[0], Repo: parts[1], Path: strings.Join(parts[2:], "/"), Ref: ref}, nil
}

// esc escapes user or file text for Slack's mrkdwn, so it cannot mention,
// broadcast or link: &, < and > become entities (no <!here>, <@U…> or
// <http://x|y>), plain @everyone/@here/@channel are broken with a word
// joiner, and backticks become quotes so the text cannot leave a code span
// it is shown in. It never shortens the text (callers clip where a limit
// applies, saying so with "…").
func esc(s string) string {
	return strings.ReplaceAll(escText(s), "`", "'")
}

// escText is esc for text shown outside code spans (backticks kept).
func escText(s string) string {
	s = mrkdwnEscaper.Replace(s)
	return broadcastWords().ReplaceAllString(s, "@\u2060$1")
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

var broadcastWords = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)@(everyone|here|channel)\b`)
})
