package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newWorkerCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "(in progress)",
		RunE:  func(cmd *cobra.Command, args []string) error { return errors.New("worker: not built yet") },
	}
}
