package container

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// A scene starting at frame 5 with step 3 at 29.97 fps, in odd pixel sizes,
// rendered chunk by chunk and stitched both ways.
func TestRenderAndStitchStepNTSC(t *testing.T) {
	blend := makeScene(t, map[string]any{"start": 5, "end": 20, "step": 3, "fps": 30, "fps_base": 1.001,
		"width": 63, "height": 35})
	frames, err := plan.SceneFrames(5, 20, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := newRun(t, blend, plan.Plan{Frames: frames, ChunkSize: 4, FrameRate: plan.FrameRate{Num: 30000, Den: 1001},
		Width: 63, Height: 35, Engine: "CYCLES", Render: plan.RenderSettings{ImageFormat: "PNG"}})
	ctx := context.Background()

	for i := range r.plan.NumChunks() {
		rep, err := r.worker.RenderChunk(ctx, i)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		want, _ := r.plan.Chunk(i)
		if !slices.Equal(rep.Frames, want) || !slices.Equal(rep.Rendered, want) || len(rep.Skipped) != 0 {
			t.Errorf("chunk %d report: frames %v rendered %v skipped %v, want all of %v rendered", i, rep.Frames, rep.Rendered, rep.Skipped, want)
		}
		if _, err := r.store.Stat(ctx, store.SegmentKey(r.plan.RunID, i)); err != nil {
			t.Errorf("chunk %d segment: %v", i, err)
		}
		if _, err := r.store.Stat(ctx, store.ChunkLogKey(r.plan.RunID, i)); err != nil {
			t.Errorf("chunk %d log tail: %v", i, err)
		}
	}
	if got, want := r.storedFrameKeys(t), r.plannedFrameKeys(); !slices.Equal(got, want) {
		t.Fatalf("stored frames\n %v\nwant exactly the planned\n %v", got, want)
	}
	if got := r.blender.frameArgs(); !slices.Equal(got, []string{"5,8,11,14", "17,20"}) {
		t.Errorf("blender -f arguments %q", got)
	}

	for _, mode := range []plan.StitchMode{plan.StitchConcat, plan.StitchEncode} {
		t.Run(string(mode), func(t *testing.T) {
			m, err := r.worker.Stitch(ctx, mode)
			if err != nil {
				t.Fatal(err)
			}
			video := r.store.Path(store.VideoKey(r.plan.RunID, r.plan.Scene))
			info, err := r.worker.FFmpeg.Probe(ctx, video)
			if err != nil {
				t.Fatal(err)
			}
			if info.Frames != len(frames) || info.FrameRate != "30000/1001" || info.PixFmt != "yuv420p" ||
				info.Codec != "h264" || info.Width%2 != 0 || info.Height%2 != 0 || info.Width < 63 || info.Height < 35 {
				t.Errorf("video %+v: want %d h264 yuv420p frames at 30000/1001 with even sizes ≥ 63x35", info, len(frames))
			}
			if m.FrameCount != len(frames) || m.FPS != "30000/1001" || m.Stitch != string(mode) ||
				len(m.Chunks) != 2 || m.Width != info.Width || m.Height != info.Height {
				t.Errorf("manifest %+v", m)
			}
			if want := float64(len(frames)) * 1001 / 30000; m.DurationSeconds < want-1e-9 || m.DurationSeconds > want+1e-9 {
				t.Errorf("duration %v, want %v", m.DurationSeconds, want)
			}
			if !slices.Equal(m.Frames, keysInFrameOrder(r.plan)) {
				t.Errorf("manifest frames %v", m.Frames)
			}
			var stored pipeline.Manifest
			readJSON(t, r.store, store.ManifestKey(r.plan.RunID), &stored)
			if stored.VideoKey != m.VideoKey || stored.FrameCount != m.FrameCount {
				t.Errorf("stored manifest %+v differs from returned %+v", stored, m)
			}
			for _, key := range []string{m.VideoKey, m.PreviewKey, m.ThumbnailKey} {
				if _, err := r.store.Stat(ctx, key); err != nil {
					t.Errorf("manifest names %s: %v", key, err)
				}
			}
			thumb, err := r.worker.FFmpeg.Probe(ctx, r.store.Path(m.ThumbnailKey))
			if err != nil || thumb.Width != 63 || thumb.Codec != "png" {
				t.Errorf("thumbnail %+v, %v: want a 63 px wide PNG", thumb, err)
			}
			gif, err := r.worker.FFmpeg.Probe(ctx, r.store.Path(m.PreviewKey))
			if err != nil || gif.Codec != "gif" || gif.Width > 320 || gif.Frames < 2 {
				t.Errorf("preview %+v, %v: want an animated GIF ≤ 320 px", gif, err)
			}
		})
	}

	t.Run("damaged segment is encoded again", func(t *testing.T) {
		// Segment 0 replaced by segment 1 (2 frames instead of 4).
		if err := r.store.GetFile(ctx, store.SegmentKey(r.plan.RunID, 1), r.store.Path(store.SegmentKey(r.plan.RunID, 0))); err != nil {
			t.Fatal(err)
		}
		m, err := r.worker.Stitch(ctx, plan.StitchConcat)
		if err != nil {
			t.Fatal(err)
		}
		if m.FrameCount != len(frames) {
			t.Errorf("frame count %d", m.FrameCount)
		}
		info, err := r.worker.FFmpeg.Probe(ctx, r.store.Path(store.SegmentKey(r.plan.RunID, 0)))
		if err != nil || info.Frames != 4 {
			t.Errorf("segment 0 was not repaired in the store: %+v, %v", info, err)
		}
	})

	t.Run("missing segment is encoded from frames", func(t *testing.T) {
		if err := os.Remove(r.store.Path(store.SegmentKey(r.plan.RunID, 1))); err != nil {
			t.Fatal(err)
		}
		m, err := r.worker.Stitch(ctx, plan.StitchConcat)
		if err != nil {
			t.Fatal(err)
		}
		if m.FrameCount != len(frames) {
			t.Errorf("frame count %d", m.FrameCount)
		}
		if _, err := r.store.Stat(ctx, store.SegmentKey(r.plan.RunID, 1)); err != nil {
			t.Errorf("segment 1 was not stored again: %v", err)
		}
	})
}

func keysInFrameOrder(p *plan.Plan) []string {
	var out []string
	for _, f := range p.Frames {
		out = append(out, store.FrameKey(p.RunID, f, "png"))
	}
	return out
}

func readJSON(t *testing.T, st store.Store, key string, v any) {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(v); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

// A retried chunk renders only the frames that are not stored, and a chunk
// whose frames are all stored goes straight to its segment.
func TestRenderChunkResumes(t *testing.T) {
	blend := makeScene(t, map[string]any{"start": 1, "end": 4})
	r := newRun(t, blend, plan.Plan{Frames: []int{1, 2, 3, 4}, ChunkSize: 4})
	ctx := context.Background()
	if _, err := r.worker.RenderChunk(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Lose frames 2 and 4, as if the first attempt died after frames 1 and 3.
	for _, f := range []int{2, 4} {
		if err := os.Remove(r.store.Path(store.FrameKey(r.plan.RunID, f, "png"))); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, f := range []int{1, 3} {
		if err := os.Chtimes(r.store.Path(store.FrameKey(r.plan.RunID, f, "png")), old, old); err != nil {
			t.Fatal(err)
		}
	}
	r.blender.calls, r.blender.saved = nil, nil
	r.worker.Attempt = 2

	rep, err := r.worker.RenderChunk(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.blender.frameArgs(); !slices.Equal(got, []string{"2,4"}) {
		t.Errorf("blender -f %q, want only the missing frames \"2,4\"", got)
	}
	if !slices.Equal(r.blender.saved, []string{"frame_000002.png", "frame_000004.png"}) {
		t.Errorf("blender saved %v", r.blender.saved)
	}
	if !slices.Equal(rep.Rendered, []int{2, 4}) || !slices.Equal(rep.Skipped, []int{1, 3}) || rep.Attempt != 2 {
		t.Errorf("report rendered %v skipped %v attempt %d", rep.Rendered, rep.Skipped, rep.Attempt)
	}
	for _, f := range []int{1, 3} {
		o, err := r.store.Stat(ctx, store.FrameKey(r.plan.RunID, f, "png"))
		if err != nil || !o.ModTime.Equal(old) {
			t.Errorf("frame %d was rewritten (mtime %v, err %v)", f, o.ModTime, err)
		}
	}
	if got, want := r.storedFrameKeys(t), r.plannedFrameKeys(); !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	var stored pipeline.ChunkReport
	readJSON(t, r.store, store.ChunkReportKey(r.plan.RunID, 0), &stored)
	if !slices.Equal(stored.Skipped, []int{1, 3}) || stored.FinishedAt.Before(stored.StartedAt) || stored.Error != "" {
		t.Errorf("stored report %+v", stored)
	}

	// Everything stored: no Blender at all, but the segment is made.
	if err := os.Remove(r.store.Path(store.SegmentKey(r.plan.RunID, 0))); err != nil {
		t.Fatal(err)
	}
	r.blender.calls = nil
	rep, err = r.worker.RenderChunk(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.blender.calls) != 0 || len(rep.Rendered) != 0 || len(rep.Skipped) != 4 {
		t.Errorf("complete chunk ran blender %d times, report %+v", len(r.blender.calls), rep)
	}
	info, err := r.worker.FFmpeg.Probe(ctx, r.store.Path(store.SegmentKey(r.plan.RunID, 0)))
	if err != nil || info.Frames != 4 {
		t.Errorf("segment %+v, %v", info, err)
	}
}

// Stitch refuses to start while a planned frame is missing, and names it.
func TestStitchNamesMissingFrames(t *testing.T) {
	r := newRun(t, makeFakeBlend(t), plan.Plan{Frames: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, ChunkSize: 5})
	ctx := context.Background()
	for _, f := range []int{1, 2, 6, 7, 8, 10} {
		if err := r.store.Put(ctx, store.FrameKey(r.plan.RunID, f, "png"), strings.NewReader("png")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.worker.Stitch(ctx, "")
	if err == nil {
		t.Fatal("stitch succeeded with frames missing")
	}
	if !strings.Contains(err.Error(), "3-5,9") {
		t.Errorf("error %q does not name the missing frames 3-5,9", err)
	}
	if code := exitCode(err); code != ExitPermanent {
		t.Errorf("exit code %d, want %d", code, ExitPermanent)
	}
	if _, err := r.store.Stat(ctx, store.VideoKey(r.plan.RunID, r.plan.Scene)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a video was stored: %v", err)
	}
}

func makeFakeBlend(t *testing.T) string {
	path := t.TempDir() + "/not-a-scene.blend"
	if err := os.WriteFile(path, []byte("this is not a blend file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return -1
}

// Blender failures fail the chunk permanently with Blender's own words, and
// the report and log tail still reach the store.
func TestRenderChunkBlenderErrors(t *testing.T) {
	good := makeScene(t, map[string]any{"start": 1, "end": 2, "name": "Shot"})
	tests := []struct {
		name   string
		blend  string
		scene  string
		device string
		want   []string
	}{
		{"not a blend file", makeFakeBlend(t), "Scene", "", []string{"File format is not supported", "frames 1,2"}},
		{"unknown scene", good, "Nope", "", []string{"'Nope' is not in this file", "'Shot'"}},
		// A GPU job on a machine (or Blender build) without that GPU must not
		// quietly render on the CPU of an expensive GPU instance.
		{"GPU asked, none found", good, "Shot", "CUDA", []string{"FRAMEFLEET_CYCLES_DEVICE=CUDA", "finds no such GPU"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(t, tt.blend, plan.Plan{Frames: []int{1, 2}, ChunkSize: 2, Scene: tt.scene})
			r.worker.CyclesDevice = tt.device
			ctx := context.Background()
			_, err := r.worker.RenderChunk(ctx, 0)
			if err == nil {
				t.Fatal("chunk succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if code := exitCode(err); code != ExitPermanent {
				t.Errorf("exit code %d, want %d", code, ExitPermanent)
			}
			var rep pipeline.ChunkReport
			readJSON(t, r.store, store.ChunkReportKey(r.plan.RunID, 0), &rep)
			if rep.Error == "" || rep.ExitCode != ExitPermanent {
				t.Errorf("stored report %+v has no error", rep)
			}
			rc, err := r.store.Get(ctx, store.ChunkLogKey(r.plan.RunID, 0))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !strings.Contains(string(b), "Blender") {
				t.Errorf("log tail %q", b)
			}
			if keys := r.storedFrameKeys(t); len(keys) != 0 {
				t.Errorf("frames stored: %v", keys)
			}
		})
	}
}

// Cycles denoising needs OpenImageDenoise, which Debian's Blender lacks: the
// chunk renders anyway and says why its frames are noisier. A scene whose
// output is a video renders PNG frames. A missing texture is reported.
func TestRenderChunkSceneQuirks(t *testing.T) {
	tests := []struct {
		name        string
		scene       map[string]any
		imageFormat string
		warning     string
	}{
		{"denoising without OIDN", map[string]any{"denoise": true, "start": 1, "end": 1}, "PNG", "OpenImageDenoise"},
		{"ffmpeg output", map[string]any{"format": "FFMPEG", "start": 1, "end": 1}, "FFMPEG", ""},
		{"missing texture", map[string]any{"texture": "/nonexistent/wood.png", "start": 1, "end": 1}, "PNG", "wood.png) and renders as magenta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(t, makeScene(t, tt.scene), plan.Plan{Frames: []int{1}, ChunkSize: 1,
				Render: plan.RenderSettings{ImageFormat: tt.imageFormat}})
			rep, err := r.worker.RenderChunk(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.storedFrameKeys(t); !slices.Equal(got, []string{store.FrameKey(r.plan.RunID, 1, "png")}) {
				t.Errorf("stored %v, want one PNG frame", got)
			}
			got := strings.Join(rep.Warnings, "\n")
			if tt.warning != "" && !strings.Contains(got, tt.warning) || tt.warning == "" && got != "" {
				t.Errorf("warnings %q, want %q", got, tt.warning)
			}
		})
	}
}

// Negative frames go to Blender relative to the start frame and come back
// under the store's frame names.
func TestRenderChunkNegativeFrames(t *testing.T) {
	r := newRun(t, makeScene(t, map[string]any{"start": 0, "end": 2}), plan.Plan{Frames: []int{-2, -1, 0, 2}, ChunkSize: 4})
	if _, err := r.worker.RenderChunk(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if got, want := r.storedFrameKeys(t), r.plannedFrameKeys(); !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	if got := r.blender.frameArgs(); !slices.Equal(got, []string{"+-2..+0,+2"}) {
		t.Errorf("-f %q", got)
	}
}

// Cancelling (SIGTERM) kills Blender's process group and is transient, so
// Batch retries; the frames Blender saved before it stopped are already
// stored, and the retry renders only the rest.
func TestRenderChunkCancelIsTransient(t *testing.T) {
	frames := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	r := newRun(t, makeScene(t, map[string]any{"start": 1, "end": 10, "width": 160, "height": 90}),
		plan.Plan{Frames: frames, ChunkSize: 10, Render: plan.RenderSettings{Threads: 1, Samples: 256}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.worker.BlenderLog = lineFunc(func(line string) {
		if _, ok := ParseSaved(line); ok {
			cancel()
		}
	})
	_, err := r.worker.RenderChunk(ctx, 0)
	if err == nil {
		t.Fatal("cancelled chunk succeeded")
	}
	if code := exitCode(err); code != ExitTransient {
		t.Errorf("exit code %d, want %d (%v)", code, ExitTransient, err)
	}
	var rep pipeline.ChunkReport
	readJSON(t, r.store, store.ChunkReportKey(r.plan.RunID, 0), &rep)
	if rep.ExitCode != ExitTransient {
		t.Errorf("stored report exit code %d", rep.ExitCode)
	}
	if left := processesMentioning(t, r.worker.WorkDir); len(left) > 0 {
		t.Errorf("processes left running after cancel: %v", left)
	}
	saved := slices.Clone(r.blender.saved)
	stored := r.storedFrameKeys(t)
	if len(saved) == 0 || len(saved) == len(frames) || len(stored) != len(saved) {
		t.Fatalf("blender saved %v before the kill; store has %v", saved, stored)
	}
	for _, name := range saved {
		if !slices.Contains(stored, store.FramesPrefix(r.plan.RunID)+name) {
			t.Errorf("saved frame %s was not stored", name)
		}
	}

	// The retry (cheaper settings, same size) renders only what is missing.
	r.plan.Render.Samples = 1
	b, _ := json.Marshal(r.plan)
	if err := r.store.Put(context.Background(), store.PlanKey(r.plan.RunID), strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	rep, err = r.worker.RenderChunk(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) != len(saved) || len(rep.Rendered)+len(rep.Skipped) != len(frames) {
		t.Errorf("retry rendered %v, skipped %v; %d frames were stored", rep.Rendered, rep.Skipped, len(saved))
	}
	if got, want := r.storedFrameKeys(t), r.plannedFrameKeys(); !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(b), s) {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if strings.Contains(string(stat), ") Z ") { // a zombie is not running
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

type lineFunc func(string)

func (f lineFunc) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		f(l)
	}
	return len(p), nil
}

func TestLoadPlanErrors(t *testing.T) {
	r := newRun(t, makeFakeBlend(t), plan.Plan{Frames: []int{1}, ChunkSize: 1})
	ctx := context.Background()
	if _, err := r.worker.RenderChunk(ctx, 3); err == nil || !strings.Contains(err.Error(), "out of range") || exitCode(err) != ExitPermanent {
		t.Errorf("index 3 of 1 chunk: %v", err)
	}
	r.worker.RunID = "other"
	if _, err := r.worker.Stitch(ctx, ""); err == nil || !strings.Contains(err.Error(), "no plan") || exitCode(err) != ExitPermanent {
		t.Errorf("unknown run: %v", err)
	}
	r.worker.RunID = r.plan.RunID
	if err := r.store.Put(ctx, store.PlanKey(r.plan.RunID), strings.NewReader(`{"schema": 99}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.worker.Stitch(ctx, ""); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("bad plan: %v", err)
	}
}

// The bundled example scene renders (at a quarter size, one sample) without
// warnings.
func TestExampleSceneRenders(t *testing.T) {
	blend := filepath.Join(testenv.RepoRoot(), "examples", "demo.blend")
	r := newRun(t, blend, plan.Plan{Scene: "Demo", Frames: []int{1, 48}, ChunkSize: 2,
		Render: plan.RenderSettings{ResolutionPercentage: 25, Samples: 1, ImageFormat: "PNG"}})
	rep, err := r.worker.RenderChunk(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) > 0 {
		t.Errorf("warnings: %v", rep.Warnings)
	}
	info, err := r.worker.FFmpeg.Probe(context.Background(), r.store.Path(store.FrameKey(r.plan.RunID, 48, "png")))
	if err != nil || info.Width != 80 || info.Height != 45 {
		t.Errorf("frame 48: %+v, %v; want 80x45 (320x180 at 25%%)", info, err)
	}
}
