package container

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/framefleet/framefleet/pipeline"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// tailLines is how much of Blender's log a chunk keeps in its log tail.
const tailLines = 60

// RenderChunk renders the frames of chunk index that are not stored yet,
// uploading each as soon as Blender saves it, then encodes the whole chunk
// into its video segment. It always tries to store the chunk report and
// the log tail, also when it fails.
func (w *Worker) RenderChunk(ctx context.Context, index int) (report pipeline.ChunkReport, err error) {
	report = pipeline.ChunkReport{Index: index, Attempt: w.Attempt, StartedAt: w.now()}
	log := w.log().With("run", w.RunID, "chunk", index)
	tail := newTail(tailLines)
	// When Batch stops the job (SIGTERM cancels ctx), the stop budget starts.
	var stoppedAt atomic.Int64
	stopWatch := context.AfterFunc(ctx, func() { stoppedAt.Store(time.Now().UnixNano()) })
	defer stopWatch()
	defer func() {
		report.FinishedAt = w.now()
		if err != nil {
			err = asError(err)
			report.Error = Full(err)
			report.ExitCode = ExitPermanent
			var e *Error
			if errors.As(err, &e) {
				report.ExitCode = e.Code
			}
		}
		// Also after SIGTERM: the record is left within the stop budget.
		var stopped time.Time
		if n := stoppedAt.Load(); n != 0 {
			stopped = time.Unix(0, n)
		}
		saveCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), reportDeadline(time.Now(), stopped))
		defer cancel()
		if perr := w.putJSON(saveCtx, store.ChunkReportKey(w.RunID, index), report); perr != nil {
			log.Warn("could not store the chunk report", "err", perr)
		}
		if tail.Len() > 0 {
			if perr := w.Store.Put(saveCtx, store.ChunkLogKey(w.RunID, index), strings.NewReader(tail.String())); perr != nil {
				log.Warn("could not store the log tail", "err", perr)
			}
		}
	}()

	p, err := w.LoadPlan(ctx)
	if err != nil {
		return report, err
	}
	frames, err := p.Chunk(index)
	if err != nil {
		return report, permanent("%w: AWS_BATCH_JOB_ARRAY_INDEX/--index must be 0..%d", err, p.NumChunks()-1)
	}
	report.Frames = frames
	format, ext := FrameFormat(p.Render.ImageFormat)

	dir, cleanup, err := w.workDir(fmt.Sprintf("chunk_%05d", index))
	if err != nil {
		return report, err
	}
	defer cleanup()
	framesDir := filepath.Join(dir, "frames")

	have, err := w.storedFrames(ctx, p.RunID, ext)
	if err != nil {
		return report, err
	}
	todo := missingFrames(frames, have)
	report.Rendered = []int{} // the frames this attempt stored, filled in by render
	report.Skipped = []int{}
	for _, f := range frames {
		if have[f] {
			report.Skipped = append(report.Skipped, f)
		}
	}
	log.Info("chunk", "frames", plan.Format(frames), "to_render", plan.Format(todo), "already_stored", len(report.Skipped))

	if len(todo) > 0 {
		t0 := time.Now()
		warnings, stored, err := w.render(ctx, p, todo, format, ext, dir, framesDir, tail)
		report.Warnings = warnings
		report.Rendered = stored
		report.RenderSeconds = time.Since(t0).Seconds()
		if err != nil {
			return report, err
		}
	}

	// Whatever Blender said, the chunk is done only when every frame is stored.
	have, err = w.storedFrames(ctx, p.RunID, ext)
	if err != nil {
		return report, err
	}
	if miss := missingFrames(frames, have); len(miss) > 0 {
		return report, withDetail(permanent("chunk %d: frames %s are missing from the store after rendering",
			index, plan.Format(miss)), tail)
	}
	if p.Stitch == plan.StitchEncode {
		// The stitch encodes the whole video from the frames; a segment per
		// chunk would be encoded for nothing.
		log.Info("chunk done", "rendered", len(report.Rendered), "skipped", len(report.Skipped),
			"render_seconds", report.RenderSeconds)
		return report, nil
	}

	t0 := time.Now()
	if err := w.fetchFrames(ctx, p.RunID, ext, framesDir, frames); err != nil {
		return report, err
	}
	segment := filepath.Join(dir, "segment.mp4")
	if err := w.encodeFrames(ctx, framesDir, ext, frames, p.FrameRate, segment); err != nil {
		return report, err
	}
	if err := w.Store.PutFile(ctx, store.SegmentKey(p.RunID, index), segment); err != nil {
		return report, classify(stopped(ctx, fmt.Errorf("store segment: %w", err)))
	}
	report.EncodeSeconds = time.Since(t0).Seconds()
	log.Info("chunk done", "rendered", len(report.Rendered), "skipped", len(report.Skipped),
		"render_seconds", report.RenderSeconds, "encode_seconds", report.EncodeSeconds)
	return report, nil
}

