package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Worker runs one chunk (RenderChunk) or the stitch (Stitch) of a stored plan.
type Worker struct {
	Store   store.Store
	RunID   string
	Blender Blender
	FFmpeg  FFmpeg
	// WorkDir holds downloads and outputs; "" uses a temporary directory
	// that is removed afterwards.
	WorkDir string
	Log     *slog.Logger
	// BlenderLog, when set, receives Blender's full output (the job's log).
	BlenderLog io.Writer
	// Attempt is AWS_BATCH_JOB_ATTEMPT, recorded in the chunk report.
	Attempt int
	// CyclesDevice selects GPU rendering (see RenderJob.CyclesDevice).
	CyclesDevice string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now().UTC()
	}
	return time.Now().UTC()
}

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// LoadPlan reads and validates the run's plan.
func (w *Worker) LoadPlan(ctx context.Context) (*plan.Plan, error) {
	if w.RunID == "" {
		return nil, permanent("no run id: set FRAMEFLEET_RUN_ID or pass --run")
	}
	rc, err := w.Store.Get(ctx, store.PlanKey(w.RunID))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, permanent("run %s has no plan in store %s (%w): was it submitted to this store?", w.RunID, w.Store.URI(), err)
		}
		return nil, classify(fmt.Errorf("read plan: %w", err))
	}
	defer rc.Close()
	var p plan.Plan
	if err := json.NewDecoder(rc).Decode(&p); err != nil {
		return nil, classify(stoppedOr(ctx, fmt.Errorf("read plan %s: %w", store.PlanKey(w.RunID), err), true))
	}
	if err := p.Validate(); err != nil {
		return nil, permanent("plan %s: %w", store.PlanKey(w.RunID), err)
	}
	if p.RunID != w.RunID {
		return nil, permanent("plan %s belongs to run %s, not %s", store.PlanKey(w.RunID), p.RunID, w.RunID)
	}
	return &p, nil
}

// stoppedOr marks err transient when ctx is done; otherwise permanent when
// perm is true (e.g. a corrupt plan), or left to classify.
func stoppedOr(ctx context.Context, err error, perm bool) error {
	if ctx.Err() != nil {
		return stopped(ctx, err)
	}
	if perm {
		return &Error{Code: ExitPermanent, Err: err}
	}
	return err
}

// FrameFormat is the Blender image format frames are saved in and its file
// extension. Video formats render PNG frames (the video is made by the
// stitch); formats FFmpeg reads well are kept; anything else becomes PNG.
func FrameFormat(imageFormat string) (format, ext string) {
	switch strings.ToUpper(imageFormat) {
	case "JPEG":
		return "JPEG", "jpg"
	case "TIFF":
		return "TIFF", "tif"
	case "BMP":
		return "BMP", "bmp"
	}
	return "PNG", "png"
}

var storedFrameName = regexp.MustCompile(`^frame_(-?\d+)\.([a-z0-9]+)$`)

// storedFrames lists the frames of the run already in the store.
func (w *Worker) storedFrames(ctx context.Context, runID, ext string) (map[int]bool, error) {
	objs, err := w.Store.List(ctx, store.FramesPrefix(runID))
	if err != nil {
		return nil, classify(fmt.Errorf("list stored frames: %w", err))
	}
	have := make(map[int]bool, len(objs))
	for _, o := range objs {
		m := storedFrameName.FindStringSubmatch(strings.TrimPrefix(o.Key, store.FramesPrefix(runID)))
		if m == nil || m[2] != ext || o.Size == 0 {
			continue
		}
		if n, err := strconv.Atoi(m[1]); err == nil {
			have[n] = true
		}
	}
	return have, nil
}

// missingFrames are the frames not in have.
func missingFrames(frames []int, have map[int]bool) []int {
	var out []int
	for _, f := range frames {
		if !have[f] {
			out = append(out, f)
		}
	}
	return out
}

