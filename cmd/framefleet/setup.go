package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newSetupCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "(in progress)",
		RunE:  func(cmd *cobra.Command, args []string) error { return errors.New("setup: not built yet") },
	}
}
