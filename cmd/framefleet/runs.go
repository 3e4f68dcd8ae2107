package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/pipeline"
)

type runsFlags struct {
	store   storeFlags
	states  []string
	labels  []string
	limit   int
	cursor  string
	jsonOut bool
}

func newRunsCmd(g *globalFlags) *cobra.Command {
	f := &runsFlags{}
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List recorded runs, newest first",
		Example: `  framefleet runs
  framefleet runs --state running --state interrupted
  framefleet runs --label ticket=PRJ-12 --limit 5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRuns(cmd.Context(), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	f.store.register(fl)
	fl.StringSliceVar(&f.states, "state", nil, "only runs in this state: "+strings.Join(runStateNames(), ", ")+" (repeatable)")
	fl.StringArrayVar(&f.labels, "label", nil, "only runs with this label, e.g. --label ticket=PRJ-12 (repeatable: all must match)")
	fl.IntVar(&f.limit, "limit", pipeline.DefaultListLimit, fmt.Sprintf("at most this many runs (1-%d)", pipeline.MaxListLimit))
	fl.StringVar(&f.cursor, "after", "", "continue a listing where the previous page ended (the cursor it printed)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the page as JSON")
	return cmd
}

func runStateNames() []string {
	var names []string
	for _, s := range pipeline.RunStates() {
		names = append(names, string(s))
	}
	return names
}

func runRuns(ctx context.Context, g *globalFlags, f *runsFlags, stdout, stderr io.Writer) error {
	filter := pipeline.ListFilter{Limit: f.limit, Cursor: f.cursor}
	if f.limit < 1 || f.limit > pipeline.MaxListLimit {
		return fmt.Errorf("--limit %d: give 1 to %d", f.limit, pipeline.MaxListLimit)
	}
	for _, s := range f.states {
		st := pipeline.RunState(strings.ToLower(strings.TrimSpace(s)))
		if !slices.Contains(pipeline.RunStates(), st) {
			return fmt.Errorf("--state %q: use one of %s", s, strings.Join(runStateNames(), ", "))
		}
		filter.States = append(filter.States, st)
	}
	if len(f.labels) > 0 {
		var err error
		if filter.Labels, err = parseLabels(f.labels); err != nil {
			return err
		}
	}
	flt, _, err := f.store.open(ctx, g, stderr)
	if err != nil {
		return err
	}
	page, err := flt.List(ctx, filter)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(stdout, page)
	}
	for _, u := range page.Unreadable {
		fmt.Fprintf(stderr, "warning: run %s: %s\n", u.ID, u.Error)
	}
	if len(page.Runs) == 0 {
		fmt.Fprintf(stderr, "no runs in %s match\n", flt.Store.URI())
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATE\tSCOPE\tFRAMES\tENGINE\tCREATED\tSOURCE\tLABELS")
	for _, r := range page.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.ScopeName(), r.Progress.FramesDone, r.FramesTotal,
			r.Engine, ago(now, r.CreatedAt), r.Source.Name, labelList(r.Labels))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(stderr, "more runs: framefleet runs --after %s\n", page.Next)
	}
	return nil
}