// workDir makes the directory for one job and a cleanup function.
func (w *Worker) workDir(name string) (string, func(), error) {
	if w.WorkDir == "" {
		dir, err := os.MkdirTemp("", "framefleet-"+name+"-")
		if err != nil {
			return "", nil, &Error{Code: ExitTransient, Err: fmt.Errorf("work directory: %w", err)}
		}
		return dir, func() { os.RemoveAll(dir) }, nil
	}
	dir := filepath.Join(w.WorkDir, name)
	// A leftover from an earlier attempt in the same directory is stale.
	if err := os.RemoveAll(dir); err != nil {
		return "", nil, &Error{Code: ExitTransient, Err: fmt.Errorf("work directory: %w", err)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, &Error{Code: ExitTransient, Err: fmt.Errorf("work directory: %w", err)}
	}
	return dir, func() {}, nil
}

// fetchFrames downloads the frames not yet in dir, a few at a time.
func (w *Worker) fetchFrames(ctx context.Context, runID, ext, dir string, frames []int) error {
	var todo []int
	for _, f := range frames {
		if _, err := os.Stat(filepath.Join(dir, store.FrameName(f, ext))); err != nil {
			todo = append(todo, f)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	w.log().Debug("downloading stored frames", "frames", plan.Format(todo))
	const parallel = 8
	jobs := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range min(parallel, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				err := w.Store.GetFile(ctx, store.FrameKey(runID, f, ext), filepath.Join(dir, store.FrameName(f, ext)))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("download frame %d: %w", f, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, f := range todo {
		jobs <- f
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		return nil
	}
	return classify(stoppedOr(ctx, firstErr, false))
}

// encodeFrames encodes frames (already in dir, in this order) into out. The
// frames are linked into a contiguous 0-based sequence first: steps and
// chunk boundaries leave gaps that FFmpeg's image2 reader stops at.
func (w *Worker) encodeFrames(ctx context.Context, dir, ext string, frames []int, rate plan.FrameRate, out string) error {
	_, err := w.encodeAndProbe(ctx, dir, ext, frames, rate, out)
	return err
}

// encodeAndProbe is encodeFrames returning what ffprobe says about the result.
func (w *Worker) encodeAndProbe(ctx context.Context, dir, ext string, frames []int, rate plan.FrameRate, out string) (VideoInfo, error) {
	seq, err := linkSequence(dir, ext, frames, filepath.Join(filepath.Dir(out), "seq-"+strings.TrimSuffix(filepath.Base(out), filepath.Ext(out))))
	if err != nil {
		return VideoInfo{}, err
	}
	defer os.RemoveAll(filepath.Dir(seq))
	if err := w.FFmpeg.Run(ctx, EncodeArgs(seq, rate, out)); err != nil {
		return VideoInfo{}, stoppedOr(ctx, fmt.Errorf("encode frames %s: %w", plan.Format(frames), err), true)
	}
	info, err := w.FFmpeg.Probe(ctx, out)
	if err != nil {
		return VideoInfo{}, stoppedOr(ctx, err, true)
	}
	if info.Frames != len(frames) {
		return info, permanent("encoded %s has %d frames, want %d (frames %s)", filepath.Base(out), info.Frames, len(frames), plan.Format(frames))
	}
	return info, nil
}

// putJSON stores v as indented JSON.
func (w *Worker) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return w.Store.Put(ctx, key, strings.NewReader(string(b)+"\n"))
}

// linkSequence links frames (in dir, in this order) as seqDir/00000000.ext,
// 00000001.ext, ... and returns the FFmpeg pattern for them.
func linkSequence(dir, ext string, frames []int, seqDir string) (string, error) {
	if err := os.RemoveAll(seqDir); err != nil {
		return "", &Error{Code: ExitTransient, Err: err}
	}
	if err := os.MkdirAll(seqDir, 0o755); err != nil {
		return "", &Error{Code: ExitTransient, Err: err}
	}
	for i, f := range frames {
		src, err := filepath.Abs(filepath.Join(dir, store.FrameName(f, ext)))
		if err != nil {
			return "", &Error{Code: ExitTransient, Err: err}
		}
		if err := os.Symlink(src, filepath.Join(seqDir, fmt.Sprintf("%08d.%s", i, ext))); err != nil {
			return "", &Error{Code: ExitTransient, Err: fmt.Errorf("link frame %d: %w", f, err)}
		}
	}
	return filepath.Join(seqDir, "%08d."+ext), nil
}
