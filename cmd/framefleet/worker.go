package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/framefleet/framefleet/pipeline/config"

	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/container"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// workerFlags are shared by `worker render` and `worker stitch`; each defaults
// to the environment AWS Batch (or the local engine) sets.
type workerFlags struct {
	store   string
	run     string
	blender string
	ffmpeg  string
	ffprobe string
	workdir string
}

func newWorkerCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run one job of a render inside AWS Batch or the local engine",
		Long: `The worker runs inside every job of a render. "worker render" renders chunk
AWS_BATCH_JOB_ARRAY_INDEX of the stored plan and encodes its video segment;
"worker stitch" joins the segments into the video, preview, thumbnail and manifest.

Exit status: 0 done, 1 permanent failure (do not retry), 75 transient failure (retry).`,
	}
	cmd.AddCommand(newWorkerRenderCmd(g), newWorkerStitchCmd(g))
	return cmd
}

func (f *workerFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.store, "store", os.Getenv("FRAMEFLEET_STORE"), "store URI: a directory, file:///dir or s3://bucket/prefix (env FRAMEFLEET_STORE)")
	fl.StringVar(&f.run, "run", os.Getenv("FRAMEFLEET_RUN_ID"), "run id (env FRAMEFLEET_RUN_ID)")
	fl.StringVar(&f.blender, "blender", workerEnv("FRAMEFLEET_BLENDER", "blender"), "Blender program (env FRAMEFLEET_BLENDER)")
	fl.StringVar(&f.ffmpeg, "ffmpeg", workerEnv("FRAMEFLEET_FFMPEG", "ffmpeg"), "FFmpeg program (env FRAMEFLEET_FFMPEG)")
	fl.StringVar(&f.ffprobe, "ffprobe", workerEnv("FRAMEFLEET_FFPROBE", "ffprobe"), "ffprobe program (env FRAMEFLEET_FFPROBE)")
	fl.StringVar(&f.workdir, "workdir", os.Getenv("FRAMEFLEET_WORKDIR"), "working directory (env FRAMEFLEET_WORKDIR; default a temporary directory)")
}

func (f *workerFlags) worker(cmd *cobra.Command, g *globalFlags) (*container.Worker, error) {
	if f.store == "" {
		return nil, &container.Error{Code: container.ExitPermanent, Err: fmt.Errorf("no store: set FRAMEFLEET_STORE or pass --store")}
	}
	if f.run == "" {
		return nil, &container.Error{Code: container.ExitPermanent, Err: fmt.Errorf("no run id: set FRAMEFLEET_RUN_ID or pass --run")}
	}
	// Workers have no framefleet.yaml in the image: S3 settings (region,
	// endpoint, path style) arrive as FRAMEFLEET_* environment variables.
	cfg, err := config.Load("", os.Getenv)
	if err != nil {
		return nil, &container.Error{Code: container.ExitPermanent, Err: err}
	}
	st, err := store.Open(cmd.Context(), f.store, cfg.StoreOptions())
	if err != nil {
		return nil, &container.Error{Code: container.ExitPermanent, Err: err}
	}
	attempt, _ := strconv.Atoi(os.Getenv("AWS_BATCH_JOB_ATTEMPT"))
	return &container.Worker{
		Store:      st,
		RunID:      f.run,
		Blender:    container.ExecBlender{Path: f.blender},
		FFmpeg:     container.ExecFFmpeg{FFmpeg: f.ffmpeg, FFprobe: f.ffprobe},
		WorkDir:    f.workdir,
		Log:        g.logger(cmd.ErrOrStderr()),
		BlenderLog: cmd.ErrOrStderr(),
		Attempt:    attempt,
		// Set by the job definition when it reserves GPUs (pipeline/batch).
		CyclesDevice: os.Getenv("FRAMEFLEET_CYCLES_DEVICE"),
	}, nil
}

func newWorkerRenderCmd(g *globalFlags) *cobra.Command {
	var f workerFlags
	var index int
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Render one chunk of a stored plan and encode its segment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("index") {
				if v := os.Getenv("AWS_BATCH_JOB_ARRAY_INDEX"); v != "" {
					n, err := strconv.Atoi(v)
					if err != nil {
						return &container.Error{Code: container.ExitPermanent, Err: fmt.Errorf("AWS_BATCH_JOB_ARRAY_INDEX=%q is not a number", v)}
					}
					index = n
				}
			}
			w, err := f.worker(cmd, g)
			if err != nil {
				return err
			}
			_, err = w.RenderChunk(cmd.Context(), index)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&index, "index", 0, "chunk index (env AWS_BATCH_JOB_ARRAY_INDEX; 0 when unset)")
	return cmd
}

func newWorkerStitchCmd(g *globalFlags) *cobra.Command {
	var f workerFlags
	var mode string
	cmd := &cobra.Command{
		Use:   "stitch",
		Short: "Join the chunks into the video, preview, thumbnail and manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var m plan.StitchMode
			if mode != "" {
				var err error
				if m, err = plan.ParseStitchMode(mode); err != nil {
					return &container.Error{Code: container.ExitPermanent, Err: err}
				}
			}
			w, err := f.worker(cmd, g)
			if err != nil {
				return err
			}
			man, err := w.Stitch(cmd.Context(), m)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", man.VideoKey)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&mode, "stitch", "", `"concat" or "encode" (default: the plan's)`)
	return cmd
}

func workerEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
