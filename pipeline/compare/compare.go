// Package compare composes a before-and-after of two finished runs: the base
// run's video on the left, the head run's on the right, each labelled, as an
// MP4, a small looping GIF and a PNG still. Every front-end (the GitHub
// Action's `compare: true`, the Slack bot) calls SideBySide; the result is
// stored under the head run and reused when asked again.
package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Labels drawn over each half unless Options say otherwise.
const (
	BaseLabel = "base"
	HeadLabel = "head"
	// MaxLabel is the longest label, in characters.
	MaxLabel = 60
)

// Output size limits: small renders are scaled up so the labels stay
// legible, large ones down so the comparison stays cheap to make and view.
const (
	MinHeight     = 240
	MaxHeight     = 720
	previewWidth  = 640 // the GIF's width at most
	previewMaxFPS = 10
	previewFrames = 40 // the GIF shows at most this many frames
)

// FontPaths are the fonts looked for when Options.Font is empty, in order:
// Debian's fonts-dejavu-core first, which the worker and action images install.
func FontPaths() []string {
	return []string{
		"/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
		"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
		"/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf", // Fedora, Alpine
		"/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",    // Arch
	}
}

// Options tune a comparison; the zero value is usable.
type Options struct {
	// FFmpeg and FFprobe are the programs (default "ffmpeg", "ffprobe").
	FFmpeg, FFprobe string
	// Font is the TrueType font for the labels. Empty: the first of
	// FontSearch that exists; when none does, the halves are left unlabelled
	// and Result.Warnings says so. A Font that does not exist is an error.
	Font string
	// FontSearch replaces FontPaths() as the fonts looked for.
	FontSearch []string
	// NoLabels leaves the labels out.
	NoLabels bool
	// BaseLabel and HeadLabel replace "base" and "head", e.g. with a branch
	// or a short commit ("base 1a2b3c4"); any text, at most MaxLabel characters.
	BaseLabel, HeadLabel string
	// LinkExpiry is passed to Store.Link (0: the store's default).
	LinkExpiry time.Duration
	// Force composes again even when a stored comparison exists.
	Force bool
	// TempDir holds the downloaded videos while composing (default os.TempDir()).
	TempDir string
	Logger  *slog.Logger
}

// Input names the two videos to compare: store keys of finished runs.
type Input struct {
	BaseRunID, BaseVideoKey string
	HeadRunID, HeadVideoKey string
}

// Result is a stored comparison. Keys are store keys; Video, Preview and
// Still are links a person can open.
type Result struct {
	BaseRunID string `json:"base_run_id"`
	HeadRunID string `json:"head_run_id"`
	VideoKey  string `json:"video_key"`
	// PreviewKey is a looping GIF; StillKey a PNG of the middle frame.
	PreviewKey string `json:"preview_key"`
	StillKey   string `json:"still_key"`
	Video      string `json:"video"`
	Preview    string `json:"preview"`
	Still      string `json:"still"`
	// VideoPath is the video's local path when the store is a directory.
	VideoPath string `json:"video_path,omitempty"`
	// LinksExpireAt is when the links stop working (nil: they do not expire).
	LinksExpireAt *time.Time `json:"links_expire_at,omitempty"`
	// Width and Height are the composed video's size (both halves).
	Width           int     `json:"width"`
	Height          int     `json:"height"`
	FrameRate       string  `json:"frame_rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Labelled is false when no font was found for the labels.
	Labelled  bool     `json:"labelled"`
	BaseLabel string   `json:"base_label,omitempty"`
	HeadLabel string   `json:"head_label,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	// Cached says the comparison was stored before and not composed again.
	Cached bool `json:"cached"`
}

// Keys of a comparison, under the head run:
//
//	runs/<head>/compare/<base>.mp4   the side-by-side video
//	runs/<head>/compare/<base>.gif   its looping preview
//	runs/<head>/compare/<base>.png   its middle frame
//	runs/<head>/compare/<base>.json  the Result, written last: its presence means the rest is complete
func keyBase(head, base string) string {
	return store.RunPrefix(head) + "compare/" + store.SafeName(base)
}

// VideoKey is where the comparison of base and head is stored.
func VideoKey(head, base string) string { return keyBase(head, base) + ".mp4" }

// PreviewKey is the comparison's GIF.
func PreviewKey(head, base string) string { return keyBase(head, base) + ".gif" }

// StillKey is the comparison's PNG still.
func StillKey(head, base string) string { return keyBase(head, base) + ".png" }

// RecordKey is the comparison's stored Result.
func RecordKey(head, base string) string { return keyBase(head, base) + ".json" }

