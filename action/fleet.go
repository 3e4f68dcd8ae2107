package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/compare"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

// DefaultStoreDir is the local engine's store in the workspace when the
// configuration names none: a visible directory, so actions/upload-artifact
// (which skips hidden files) can publish it.
const DefaultStoreDir = "framefleet-renders"

// FleetOptions are what OpenFleet needs beyond the inputs.
type FleetOptions struct {
	Getenv    func(string) string
	Logger    *slog.Logger
	Workspace string
	// Blender is the program local workers run (default: blender on PATH).
	Blender string
	// Workers overrides how many Blenders run at once locally (0: the configuration's).
	Workers int
	// WorkerCommand is the local worker program (default: this executable's "worker").
	WorkerCommand []string
}

// OpenFleet opens framefleet's durable runs as the inputs configure them:
// framefleet.yaml (input config, else the workspace's), FRAMEFLEET_*
// variables, then the inputs.
func OpenFleet(ctx context.Context, in Inputs, o FleetOptions) (Runs, error) {
	path := in.ConfigPath
	if path != "" && !filepath.IsAbs(path) {
		path = filepath.Join(o.Workspace, path)
	}
	if path == "" {
		if p := filepath.Join(o.Workspace, config.FileName); fileExists(p) {
			path = p
		}
	}
	cfg, err := config.Load(path, o.Getenv)
	if err != nil {
		if in.ConfigPath != "" {
			return nil, fmt.Errorf("input config: %w", err)
		}
		return nil, err
	}
	for _, s := range []struct{ input, key, value string }{
		{"engine", "engine", in.Engine},
		{"bucket", "bucket", in.Bucket},
		{"queue", "batch.job_queue", in.Queue},
		{"job-definition", "batch.job_definition", in.JobDefinition},
		{"region", "region", in.Region},
		{"chunk-size", "render.chunk", nonZero(in.ChunkSize)},
		{"resolution", "render.resolution", nonZero(in.Resolution)},
		{"samples", "render.samples", nonZero(in.Samples)},
	} {
		if s.value == "" {
			continue
		}
		if err := cfg.Set(s.key, s.value); err != nil {
			return nil, fmt.Errorf("input %s: %w", s.input, err)
		}
	}
	if uri, err := cfg.StoreURI(); err == nil && uri == "" && cfg.Engine == config.EngineLocal {
		cfg.Store = filepath.Join(o.Workspace, DefaultStoreDir)
	}
	if cfg.Engine == config.EngineBatch && cfg.Batch.JobQueue == "" {
		return nil, errors.New("input queue is empty: the batch engine needs your AWS Batch job queue (input queue, batch.job_queue in framefleet.yaml, or FRAMEFLEET_JOB_QUEUE)")
	}
	if cfg.Engine == config.EngineBatch && cfg.Bucket == "" && cfg.Store == "" {
		return nil, errors.New("input bucket is empty: the batch engine needs the S3 bucket its containers write to (input bucket, or bucket in framefleet.yaml)")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := fleet.Open(ctx, cfg, fleet.Options{Logger: log, Getenv: o.Getenv, Blender: o.Blender, Workers: o.Workers, WorkerCommand: o.WorkerCommand})
	if err != nil {
		return nil, err
	}
	return &fleetRuns{f: f, runs: f.Runs, log: log}, nil
}

func nonZero(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// fleetRuns implements Runs with pipeline.Runs.
type fleetRuns struct {
	f    *fleet.Fleet
	runs *pipeline.Runs
	log  *slog.Logger
}

func (r *fleetRuns) Submit(ctx context.Context, s Submission) (Run, error) {
	req := r.f.NewRequest(s.BlendPath)
	req.Frames = s.Frames
	req.Labels = maps.Clone(s.Labels)
	req.SourceName = s.SourceName
	var cmp RunRef
	if s.ComparePath != "" {
		// The base renders with the same settings, so an earlier render of
		// the base is a cache hit.
		base := r.f.NewRequest(s.ComparePath)
		base.Frames = s.Frames
		base.SourceName = s.CompareSource
		base.Labels = map[string]string{LabelRepo: s.Labels[LabelRepo], LabelRole: "compare-base"}
		rec, err := r.runs.Submit(ctx, base)
		if err != nil {
			return Run{}, fmt.Errorf("render the base for the comparison: %w", err)
		}
		cmp = RunRef{CompareBase: rec.ID, BaseLabel: s.BaseLabel, HeadLabel: s.HeadLabel}
	}
	rec, err := r.runs.Submit(ctx, req)
	if err != nil {
		return Run{}, err
	}
	cmp.ID = rec.ID
	return r.Get(ctx, cmp)
}

func (r *fleetRuns) Watch(ctx context.Context, ref RunRef, obs func(Run)) (Run, error) {
	id := ref.ID
	// A comparison's base is followed beside the head (a local run needs
	// its watcher), and composed once both are done.
	baseID := ref.CompareBase
	baseDone := make(chan error, 1)
	if baseID != "" {
		go func() {
			_, err := r.runs.Watch(ctx, baseID, nil)
			baseDone <- err
		}()
	}
	_, werr := r.runs.Watch(ctx, id, func(ev pipeline.Event) {
		if ev.View != nil {
			obs(r.run(ctx, *ev.View, ref))
		}
	})
	if baseID != "" {
		if berr := <-baseDone; berr == nil && werr == nil {
			r.compare(ctx, id, ref)
		} else if berr != nil {
			r.log.Warn("no before/after comparison: the base render failed", "run", id, "base", baseID, "err", berr)
		}
	}
	// The record is the truth, whatever watching returned (a failed run is
	// a result, not an error of the action's).
	end, err := r.Get(context.WithoutCancel(ctx), ref)
	if err != nil {
		return end, errors.Join(werr, err)
	}
	if !end.Final() && werr != nil {
		return end, werr
	}
	return end, nil
}

func (r *fleetRuns) Get(ctx context.Context, ref RunRef) (Run, error) {
	v, err := r.runs.View(ctx, ref.ID)
	if err != nil {
		return Run{}, err
	}
	return r.run(ctx, *v, ref), nil
}

func (r *fleetRuns) Cancel(ctx context.Context, id, by, reason string) error {
	_, err := r.runs.CancelBy(ctx, id, by, reason)
	return err
}

// reportsPrefix is where the action keeps its report index in the store,
// beside the runs: github/<owner>/<repo>/reports/<pr-N | sha-SHA>.json.
func reportsPrefix(repo string) string { return "github/" + repo + "/reports/" }

func reportKeyOf(rep Report) string {
	keyed := ""
	if rep.CommentKey != "" {
		sum := sha256.Sum256([]byte(rep.CommentKey))
		keyed = "-key-" + hex.EncodeToString(sum[:6])
	}
	if rep.PR > 0 {
		return reportsPrefix(rep.Repo) + "pr-" + strconv.Itoa(rep.PR) + keyed + ".json"
	}
	return reportsPrefix(rep.Repo) + "sha-" + rep.SHA + keyed + ".json"
}

func (r *fleetRuns) SaveReport(ctx context.Context, rep Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	key := reportKeyOf(rep)
	for range 5 { // conditional writes: two jobs of one PR never lose each other's update
		old, version, err := r.f.Store.GetVersioned(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			version = ""
		case err != nil:
			return fmt.Errorf("read the report index %s: %w", key, err)
		default:
			var cur Report
			if json.Unmarshal(old, &cur) == nil && cur.SHA != rep.SHA && cur.StartedAt.After(rep.StartedAt) {
				r.log.Info("a newer push's report is saved already; keeping it", "key", key, "sha", cur.SHA)
				return nil
			}
		}
		if _, err = r.f.Store.PutIfVersion(ctx, key, data, version); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("store the report index %s: %w", key, err)
		}
	}
	return fmt.Errorf("store the report index %s: %w", key, store.ErrConflict)
}

func (r *fleetRuns) Reports(ctx context.Context, repo string, since time.Time) ([]Report, error) {
	objs, err := r.f.Store.List(ctx, reportsPrefix(repo))
	if err != nil {
		return nil, fmt.Errorf("list the report index: %w", err)
	}
	var out []Report
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") || (!o.ModTime.IsZero() && o.ModTime.Before(since)) {
			continue
		}
		rc, err := r.f.Store.Get(ctx, o.Key)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", o.Key, err)
		}
		var rep Report
		err = json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(&rep)
		rc.Close()
		if err != nil {
			r.log.Warn("skipping an unreadable report index", "key", o.Key, "err", err)
			continue
		}
		out = append(out, rep)
	}
	return out, nil
}

