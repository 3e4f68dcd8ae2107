package compare_test

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/pipelinetest"
	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/compare"
	"github.com/framefleet/framefleet/pipeline/local"
	"github.com/framefleet/framefleet/pipeline/store"
)

var binary struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.path != "" {
		os.RemoveAll(filepath.Dir(binary.path))
	}
	os.Exit(code)
}

// framefleet builds the real binary once: the local engine runs its worker.
func framefleet(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "framefleet-compare-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "framefleet")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/framefleet")
		cmd.Dir = testenv.RepoRoot()
		binary.out, binary.err = cmd.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("build framefleet: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// render runs a scene through the real pipeline on the local engine.
func render(t *testing.T, st store.Store, scene string) *pipeline.Result {
	t.Helper()
	testenv.FFmpeg(t)
	e, err := local.New(local.Options{
		WorkerCommand: []string{framefleet(t), "worker"},
		Blender:       testenv.Blender(t),
		LogDir:        t.TempDir(),
		VersionCache:  "-",
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := pipelinetest.Render(context.Background(), e, st, pipeline.Request{
		BlendPath: scene, Chunk: 8, Parallelism: 1, Threads: 1, PollInterval: 100 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatalf("render %s: %v", scene, err)
	}
	return res
}

// variant saves a visible copy of scene (grey sky, glowing cube) whose
// camera is moved sideways by dx.
func variant(t *testing.T, scene string, dx float64) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "variant.blend")
	script := filepath.Join(testenv.RepoRoot(), "pipeline", "compare", "testdata", "variant.py")
	testenv.BlenderScript(t, script, scene, out, strconv.FormatFloat(dx, 'f', -1, 64))
	return out
}

// frame is one decoded RGB frame.
type frame struct {
	w, h int
	pix  []byte
}

// decode returns the frame at second at of a video, as RGB.
func decode(t *testing.T, video string, at float64) frame {
	t.Helper()
	ffmpeg, ffprobe := testenv.FFmpeg(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
		"-of", "csv=p=0", video).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", video, err)
	}
	ws, hs, _ := strings.Cut(strings.TrimSpace(string(out)), ",")
	w, _ := strconv.Atoi(ws)
	h, _ := strconv.Atoi(hs)
	pix, err := exec.Command(ffmpeg, "-v", "error", "-ss", strconv.FormatFloat(at, 'f', 3, 64), "-i", video,
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", video, err)
	}
	if len(pix) != w*h*3 {
		t.Fatalf("decoded %d bytes, want %dx%dx3", len(pix), w, h)
	}
	return frame{w, h, pix}
}

// diff is the mean absolute difference per channel between the rectangle
// (x, y, w, h) of a and the one at (bx, y) of b.
func diff(a frame, ax int, b frame, bx, y, w, h int) float64 {
	var sum float64
	for r := y; r < y+h; r++ {
		for c := 0; c < w; c++ {
			for ch := 0; ch < 3; ch++ {
				pa := a.pix[(r*a.w+ax+c)*3+ch]
				pb := b.pix[(r*b.w+bx+c)*3+ch]
				sum += math.Abs(float64(pa) - float64(pb))
			}
		}
	}
	return sum / float64(w*h*3)
}

func TestSideBySide(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	scene := testenv.MakeScene(t, map[string]any{"end": 3, "width": 64, "height": 36})
	baseScene := variant(t, scene, 0)
	headScene := variant(t, scene, 1.2)
	base := render(t, st, baseScene)
	head := render(t, st, headScene)

	res, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "runs/" + head.RunID + "/compare/" + base.RunID + ".mp4"; res.VideoKey != want {
		t.Errorf("video stored at %s, want %s", res.VideoKey, want)
	}
	if !res.Labelled || res.Cached || res.Height != compare.MinHeight || res.Width%2 != 0 {
		t.Errorf("labelled %v, cached %v, %dx%d; want labelled, composed, %d high, even width", res.Labelled, res.Cached, res.Width, res.Height, compare.MinHeight)
	}
	for _, k := range []string{res.VideoKey, res.PreviewKey, res.StillKey} {
		if _, err := st.Stat(ctx, k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	for _, l := range []string{res.Video, res.Preview, res.Still} {
		if !strings.HasPrefix(l, "file://") {
			t.Errorf("link %q is not a file:// URL", l)
		}
	}
	labelled := decode(t, res.VideoPath, 0)
	half := labelled.w / 2
	// Below the labels, the halves show the same scene from two cameras.
	below := labelled.h / 3
	if d := diff(labelled, 0, labelled, half, below, half, labelled.h-below); d < 2 {
		t.Errorf("the halves differ by %.2f per channel below the labels: the camera change does not show", d)
	}

	t.Run("same run on both sides has equal halves", func(t *testing.T) {
		same, err := compare.SideBySide(ctx, st, base.RunID, base.RunID, compare.Options{NoLabels: true})
		if err != nil {
			t.Fatal(err)
		}
		f := decode(t, same.VideoPath, 0)
		if d := diff(f, 0, f, f.w/2, 0, f.w/2, f.h); d > 1 {
			t.Errorf("a run compared with itself: halves differ by %.2f per channel", d)
		}
	})

	t.Run("cached", func(t *testing.T) {
		before, err := os.Stat(res.VideoPath)
		if err != nil {
			t.Fatal(err)
		}
		// No FFmpeg at all: a cached comparison must not need one.
		again, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{FFmpeg: "/nonexistent/ffmpeg", FFprobe: "/nonexistent/ffprobe"})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(res.VideoPath)
		if !again.Cached || again.Video != res.Video || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("second call: cached %v, video %s (was %s), rewritten %v; want the stored comparison", again.Cached, again.Video, res.Video, !after.ModTime().Equal(before.ModTime()))
		}
	})

	t.Run("labels", func(t *testing.T) {
		plain, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{NoLabels: true, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if plain.Labelled || plain.Cached {
			t.Errorf("NoLabels+Force: labelled %v, cached %v", plain.Labelled, plain.Cached)
		}
		unlabelled := decode(t, plain.VideoPath, 0)
		// The labels sit at the top left of each half; the rest is untouched.
		lw, lh := half/3, labelled.h/6
		for _, x := range []int{0, half} {
			if d := diff(labelled, x, unlabelled, x, 0, lw, lh); d < 10 {
				t.Errorf("label area at x=%d differs by %.2f per channel from the unlabelled video: no label drawn", x, d)
			}
		}
		if d := diff(labelled, 0, unlabelled, 0, below, labelled.w, labelled.h-below); d > 1.5 {
			t.Errorf("below the labels the videos differ by %.2f per channel: labels should only touch the corner", d)
		}
	})

	t.Run("labels are text, never filter syntax", func(t *testing.T) {
		odd := "main: it's 100%, [x];\\ 'q'"
		r, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{BaseLabel: odd, HeadLabel: "feature/camera 1a2b3c4", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.BaseLabel != odd || r.HeadLabel != "feature/camera 1a2b3c4" {
			t.Errorf("labels %q | %q", r.BaseLabel, r.HeadLabel)
		}
		custom := decode(t, r.VideoPath, 0)
		// Longer labels than "base" and "head": their boxes reach further right.
		lw, lh := half/2, labelled.h/6
		for _, x := range []int{0, half} {
			if d := diff(custom, x, labelled, x, 0, lw, lh); d < 5 {
				t.Errorf("label area at x=%d differs by only %.2f per channel from the default labels", x, d)
			}
		}
		if _, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{BaseLabel: strings.Repeat("x", 61), Force: true}); err == nil {
			t.Error("a 61-character label was accepted")
		}
		if _, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{HeadLabel: "two\nlines", Force: true}); err == nil {
			t.Error("a two-line label was accepted")
		}
	})

	t.Run("no font degrades to unlabelled with a warning", func(t *testing.T) {
		r, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{FontSearch: []string{"/nonexistent/DejaVuSans.ttf"}, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Labelled || len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], "fonts-dejavu-core") {
			t.Errorf("labelled %v, warnings %q; want unlabelled and a warning naming fonts-dejavu-core", r.Labelled, r.Warnings)
		}
		_, err = compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{Font: "/nonexistent/font.ttf", Force: true})
		if err == nil || !strings.Contains(err.Error(), "/nonexistent/font.ttf") {
			t.Errorf("a missing explicit font: err = %v, want one naming it", err)
		}
	})

	t.Run("S3 store", func(t *testing.T) {
		srv := s3test.Start(t)
		s3, err := store.NewS3(ctx, srv.Bucket, "team", store.Options{Region: srv.Region, Endpoint: srv.Endpoint,
			UsePathStyle: true, Credentials: srv.Credentials()})
		if err != nil {
			t.Fatal(err)
		}
		// The two finished runs, as a Batch render leaves them in S3.
		for _, r := range []*pipeline.Result{base, head} {
			objs, err := st.List(ctx, store.RunPrefix(r.RunID))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if !strings.Contains(o.Key, "/compare/") {
					if err := s3.PutFile(ctx, o.Key, st.Path(o.Key)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		r, err := compare.SideBySide(ctx, s3, base.RunID, head.RunID, compare.Options{LinkExpiry: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(r.Video, srv.Endpoint) || !strings.Contains(r.Video, "X-Amz-Signature=") || r.VideoPath != "" {
			t.Errorf("video link %q (path %q), want a presigned URL of the S3 server and no local path", r.Video, r.VideoPath)
		}
		if r.LinksExpireAt == nil || time.Until(*r.LinksExpireAt) > time.Hour || time.Until(*r.LinksExpireAt) < 58*time.Minute {
			t.Errorf("links expire at %v, want in an hour", r.LinksExpireAt)
		}
		for _, k := range []string{r.VideoKey, r.PreviewKey, r.StillKey, compare.RecordKey(head.RunID, base.RunID)} {
			if _, err := s3.Stat(ctx, k); err != nil {
				t.Errorf("%s: %v", k, err)
			}
		}
	})

	t.Run("unfinished run", func(t *testing.T) {
		_, err := compare.SideBySide(ctx, st, "nosuchrun", head.RunID, compare.Options{})
		var nf *compare.RunNotFinishedError
		if !errors.As(err, &nf) || nf.RunID != "nosuchrun" {
			t.Errorf("err = %v, want a RunNotFinishedError for nosuchrun", err)
		}
		if _, err := compare.SideBySide(ctx, st, "../x", head.RunID, compare.Options{}); err == nil || !strings.Contains(err.Error(), "not a run id") {
			t.Errorf("a path as run id: err = %v", err)
		}
	})
}

// TestSideBySideUnlikeVideos composes videos of different sizes, frame
// rates and lengths.
func TestSideBySideUnlikeVideos(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// base: 64x36 at 24 fps for 12 frames (0.5 s); head: 48x48 at 12 fps for 3 frames (0.25 s).
	base := render(t, st, variant(t, testenv.MakeScene(t, map[string]any{"end": 12, "width": 64, "height": 36, "fps": 24}), 0))
	head := render(t, st, variant(t, testenv.MakeScene(t, map[string]any{"end": 3, "width": 48, "height": 48, "fps": 12}), 0))
	res, err := compare.SideBySide(ctx, st, base.RunID, head.RunID, compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 64x36 at 240 high is 426.7 wide, rounded to 428 (even); 48x48 is 240.
	if res.Width != 428+240 || res.Height != 240 || res.FrameRate != "12/1" {
		t.Errorf("%dx%d at %s, want 668x240 at the head's 12/1", res.Width, res.Height, res.FrameRate)
	}
	_, ffprobe := testenv.FFmpeg(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,r_frame_rate,nb_read_frames", "-of", "csv=p=0", res.VideoPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	// The longer (base) sets the length: 0.5 s at 12 fps is 6 frames.
	if got := strings.TrimSpace(string(out)); got != "668,240,12/1,6" {
		t.Errorf("video is %s (width,height,rate,frames), want 668,240,12/1,6", got)
	}
	notes := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"base runs at 24 fps and head at 12 fps", "head is 0.25s shorter than base", "base is 64x36 and head 48x48"} {
		if !strings.Contains(notes, want) {
			t.Errorf("warnings lack %q:\n%s", want, notes)
		}
	}
	// The head's last frame is held: the final frame's right half equals the head's own last frame.
	last := decode(t, res.VideoPath, 0.4)
	held := decode(t, res.VideoPath, 0.2)
	if d := diff(last, 428, held, 428, 0, 240, 240); d > 1.5 {
		t.Errorf("head half changed by %.2f per channel after the head ended: its last frame should be held", d)
	}
	if d := diff(last, 0, held, 0, 60, 428, 180); d < 0.5 {
		t.Errorf("base half did not change (%.2f) while the base still plays", d)
	}
	gif := decode(t, filepath.Join(st.Root(), filepath.FromSlash(res.PreviewKey)), 0)
	if gif.w != 640 {
		t.Errorf("preview GIF is %d wide, want at most 640 (scaled from 668)", gif.w)
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name       string
		base, head compare.Video
		w, h       int
		rate       string
		basePad    float64
		headPad    float64
	}{
		{"same small videos are scaled up to the minimum height",
			compare.Video{Width: 64, Height: 36, Rate: "24/1", Duration: 1}, compare.Video{Width: 64, Height: 36, Rate: "24/1", Duration: 1},
			428 * 2, 240, "24/1", 0, 0},
		{"4K is scaled down to 720",
			compare.Video{Width: 3840, Height: 2160, Rate: "30000/1001", Duration: 2}, compare.Video{Width: 1920, Height: 1080, Rate: "25/1", Duration: 3},
			1280 * 2, 720, "25/1", 1, 0},
		{"odd sizes become even",
			compare.Video{Width: 333, Height: 301, Rate: "24/1", Duration: 1}, compare.Video{Width: 333, Height: 301, Rate: "0/0", Duration: 0.5},
			334 * 2, 302, "24/1", 0, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := compare.Plan(tc.base, tc.head, "")
			if l.Width != tc.w || l.Height != tc.h || l.Rate != tc.rate || l.BasePad != tc.basePad || l.HeadPad != tc.headPad {
				t.Errorf("plan %dx%d at %s, pads %g/%g; want %dx%d at %s, pads %g/%g", l.Width, l.Height, l.Rate, l.BasePad, l.HeadPad,
					tc.w, tc.h, tc.rate, tc.basePad, tc.headPad)
			}
		})
	}
}