// render fetches the blend and runs Blender on frames, uploading every frame
// as soon as it is saved. stored is the frames it uploaded, also on failure.
func (w *Worker) render(ctx context.Context, p *plan.Plan, frames []int, format, ext, dir, framesDir string, tail *tail) (warnings []string, stored []int, err error) {
	log := w.log().With("run", p.RunID)
	stored = []int{}
	blend, warnings, err := w.workspace(ctx, p, dir)
	if err != nil {
		return nil, stored, err
	}
	if err := os.MkdirAll(framesDir, 0o755); err != nil {
		return nil, stored, &Error{Code: ExitTransient, Err: err}
	}

	up := newUploader(ctx, w.Store, p.RunID, ext, frames, log)
	job := RenderJob{Blend: blend, Scene: p.Scene, Frames: frames, OutDir: framesDir,
		Format: format, Threads: p.Render.Threads, Render: p.Render, CyclesDevice: w.CyclesDevice}
	log.Info("running blender", "frames", plan.Format(frames))
	runErr := w.Blender.Run(ctx, BlenderArgs(job), func(line string) {
		tail.Add(line)
		if w.BlenderLog != nil {
			fmt.Fprintln(w.BlenderLog, line)
		}
		if path, ok := ParseSaved(line); ok {
			up.Saved(path)
			return
		}
		if msg, ok := blenderWarning(line); ok && len(warnings) < maxWarnings && !slices.Contains(warnings, msg) {
			warnings = append(warnings, msg)
			log.Warn(msg)
		}
	})
	uploadErr := up.Wait()
	stored = up.Stored()
	if runErr != nil {
		if ctx.Err() != nil {
			return warnings, stored, stopped(ctx, runErr)
		}
		if sig, ok := killedBySignal(runErr); ok {
			// Not Blender's verdict on the scene: something outside killed it
			// (the OOM killer, an operator). A retry resumes from the stored frames.
			return warnings, stored, withDetail(&Error{Code: ExitTransient, Err: fmt.Errorf(
				"blender was killed by signal %s rendering frames %s (out of memory? the retry resumes from the %d stored frames): %w",
				sig, plan.Format(frames), len(stored), runErr)}, tail)
		}
		return warnings, stored, withDetail(permanent("blender failed rendering frames %s: %w%s",
			plan.Format(frames), runErr, blenderSaid(tail)), tail)
	}
	if uploadErr != nil {
		return warnings, stored, classify(stopped(ctx, uploadErr))
	}
	return warnings, stored, nil
}

// killedBySignal reports whether err is a process that a signal ended.
func killedBySignal(err error) (syscall.Signal, bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return ws.Signal(), true
}

// blenderSaid is Blender's last error line, for a one-line message.
func blenderSaid(t *tail) string {
	if errs := t.Errors(); len(errs) > 0 {
		return ": " + errs[len(errs)-1]
	}
	return ""
}

// withDetail adds Blender's explanation to err (an *Error) as its Detail.
func withDetail(err error, t *tail) error {
	if e, ok := err.(*Error); ok {
		e.Detail = blenderContext(t)
	}
	return err
}

// maxWarnings caps the warnings kept per chunk (a missing texture warns on every frame).
const maxWarnings = 20

