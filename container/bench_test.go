package container

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// benchFrames and benchChunk shape the stitch benchmarks: 500 frames of
// 640x360 in segments of 50, as ten render children would leave them.
const (
	benchFrames = 500
	benchChunk  = 50
)

// BenchmarkStitchConcat joins ten ready segments with stream copy (plus the
// preview, thumbnail and manifest every stitch makes).
func BenchmarkStitchConcat(b *testing.B) { benchmarkStitch(b, plan.StitchConcat) }

// BenchmarkStitchEncode encodes all 500 frames in one pass (plus the same extras).
func BenchmarkStitchEncode(b *testing.B) { benchmarkStitch(b, plan.StitchEncode) }

func benchmarkStitch(b *testing.B, mode plan.StitchMode) {
	w, p := benchRun(b)
	ctx := context.Background()
	var video time.Duration
	for b.Loop() {
		m, err := w.Stitch(ctx, mode)
		if err != nil {
			b.Fatal(err)
		}
		if m.FrameCount != benchFrames {
			b.Fatalf("%d frames", m.FrameCount)
		}
		video += time.Duration(m.StitchSeconds * float64(time.Second))
	}
	_ = p
}

// benchRun stores 500 synthetic frames (FFmpeg's test pattern) and their
// ten segments in a file store, as a finished render leaves them.
func benchRun(b *testing.B) (*Worker, *plan.Plan) {
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
		Frames: frames, ChunkSize: benchChunk, FrameRate: plan.FrameRate{Num: 24, Den: 1}, Width: 640, Height: 360,
		Render: plan.RenderSettings{ImageFormat: "PNG"}, Stitch: plan.StitchConcat}
	ctx := context.Background()
	dir := st.Path(store.FramesPrefix(p.RunID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// testsrc2 draws moving content, so the encoder has real work to do.
	out, err := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=24",
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
