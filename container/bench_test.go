package container

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// benchFrames and benchChunk shape the stitch benchmarks: 500 frames in
// segments of 50, as ten render children would leave them, at a preview size
// and at full HD (the encode's cost grows with pixels, the concat's does not).
const (
	benchFrames = 500
	benchChunk  = 50
)

var benchSizes = []struct{ w, h int }{{640, 360}, {1920, 1080}}

// BenchmarkStitchConcat joins ten ready segments with stream copy.
// "video" is the video step alone (fetch the segments, concat, check the frame
// count); "job" is the whole stitch job (plus the frame check, preview,
// thumbnail and manifest every stitch makes).
func BenchmarkStitchConcat(b *testing.B) { benchmarkStitch(b, plan.StitchConcat) }

// BenchmarkStitchEncode encodes all 500 frames in one pass ("video": fetch
// the frames, encode, check; "job": the whole stitch job).
func BenchmarkStitchEncode(b *testing.B) { benchmarkStitch(b, plan.StitchEncode) }

func benchmarkStitch(b *testing.B, mode plan.StitchMode) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dx%d", size.w, size.h), func(b *testing.B) {
			benchmarkStitchSize(b, mode, size.w, size.h)
		})
	}
}

func benchmarkStitchSize(b *testing.B, mode plan.StitchMode, width, height int) {
	w, p := benchRun(b, width, height)
	ctx := context.Background()
	b.Run("video", func(b *testing.B) {
		defer reportChildCPU(b)()
		for b.Loop() {
			dir := b.TempDir()
			video := filepath.Join(dir, "video.mp4")
			var err error
			if mode == plan.StitchConcat {
				_, err = w.concat(ctx, p, "png", dir, filepath.Join(dir, "frames"), video)
			} else {
				if err = w.fetchFrames(ctx, p.RunID, "png", filepath.Join(dir, "frames"), p.Frames); err == nil {
					err = w.encodeFrames(ctx, filepath.Join(dir, "frames"), "png", p.Frames, p.FrameRate, video)
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			if info, err := w.FFmpeg.Probe(ctx, video); err != nil || info.Frames != benchFrames {
				b.Fatalf("video %+v, %v", info, err)
			}
		}
	})
	b.Run("job", func(b *testing.B) {
		defer reportChildCPU(b)()
		for b.Loop() {
			m, err := w.Stitch(ctx, mode)
			if err != nil {
				b.Fatal(err)
			}
			if m.FrameCount != benchFrames {
				b.Fatalf("%d frames", m.FrameCount)
			}
		}
	})
}

// benchRun stores 500 synthetic frames of width x height (FFmpeg's test pattern) and their
// ten segments in a file store, as a finished render leaves them.
func benchRun(b *testing.B, width, height int) (*Worker, *plan.Plan) {
	b.Helper()
	ffmpeg, ffprobe := testenv.FFmpeg(b)
	st, err := store.NewFile(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	frames := make([]int, benchFrames)
	for i := range frames {
		frames[i] = 1001 + i
	}
	p := &plan.Plan{Schema: plan.Schema, RunID: "bench", Blend: plan.Blend{Key: store.BlendKey("bench")}, Scene: "Bench",
		Frames: frames, ChunkSize: benchChunk, FrameRate: plan.FrameRate{Num: 24, Den: 1}, Width: width, Height: height,
		Render: plan.RenderSettings{ImageFormat: "PNG"}, Stitch: plan.StitchConcat}
	ctx := context.Background()
	dir := st.Path(store.FramesPrefix(p.RunID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// testsrc2 draws moving content, so the encoder has real work to do.
	out, err := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=24", width, height),
		"-frames:v", fmt.Sprint(benchFrames), "-start_number", "1001", filepath.Join(dir, "frame_%06d.png")).CombinedOutput()
	if err != nil {
		b.Fatalf("synthesize frames: %v\n%s", err, out)
	}
	w := &Worker{Store: st, RunID: p.RunID, FFmpeg: ExecFFmpeg{FFmpeg: ffmpeg, FFprobe: ffprobe}, WorkDir: b.TempDir()}
	if err := w.putJSON(ctx, store.PlanKey(p.RunID), p); err != nil {
		b.Fatal(err)
	}
	segDir := b.TempDir()
	for i := range p.NumChunks() {
		chunk, _ := p.Chunk(i)
		seg := filepath.Join(segDir, fmt.Sprintf("%d.mp4", i))
		if err := w.encodeFrames(ctx, dir, "png", chunk, p.FrameRate, seg); err != nil {
			b.Fatal(err)
		}
		if err := st.PutFile(ctx, store.SegmentKey(p.RunID, i), seg); err != nil {
			b.Fatal(err)
		}
	}
	return w, p
}

// reportChildCPU reports the CPU time (user + system) of the FFmpeg
// processes per operation: unlike wall time, it barely moves when other
// work shares the machine.
func reportChildCPU(b *testing.B) func() {
	before := childCPU(b)
	return func() {
		b.ReportMetric((childCPU(b)-before).Seconds()/float64(b.N), "ffmpeg-cpu-s/op")
	}
}

func childCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
