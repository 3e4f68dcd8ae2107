package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newInspectCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect",
		Short: "(in progress)",
		RunE:  func(cmd *cobra.Command, args []string) error { return errors.New("inspect: not built yet") },
	}
}
