package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newRenderCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "render",
		Short: "(in progress)",
		RunE:  func(cmd *cobra.Command, args []string) error { return errors.New("render: not built yet") },
	}
}