// RunNotFinishedError says a run has no finished video to compare yet.
type RunNotFinishedError struct {
	RunID string
	Err   error
}

func (e *RunNotFinishedError) Error() string {
	return fmt.Sprintf("run %s has no finished video to compare (%v): wait until it succeeds, then compare again", e.RunID, e.Err)
}

func (e *RunNotFinishedError) Unwrap() error { return e.Err }

// SideBySide compares two finished runs of st, reading each run's video from
// its manifest. Asked again for the same pair, it returns the stored
// comparison with fresh links (Cached) without running FFmpeg.
func SideBySide(ctx context.Context, st store.Store, baseRunID, headRunID string, opts Options) (*Result, error) {
	if baseRunID == "" || headRunID == "" {
		return nil, errors.New("compare: both a base and a head run id are needed")
	}
	if res, err := cached(ctx, st, baseRunID, headRunID, opts); res != nil || err != nil {
		return res, err
	}
	in := Input{BaseRunID: baseRunID, HeadRunID: headRunID}
	var err error
	if in.BaseVideoKey, err = videoOf(ctx, st, baseRunID); err != nil {
		return nil, err
	}
	if in.HeadVideoKey, err = videoOf(ctx, st, headRunID); err != nil {
		return nil, err
	}
	return Compose(ctx, st, in, opts)
}

// videoOf reads the video key from a run's manifest.
func videoOf(ctx context.Context, st store.Store, runID string) (string, error) {
	if err := checkRunID(runID); err != nil {
		return "", err
	}
	rc, err := st.Get(ctx, store.ManifestKey(runID))
	if err != nil {
		return "", &RunNotFinishedError{RunID: runID, Err: err}
	}
	defer rc.Close()
	var m pipeline.Manifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return "", fmt.Errorf("compare: run %s: manifest is not valid JSON: %w", runID, err)
	}
	if m.VideoKey == "" {
		return "", &RunNotFinishedError{RunID: runID, Err: errors.New("its manifest names no video")}
	}
	return m.VideoKey, nil
}

func checkRunID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\") || id == "." || id == ".." {
		return fmt.Errorf("compare: %q is not a run id: give the id a render printed, e.g. 3f9c1a2b", id)
	}
	return nil
}

// cached returns the stored comparison, or nil when there is none (or Force).
func cached(ctx context.Context, st store.Store, base, head string, opts Options) (*Result, error) {
	if opts.Force {
		return nil, nil
	}
	if err := checkRunID(base); err != nil {
		return nil, err
	}
	if err := checkRunID(head); err != nil {
		return nil, err
	}
	rc, err := st.Get(ctx, RecordKey(head, base))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("compare: read the stored comparison: %w", err)
	}
	defer rc.Close()
	var res Result
	if err := json.NewDecoder(rc).Decode(&res); err != nil {
		// A damaged record is not worth failing over: compose again.
		return nil, nil
	}
	if _, err := st.Stat(ctx, res.VideoKey); err != nil {
		return nil, nil // expired or removed: compose again
	}
	if err := link(ctx, st, &res, opts.LinkExpiry); err != nil {
		return nil, err
	}
	res.Cached = true
	return &res, nil
}

