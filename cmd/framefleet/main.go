// Command framefleet renders Blender scenes locally or on AWS Batch.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		err = cliWording(err)
		fmt.Fprintln(stderr, "framefleet:", err)
		var ec exitCoder
		switch {
		case errors.As(err, &ec):
			return ec.ExitCode()
		case ctx.Err() != nil:
			return 130 // interrupted, as shells report Ctrl-C
		}
		return 1
	}
	return 0
}

// exitCoder lets a command choose its exit status (e.g. the worker's "transient" code).
type exitCoder interface{ ExitCode() int }

type globalFlags struct {
	verbose   bool
	logFormat string
	// isTerminal decides whether stderr gets sentences and a progress bar
	// (default: whether it is a terminal); tests inject it.
	isTerminal func(io.Writer) bool
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "framefleet",
		Short:         "Render Blender scenes to video, locally or on AWS Batch",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log debug details to stderr")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", logAuto,
		"stderr's format: auto (sentences and a progress bar on a terminal, else text), text or json (structured log lines)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if !slices.Contains(logFormats, g.logFormat) {
			return fmt.Errorf("--log-format %q: use %s", g.logFormat, strings.Join(logFormats, ", "))
		}
		return nil
	}
	root.AddCommand(
		newInspectCmd(g),
		newRenderCmd(g),
		newWorkerCmd(g),
		newSetupCmd(g),
		newRunsCmd(g),
		newStatusCmd(g),
		newWatchCmd(g),
		newCancelCmd(g),
		newGCCmd(g),
		newLogsCmd(g),
		newBotCmd(g),
		newActionCmd(g),
	)
	return root
}

// logger is the logger of stderr's console (see --log-format).
func (g *globalFlags) logger(w io.Writer) *slog.Logger {
	c, err := g.console(w)
	if err != nil { // --log-format is checked before any command runs
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return c.log
}