// blenderWarning picks the lines the user should see even when the chunk
// succeeds: our override script's notes and Blender's own warnings (missing
// textures, for one, which otherwise render as pink or black).
func blenderWarning(line string) (string, bool) {
	if i := strings.Index(line, warnPrefix); i >= 0 {
		return line[i+len(warnPrefix):], true
	}
	line = strings.TrimSpace(line)
	if _, rest, ok := strings.Cut(line, "| "); ok && strings.HasPrefix(rest, "Warning: ") {
		line = rest // Blender 5's "render | " prefix
	}
	if strings.HasPrefix(line, "Warning: ") {
		return "blender: " + line, true
	}
	return "", false
}

// blenderContext is Blender's own explanation for an error message: its
// error lines and the end of its log.
func blenderContext(t *tail) string {
	if t.Len() == 0 {
		return ""
	}
	var b strings.Builder
	if errs := t.Errors(); len(errs) > 0 {
		b.WriteString("blender errors:\n  ")
		b.WriteString(strings.Join(errs, "\n  "))
		b.WriteString("\n")
	}
	b.WriteString("end of blender's log:\n  ")
	b.WriteString(strings.Join(t.Last(15), "\n  "))
	return b.String()
}

// uploader stores frames in the background so Blender's log keeps flowing.
type uploader struct {
	ctx     context.Context
	st      store.Store
	runID   string
	ext     string
	want    map[int]bool
	log     interface{ Warn(string, ...any) }
	queue   chan upload
	done    chan struct{}
	mu      sync.Mutex
	err     error
	stored  []int
	release func()
}

type upload struct {
	frame int
	path  string
}

// ECS sends SIGKILL ecsStopTimeout after SIGTERM (its default, which
// deploy/ leaves alone; Batch sends SIGTERM on TerminateJob and on a job
// timeout, not on a Spot reclaim, where the host just dies). Everything the
// worker does after SIGTERM fits in stopBudget, with a margin: frames Blender
// already saved upload for up to uploadGrace, then the chunk report and the
// log tail are saved until the budget ends.
const (
	ecsStopTimeout = 30 * time.Second
	stopBudget     = 25 * time.Second
	uploadGrace    = 15 * time.Second
	// reportTimeout bounds saving the report of a job that was not stopped.
	reportTimeout = 20 * time.Second
)

// reportDeadline is when saving the chunk report gives up: reportTimeout
// after now, and never past the stop budget of a job stopped at stopped
// (zero when it was not).
func reportDeadline(now, stopped time.Time) time.Time {
	d := now.Add(reportTimeout)
	if !stopped.IsZero() {
		if end := stopped.Add(stopBudget); end.Before(d) {
			d = end
		}
	}
	return d
}

func newUploader(ctx context.Context, st store.Store, runID, ext string, frames []int, log interface{ Warn(string, ...any) }) *uploader {
	// A stopped job still stores the frames it finished, so the retry skips them.
	upCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(uploadGrace, cancel) })
	u := &uploader{ctx: upCtx, st: st, runID: runID, ext: ext, want: map[int]bool{}, log: log,
		queue: make(chan upload, len(frames)+16), done: make(chan struct{}),
		release: func() { stop(); cancel() }}
	for _, f := range frames {
		u.want[f] = true
	}
	go u.loop()
	return u
}

// Saved queues a file Blender reported as saved.
func (u *uploader) Saved(path string) {
	f, ok := FrameFromPath(path)
	if !ok || !u.want[f] || !strings.EqualFold(strings.TrimPrefix(filepath.Ext(path), "."), u.ext) {
		u.log.Warn("blender saved a file that is not a frame of this chunk", "path", path)
		return
	}
	u.queue <- upload{frame: f, path: path}
}

func (u *uploader) loop() {
	defer close(u.done)
	for up := range u.queue {
		// Blender names negative frames frame_-000005; the store uses FrameKey.
		err := u.st.PutFile(u.ctx, store.FrameKey(u.runID, up.frame, u.ext), up.path)
		u.mu.Lock()
		if err != nil && u.err == nil {
			u.err = fmt.Errorf("store frame %d: %w", up.frame, err)
		}
		if err == nil {
			u.stored = append(u.stored, up.frame)
			u.mu.Unlock()
			u.storeThumbnail(up)
			u.mu.Lock()
			// Keep the local copy under the store's name for the segment encode.
			if name := store.FrameName(up.frame, u.ext); filepath.Base(up.path) != name {
				_ = os.Rename(up.path, filepath.Join(filepath.Dir(up.path), name))
			}
		}
		u.mu.Unlock()
	}
}

