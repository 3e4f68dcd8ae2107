package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Stitch makes the run's video from its stored frames, plus the preview GIF,
// the thumbnail and the manifest. mode "" uses the plan's stitch mode.
func (w *Worker) Stitch(ctx context.Context, mode plan.StitchMode) (pipeline.Manifest, error) {
	started := time.Now()
	p, err := w.LoadPlan(ctx)
	if err != nil {
		return pipeline.Manifest{}, err
	}
	if mode == "" {
		mode = p.Stitch
	}
	if mode, err = plan.ParseStitchMode(string(mode)); err != nil {
		return pipeline.Manifest{}, permanent("%w", err)
	}
	log := w.log().With("run", p.RunID, "stitch", mode)
	_, ext := FrameFormat(p.Render.ImageFormat)

	// Every planned frame must be there before anything is encoded: a video
	// with a silent gap is worse than no video.
	have, err := w.storedFrames(ctx, p.RunID, ext)
	if err != nil {
		return pipeline.Manifest{}, err
	}
	if miss := missingFrames(p.Frames, have); len(miss) > 0 {
		return pipeline.Manifest{}, permanent("%d of %d frames are missing from the store: %s (re-run the chunks that own them)",
			len(miss), len(p.Frames), plan.Format(miss))
	}

	dir, cleanup, err := w.workDir("stitch")
	if err != nil {
		return pipeline.Manifest{}, err
	}
	defer cleanup()
	framesDir := filepath.Join(dir, "frames")
	video := filepath.Join(dir, "video.mp4")

	var info VideoInfo
	switch mode {
	case plan.StitchConcat:
		if info, err = w.concat(ctx, p, ext, dir, framesDir, video); err != nil {
			return pipeline.Manifest{}, err
		}
	case plan.StitchEncode:
		log.Info("encoding all frames in one pass", "frames", len(p.Frames))
		if err := w.fetchFrames(ctx, p.RunID, ext, framesDir, p.Frames); err != nil {
			return pipeline.Manifest{}, err
		}
		if info, err = w.encodeAndProbe(ctx, framesDir, ext, p.Frames, p.FrameRate, video); err != nil {
			return pipeline.Manifest{}, err
		}
	}
	if info.Frames != len(p.Frames) {
		return pipeline.Manifest{}, permanent("the stitched video has %d frames, the plan %d", info.Frames, len(p.Frames))
	}
	if !sameRate(info.FrameRate, p.FrameRate) {
		return pipeline.Manifest{}, permanent("the stitched video runs at %s fps, the scene at %s", info.FrameRate, p.FrameRate)
	}
	videoKey := store.VideoKey(p.RunID, p.Scene)
	if err := w.Store.PutFile(ctx, videoKey, video); err != nil {
		return pipeline.Manifest{}, classify(stopped(ctx, fmt.Errorf("store video: %w", err)))
	}

	// The preview and thumbnail use a few frames, never the whole animation.
	sampled, gifFPS := PreviewFrames(p.Frames, p.FrameRate)
	last := p.Frames[len(p.Frames)-1]
	if err := w.fetchFrames(ctx, p.RunID, ext, framesDir, append(sampled, last)); err != nil {
		return pipeline.Manifest{}, err
	}
	gif := filepath.Join(dir, "preview.gif")
	seq, err := linkSequence(framesDir, ext, sampled, filepath.Join(dir, "preview-seq"))
	if err != nil {
		return pipeline.Manifest{}, err
	}
	if err := w.FFmpeg.Run(ctx, PreviewArgs(seq, gifFPS, gif)); err != nil {
		return pipeline.Manifest{}, stoppedOr(ctx, fmt.Errorf("preview: %w", err), true)
	}
	thumb := filepath.Join(dir, "thumbnail.png")
	if err := w.FFmpeg.Run(ctx, ThumbnailArgs(filepath.Join(framesDir, store.FrameName(last, ext)), thumb)); err != nil {
		return pipeline.Manifest{}, stoppedOr(ctx, fmt.Errorf("thumbnail: %w", err), true)
	}
	for key, path := range map[string]string{store.PreviewKey(p.RunID): gif, store.ThumbnailKey(p.RunID): thumb} {
		if err := w.Store.PutFile(ctx, key, path); err != nil {
			return pipeline.Manifest{}, classify(stopped(ctx, fmt.Errorf("store %s: %w", key, err)))
		}
	}

	reports, err := w.chunkReports(ctx, p)
	if err != nil {
		return pipeline.Manifest{}, err
	}
	m := pipeline.Manifest{
		RunID:           p.RunID,
		Scene:           p.Scene,
		VideoKey:        videoKey,
		PreviewKey:      store.PreviewKey(p.RunID),
		ThumbnailKey:    store.ThumbnailKey(p.RunID),
		FrameCount:      len(p.Frames),
		FPS:             p.FrameRate.String(),
		FPSFloat:        p.FrameRate.Float(),
		DurationSeconds: float64(len(p.Frames)) * float64(p.FrameRate.Den) / float64(p.FrameRate.Num),
		Width:           info.Width,
		Height:          info.Height,
		Stitch:          string(mode),
		Chunks:          reports,
		CreatedAt:       w.now(),
	}
	m.Frames = make([]string, len(p.Frames))
	for i, f := range p.Frames {
		m.Frames[i] = store.FrameKey(p.RunID, f, ext)
	}
	m.StitchSeconds = time.Since(started).Seconds()
	if err := w.putJSON(ctx, store.ManifestKey(p.RunID), m); err != nil {
		return pipeline.Manifest{}, classify(stopped(ctx, fmt.Errorf("store manifest: %w", err)))
	}
	log.Info("stitched", "video", videoKey, "frames", m.FrameCount, "fps", m.FPS, "seconds", m.StitchSeconds)
	return m, nil
}

