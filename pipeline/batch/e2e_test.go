package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// framefleetBin is ./cmd/framefleet, built on first use by an end-to-end
// test and removed by TestMain.
var framefleetBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if framefleetBin.dir != "" {
		os.RemoveAll(framefleetBin.dir)
	}
	os.Exit(code)
}

func buildFramefleet(t *testing.T) string {
	t.Helper()
	b := &framefleetBin
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "framefleet-batch-e2e-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "framefleet")
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/framefleet")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if b.err != nil {
		t.Fatalf("build framefleet: %v", b.err)
	}
	return b.path
}

// TestRenderEndToEnd renders a real scene through the Batch engine: the
// real SDK against the Batch test server, the real worker binary in each
// attempt, Blender and ffmpeg, and an S3 store on gofakes3. One child loses
// its Spot host on its first attempt and is retried.
func TestRenderEndToEnd(t *testing.T) {
	renderEndToEnd(t, 0)
}

// TestRenderEndToEndUnderFaults is the same run with 20% of the S3 and
// Batch calls (client's and workers') answered 500/503/429: the SDKs'
// retries carry the run to a complete video.
func TestRenderEndToEndUnderFaults(t *testing.T) {
	renderEndToEnd(t, 0.2)
}

func renderEndToEnd(t *testing.T, faultRate float64) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	testenv.Blender(t)
	testenv.FFmpeg(t)
	scene := filepath.Join(testenv.Shared(t), "scenes", "pottery.blend")
	if _, err := os.Stat(scene); err != nil {
		if testenv.CI() {
			t.Fatalf("scene missing: %v", err)
		}
		t.Skipf("scene missing: %v", err)
	}
	bin := buildFramefleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	s3 := s3test.Start(t, s3test.WithFaults(faultRate, 7))
	st := e2eStore(ctx, t, s3)

	srv := batchtest.Start(t, batchtest.Options{Executor: batchtest.WorkerProcess(bin, syncLogf(t)), MaxRunning: 2})
	srv.SetReclaim(func(j batchtest.ExecJob) bool { return j.ArrayIndex == 1 && j.Attempt == 1 })
	srv.SetFaults(faultRate, 7)
	if faultRate > 0 {
		// Some calls also take effect and then answer 500 (a lost
		// response): a lost SubmitJob answer must not create a second array.
		srv.SetFaultsAfterWork(faultRate/2, 8)
	}
	e := newEngine(t, srv, testSpec())

	var events []pipeline.Event
	res, err := pipelinetest.Render(ctx, e, st, pipeline.Request{
		BlendPath:            scene,
		Frames:               "1-4",
		Chunk:                2,
		ResolutionPercentage: 4,
		Samples:              1,
		Threads:              1,
		PollInterval:         50 * time.Millisecond,
		// The workers reach the same S3 server through the environment the
		// job carries, as containers reach S3 on Batch.
		Env:              s3.WorkerEnv(),
		PricePerVCPUHour: 0.1,
	}, func(ev pipeline.Event) { events = append(events, ev) })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.FrameCount != 4 || res.Video == "" {
		t.Fatalf("result %+v: want 4 frames and a video", res)
	}
	objs, err := st.List(ctx, store.RunPrefix(res.RunID))
	if err != nil {
		t.Fatal(err)
	}
	var frames, videos int
	for _, o := range objs {
		switch {
		case strings.HasPrefix(o.Key, store.FramesPrefix(res.RunID)):
			frames++
		case strings.HasSuffix(o.Key, ".mp4") && !strings.Contains(o.Key, "/segments/"):
			if o.Size == 0 {
				t.Errorf("video %s is empty", o.Key)
			}
			videos++
		}
	}
	if frames != 4 || videos != 1 {
		t.Errorf("store holds %d frames and %d videos, want 4 and 1: %v", frames, videos, objs)
	}
	// The reclaimed child ran again. Without faults that is its only retry
	// and the other child ran once; with store faults a transient failure
	// (exit 75) may add attempts to either, as it should.
	subs := srv.Submissions()
	if len(subs) != 2 {
		t.Fatalf("%d submissions, want render and stitch", len(subs))
	}
	reclaimed, other := srv.Attempts(subs[0].JobID+":1"), srv.Attempts(subs[0].JobID+":0")
	if reclaimed < 2 || (faultRate == 0 && reclaimed != 2) {
		t.Errorf("reclaimed child made %d attempts, want 2 (at least 2 under faults)", reclaimed)
	}
	if faultRate == 0 && other != 1 {
		t.Errorf("child 0 made %d attempts, want 1", other)
	}
	if res.VCPUSeconds <= 0 {
		t.Errorf("vCPU seconds %v: want the attempts' time", res.VCPUSeconds)
	}
	if faultRate > 0 && (len(srv.Faulted()) == 0 || s3.Faults() == 0) {
		t.Errorf("no faults were injected (Batch %v, S3 %d): the test proves nothing", srv.Faulted(), s3.Faults())
	}
	t.Logf("result: video %s, %d frames, %.1f vCPU-s, $%.5f, %d events; Batch calls %v", res.Video, res.FrameCount, res.VCPUSeconds, res.CostUSD, len(events), srv.Calls())
}

