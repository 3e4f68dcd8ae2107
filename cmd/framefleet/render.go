package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/local"
	"github.com/framefleet/framefleet/pipeline/plan"
)

// renderFlags are `framefleet render`'s options.
type renderFlags struct {
	out        string
	frames     string
	chunk      int
	workers    int
	resolution int
	samples    int
	stitch     string
	force      bool
	jsonOut    bool
	attempts   int
	timeout    time.Duration
	blender    string
	engine     string
	poll       time.Duration
	detach     bool
	labels     []string
	root       string
	allowMiss  bool
	config     configFlags
}

func newRenderCmd(g *globalFlags) *cobra.Command {
	f := &renderFlags{}
	cmd := &cobra.Command{
		Use:   "render FILE.blend",
		Short: "Render a scene to a video",
		Long: `Render a .blend file's animation into a video: the frames are split into
chunks rendered in parallel by Blender workers, then stitched with FFmpeg at
the scene's frame rate. Every render is a run recorded in the store, with a
short id. Every file the scene needs (textures, linked libraries, caches,
sounds) is found without Blender and travels with it, laid out relative to
the project root (--root), and stored once by content; a scene that needs
files that do not exist is refused unless --allow-missing. An identical
earlier render is reused (see --force); an identical
unfinished one is joined, or resumed if its process stopped, so only the
frames not yet stored are rendered.`,
		Example: `  framefleet render examples/demo.blend
  framefleet render shots/shot.blend --root .      # textures and libraries travel with it
  framefleet render shot.blend --resolution 25 --samples 8 --frames 1-48
  framefleet render shot.blend --json > result.json
  framefleet render shot.blend --engine batch --detach`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRender(cmd.Context(), g, cmd.Flags(), f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", fleet.DefaultStore, "directory (or file:// / s3:// store) that keeps the frames and the video")
	fl.StringVar(&f.frames, "frames", "", `frames to render, e.g. "1-100", "1-100x5", "3,7,12-20" (default: the scene's range)`)
	fl.IntVar(&f.chunk, "chunk", 0, "frames per chunk (default: chosen from the frame count and --workers)")
	fl.IntVar(&f.workers, "workers", fleet.DefaultWorkers(runtime.NumCPU()), "Blender processes run at once (local engine)")
	fl.IntVar(&f.resolution, "resolution", 0, "resolution percentage for a quicker preview, e.g. 25 (default: the scene's)")
	fl.IntVar(&f.samples, "samples", 0, "render samples for a quicker preview (default: the scene's)")
	fl.StringVar(&f.stitch, "stitch", string(plan.StitchConcat), "how the video is made: concat (join per-chunk segments) or encode (one pass over every frame)")
	fl.BoolVar(&f.force, "force", false, "render again even if an identical render is cached")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON on stdout (and nothing else)")
	fl.IntVar(&f.attempts, "attempts", pipeline.DefaultAttempts, fmt.Sprintf("attempts per chunk; a worker killed by a signal or failing transiently is retried (1-%d)", pipeline.MaxAttempts))
	fl.DurationVar(&f.timeout, "timeout", 0, "time limit per chunk attempt, e.g. 30m (default: none)")
	fl.StringVar(&f.blender, "blender", "", "Blender program the workers run (default: blender on PATH)")
	fl.StringVar(&f.engine, "engine", local.Name, "where to render: "+strings.Join(fleet.EngineNames(), ", "))
	fl.BoolVar(&f.detach, "detach", false, "submit the run and return without watching it (AWS Batch; follow it with framefleet watch RUN)")
	fl.StringVar(&f.root, "root", "", "project folder every file the scene needs is laid out from (default: the git top level holding the scene, else the deepest folder holding it and its relative dependencies)")
	fl.BoolVar(&f.allowMiss, "allow-missing", false, "render even when files the scene needs are missing (they render magenta or not at all; the run lists them)")
	fl.StringArrayVar(&f.labels, "label", nil, "label the run, e.g. --label ticket=PRJ-12 (repeatable; framefleet runs --label filters by them)")
	f.config.register(fl)
	fl.DurationVar(&f.poll, "poll", time.Second, "how often progress is checked")
	_ = fl.MarkHidden("poll")
	return cmd
}

// applyFlags lays the flags that choose where and how wide to render over
// the configuration (defaults < framefleet.yaml < FRAMEFLEET_* < flags).
// The render settings' flags go into the request instead (applyRequest),
// so their limits are checked once, by pipeline.Request.Validate, and its
// errors name the flag (cliWording), not the configuration key.
func (f *renderFlags) applyFlags(fl *pflag.FlagSet, cfg *config.Config) {
	if fl.Changed("engine") {
		cfg.Engine = f.engine
	}
	if fl.Changed("out") {
		cfg.Store, cfg.Bucket, cfg.Prefix = f.out, "", ""
	}
	if fl.Changed("workers") {
		cfg.Render.Workers = f.workers
	}
	f.engine = cfg.Engine
}

// applyRequest lays the render settings' flags the user gave over the
// request's defaults. --attempts and --timeout are this run's own: they are
// not written into the Batch settings, whose job definition every run shares.
func (f *renderFlags) applyRequest(fl *pflag.FlagSet, req *pipeline.Request) {
	req.Frames = f.frames
	req.Force = f.force
	req.Root = f.root
	if fl.Changed("allow-missing") {
		req.AllowMissing = f.allowMiss
	}
	if fl.Changed("chunk") {
		req.Chunk = f.chunk
	}
	if fl.Changed("resolution") {
		req.ResolutionPercentage = f.resolution
	}
	if fl.Changed("samples") {
		req.Samples = f.samples
	}
	if fl.Changed("stitch") {
		req.Stitch = plan.StitchMode(strings.ToLower(strings.TrimSpace(f.stitch)))
	}
	if fl.Changed("attempts") {
		req.Attempts = f.attempts
	}
	if fl.Changed("timeout") {
		req.AttemptTimeout = f.timeout
	}
	if fl.Changed("poll") {
		req.PollInterval = f.poll
	}
}

// validate checks what only the CLI means: 0 workers and a zero poll are
// the configuration's "automatic" and the pipeline's "default", but typed as
// flags they are mistakes. Every render setting's limit is Validate's.
func (f *renderFlags) validate() error {
	switch {
	case f.workers < 1:
		return fmt.Errorf("--workers %d: run at least 1 worker", f.workers)
	case f.poll <= 0:
		return fmt.Errorf("--poll %s: give a positive duration", f.poll)
	}
	return nil
}

func runRender(ctx context.Context, g *globalFlags, fl *pflag.FlagSet, f *renderFlags, file string, stdout, stderr io.Writer) error {
	cfg, err := f.config.load()
	if err != nil {
		return err
	}
	// The user's flags are checked as flags (here, and as the request by
	// Validate, whose errors cliWording words as flags); what the file or the
	// environment set is checked as configuration by fleet.Open.
	if err := f.validate(); err != nil {
		return err
	}
	f.applyFlags(fl, cfg)
	if !slices.Contains(fleet.EngineNames(), f.engine) {
		return fmt.Errorf("unknown engine %q: use one of %s", f.engine, strings.Join(fleet.EngineNames(), ", "))
	}
	if fi, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("scene file %s does not exist: check the path", file)
	} else if err != nil {
		return fmt.Errorf("scene file: %w", err)
	} else if fi.IsDir() {
		return fmt.Errorf("scene file %s is a directory: give the .blend file inside it", file)
	}
	con, err := g.console(stderr)
	if err != nil {
		return err
	}
	log := con.log
	flt, err := fleet.Open(ctx, cfg, fleet.Options{Logger: log, Blender: f.blender})
	if err != nil {
		return err
	}
	req := flt.NewRequest(file)
	f.applyRequest(fl, &req)

	if len(f.labels) > 0 {
		if req.Labels, err = parseLabels(f.labels); err != nil {
			return err
		}
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if f.detach {
		return submitDetached(pipeline.WithNotices(ctx, newReporter(con, true).event), flt, req, f.jsonOut, stdout)
	}

	rep := newReporter(con, f.jsonOut)
	res, err := flt.Render(ctx, req, rep.event)
	con.endBar()
	if err != nil {
		return watchError(ctx, err, rep.runID, req.Engine)
	}
	return printResult(res, f.jsonOut, stdout, stderr)
}

// submitDetached submits a run and returns: only for engines whose jobs
// outlive this process.
func submitDetached(ctx context.Context, flt *fleet.Fleet, req pipeline.Request, jsonOut bool, stdout io.Writer) error {
	eng, err := flt.Engine(ctx, req.Engine)
	if err != nil {
		return err
	}
	if hb, ok := eng.(pipeline.HostBound); ok && hb.HostBound() {
		return fmt.Errorf("--detach needs an engine whose jobs run without this process, and the %s engine's workers are "+
			"children of framefleet that stop when it exits: render without --detach (after Ctrl-C or a crash, the same "+
			"command or `framefleet watch RUN` resumes the run), or render on AWS Batch with --engine batch", req.Engine)
	}
	rec, err := flt.Submit(ctx, req) // ctx carries the notices (waits, warnings) to the console
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSON(stdout, rec)
	}
	switch {
	case rec.Result != nil:
		fmt.Fprintf(stdout, "run %s: an identical render already finished (--force renders again)\nvideo: %s\n", rec.ID, rec.Result.Video)
	case rec.Handle != nil:
		fmt.Fprintf(stdout, "run %s %s on %s: render job %s, stitch job %s\n", rec.ID, rec.State, engineTitle(rec.Engine), rec.Handle.RenderID, rec.Handle.StitchID)
	default:
		fmt.Fprintf(stdout, "run %s %s on %s\n", rec.ID, rec.State, engineTitle(rec.Engine))
	}
	if rec.Result == nil {
		fmt.Fprintf(stdout, "follow it: framefleet watch %s   status: framefleet status %s   stop it: framefleet cancel %s\n", rec.ID, rec.ID, rec.ID)
	}
	return nil
}

// watchError words the end of a render or watch that did not succeed.
func watchError(ctx context.Context, err error, runID, engine string) error {
	if ctx.Err() == nil || runID == "" {
		return err
	}
	if engine == config.EngineBatch {
		return fmt.Errorf("stopped watching; run %s goes on on AWS Batch: `framefleet watch %s` follows it again, `framefleet cancel %s` stops it: %w", runID, runID, runID, err)
	}
	return fmt.Errorf("render interrupted; its workers were stopped and run %s can resume: run the same command again, or `framefleet watch %s`: %w", runID, runID, err)
}

// printResult prints a finished render: JSON, or where the video is.
func printResult(res *pipeline.Result, jsonOut bool, stdout, stderr io.Writer) error {
	if jsonOut {
		return writeJSON(stdout, res)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	where := res.Video
	if res.VideoPath != "" {
		where = res.VideoPath
	}
	cached := ""
	if res.Cached {
		cached = " (cached; --force renders again)"
	}
	fmt.Fprintf(stdout, "video: %s%s\n", where, cached)
	fmt.Fprintf(stdout, "%d frames at %s fps (%.2f s), %dx%d, run %s\n",
		res.FrameCount, res.FrameRate, res.DurationSeconds, res.Width, res.Height, res.RunID)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reporter shows a run's events: sentences above a progress bar for a
// person at a terminal, structured log lines otherwise.
type reporter struct {
	c     *console
	quiet bool // --json: no progress bar (the sentences stay on stderr)
	runID string

	lastChunks string    // chunk states at the last plain progress line
	lastLine   time.Time // when it was printed
}

// progressEvery spaces plain progress lines when chunk states do not change.
const progressEvery = 10 * time.Second

func newReporter(c *console, jsonOut bool) *reporter {
	return &reporter{c: c, quiet: jsonOut}
}

func (r *reporter) event(ev pipeline.Event) {
	if ev.RunID != "" {
		r.runID = ev.RunID
	}
	if r.c.human {
		r.say(ev)
		return
	}
	log := r.c.log
	switch ev.Kind {
	case pipeline.EventProgress:
		if ev.Message != "" {
			log.Info("progress", "run", ev.RunID, "note", ev.Message)
		}
		// Logs (CI, files) get a line when chunks change state or every
		// progressEvery, not one per frame.
		summary := chunkSummary(ev.Chunks)
		if summary == r.lastChunks && time.Since(r.lastLine) < progressEvery && ev.FramesDone < ev.FramesTotal {
			return
		}
		r.lastChunks, r.lastLine = summary, time.Now()
		log.Info("progress", "run", ev.RunID, "frames_done", ev.FramesDone, "frames_total", ev.FramesTotal, "chunks", summary)
	case pipeline.EventPlanned:
		log.Info("planned", "run", ev.RunID, "plan", ev.Message)
	case pipeline.EventCached:
		log.Info("cached", "run", ev.RunID, "note", ev.Message)
	case pipeline.EventSubmitted:
		log.Info("submitted", "run", ev.RunID, "engine", ev.Handle.Engine, "render_job", ev.Handle.RenderID, "stitch_job", ev.Handle.StitchID)
	case pipeline.EventChunkRetried:
		log.Warn("chunk attempt failed, retrying", "chunk", ev.Failure.Index, "attempt", ev.Failure.Attempts, "reason", ev.Failure.Reason)
	case pipeline.EventChunkFailed:
		log.Error("chunk failed", "chunk", ev.Failure.Index, "attempts", ev.Failure.Attempts, "reason", ev.Failure.Reason)
	case pipeline.EventStitching:
		log.Info("stitching", "run", ev.RunID)
	case pipeline.EventWatchError, pipeline.EventStalled, pipeline.EventStoreUnreachable, pipeline.EventWarning:
		log.Warn(string(ev.Kind), "run", ev.RunID, "note", ev.Message)
	case pipeline.EventResumed:
		log.Info("resumed", "run", ev.RunID, "frames_stored", ev.FramesDone, "frames_total", ev.FramesTotal)
	case pipeline.EventFirstFrame:
		if ev.Preview != nil {
			log.Info("first frame", "run", ev.RunID, "frame", ev.Preview.Frame, "key", ev.Preview.FrameKey)
		}
	case pipeline.EventCancelled:
		log.Warn("cancelled", "run", ev.RunID, "reason", ev.Message)
	case pipeline.EventSucceeded:
		log.Info("done", "run", ev.RunID, "frames", ev.FramesDone)
	}
}

// say tells a person what happened, in a sentence above the progress bar.
func (r *reporter) say(ev pipeline.Event) {
	c := r.c
	switch ev.Kind {
	case pipeline.EventProgress:
		if ev.Message != "" { // e.g. attached to an identical unfinished run
			c.say("%s.", capitalize(ev.Message))
		}
		if !r.quiet && ev.FramesTotal > 0 {
			c.progress(ev.FramesDone, ev.FramesTotal, "chunks "+chunkSummary(ev.Chunks))
		}
	case pipeline.EventPlanned:
		if rec := ev.Record; rec != nil && rec.Width > 0 {
			c.say("Planned %s in %s, %dx%d at %s fps (run %s).", plural(rec.FramesTotal, "frame"), plural(rec.ChunkTotal, "chunk"),
				rec.Width, rec.Height, rec.FrameRate, ev.RunID)
		} else {
			c.say("Planned %s.", plannedSentence(ev.Message))
		}
	case pipeline.EventResumed:
		c.say("Resumed run %s: %d of %d frames were already stored; only the missing ones render.", ev.RunID, ev.FramesDone, ev.FramesTotal)
	case pipeline.EventFirstFrame:
		if ev.Preview != nil {
			// The first frame this watcher saw, which after a resume is not frame one.
			c.say("Frames are landing in the store: frame %d is the newest.", ev.Preview.Frame)
		}
	case pipeline.EventCancelled:
		c.endBar()
		c.say("Run %s was cancelled: %s.", ev.RunID, ev.Message)
	case pipeline.EventCached:
		c.say("Found an identical render, run %s: %d frames (--force renders again).", ev.RunID, ev.FramesTotal)
	case pipeline.EventSubmitted:
		if ev.Handle != nil && ev.Handle.Engine == config.EngineBatch {
			c.say("Submitted run %s to AWS Batch: render job %s, stitch job %s.", ev.RunID, ev.Handle.RenderID, ev.Handle.StitchID)
		} else {
			c.say("Started run %s on this machine.", ev.RunID)
		}
	case pipeline.EventChunkRetried:
		c.say("Chunk %d attempt %d failed, retrying: %s", ev.Failure.Index, ev.Failure.Attempts, ev.Failure.Reason)
	case pipeline.EventChunkFailed:
		c.say("Chunk %d failed after %s: %s", ev.Failure.Index, plural(ev.Failure.Attempts, "attempt"), ev.Failure.Reason)
	case pipeline.EventStitching:
		if !r.quiet && ev.FramesTotal > 0 {
			c.progress(ev.FramesTotal, ev.FramesTotal, "stitching")
		}
		c.say("Every frame is rendered; stitching the video.")
	case pipeline.EventWatchError:
		c.say("Cannot check the run right now, still trying: %s", ev.Message)
	case pipeline.EventStalled, pipeline.EventWarning:
		c.say("Warning: %s", ev.Message)
	case pipeline.EventStoreUnreachable:
		c.say("%s.", capitalize(ev.Message))
	case pipeline.EventSucceeded:
		c.endBar()
		c.say("Run %s finished: %s rendered.", ev.RunID, plural(ev.FramesDone, "frame"))
	case pipeline.EventFailed:
		c.endBar()
	}
}

// plannedSentence turns the plan event's "48 frames (1-48) in 4 chunk(s) of\n// 12, 320x180 at 24 fps" into "48 frames (1-48) in 4 chunks of 12, ...".
func plannedSentence(msg string) string {
	if strings.Contains(msg, " 1 chunk(s)") {
		return strings.Replace(msg, " 1 chunk(s)", " 1 chunk", 1)
	}
	return strings.Replace(msg, " chunk(s)", " chunks", 1)
}

// plural is "1 frame", "3 frames".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// chunkSummary formats Batch's statusSummary, e.g. "2 RUNNING, 1 SUCCEEDED".
func chunkSummary(c map[pipeline.JobState]int) string {
	order := []pipeline.JobState{pipeline.StateSubmitted, pipeline.StatePending, pipeline.StateRunnable,
		pipeline.StateStarting, pipeline.StateRunning, pipeline.StateSucceeded, pipeline.StateFailed}
	var parts []string
	for _, s := range order {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