// Compose makes the comparison of two stored videos and stores it under the
// head run. Use it when the videos are known by key; SideBySide finds them.
func Compose(ctx context.Context, st store.Store, in Input, opts Options) (*Result, error) {
	if err := checkRunID(in.BaseRunID); err != nil {
		return nil, err
	}
	if err := checkRunID(in.HeadRunID); err != nil {
		return nil, err
	}
	if in.BaseVideoKey == "" || in.HeadVideoKey == "" {
		return nil, errors.New("compare: both videos' store keys are needed")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := &Result{
		BaseRunID: in.BaseRunID, HeadRunID: in.HeadRunID,
		VideoKey:   VideoKey(in.HeadRunID, in.BaseRunID),
		PreviewKey: PreviewKey(in.HeadRunID, in.BaseRunID),
		StillKey:   StillKey(in.HeadRunID, in.BaseRunID),
	}
	font := ""
	if !opts.NoLabels {
		var warn string
		var err error
		if font, warn, err = findFont(opts.Font, opts.FontSearch); err != nil {
			return nil, err
		}
		if warn != "" {
			res.Warnings = append(res.Warnings, warn)
			log.Warn(warn)
		}
	}
	res.Labelled = font != ""
	baseLabel, err := labelText(opts.BaseLabel, BaseLabel)
	if err != nil {
		return nil, err
	}
	headLabel, err := labelText(opts.HeadLabel, HeadLabel)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp(opts.TempDir, "framefleet-compare-")
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	defer os.RemoveAll(dir)
	if strings.ContainsAny(dir, "'\\") {
		return nil, fmt.Errorf("compare: temporary directory %q contains a quote or backslash, which FFmpeg's filter syntax cannot carry: set TempDir to a plain path", dir)
	}
	basePath, headPath := filepath.Join(dir, "base.mp4"), filepath.Join(dir, "head.mp4")
	if err := st.GetFile(ctx, in.BaseVideoKey, basePath); err != nil {
		return nil, fmt.Errorf("compare: base run %s video: %w", in.BaseRunID, err)
	}
	if err := st.GetFile(ctx, in.HeadVideoKey, headPath); err != nil {
		return nil, fmt.Errorf("compare: head run %s video: %w", in.HeadRunID, err)
	}
	t := tools{ffmpeg: or(opts.FFmpeg, "ffmpeg"), ffprobe: or(opts.FFprobe, "ffprobe")}
	base, err := t.probe(ctx, basePath)
	if err != nil {
		return nil, fmt.Errorf("compare: base run %s: %w", in.BaseRunID, err)
	}
	head, err := t.probe(ctx, headPath)
	if err != nil {
		return nil, fmt.Errorf("compare: head run %s: %w", in.HeadRunID, err)
	}
	l := Plan(base, head, font)
	if font != "" {
		// Labels go through files: no text a caller gives is ever parsed as filter syntax.
		l.BaseLabelFile, l.HeadLabelFile = filepath.Join(dir, "base.txt"), filepath.Join(dir, "head.txt")
		if err := os.WriteFile(l.BaseLabelFile, []byte(baseLabel), 0o600); err != nil {
			return nil, fmt.Errorf("compare: %w", err)
		}
		if err := os.WriteFile(l.HeadLabelFile, []byte(headLabel), 0o600); err != nil {
			return nil, fmt.Errorf("compare: %w", err)
		}
		res.BaseLabel, res.HeadLabel = baseLabel, headLabel
	}
	res.Width, res.Height, res.FrameRate, res.DurationSeconds = l.Width, l.Height, l.Rate, l.Duration
	res.Warnings = append(res.Warnings, l.Notes...)

	video, gif, still := filepath.Join(dir, "compare.mp4"), filepath.Join(dir, "compare.gif"), filepath.Join(dir, "compare.png")
	start := time.Now()
	if err := t.run(ctx, VideoArgs(basePath, headPath, l, video)); err != nil {
		return nil, fmt.Errorf("compare: compose the video: %w", err)
	}
	if err := t.run(ctx, PreviewArgs(video, l, gif)); err != nil {
		return nil, fmt.Errorf("compare: make the preview: %w", err)
	}
	if err := t.run(ctx, StillArgs(video, l, still)); err != nil {
		return nil, fmt.Errorf("compare: make the still: %w", err)
	}
	log.Debug("composed comparison", "base", in.BaseRunID, "head", in.HeadRunID, "seconds", time.Since(start).Seconds())

	for _, f := range []struct{ key, path string }{{res.VideoKey, video}, {res.PreviewKey, gif}, {res.StillKey, still}} {
		if err := st.PutFile(ctx, f.key, f.path); err != nil {
			return nil, fmt.Errorf("compare: store %s: %w", f.key, err)
		}
	}
	record, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	if err := st.Put(ctx, RecordKey(in.HeadRunID, in.BaseRunID), bytes.NewReader(record)); err != nil {
		return nil, fmt.Errorf("compare: store the record: %w", err)
	}
	if err := link(ctx, st, res, opts.LinkExpiry); err != nil {
		return nil, err
	}
	return res, nil
}

// link fills in the links (never stored: they expire).
func link(ctx context.Context, st store.Store, res *Result, expiry time.Duration) error {
	for _, l := range []struct {
		key string
		dst *string
	}{{res.VideoKey, &res.Video}, {res.PreviewKey, &res.Preview}, {res.StillKey, &res.Still}} {
		u, err := st.Link(ctx, l.key, expiry)
		if err != nil {
			return fmt.Errorf("compare: link %s: %w", l.key, err)
		}
		*l.dst = u
	}
	if lp, ok := st.(interface{ Path(string) string }); ok {
		res.VideoPath = lp.Path(res.VideoKey)
	}
	res.LinksExpireAt = store.LinksExpireAt(ctx, st, expiry)
	return nil
}

// findFont returns the label font, or "" and a warning when none is installed.
func findFont(explicit string, search []string) (font, warning string, err error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", "", fmt.Errorf("compare: label font %s: %w: give an existing .ttf file, or leave it empty to use DejaVu Sans (apt-get install fonts-dejavu-core)", explicit, err)
		}
		if strings.ContainsAny(explicit, "'\\") {
			return "", "", fmt.Errorf("compare: label font path %q contains a quote or backslash, which FFmpeg's filter syntax cannot carry: copy the font to a plain path", explicit)
		}
		return explicit, "", nil
	}
	if search == nil {
		search = FontPaths()
	}
	for _, p := range search {
		if _, err := os.Stat(p); err == nil && !strings.ContainsAny(p, "'\\") {
			return p, "", nil
		}
	}
	return "", "no font for the labels (looked for " + strings.Join(search, ", ") + "): the comparison is unlabelled, base on the left and head on the right; install fonts-dejavu-core to label it", nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// tools runs the real FFmpeg and FFprobe from argument lists, never a shell.
