package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

type statusFlags struct {
	store   storeFlags
	lines   int
	jsonOut bool
}

// runStatus is `framefleet status --json`: the record, its view, and what
// was looked up for it. The table is printed from View and the extras only.
type runStatus struct {
	Run  *pipeline.RunRecord `json:"run"`
	View *pipeline.RunView   `json:"view"`
	// LogTails are the failed chunks' stored Blender log tails, by chunk.
	LogTails map[int]string `json:"log_tails,omitempty"`
	// LogGroup is the CloudWatch Logs group of Batch attempts' streams.
	LogGroup string `json:"log_group,omitempty"`
	// Notes are what could not be looked up (cost, a log), and why.
	Notes []string `json:"notes,omitempty"`
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	f := &statusFlags{}
	cmd := &cobra.Command{
		Use:   "status RUN",
		Short: "Show a run: state, chunks, failures with Blender's log, links and cost",
		Long: `Status shows one run by its id or a unique prefix of it: its state and
chunks, each failed chunk with the end of Blender's log, links to the video
and the newest frame, and the cost so far (vCPU time of finished attempts at
price_per_vcpu_hour).`,
		Example: `  framefleet status k3x9
  framefleet status k3x9p2ad --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatusCmd(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().IntVar(&f.lines, "lines", 10, "lines of each failed chunk's Blender log to show")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the status as JSON")
	return cmd
}

func runStatusCmd(ctx context.Context, g *globalFlags, f *statusFlags, id string, stdout, stderr io.Writer) error {
	flt, _, rec, err := f.store.openRun(ctx, g, id, stderr)
	if err != nil {
		return err
	}
	st, err := lookUpStatus(ctx, flt, rec)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(stdout, st)
	}
	printStatus(stdout, st, f.lines, time.Now())
	return nil
}

// lookUpStatus gathers the run's view and, beyond it, what status shows:
// the cost so far from the engine, the failed chunks' log tails. What
// cannot be found is noted, not fatal: the view alone is worth showing.
func lookUpStatus(ctx context.Context, flt *fleet.Fleet, rec *pipeline.RunRecord) (*runStatus, error) {
	v, err := flt.View(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	st := &runStatus{Run: rec, View: v, LogTails: map[int]string{}}
	if rec.Engine == config.EngineBatch {
		st.LogGroup = flt.LogGroup()
	}
	if c, err := flt.CostSoFar(ctx, rec); errors.Is(err, pipeline.ErrUnknownJob) && rec.HostBound {
		st.Notes = append(st.Notes, "cost: known when the run ends (its workers are children of another framefleet process)")
	} else if err != nil {
		st.Notes = append(st.Notes, "cost: "+err.Error())
	} else {
		v.Cost = pipeline.ViewCost{VCPUSeconds: c.VCPUSeconds, USD: c.USD, Final: c.Final}
	}
	for _, fv := range v.Failures {
		if fv.Chunk < 0 || fv.LogKey == "" {
			continue
		}
		if tail, err := flt.StoredLog(ctx, rec.ID, fv.Chunk); err == nil {
			st.LogTails[fv.Chunk] = tail
		} else if !errors.Is(err, store.ErrNotFound) {
			st.Notes = append(st.Notes, err.Error())
		}
	}
	return st, nil
}

// printStatus prints the status table from the run's view.
func printStatus(w io.Writer, st *runStatus, lines int, now time.Time) {
	v := st.View
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("run", "%s", v.ID)
	row("state", "%s", v.State)
	row("scope", "%s", v.Scope)
	source := v.Source
	if v.SourceSHA256 != "" {
		source += fmt.Sprintf(" (sha256 %.12s, %d bytes)", v.SourceSHA256, v.SourceSize)
	}
	row("source", "%s", source)
	row("scene", "%s: %s in %s, %dx%d at %s fps", v.Scene, plural(v.Progress.FramesTotal, "frame"), plural(v.Progress.ChunkTotal, "chunk"), v.Width, v.Height, v.FrameRate)
	if v.Jobs != nil {
		row("engine", "%s: render job %s, stitch job %s", engineTitle(v.Engine), v.Jobs.RenderID, v.Jobs.StitchID)
	} else {
		row("engine", "%s (not submitted)", engineTitle(v.Engine))
	}
	row("frames", "%d/%d rendered (%d%%)", v.Progress.FramesDone, v.Progress.FramesTotal, v.Progress.Percent())
	if len(v.Chunks) > 0 {
		row("chunks", "%s", chunkSummary(v.Chunks))
	}
	if l := v.Latest; l != nil {
		row("latest frame", "%d: %s", l.Frame, orKey(l.FrameLink, l.FrameKey))
	}
	if l := v.Links; l != nil {
		for _, x := range []struct{ name, link, key string }{
			{"video", l.Video, l.VideoKey}, {"preview", l.Preview, l.PreviewKey}, {"thumbnail", l.Thumbnail, l.ThumbnailKey},
		} {
			if x.link != "" || x.key != "" {
				row(x.name, "%s", orKey(x.link, x.key))
			}
		}
		if l.ExpiresAt != nil {
			row("links expire", "%s (%s)", l.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"), until(now, *l.ExpiresAt))
		}
	}
	for _, warn := range v.Warnings {
		row("warning", "%s", warn)
	}
	if len(v.MissingInputs) > 0 {
		var names []string
		for _, m := range v.MissingInputs {
			n := m.StoredPath
			if len(m.UsedBy) > 0 {
				n += " (used by " + strings.Join(m.UsedBy, ", ") + ")"
			}
			names = append(names, n)
		}
		row("missing inputs", "%s", strings.Join(names, ", "))
	}
	created := v.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago(now, v.CreatedAt) + ")"
	row("created", "%s", created)
	if v.FinishedAt != nil {
		row("finished", "%s, after %s", v.FinishedAt.UTC().Format("2006-01-02 15:04:05 UTC"), v.FinishedAt.Sub(v.CreatedAt).Round(time.Second))
	} else {
		row("updated", "%s", ago(now, v.UpdatedAt))
	}
	if len(v.Labels) > 0 {
		row("labels", "%s", labelList(v.Labels))
	}
	if c := v.Cost; c.VCPUSeconds > 0 || c.USD > 0 {
		so := " so far"
		if c.Final {
			so = ""
		}
		row("cost", "$%.4f%s (%.0f vCPU-seconds)", c.USD, so, c.VCPUSeconds)
	}
	if c := v.Cancelled; c != nil {
		if c.By != "" {
			row("cancelled", "by %s: %s", c.By, c.Reason)
		} else {
			row("cancelled", "%s", c.Reason)
		}
	}
	switch {
	case v.State == pipeline.RunInterrupted:
		row("next", "framefleet watch %s resumes it (only missing frames render)", v.ID)
	case v.State == pipeline.RunFailed:
		row("next", "framefleet logs %s shows the workers' logs", v.ID)
	case !v.Final:
		row("next", "framefleet watch %s follows it; framefleet cancel %s stops it", v.ID, v.ID)
	}
	_ = tw.Flush()
	for _, fv := range v.Failures {
		fmt.Fprintf(w, "\n%s\n", failureTitle(fv))
		if fv.BlenderError != "" && !strings.Contains(fv.Summary, strings.TrimPrefix(fv.BlenderError, "Error: ")) {
			fmt.Fprintf(w, "  Blender said: %s\n", fv.BlenderError)
		}
		if fv.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", fv.Fix)
		}
		if fv.LogStream != "" {
			fmt.Fprintf(w, "  CloudWatch Logs: %s %s (framefleet logs %s --chunk %d)\n", st.LogGroup, fv.LogStream, v.ID, fv.Chunk)
		}
		if tail := lastLines(st.LogTails[fv.Chunk], lines); tail != "" {
			fmt.Fprintf(w, "  Blender's log, last lines:\n    %s\n", strings.ReplaceAll(tail, "\n", "\n    "))
		} else if fv.LogKey != "" {
			fmt.Fprintf(w, "  Blender's log: %s in the store\n", fv.LogKey)
		}
	}
	for _, n := range st.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// failureTitle is a failure's first line: where, then the shaped cause.
func failureTitle(fv pipeline.FailureView) string {
	var where string
	switch fv.Chunk {
	case pipeline.RunChunk:
		return "failed: " + fv.Summary
	case pipeline.StitchChunk:
		where = "the stitch"
	default:
		where = fmt.Sprintf("chunk %d", fv.Chunk)
		if fv.Frames != "" {
			where += " (frames " + fv.Frames + ")"
		}
	}
	if fv.Attempts > 0 {
		where += " failed after " + plural(fv.Attempts, "attempt")
	} else {
		where += " failed"
	}
	return where + ": " + fv.Summary
}

// until says how long until t, or that it is past.
func until(now, t time.Time) string {
	if !t.After(now) {
		return "expired"
	}
	return "in " + strings.TrimSuffix(ago(t, now), " ago")
}

func orKey(link, key string) string {
	if link != "" {
		return link
	}
	return key
}

// lastLines is the last n lines of s, without a trailing newline.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" || n <= 0 {
		return ""
	}
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}
