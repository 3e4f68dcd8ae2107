package batch_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// TestSceneWithTexturesAndLibraryOnBatch renders the textured project (a
// texture one level up, a linked library with its own relative texture)
// through the Batch test server with an S3 store: each worker downloads the
// workspace and renders green | blue, as the local engine does. A changed
// texture renders again and adds exactly one object under inputs/.
func TestSceneWithTexturesAndLibraryOnBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	testenv.FFmpeg(t)
	proj := testenv.MakeProject(t, t.TempDir())
	bin := buildFramefleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s3 := s3test.Start(t)
	st := e2eStore(ctx, t, s3)
	srv := batchtest.Start(t, batchtest.Options{Executor: batchtest.WorkerProcess(bin, syncLogf(t)), MaxRunning: 1})
	e := newEngine(t, srv, testSpec())
	inputs := func() int {
		objs, err := st.List(ctx, "inputs/")
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}
	frame := func(runID string) []byte {
		rc, err := st.Get(ctx, store.FrameKey(runID, 1, "png"))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	render := func() *pipeline.Result {
		t.Helper()
		res, err := pipelinetest.Render(ctx, e, st, pipeline.Request{BlendPath: proj.Scene, Threads: 1,
			PollInterval: 50 * time.Millisecond, Env: s3.WorkerEnv()}, nil)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return res
	}

	res := render()
	if left, right := testenv.HalvesOf(t, frame(res.RunID)); !testenv.Near(left, testenv.Green) || !testenv.Near(right, testenv.Blue) {
		t.Errorf("left %v right %v, want green | blue (magenta is a missing texture, black a missing library)", left, right)
	}
	if n := inputs(); n != 4 {
		t.Errorf("%d objects under inputs/, want the scene, the library and the two textures", n)
	}

	testenv.WritePNG(t, filepath.Join(proj.Root, "textures", "left.png"), testenv.Red)
	changed := render()
	if changed.Cached {
		t.Fatal("a changed texture was answered from the cache")
	}
	if n := inputs(); n != 5 {
		t.Errorf("%d objects under inputs/ after changing one texture, want 5 (one new)", n)
	}
	if left, right := testenv.HalvesOf(t, frame(changed.RunID)); !testenv.Near(left, testenv.Red) || !testenv.Near(right, testenv.Blue) {
		t.Errorf("after the change: left %v right %v, want red | blue", left, right)
	}
}
