package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/pipeline"
)

type cancelFlags struct {
	store   storeFlags
	reason  string
	jsonOut bool
}

func newCancelCmd(g *globalFlags) *cobra.Command {
	f := &cancelFlags{}
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run: its jobs are stopped, and whoever watches it is told",
		Example: `  framefleet cancel k3x9
  framefleet cancel k3x9p2ad --reason "wrong camera"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCancel(cmd.Context(), g, f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.store.register(cmd.Flags())
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, recorded in the run and shown to its watchers (default: cancelled by USER)")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the run's record as JSON")
	return cmd
}

func runCancel(ctx context.Context, g *globalFlags, f *cancelFlags, id string, stdout, stderr io.Writer) error {
	flt, _, err := f.store.open(ctx, g, stderr)
	if err != nil {
		return err
	}
	reason := f.reason
	if reason == "" {
		reason = "cancelled from the command line"
	}
	rec, err := flt.CancelBy(ctx, id, userName(), reason)
	if err != nil {
		return err
	}
	// Cancel leaves a finished run as it was: say so rather than claim a cancel.
	ours := rec.State == pipeline.RunCancelled && rec.Failure != nil && rec.Failure.CancelReason == reason
	if rec.State.Final() && !ours {
		return fmt.Errorf("run %s already %s: nothing to cancel", rec.ID, rec.State)
	}
	if f.jsonOut {
		return writeJSON(stdout, rec)
	}
	switch {
	case rec.HostBound:
		fmt.Fprintf(stdout, "run %s cancelled (%s); the framefleet process hosting it stops its workers\n", rec.ID, reason)
	case rec.Handle != nil:
		fmt.Fprintf(stdout, "run %s cancelled (%s); its jobs on %s were asked to stop: render job %s, stitch job %s\n",
			rec.ID, reason, engineTitle(rec.Engine), rec.Handle.RenderID, rec.Handle.StitchID)
	default:
		fmt.Fprintf(stdout, "run %s cancelled (%s) before its jobs were submitted\n", rec.ID, reason)
	}
	return nil
}

func userName() string {
	for _, k := range []string{"USER", "LOGNAME", "USERNAME"} {
		if u := strings.TrimSpace(os.Getenv(k)); u != "" {
			return u
		}
	}
	return "framefleet cancel"
}
