// Package pipelinetest helps tests drive one engine through pipeline.Runs.
package pipelinetest

import (
	"context"
	"errors"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Render renders req on eng, storing everything in st, reporting to obs
// (which may be nil), as a front-end with one engine would: Runs.Render,
// and the run cancelled when ctx ends before it did.
func Render(ctx context.Context, eng pipeline.Engine, st store.Store, req pipeline.Request, obs func(pipeline.Event)) (*pipeline.Result, error) {
	name := "engine"
	if n, ok := eng.(interface{ Name() string }); ok {
		name = n.Name()
	}
	if req.Engine == "" {
		req.Engine = name
	}
	runs := &pipeline.Runs{Store: st, EngineName: req.Engine, Engine: func(context.Context, string) (pipeline.Engine, error) { return eng, nil }}
	var id string
	res, err := runs.Render(ctx, req, func(ev pipeline.Event) {
		if id == "" {
			id = ev.RunID
		}
		if obs != nil {
			obs(ev)
		}
	})
	if err != nil && ctx.Err() != nil && id != "" {
		// The caller's context is gone; stopping the workers must not be.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, cerr := runs.Cancel(cctx, id, "render interrupted ("+context.Cause(ctx).Error()+")"); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return res, err
}
