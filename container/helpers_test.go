package container

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// makeScene builds a tiny Cycles scene with testdata/make_scene.py (see its
// header for the options) and returns the .blend path.
func makeScene(t *testing.T, opts map[string]any) string {
	t.Helper()
	return testenv.MakeScene(t, opts)
}

// testRun is a run in a temporary file store, with a worker using the real
// Blender and FFmpeg.
type testRun struct {
	store   *store.File
	plan    *plan.Plan
	worker  *Worker
	blender *recordingBlender
}

// newRun stores blend and a plan for frames (chunked by chunkSize) and
// returns a worker for it.
func newRun(t *testing.T, blend string, p plan.Plan) *testRun {
	t.Helper()
	ffmpeg, ffprobe := testenv.FFmpeg(t)
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p.Schema = plan.Schema
	if p.RunID == "" {
		p.RunID = "run-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")
	}
	p.Blend.Key = store.BlendKey("0123abcd")
	if p.Blend.SHA256 == "" { // what the client records: the worker checks it
		b, err := os.ReadFile(blend)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		p.Blend.SHA256 = hex.EncodeToString(sum[:])
	}
	if p.FrameRate.Num == 0 {
		p.FrameRate = plan.FrameRate{Num: 24, Den: 1}
	}
	if p.Scene == "" {
		p.Scene = "Scene"
	}
	if p.Render.Threads == 0 {
		p.Render.Threads = 2
	}
	if p.Stitch == "" {
		p.Stitch = plan.StitchConcat
	}
	p.CreatedAt = time.Now().UTC()
	if err := st.PutFile(ctx, p.Blend.Key, blend); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	if err := st.Put(ctx, store.PlanKey(p.RunID), strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	rec := &recordingBlender{Blender: ExecBlender{Path: testenv.Blender(t)}}
	w := &Worker{
		Store:   st,
		RunID:   p.RunID,
		Blender: rec,
		FFmpeg:  ExecFFmpeg{FFmpeg: ffmpeg, FFprobe: ffprobe},
		WorkDir: t.TempDir(),
		Log:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Attempt: 1,
	}
	return &testRun{store: st, plan: &p, worker: w, blender: rec}
}

// storedFrameKeys lists the frame keys in the store.
func (r *testRun) storedFrameKeys(t *testing.T) []string {
	t.Helper()
	objs, err := r.store.List(context.Background(), store.FramesPrefix(r.plan.RunID))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// plannedFrameKeys are the keys every planned frame should be stored under.
func (r *testRun) plannedFrameKeys() []string {
	var keys []string
	for _, f := range r.plan.Frames {
		keys = append(keys, store.FrameKey(r.plan.RunID, f, "png"))
	}
	sort.Strings(keys)
	return keys
}

// recordingBlender runs the real Blender and records what it was asked to do.
type recordingBlender struct {
	Blender
	mu    sync.Mutex
	calls [][]string
	saved []string
}

func (r *recordingBlender) Run(ctx context.Context, args []string, onLine func(string)) error {
	r.mu.Lock()
	r.calls = append(r.calls, args)
	r.mu.Unlock()
	return r.Blender.Run(ctx, args, func(line string) {
		if p, ok := ParseSaved(line); ok {
			r.mu.Lock()
			r.saved = append(r.saved, filepath.Base(p))
			r.mu.Unlock()
		}
		onLine(line)
	})
}

// frameArgs are the -f arguments of every Blender call.
func (r *recordingBlender) frameArgs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		for i := range c {
			if c[i] == "-f" && i+1 < len(c) {
				out = append(out, c[i+1])
			}
		}
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
