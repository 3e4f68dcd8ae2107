package main

import (
	"context"
	"io"

	"github.com/spf13/pflag"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/fleet"
)

// storeFlags are the flags of the verbs that work on recorded runs: which
// configuration, and which store (as render's --out).
type storeFlags struct {
	config configFlags
	out    string
}

func (s *storeFlags) register(fl *pflag.FlagSet) {
	s.config.register(fl)
	fl.StringVar(&s.out, "out", "", "the store the runs are in, as given to render --out (default: the configuration's store, else ./renders)")
}

// open builds the fleet of the configured store; runs name their own engine.
func (s *storeFlags) open(ctx context.Context, g *globalFlags, stderr io.Writer) (*fleet.Fleet, *console, error) {
	cfg, err := s.config.load()
	if err != nil {
		return nil, nil, err
	}
	if s.out != "" {
		cfg.Store, cfg.Bucket, cfg.Prefix = s.out, "", ""
	}
	con, err := g.console(stderr)
	if err != nil {
		return nil, nil, err
	}
	f, err := fleet.Open(ctx, cfg, fleet.Options{Logger: con.log})
	if err != nil {
		return nil, nil, err
	}
	return f, con, nil
}

// openRun opens the store and reads the run named by id (or a unique prefix of it).
func (s *storeFlags) openRun(ctx context.Context, g *globalFlags, id string, stderr io.Writer) (*fleet.Fleet, *console, *pipeline.RunRecord, error) {
	flt, con, err := s.open(ctx, g, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := flt.Get(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	return flt, con, rec, nil
}
