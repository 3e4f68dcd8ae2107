package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

type logsFlags struct {
	store   storeFlags
	chunk   int
	lines   int
	jsonOut bool
}

// chunkLogs are one chunk's logs: Blender's stored log tail and, on Batch,
// the CloudWatch Logs stream of its failed attempt.
type chunkLogs struct {
	Chunk       int             `json:"chunk"` // -1: the stitch job
	StoredKey   string          `json:"stored_key,omitempty"`
	Stored      string          `json:"stored,omitempty"`
	Stream      string          `json:"stream,omitempty"`
	StreamLines []fleet.LogLine `json:"stream_lines,omitempty"`
	Notes       []string        `json:"notes,omitempty"`
}

func newLogsCmd(g *globalFlags) *cobra.Command {
	f := &logsFlags{}
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Show a run's worker logs: Blender's, and on AWS Batch CloudWatch Logs",
		Long: `Logs prints the tail of Blender's log that each chunk's worker stored, for
the failed chunks of a failed run, else for every chunk that stored one.
On AWS Batch it adds the CloudWatch Logs stream (group /aws/batch/job) of each
failed attempt, which holds what the worker printed before it could store
anything (an image that would not start, a store it could not reach).`,
		Example: `  framefleet logs k3x9
  framefleet logs k3x9 --chunk 3 --lines 200`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			chunkSet := cmd.Flags().Changed("chunk")
			if !chunkSet {
				f.chunk = -1
			}
			return runLogs(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().IntVar(&f.chunk, "chunk", 0, "only this chunk (0-based, as status shows)")
	cmd.Flags().IntVar(&f.lines, "lines", 50, "lines of each CloudWatch Logs stream")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the logs as JSON")
	return cmd
}

func runLogs(ctx context.Context, g *globalFlags, f *logsFlags, id string, stdout, stderr io.Writer) error {
	if f.lines < 1 || f.lines > 10000 {
		return fmt.Errorf("--lines %d: give 1 to 10000", f.lines)
	}
	flt, _, rec, err := f.store.openRun(ctx, g, id, stderr)
	if err != nil {
		return err
	}
	if f.chunk >= 0 && f.chunk >= max(rec.ChunkTotal, 1) {
		return fmt.Errorf("--chunk %d: run %s has chunks 0 to %d", f.chunk, rec.ID, rec.ChunkTotal-1)
	}
	streams := failedStreams(ctx, flt, rec)
	var chunks []int
	switch {
	case f.chunk >= 0:
		chunks = []int{f.chunk}
	case rec.Failure != nil && len(rec.Failure.Failures) > 0:
		for _, cf := range rec.Failure.Failures {
			if cf.Index >= 0 {
				chunks = append(chunks, cf.Index)
			}
		}
	default:
		objs, err := flt.Store.List(ctx, store.RunPrefix(rec.ID)+"logs/")
		if err != nil {
			return fmt.Errorf("list run %s's logs: %w", rec.ID, err)
		}
		for i := range rec.ChunkTotal {
			if slices.ContainsFunc(objs, func(o store.Object) bool { return o.Key == store.ChunkLogKey(rec.ID, i) }) {
				chunks = append(chunks, i)
			}
		}
	}
	var out []chunkLogs
	if _, ok := streams[pipeline.StitchChunk]; ok && f.chunk < 0 {
		chunks = append(chunks, pipeline.StitchChunk)
	}
	for _, c := range chunks {
		cl := chunkLogs{Chunk: c, Stream: streams[c]}
		if c == pipeline.StitchChunk {
			if ls, err := flt.StreamTail(ctx, cl.Stream, f.lines); err == nil {
				cl.StreamLines = ls
			} else {
				cl.Notes = append(cl.Notes, err.Error())
			}
			out = append(out, cl)
			continue
		}
		cl.StoredKey = store.ChunkLogKey(rec.ID, c)
		if text, err := flt.StoredLog(ctx, rec.ID, c); err == nil {
			cl.Stored = text
		} else if errors.Is(err, store.ErrNotFound) {
			cl.Notes = append(cl.Notes, "no stored Blender log (the worker stores it when the chunk ends)")
		} else {
			cl.Notes = append(cl.Notes, err.Error())
		}
		if cl.Stream != "" {
			if ls, err := flt.StreamTail(ctx, cl.Stream, f.lines); err == nil {
				cl.StreamLines = ls
			} else {
				cl.Notes = append(cl.Notes, err.Error())
			}
		}
		out = append(out, cl)
	}
	if f.jsonOut {
		if out == nil {
			out = []chunkLogs{}
		}
		return writeJSON(stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(stderr, "run %s (%s) has no worker logs yet: each chunk stores Blender's log when it ends\n", rec.ID, rec.State)
		return nil
	}
	for i, cl := range out {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		what := fmt.Sprintf("chunk %d", cl.Chunk)
		if cl.Chunk == pipeline.StitchChunk {
			what = "stitch job"
		} else {
			fmt.Fprintf(stdout, "==> %s: Blender's log (%s)\n", what, cl.StoredKey)
		}
		if cl.Stored != "" {
			fmt.Fprintln(stdout, strings.TrimRight(cl.Stored, "\n"))
		}
		if cl.Stream != "" {
			fmt.Fprintf(stdout, "==> %s: CloudWatch Logs %s %s\n", what, flt.LogGroup(), cl.Stream)
			for _, l := range cl.StreamLines {
				fmt.Fprintf(stdout, "%s %s\n", l.Time.Format("15:04:05"), l.Message)
			}
		}
		for _, n := range cl.Notes {
			fmt.Fprintf(stdout, "note: %s\n", n)
		}
	}
	return nil
}

// failedStreams are the CloudWatch Logs streams of failed attempts by
// chunk: from the record of a failed run, else asked of the engine.
func failedStreams(ctx context.Context, flt *fleet.Fleet, rec *pipeline.RunRecord) map[int]string {
	streams := map[int]string{}
	if rec.Engine != config.EngineBatch {
		return streams
	}
	failures := []pipeline.ChildFailure(nil)
	if rec.Failure != nil {
		failures = rec.Failure.Failures
	}
	if len(failures) == 0 && rec.Handle != nil {
		if eng, err := flt.Engine(ctx, rec.Engine); err == nil {
			if s, err := eng.Status(ctx, *rec.Handle); err == nil {
				failures = s.Failures
			}
		}
	}
	for _, cf := range failures {
		if cf.LogStream != "" {
			streams[cf.Index] = cf.LogStream
		}
	}
	return streams
}
