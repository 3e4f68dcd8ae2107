package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

type watchFlags struct {
	store   storeFlags
	jsonOut bool
}

func newWatchCmd(g *globalFlags) *cobra.Command {
	f := &watchFlags{}
	cmd := &cobra.Command{
		Use:   "watch RUN",
		Short: "Follow a run to its end with the progress bar; resumes an interrupted local run",
		Long: `Watch follows a run, by its id or a unique prefix, from any process until
the video is ready, with the same progress as render. A local run whose
process stopped (Ctrl-C, a crash, a reboot) is resumed under the same id:
only frames not yet stored are rendered. Stopping watch leaves a Batch run
going; a local run it hosts is stopped and can be resumed again.`,
		Example: `  framefleet watch k3x9
  framefleet watch k3x9p2ad --json > result.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWatch(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the result as JSON on stdout (and nothing else)")
	return cmd
}

func runWatch(ctx context.Context, g *globalFlags, f *watchFlags, id string, stdout, stderr io.Writer) error {
	flt, con, rec, err := f.store.openRun(ctx, g, id, stderr)
	if err != nil {
		return err
	}
	rep := newReporter(con, f.jsonOut)
	rep.runID = rec.ID
	res, err := flt.Watch(ctx, rec.ID, rep.event)
	con.endBar()
	if err != nil {
		return watchError(ctx, err, rec.ID, rec.Engine)
	}
	return printResult(res, f.jsonOut, stdout, stderr)
}
