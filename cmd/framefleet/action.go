package main

import (
	"context"
	"errors"
	"os"

	"github.com/sethvargo/go-githubactions"
	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/action"
)

// newActionCmd runs the GitHub Action (action.yml's entrypoint): inputs and
// context come from the INPUT_* and GITHUB_* environment the runner sets.
func newActionCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "action",
		Short: "Run as the GitHub Action: render the .blend files a pull request or push changed and report on GitHub",
		Long: "Run as the GitHub Action (see action.yml). Reads the INPUT_* and GITHUB_* variables the runner sets,\n" +
			"renders what the event changed, and reports in one pull request comment, a commit status per file\n" +
			"and the step summary. With INPUT_MODE=refresh it updates the reports of pending runs instead.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAction(cmd.Context(), g, cmd)
		},
	}
}

func runAction(ctx context.Context, g *globalFlags, cmd *cobra.Command) error {
	out := cmd.OutOrStdout()
	log := g.logger(out) // the runner shows stdout and stderr alike; one stream keeps them in order
	workspace := os.Getenv("GITHUB_WORKSPACE")
	err := action.Main(ctx, action.Options{
		Getenv: os.Getenv,
		Out:    out,
		Logger: log,
		OpenRuns: func(ctx context.Context, in action.Inputs) (action.Runs, error) {
			return action.OpenFleet(ctx, in, action.FleetOptions{Getenv: os.Getenv, Logger: log, Workspace: workspace})
		},
	})
	var failed *action.RendersFailedError
	if err != nil && !errors.As(err, &failed) && ctx.Err() == nil {
		// An annotation on the run's page, not only a line in the log
		// (failed renders are annotated per file already).
		githubactions.New(githubactions.WithWriter(out), githubactions.WithGetenv(os.Getenv)).Errorf("%s", err)
	}
	return err
}
