package container

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/framefleet/framefleet/pipeline/plan"
)

// FFmpeg encodes and inspects video.
type FFmpeg interface {
	// Run runs ffmpeg with args.
	Run(ctx context.Context, args []string) error
	// Probe describes the first video stream of a file (ffprobe).
	Probe(ctx context.Context, path string) (VideoInfo, error)
}

// VideoInfo is what ffprobe reports about a video stream.
type VideoInfo struct {
	Codec     string
	PixFmt    string
	Width     int
	Height    int
	FrameRate string // r_frame_rate, e.g. "30000/1001"
	TimeBase  string
	// Frames is the number of video packets (one per frame for H.264 in MP4).
	Frames int
}

// ExecFFmpeg runs the real programs.
type ExecFFmpeg struct {
	FFmpeg  string // default "ffmpeg"
	FFprobe string // default "ffprobe"
}

// Run implements FFmpeg.
func (f ExecFFmpeg) Run(ctx context.Context, args []string) error {
	path := f.FFmpeg
	if path == "" {
		path = "ffmpeg"
	}
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	var out bytes.Buffer
	cmd := command(ctx, path, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := runCmd(cmd); err != nil {
		return fmt.Errorf("ffmpeg %s: %w: %s", strings.Join(args, " "), err, lastLines(out.String(), 20))
	}
	return nil
}

// Probe implements FFmpeg.
func (f ExecFFmpeg) Probe(ctx context.Context, path string) (VideoInfo, error) {
	probe := f.FFprobe
	if probe == "" {
		probe = "ffprobe"
	}
	var out, errb bytes.Buffer
	cmd := command(ctx, probe, "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=codec_name,pix_fmt,width,height,r_frame_rate,time_base,nb_read_packets",
		"-of", "json", path)
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := runCmd(cmd); err != nil {
		return VideoInfo{}, fmt.Errorf("ffprobe %s: %w: %s", path, err, lastLines(errb.String(), 10))
	}
	var r struct {
		Streams []struct {
			Codec    string `json:"codec_name"`
			PixFmt   string `json:"pix_fmt"`
			Width    int    `json:"width"`
			Height   int    `json:"height"`
			Rate     string `json:"r_frame_rate"`
			TimeBase string `json:"time_base"`
			Packets  string `json:"nb_read_packets"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return VideoInfo{}, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	if len(r.Streams) == 0 {
		return VideoInfo{}, fmt.Errorf("ffprobe %s: no video stream", path)
	}
	s := r.Streams[0]
	n, _ := strconv.Atoi(s.Packets)
	return VideoInfo{Codec: s.Codec, PixFmt: s.PixFmt, Width: s.Width, Height: s.Height,
		FrameRate: s.Rate, TimeBase: s.TimeBase, Frames: n}, nil
}

// Encoder settings shared by every segment and the one-pass encode. Segments
// are joined with the concat demuxer and stream copy, which needs identical
// codec, profile, pixel format, size, rate and timebase in every one.
const (
	x264Preset = "veryfast"
	x264CRF    = "20"
	x264GOP    = 48 // every segment also starts on a keyframe of its own
)

// padFilter makes odd sizes even, as yuv420p requires.
const padFilter = "pad=ceil(iw/2)*2:ceil(ih/2)*2,format=yuv420p"

// EncodeArgs encodes the image sequence pattern (numbered from 0, in frame
// order) at the exact rate into an H.264 MP4.
func EncodeArgs(pattern string, rate plan.FrameRate, out string) []string {
	r := rate.String()
	return []string{
		"-framerate", r, "-start_number", "0", "-i", pattern,
		"-vf", padFilter,
		"-c:v", "libx264", "-preset", x264Preset, "-crf", x264CRF,
		"-profile:v", "high", "-pix_fmt", "yuv420p",
		"-g", strconv.Itoa(x264GOP), "-bf", "2",
		"-r", r,
		// The movie timescale matters too: the concat demuxer places each
		// segment after the previous one's container duration, which at the
		// default 1/1000 s would be rounded off the frame grid.
		"-video_track_timescale", strconv.Itoa(Timescale(rate)), "-movie_timescale", strconv.Itoa(Timescale(rate)),
		"-an", "-movflags", "+faststart", "-f", "mp4", out,
	}
}

// ConcatArgs joins segments listed in a concat-demuxer list without
// re-encoding. The demuxer offsets each segment in microseconds, so over
// thousands of segments timestamps could drift off the frame grid; setts
// snaps them back to whole frames.
func ConcatArgs(list string, rate plan.FrameRate, out string) []string {
	tick := strconv.Itoa(Timescale(rate) * rate.Den / rate.Num)
	snap := fmt.Sprintf("setts=pts=round(PTS/%[1]s)*%[1]s:dts=round(DTS/%[1]s)*%[1]s", tick)
	return []string{"-f", "concat", "-safe", "0", "-i", list,
		"-c", "copy", "-bsf:v", snap, "-an", "-movflags", "+faststart", "-f", "mp4", out}
}

// Timescale is the MP4 track timescale for a rate: a multiple of the rate's
// numerator, so every frame lasts a whole number of ticks, of at least 10000.
func Timescale(r plan.FrameRate) int {
	k := int(math.Ceil(10000 / float64(r.Num)))
	return r.Num * max(k, 1)
}

// PreviewArgs makes a small looping GIF from an image sequence numbered from 0.
func PreviewArgs(pattern string, fps float64, out string) []string {
	return []string{"-framerate", strconv.FormatFloat(fps, 'f', -1, 64), "-start_number", "0", "-i", pattern,
		"-vf", "scale='min(320,iw)':-2:flags=bilinear,split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer",
		"-loop", "0", "-f", "gif", out}
}

// Preview limits: at most previewMaxFrames frames at no more than
// previewMaxFPS, so the GIF stays small and costs the same for any length.
const (
	previewMaxFrames = 40
	previewMaxFPS    = 10
)

// PreviewFrames picks the frames of the preview GIF, evenly spaced, and its
// frame rate: real time for short animations, a time-lapse for long ones.
func PreviewFrames(frames []int, rate plan.FrameRate) (sampled []int, fps float64) {
	rtStep := int(math.Ceil(rate.Float() / previewMaxFPS))
	step := max(rtStep, (len(frames)+previewMaxFrames-1)/previewMaxFrames, 1)
	for i := 0; i < len(frames); i += step {
		sampled = append(sampled, frames[i])
	}
	return sampled, math.Round(rate.Float()/float64(max(rtStep, 1))*1000) / 1000
}

// ThumbnailArgs scales one image to at most 320 pixels wide.
func ThumbnailArgs(in, out string) []string {
	return []string{"-i", in, "-vf", "scale='min(320,iw)':-2:flags=lanczos", "-frames:v", "1", "-update", "1", "-f", "image2", "-c:v", "png", out}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