// run is a view with its comparison, once composed.
func (r *fleetRuns) run(ctx context.Context, v pipeline.RunView, ref RunRef) Run {
	ref.ID = ""
	out := Run{View: v, Compare: ref, Labels: v.Labels}
	if v.State == pipeline.RunSucceeded {
		r.comparison(ctx, &out)
	}
	return out
}

// compare composes the side-by-side of a succeeded head run and its base.
func (r *fleetRuns) compare(ctx context.Context, head string, ref RunRef) {
	opts := compare.Options{LinkExpiry: time.Duration(r.f.Config.LinkExpiry), Logger: r.log,
		BaseLabel: ref.BaseLabel, HeadLabel: ref.HeadLabel}
	if _, err := compare.SideBySide(ctx, r.f.Store, ref.CompareBase, head, opts); err != nil {
		r.log.Warn("no before/after comparison", "run", head, "base", ref.CompareBase, "err", err)
	}
}

// comparison fills the links of a composed comparison, if there is one.
func (r *fleetRuns) comparison(ctx context.Context, v *Run) {
	base := v.Compare.CompareBase
	if base == "" {
		return
	}
	rc, err := r.f.Store.Get(ctx, compare.RecordKey(v.ID(), base))
	if err != nil {
		return // not composed (yet)
	}
	var res compare.Result
	err = json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&res)
	rc.Close()
	if err != nil || res.VideoKey == "" {
		return
	}
	v.Comparison, v.ComparisonPath = r.link(ctx, res.VideoKey), r.path(res.VideoKey)
	v.ComparisonPreview = r.link(ctx, res.PreviewKey)
}

func (r *fleetRuns) link(ctx context.Context, key string) string {
	if key == "" {
		return ""
	}
	l, err := r.f.Link(ctx, key)
	if err != nil {
		return ""
	}
	return l
}

// path is a key's local path when the store is a directory.
func (r *fleetRuns) path(key string) string {
	if p, ok := r.f.Store.(interface{ Path(string) string }); ok && key != "" {
		return p.Path(key)
	}
	return ""
}