// syncLogf serialises t.Logf calls from concurrent attempts.
// e2eStore is an S3 store on the test server, as the workers reach it.
func e2eStore(ctx context.Context, t *testing.T, s3 *s3test.Server) store.Store {
	t.Helper()
	st, err := store.NewS3(ctx, s3.Bucket, "e2e", store.Options{
		Region: s3.Region, Endpoint: s3.Endpoint, UsePathStyle: true, Credentials: s3.Credentials(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func syncLogf(t *testing.T) func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		t.Logf(format, args...)
	}
}

// TestRenderEndToEndReclaimMidChunk loses child 0's Spot host after its
// first frame reached S3: the retry must render only the frames still
// missing, and the video holds every planned frame exactly once.
func TestRenderEndToEndReclaimMidChunk(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	testenv.Blender(t)
	_, ffprobe := testenv.FFmpeg(t)
	scene := filepath.Join(testenv.Shared(t), "scenes", "pottery.blend")
	if _, err := os.Stat(scene); err != nil {
		if testenv.CI() {
			t.Fatalf("scene missing: %v", err)
		}
		t.Skipf("scene missing: %v", err)
	}
	bin := buildFramefleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	s3 := s3test.Start(t)
	st := e2eStore(ctx, t, s3)
	srv := batchtest.Start(t, batchtest.Options{Executor: batchtest.WorkerProcess(bin, syncLogf(t)), MaxRunning: 2})
	e := newEngine(t, srv, testSpec())

	// Watch the store; reclaim child 0's host once one of its frames is stored.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	reclaimed := make(chan reclaimResult, 1)
	go func() {
		reclaimed <- reclaimAfterFirstFrame(watchCtx, srv, st, []int{1, 2, 3})
	}()

	res, err := pipelinetest.Render(ctx, e, st, pipeline.Request{
		BlendPath:            scene,
		Frames:               "1-6",
		Chunk:                3,
		ResolutionPercentage: 4,
		Samples:              1,
		Threads:              1,
		PollInterval:         50 * time.Millisecond,
		Env:                  s3.WorkerEnv(),
	}, nil)
	stopWatch()
	r := <-reclaimed
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.err != nil || !r.ok {
		t.Fatalf("child 0 was not reclaimed mid-chunk (%v): the test proves nothing", r.err)
	}
	subs := srv.Submissions()
	if n := srv.Attempts(subs[0].JobID + ":0"); n != 2 {
		t.Errorf("reclaimed child made %d attempts, want 2", n)
	}

	var report pipeline.ChunkReport
	rc, err := st.Get(ctx, store.ChunkReportKey(res.RunID, 0))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(rc).Decode(&report)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if report.Attempt != 2 || len(report.Skipped) == 0 {
		t.Errorf("chunk 0 report (attempt %d): rendered %v, skipped %v; want attempt 2 skipping the stored frames", report.Attempt, report.Rendered, report.Skipped)
	}
	done := append(slices.Clone(report.Rendered), report.Skipped...)
	slices.Sort(done)
	if !slices.Equal(done, []int{1, 2, 3}) {
		t.Errorf("chunk 0: rendered %v + skipped %v, want frames 1-3 once each", report.Rendered, report.Skipped)
	}

	var video string
	objs, err := st.List(ctx, store.RunPrefix(res.RunID))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".mp4") && !strings.Contains(o.Key, "/segments/") {
			video = o.Key
		}
	}
	if video == "" {
		t.Fatalf("no video in %v", objs)
	}
	path := filepath.Join(t.TempDir(), "video.mp4")
	if err := download(ctx, st, video, path); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "default=nw=1:nk=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || n != 6 {
		t.Errorf("video has %q frames, want the 6 planned", out)
	}
	t.Logf("reclaimed with %d of chunk 0's frames stored; retry rendered %v, skipped %v", r.stored, report.Rendered, report.Skipped)
}

type reclaimResult struct {
	ok     bool
	stored int // child 0's frames in the store when it was reclaimed
	err    error
}

// reclaimAfterFirstFrame polls the store until one of frames (child 0's) is
// stored, then reclaims child 0's running attempt.
func reclaimAfterFirstFrame(ctx context.Context, srv *batchtest.Server, st store.Store, frames []int) (r reclaimResult) {
	for {
		select {
		case <-ctx.Done():
			r.err = errors.New("no frame of child 0 appeared while it ran")
			return r
		case <-time.After(10 * time.Millisecond):
		}
		subs := srv.Submissions()
		if len(subs) == 0 {
			continue
		}
		runID := subs[0].Env["FRAMEFLEET_RUN_ID"]
		objs, err := st.List(ctx, store.FramesPrefix(runID))
		if err != nil {
			continue // the run may not have written anything yet
		}
		for _, o := range objs {
			for _, f := range frames {
				if strings.HasPrefix(o.Key, store.FrameKey(runID, f, "")) {
					r.stored++
				}
			}
		}
		if r.stored == 0 {
			continue
		}
		r.ok = srv.Reclaim(subs[0].JobID + ":0")
		if !r.ok {
			r.err = fmt.Errorf("child 0 had already finished with %d frames stored", r.stored)
		}
		return r
	}
}

func download(ctx context.Context, st store.Store, key, path string) error {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