// storeThumbnail stores a small JPEG of a stored frame for live previews
// (pipeline.ThumbnailKey). It is a nicety: failing only logs a warning.
func (u *uploader) storeThumbnail(up upload) {
	if !strings.EqualFold(u.ext, "png") {
		return
	}
	jpg, err := Thumbnail(up.path, ThumbnailWidth)
	if err == nil {
		err = u.st.Put(u.ctx, pipeline.ThumbnailKey(u.runID, up.frame), bytes.NewReader(jpg))
	}
	if err != nil {
		u.log.Warn("no preview thumbnail for frame", "frame", up.frame, "error", err)
	}
}

// Stored is the frames uploaded so far, in order of upload.
func (u *uploader) Stored() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int{}, u.stored...)
}

// Wait finishes the queued uploads and returns the first error.
func (u *uploader) Wait() error {
	close(u.queue)
	<-u.done
	u.release()
	return u.err
}

// tail keeps the last lines of a log and the lines that look like errors.
type tail struct {
	max    int
	lines  []string
	errors []string
}

func newTail(n int) *tail { return &tail{max: n} }

func (t *tail) Add(line string) {
	if len(t.lines) == t.max {
		t.lines = slices.Delete(t.lines, 0, 1)
	}
	t.lines = append(t.lines, line)
	if isBlenderError(line) && len(t.errors) < 20 {
		t.errors = append(t.errors, strings.TrimSpace(line))
	}
}

func (t *tail) Len() int { return len(t.lines) }

// Last is the last n lines that are not Blender's per-tile progress
// ("Fra:3 Mem:... | Sample 5/16"), which say nothing about a failure.
func (t *tail) Last(n int) []string {
	var out []string
	for i := len(t.lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := t.lines[i]; strings.TrimSpace(l) != "" && !isProgress(l) {
			out = append(out, l)
		}
	}
	slices.Reverse(out)
	return out
}

// isProgress tells Blender's progress lines (Blender 5 prefixes "render | ").
func isProgress(line string) bool {
	line = strings.TrimSpace(line)
	if _, rest, ok := strings.Cut(line, "| "); ok && strings.HasPrefix(rest, "Fra:") {
		return true
	}
	return strings.HasPrefix(line, "Fra:")
}

func (t *tail) Errors() []string { return t.errors }

// String is the stored log: Blender's error lines first (they may have
// scrolled out of the tail), then the tail.
func (t *tail) String() string {
	var b strings.Builder
	if len(t.errors) > 0 {
		b.WriteString("== error lines ==\n" + strings.Join(t.errors, "\n") + "\n== last lines ==\n")
	}
	b.WriteString(strings.Join(t.lines, "\n") + "\n")
	return b.String()
}

// expectedBlendSHA256 is the scene's hash from the plan, or, for a plan
// without one, the hash its content-addressed key names (blends/<sha256>.blend).
func expectedBlendSHA256(b plan.Blend) string {
	if b.SHA256 != "" {
		return b.SHA256
	}
	name, ok := strings.CutSuffix(strings.TrimPrefix(b.Key, "blends/"), ".blend")
	if ok && isSHA256Hex(name) {
		return name
	}
	return ""
}

func isSHA256Hex(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkSHA256 verifies a downloaded file against the hash the run recorded:
// a blob that was replaced (another scope cannot, but a bucket is only as
// safe as its weakest writer) or corrupted must not be rendered. A mismatch
// is permanent: a retry would download the same bytes. want "" checks
// nothing (a plan of a scene with no recorded hash).
func checkSHA256(path, key, want string) error {
	if want == "" {
		return nil
	}
	got, err := fileSHA256(path)
	if err != nil {
		return &Error{Code: ExitTransient, Err: fmt.Errorf("hash %s: %w", key, err)}
	}
	if !strings.EqualFold(got, want) {
		return permanent("the scene %s does not match its recorded SHA-256: it has %s, the run recorded %s; "+
			"the stored blob was changed or damaged after upload: delete it and submit the scene again", key, got, want)
	}
	return nil
}