type tools struct{ ffmpeg, ffprobe string }

func (t tools) run(ctx context.Context, args []string) error {
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	cmd := exec.CommandContext(ctx, t.ffmpeg, args...)
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s is not installed: apt-get install ffmpeg: %w", t.ffmpeg, err)
		}
		return fmt.Errorf("ffmpeg %s: %w: %s", strings.Join(args, " "), err, tail(out.String(), 20))
	}
	return nil
}

// Video describes one input as ffprobe sees it.
type Video struct {
	Width, Height int
	// Rate is r_frame_rate, e.g. "30000/1001".
	Rate     string
	Duration float64 // seconds
}

func (t tools) probe(ctx context.Context, path string) (Video, error) {
	cmd := exec.CommandContext(ctx, t.ffprobe, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,r_frame_rate:format=duration", "-of", "json", path)
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return Video{}, fmt.Errorf("%s is not installed: apt-get install ffmpeg: %w", t.ffprobe, err)
		}
		return Video{}, fmt.Errorf("ffprobe %s: %w: %s", filepath.Base(path), err, tail(stderr.String(), 5))
	}
	var p struct {
		Streams []struct {
			Width, Height int
			Rate          string `json:"r_frame_rate"`
		}
		Format struct {
			Duration string
		}
	}
	if err := json.Unmarshal(out, &p); err != nil || len(p.Streams) == 0 {
		return Video{}, fmt.Errorf("ffprobe %s: no video stream found", filepath.Base(path))
	}
	v := Video{Width: p.Streams[0].Width, Height: p.Streams[0].Height, Rate: p.Streams[0].Rate}
	v.Duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	if v.Width <= 0 || v.Height <= 0 {
		return Video{}, fmt.Errorf("ffprobe %s: video has no size", filepath.Base(path))
	}
	return v, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Layout is how two videos are put side by side; Plan makes it and the
// *Args functions turn it into FFmpeg arguments.
type Layout struct {
	// Height is both halves' height; Width the whole frame's.
	Width, Height int
	// BaseWidth and HeadWidth are each half's width after scaling.
	BaseWidth, HeadWidth int
	// Rate is the output frame rate (the head's); Duration the longer input's.
	Rate     string
	Duration float64
	// BasePad and HeadPad are how long each input's last frame is held so
	// both end together.
	BasePad, HeadPad float64
	// Font is the label font ("" for no labels); BaseLabelFile and
	// HeadLabelFile hold each label's text.
	Font                         string
	BaseLabelFile, HeadLabelFile string
	// Notes describe adjustments a viewer should know about.
	Notes []string
}

// Plan decides the layout: both halves at one height (the taller input's,
// kept between MinHeight and MaxHeight), each keeping its aspect ratio; the
// head's frame rate; the shorter input holding its last frame.
func Plan(base, head Video, font string) Layout {
	h := max(base.Height, head.Height)
	h = min(max(h, MinHeight), MaxHeight)
	h += h % 2
	l := Layout{Height: h, Font: font, Rate: head.Rate}
	l.BaseWidth = evenWidth(base, h)
	l.HeadWidth = evenWidth(head, h)
	l.Width = l.BaseWidth + l.HeadWidth
	if pipeline.RateValue(l.Rate) <= 0 {
		l.Rate = base.Rate
	}
	if pipeline.RateValue(l.Rate) <= 0 {
		l.Rate = "24"
	}
	if base.Rate != head.Rate && pipeline.RateValue(base.Rate) > 0 && pipeline.RateValue(head.Rate) > 0 {
		l.Notes = append(l.Notes, fmt.Sprintf("base runs at %s fps and head at %s fps: both are shown at %s fps", fpsText(base.Rate), fpsText(head.Rate), fpsText(l.Rate)))
	}
	if base.Width*head.Height != head.Width*base.Height {
		l.Notes = append(l.Notes, fmt.Sprintf("base is %dx%d and head %dx%d: each is scaled to %d pixels high, keeping its shape", base.Width, base.Height, head.Width, head.Height, h))
	}
	l.Duration = max(base.Duration, head.Duration)
	l.BasePad = l.Duration - base.Duration
	l.HeadPad = l.Duration - head.Duration
	const tolerance = 0.001
	switch {
	case l.BasePad > tolerance:
		l.Notes = append(l.Notes, fmt.Sprintf("base is %.2fs shorter than head: its last frame is held", l.BasePad))
	case l.HeadPad > tolerance:
		l.Notes = append(l.Notes, fmt.Sprintf("head is %.2fs shorter than base: its last frame is held", l.HeadPad))
	}
	return l
}

