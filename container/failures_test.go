package container

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Blender killed from outside (the OOM killer) is not a verdict on the
// scene: the chunk fails transiently, so it is retried, and its report lists
// only the frames this attempt stored.
func TestRenderChunkBlenderKilledBySignalIsTransient(t *testing.T) {
	frames := []int{1, 2, 3, 4, 5, 6, 7, 8}
	r := newRun(t, makeScene(t, map[string]any{"start": 1, "end": 8, "width": 160, "height": 90}),
		plan.Plan{Frames: frames, ChunkSize: 8, Render: plan.RenderSettings{Threads: 1, Samples: 256}})
	var once sync.Once
	killed := 0
	r.worker.BlenderLog = lineFunc(func(line string) {
		if _, ok := ParseSaved(line); !ok {
			return
		}
		once.Do(func() {
			// Only Blender: its command line names the chunk's scene copy.
			for _, p := range processesMentioning(t, r.worker.WorkDir) {
				pid, err := strconv.Atoi(p[:strings.IndexByte(p, ':')])
				if err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		})
	})
	rep, err := r.worker.RenderChunk(context.Background(), 0)
	if killed == 0 {
		t.Fatalf("found no Blender to kill (err %v)", err)
	}
	if err == nil {
		t.Fatal("chunk succeeded although Blender was killed")
	}
	if code := exitCode(err); code != ExitTransient {
		t.Errorf("exit code %d, want %d (transient): %v", code, ExitTransient, err)
	}
	if !strings.Contains(err.Error(), "signal killed") {
		t.Errorf("error %q does not say Blender was killed by a signal", err)
	}
	var stored []int
	for _, k := range r.storedFrameKeys(t) {
		f, ok := FrameFromPath(k)
		if !ok {
			t.Fatalf("odd frame key %s", k)
		}
		stored = append(stored, f)
	}
	slices.Sort(stored)
	got := slices.Sorted(slices.Values(rep.Rendered))
	if len(stored) == 0 || len(stored) == len(frames) || !slices.Equal(got, stored) {
		t.Errorf("report rendered %v; the store has %v: want exactly the frames stored before the kill", rep.Rendered, stored)
	}
	var saved pipeline.ChunkReport
	readJSON(t, r.store, store.ChunkReportKey(r.plan.RunID, 0), &saved)
	if saved.ExitCode != ExitTransient || !slices.Equal(slices.Sorted(slices.Values(saved.Rendered)), stored) {
		t.Errorf("stored report exit %d rendered %v, want %d and %v", saved.ExitCode, saved.Rendered, ExitTransient, stored)
	}
}

// A worker's error is one line (the last its log shows); Blender's
// explanation goes to the chunk report, without its progress lines.
func TestWorkerErrorIsOneLineWithDetailInTheReport(t *testing.T) {
	r := newRun(t, makeFakeBlend(t), plan.Plan{Frames: []int{1, 2}, ChunkSize: 2})
	_, err := r.worker.RenderChunk(context.Background(), 0)
	if err == nil {
		t.Fatal("chunk of a broken blend succeeded")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines:\n%s", err)
	}
	if !strings.Contains(err.Error(), "blender failed rendering frames 1,2") || !strings.Contains(err.Error(), "File format is not supported") {
		t.Errorf("error %q lacks the failure or Blender's own error line", err)
	}
	var rep pipeline.ChunkReport
	readJSON(t, r.store, store.ChunkReportKey(r.plan.RunID, 0), &rep)
	if !strings.HasPrefix(rep.Error, err.Error()+"\n") || !strings.Contains(rep.Error, "end of blender's log") {
		t.Errorf("report error %q: want the one-line error, then Blender's log", rep.Error)
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		msg, full string
		code      int
	}{
		{"one line", permanent("bad %s", "scene"), "bad scene", "bad scene", ExitPermanent},
		{"lines joined", &Error{Code: ExitTransient, Err: errors.New("ffmpeg failed:\n  line 1\n\n  line 2\n")},
			"ffmpeg failed: | line 1 | line 2", "ffmpeg failed: | line 1 | line 2", ExitTransient},
		{"detail kept apart", &Error{Code: ExitPermanent, Err: errors.New("blender failed"), Detail: "end of blender's log:\n  x"},
			"blender failed", "blender failed\nend of blender's log:\n  x", ExitPermanent},
		{"plain error wrapped", asError(errors.New("a\nb")), "a | b", "a | b", ExitPermanent},
		{"wrapped code kept", asError(fmtWrap(&Error{Code: ExitTransient, Err: errors.New("store down")})), "list: store down", "list: store down", ExitTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := asError(tt.err).Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			if got := Full(tt.err); got != tt.full {
				t.Errorf("Full = %q, want %q", got, tt.full)
			}
			if got := exitCode(asError(tt.err)); got != tt.code {
				t.Errorf("exit code %d, want %d", got, tt.code)
			}
		})
	}
}

func fmtWrap(err error) error { return &wrapped{"list: ", err} }

type wrapped struct {
	prefix string
	err    error
}

func (w *wrapped) Error() string { return w.prefix + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestBlenderContextDropsProgressLines(t *testing.T) {
	tl := newTail(60)
	for _, l := range []string{
		"Read blend: /w/scene.blend",
		"Fra:1 Mem:12.00M (Peak 12.00M) | Time:00:00.10 | Syncing Cube",
		"render | Fra:1 Mem:12.00M | Sample 3/16",
		"Error: Out of memory in CUDA queue",
		"Fra:1 Mem:12.00M | Sample 4/16",
		"Blender quit",
	} {
		tl.Add(l)
	}
	got := blenderContext(tl)
	if strings.Contains(got, "Fra:") {
		t.Errorf("context keeps progress lines:\n%s", got)
	}
	for _, want := range []string{"Error: Out of memory", "Read blend", "Blender quit"} {
		if !strings.Contains(got, want) {
			t.Errorf("context lacks %q:\n%s", want, got)
		}
	}
}

// With --stitch encode the stitch encodes from the frames, so a chunk makes
// no segment of its own.
func TestRenderChunkMakesNoSegmentForEncodeStitch(t *testing.T) {
	r := newRun(t, makeScene(t, map[string]any{"start": 1, "end": 2}),
		plan.Plan{Frames: []int{1, 2}, ChunkSize: 2, Stitch: plan.StitchEncode})
	ctx := context.Background()
	rep, err := r.worker.RenderChunk(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Stat(ctx, store.SegmentKey(r.plan.RunID, 0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("segment of an encode-stitch chunk: %v, want none", err)
	}
	if rep.EncodeSeconds != 0 || !slices.Equal(rep.Rendered, []int{1, 2}) {
		t.Errorf("report encode %v s rendered %v", rep.EncodeSeconds, rep.Rendered)
	}
	man, err := r.worker.Stitch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if man.FrameCount != 2 {
		t.Errorf("manifest %+v, want 2 frames", man)
	}
}
