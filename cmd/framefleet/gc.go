package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/framefleet/framefleet/pipeline"
)

type gcFlags struct {
	store     storeFlags
	delete    bool
	retention time.Duration
	grace     time.Duration
	prefix    string
	jsonOut   bool
}

func newGCCmd(g *globalFlags) *cobra.Command {
	f := &gcFlags{}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "List (and with --delete remove) objects that belong to no readable run",
		Long: `Gc finds objects in the store that no readable run owns:

  - an orphaned run: runs/<id>/ without its run record (a run directory
    deleted while its workers kept storing frames),
  - index entries and cache entries naming runs that do not exist,
  - scenes (blends/) and inputs (inputs/) that no run references, older than
    --retention.

It prints what it would remove and removes nothing unless --delete is given.
Orphans written to within --grace are kept: a run may be being recorded.`,
		Example: `  framefleet gc
  framefleet gc --retention 720h --delete`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGC(cmd.Context(), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	f.store.register(fl)
	fl.BoolVar(&f.delete, "delete", false, "remove what is listed (default: only list it)")
	fl.DurationVar(&f.retention, "retention", pipeline.DefaultGCRetention, "keep unreferenced scenes and inputs younger than this")
	fl.DurationVar(&f.grace, "grace", pipeline.DefaultGCGrace, "keep orphans written to more recently than this")
	fl.StringVar(&f.prefix, "prefix", "", "collect only under this prefix of the store (default: the whole store)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the plan as JSON")
	return cmd
}

func runGC(ctx context.Context, g *globalFlags, f *gcFlags, stdout, stderr io.Writer) error {
	if f.retention <= 0 || f.grace <= 0 {
		return fmt.Errorf("--retention %s, --grace %s: give positive durations such as 168h and 1h", f.retention, f.grace)
	}
	flt, _, err := f.store.open(ctx, g, stderr)
	if err != nil {
		return err
	}
	plan, err := flt.GC(ctx, pipeline.GCOptions{Prefix: f.prefix, Retention: f.retention, Grace: f.grace})
	if err != nil {
		return err
	}
	if f.jsonOut && !f.delete {
		return writeJSON(stdout, plan)
	}
	verb := "would remove"
	if f.delete {
		verb = "removing"
	}
	for _, grp := range plan.Groups {
		if len(grp.Objects) == 1 && grp.Objects[0].Key == grp.What {
			fmt.Fprintf(stdout, "%s %s (%s): %s\n", verb, grp.What, formatSize(grp.Bytes), grp.Reason)
		} else {
			fmt.Fprintf(stdout, "%s %s (%s, %s): %s\n", verb, grp.What, plural(len(grp.Objects), "object"), formatSize(grp.Bytes), grp.Reason)
		}
	}
	for _, k := range plan.Kept {
		fmt.Fprintf(stdout, "kept %s\n", k)
	}
	where := flt.Store.URI()
	if f.prefix != "" {
		where += " under " + f.prefix
	}
	if !f.delete {
		if plan.Objects == 0 {
			fmt.Fprintf(stdout, "nothing to remove in %s\n", where)
			return nil
		}
		fmt.Fprintf(stdout, "%s (%s) in %s belong to no readable run: run again with --delete to remove them\n",
			plural(plan.Objects, "object"), formatSize(plan.Bytes), where)
		return nil
	}
	n, err := flt.DeleteGarbage(ctx, plan)
	fmt.Fprintf(stdout, "removed %d of %d objects (%s) from %s\n", n, plan.Objects, formatSize(plan.Bytes), where)
	return err
}