func evenWidth(v Video, h int) int {
	w := (v.Width*h + v.Height/2) / v.Height
	return max(2, w+w%2)
}

func fpsText(r string) string { return strconv.FormatFloat(pipeline.RateValue(r), 'f', -1, 64) }

// labelText checks a label, or gives the default.
func labelText(s, def string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	if strings.ContainsAny(s, "\n\r\x00") || utf8.RuneCountInString(s) > MaxLabel || !utf8.ValidString(s) {
		return "", fmt.Errorf("compare: label %q must be one line of at most %d characters: shorten it, e.g. base 1a2b3c4", s, MaxLabel)
	}
	return s, nil
}

// label draws the text of a file at the top left of a half: white on a
// dark box, sized to the height so it reads the same at any resolution.
// expansion=none: a % in the text is just a %.
func label(font, textFile string, h int) string {
	size := max(12, h/14)
	return fmt.Sprintf("drawtext=fontfile='%s':textfile='%s':expansion=none:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.65:boxborderw=%d:x=%d:y=%d",
		font, textFile, size, max(2, size/4), size/2, size/2)
}

// half is one input's filter chain: frame rate, size, held last frame, label.
func half(in, out string, w, h int, rate string, pad float64, font, textFile string) string {
	parts := []string{
		"fps=" + rate,
		fmt.Sprintf("scale=%d:%d:flags=bicubic", w, h),
		"setsar=1",
	}
	if pad > 0 {
		parts = append(parts, "tpad=stop_mode=clone:stop_duration="+strconv.FormatFloat(pad, 'f', 6, 64))
	}
	if font != "" && textFile != "" {
		parts = append(parts, label(font, textFile, h))
	}
	return "[" + in + "]" + strings.Join(parts, ",") + "[" + out + "]"
}

// VideoArgs composes base (left) and head (right) into an H.264 MP4.
func VideoArgs(base, head string, l Layout, out string) []string {
	graph := strings.Join([]string{
		half("0:v", "b", l.BaseWidth, l.Height, l.Rate, l.BasePad, l.Font, l.BaseLabelFile),
		half("1:v", "h", l.HeadWidth, l.Height, l.Rate, l.HeadPad, l.Font, l.HeadLabelFile),
		"[b][h]hstack=inputs=2,format=yuv420p[v]",
	}, ";")
	return []string{
		"-i", base, "-i", head,
		"-filter_complex", graph, "-map", "[v]",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
		"-r", l.Rate, "-an", "-movflags", "+faststart", "-f", "mp4", out,
	}
}

// PreviewArgs makes a looping GIF of the composed video: at most
// previewWidth wide, previewMaxFPS frames a second and about previewFrames
// frames, so it stays small for any length.
func PreviewArgs(video string, l Layout, out string) []string {
	fps := min(pipeline.RateValue(l.Rate), previewMaxFPS)
	if l.Duration > 0 && l.Duration*fps > previewFrames {
		fps = previewFrames / l.Duration // a time-lapse of long videos
	}
	w := min(l.Width, previewWidth)
	vf := fmt.Sprintf("fps=%s,scale=%d:-2:flags=bilinear,split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer",
		strconv.FormatFloat(fps, 'f', 4, 64), w)
	return []string{"-i", video, "-vf", vf, "-loop", "0", "-f", "gif", out}
}

// StillArgs takes the composed video's middle frame as a PNG.
func StillArgs(video string, l Layout, out string) []string {
	at := strconv.FormatFloat(l.Duration/2, 'f', 3, 64)
	return []string{"-ss", at, "-i", video, "-frames:v", "1", "-update", "1", "-f", "image2", "-c:v", "png", out}
}