// concat joins the chunks' segments without re-encoding. A segment that is
// missing (its chunk's encode step was lost) is encoded from its frames; if
// the joined video has the wrong frame count, every segment is checked and
// the bad ones are encoded again before a second try.
func (w *Worker) concat(ctx context.Context, p *plan.Plan, ext, dir, framesDir, video string) (VideoInfo, error) {
	segDir := filepath.Join(dir, "segments")
	if err := os.MkdirAll(segDir, 0o755); err != nil {
		return VideoInfo{}, &Error{Code: ExitTransient, Err: err}
	}
	segments := make([]string, p.NumChunks())
	var list strings.Builder
	for i := range segments {
		segments[i] = filepath.Join(segDir, fmt.Sprintf("chunk_%05d.mp4", i))
		err := w.Store.GetFile(ctx, store.SegmentKey(p.RunID, i), segments[i])
		if errors.Is(err, store.ErrNotFound) {
			w.log().Info("segment missing: encoding it from its frames", "chunk", i)
			err = w.reencodeSegment(ctx, p, i, ext, framesDir, segments[i])
		} else if err != nil {
			err = classify(stopped(ctx, fmt.Errorf("fetch segment %d: %w", i, err)))
		}
		if err != nil {
			return VideoInfo{}, err
		}
		fmt.Fprintf(&list, "file '%s'\n", strings.ReplaceAll(segments[i], "'", `'\''`))
	}
	listFile := filepath.Join(dir, "segments.txt")
	if err := os.WriteFile(listFile, []byte(list.String()), 0o644); err != nil {
		return VideoInfo{}, &Error{Code: ExitTransient, Err: err}
	}
	join := func() (VideoInfo, error) {
		if err := w.FFmpeg.Run(ctx, ConcatArgs(listFile, p.FrameRate, video)); err != nil {
			return VideoInfo{}, stoppedOr(ctx, fmt.Errorf("concat segments: %w", err), true)
		}
		info, err := w.FFmpeg.Probe(ctx, video)
		if err != nil {
			return VideoInfo{}, stoppedOr(ctx, err, true)
		}
		return info, nil
	}
	info, err := join()
	if err != nil || info.Frames == len(p.Frames) {
		return info, err
	}
	w.log().Warn("joined video has the wrong frame count: checking every segment", "frames", info.Frames, "want", len(p.Frames))
	for i, seg := range segments {
		frames, _ := p.Chunk(i)
		info, err := w.FFmpeg.Probe(ctx, seg)
		if err == nil && info.Frames == len(frames) {
			continue
		}
		w.log().Warn("segment is damaged: encoding it again", "chunk", i, "frames", info.Frames, "want", len(frames), "err", err)
		if err := w.reencodeSegment(ctx, p, i, ext, framesDir, seg); err != nil {
			return VideoInfo{}, err
		}
	}
	return join()
}

// reencodeSegment makes chunk i's segment from its stored frames and stores it.
func (w *Worker) reencodeSegment(ctx context.Context, p *plan.Plan, i int, ext, framesDir, local string) error {
	frames, err := p.Chunk(i)
	if err != nil {
		return permanent("%w", err)
	}
	if err := w.fetchFrames(ctx, p.RunID, ext, framesDir, frames); err != nil {
		return err
	}
	if err := w.encodeFrames(ctx, framesDir, ext, frames, p.FrameRate, local); err != nil {
		return err
	}
	if err := w.Store.PutFile(ctx, store.SegmentKey(p.RunID, i), local); err != nil {
		return classify(stopped(ctx, fmt.Errorf("store segment %d: %w", i, err)))
	}
	return nil
}

// chunkReports reads every chunk's report; missing ones are left out.
func (w *Worker) chunkReports(ctx context.Context, p *plan.Plan) ([]pipeline.ChunkReport, error) {
	var out []pipeline.ChunkReport
	for i := range p.NumChunks() {
		rc, err := w.Store.Get(ctx, store.ChunkReportKey(p.RunID, i))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, classify(stopped(ctx, fmt.Errorf("read chunk report %d: %w", i, err)))
		}
		var r pipeline.ChunkReport
		err = json.NewDecoder(rc).Decode(&r)
		rc.Close()
		if err != nil {
			w.log().Warn("unreadable chunk report", "chunk", i, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// sameRate compares ffprobe's "num/den" with a plan rate, as rationals.
func sameRate(probed string, r plan.FrameRate) bool {
	num, den, ok := strings.Cut(probed, "/")
	if !ok {
		den = "1"
	}
	n, err1 := strconv.Atoi(num)
	d, err2 := strconv.Atoi(den)
	return err1 == nil && err2 == nil && d > 0 && n*r.Den == d*r.Num
}
