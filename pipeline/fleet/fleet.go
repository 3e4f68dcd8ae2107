// Package fleet builds framefleet's runs from the shared configuration: the
// store, the engines (local, and AWS Batch with the AWS configuration loaded
// the same way `framefleet setup` loads it), the environment the workers get,
// and the defaults of a render request. Every front-end (the CLI, the GitHub
// Action, the Slack bot) opens one Fleet instead of wiring these itself:
//
//	cfg, err := config.Load("", os.Getenv) // then cfg.Set for the user's flags
//	f, err := fleet.Open(ctx, cfg, fleet.Options{Logger: log})
//	req := f.NewRequest("shot.blend")      // adjust per run: req.Frames, req.Labels ...
//	rec, err := f.Submit(ctx, req)         // or f.Render(ctx, req, observe) to wait
//	res, err := f.Watch(ctx, rec.ID, observe)
package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/local"
	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// DefaultStore is the directory used when the configuration names no store
// (local engine only: Batch's containers need an S3 store).
const DefaultStore = "renders"

// BatchParallelism is the number of children Batch is assumed to run at once
// when chunks are sized automatically: enough to spread a film over a Spot
// fleet, while each child still renders several frames per Blender start.
const BatchParallelism = 50

// Poll intervals: a local run is cheap to check; Batch's API is throttled
// per account and its state lags by seconds anyway.
const (
	LocalPoll = time.Second
	BatchPoll = 10 * time.Second
)

// Options are what a front-end knows that the configuration does not.
type Options struct {
	// Logger receives the engines' logs (default: discarded).
	Logger *slog.Logger
	// Blender is the program local workers run (default: blender on PATH);
	// workers get it as FRAMEFLEET_BLENDER.
	Blender string
	// Workers overrides render.workers: Blender processes at once locally,
	// the assumed parallelism on Batch.
	Workers int
	// WorkerCommand is the local worker program and its leading arguments
	// (default: this executable's "worker"); tests whose executable is a
	// test binary point it at a built framefleet.
	WorkerCommand []string
	// Getenv reads the FRAMEFLEET_* variables when Open is given no
	// configuration (default os.Getenv).
	Getenv func(string) string
	// DefaultScope is the front-end's trust scope when the configuration
	// names none (default trusted: an operator's CLI).
	DefaultScope string
	// StoreTimeouts bound this process's S3 calls (zero fields: the store's
	// defaults, which fit the 30 s host lease); tests shorten them.
	StoreTimeouts store.Timeouts
}

// Fleet is a configured framefleet: the durable runs of one store
// (Submit, Watch, Render, Cancel, Get, List) on the configured engines;
// Runs.Store (f.Store) holds every run's inputs, records and results.
type Fleet struct {
	*pipeline.Runs
	// Config is the configuration as resolved (the store and, for Batch,
	// the region filled in); Open copies it, so the caller's is untouched.
	Config *config.Config

	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	engines map[string]pipeline.Engine
	aws     *aws.Config
	logs    logEventsAPI
}

// Open checks the configuration and opens the store. Engines are built when
// a run first needs one, so listing runs needs no AWS credentials for Batch.
// cfg nil loads the default configuration (./framefleet.yaml, FRAMEFLEET_*).
func Open(ctx context.Context, cfg *config.Config, opts Options) (*Fleet, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if cfg == nil {
		var err error
		if cfg, err = config.Load("", opts.Getenv); err != nil {
			return nil, err
		}
	}
	c := *cfg
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("workers %d: run at least 1 worker", opts.Workers)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{Config: &c, opts: opts, log: log, engines: map[string]pipeline.Engine{}}
	uri, err := c.StoreURI()
	if err != nil {
		return nil, err
	}
	if uri == "" {
		uri = DefaultStore
	}
	c.Store, c.Bucket, c.Prefix = uri, "", ""
	if c.Engine == config.EngineBatch {
		// Workers must reach the bucket in the region this client resolved
		// (profile, environment), not guess their own: resolve it before the
		// store and the request's worker environment are built.
		if _, err := f.awsConfig(ctx); err != nil {
			return nil, err
		}
	}
	// A front-end reports a wrong endpoint, scheme or addressing at once;
	// workers (which open the store themselves) ride out an outage instead.
	storeOpts := c.StoreOptions()
	storeOpts.FailFast = true
	storeOpts.Timeouts = opts.StoreTimeouts
	st, err := store.Open(ctx, uri, storeOpts)
	if err != nil {
		return nil, err
	}
	// The scope's store: every run of this front-end writes only there.
	if c.Scope == "" {
		c.Scope = cmp.Or(opts.DefaultScope, pipeline.ScopeTrusted)
	}
	if st, err = store.NewScoped(st, c.Scope); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	f.Runs = &pipeline.Runs{Store: st, Engine: f.Engine, EngineName: c.Engine, Logger: log,
		AllowNoConditionalWrites: c.S3.UnsafeNoConditionalWrites}
	return f, nil
}

// Scope is the trust scope of this fleet's runs.
func (f *Fleet) Scope() string { return store.ScopeOf(f.Runs.Store) }

// LoadAWSConfig loads the AWS configuration (credentials chain, shared
// config) for region, or the SDK's own region when region is empty, and
// fails with the fix when no region is found. `framefleet setup` uses it too.
func LoadAWSConfig(ctx context.Context, region string) (aws.Config, error) {
	var loadOpts []func(*awsconfig.LoadOptions) error
	if region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: set region in framefleet.yaml, FRAMEFLEET_REGION or AWS_REGION")
	}
	return awsCfg, nil
}

// awsConfig loads the AWS configuration once and records the region it resolved.
func (f *Fleet) awsConfig(ctx context.Context) (aws.Config, error) {
	if f.aws != nil {
		return *f.aws, nil
	}
	awsCfg, err := LoadAWSConfig(ctx, f.Config.Region)
	if err != nil {
		return aws.Config{}, err
	}
	f.Config.Region = awsCfg.Region
	f.aws = &awsCfg
	return awsCfg, nil
}

// EngineNames lists the engines a configuration may name.
func EngineNames() []string { return []string{config.EngineBatch, local.Name} }

// Engine returns the named engine, built on first use and then shared, so
// every run of this process goes through one local worker pool.
func (f *Fleet) Engine(ctx context.Context, name string) (pipeline.Engine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.engines[name]; ok {
		return e, nil
	}
	var (
		e   pipeline.Engine
		err error
	)
	switch name {
	case local.Name:
		e, err = local.New(local.Options{Workers: f.workers(), Blender: f.opts.Blender, Logger: f.log, WorkerCommand: f.opts.WorkerCommand})
	case config.EngineBatch:
		var awsCfg aws.Config
		if awsCfg, err = f.awsConfig(ctx); err != nil {
			return nil, err
		}
		opts := batch.OptionsFromConfig(f.Config)
		opts.Logger = f.log
		e, err = batch.New(awsCfg, opts)
	default:
		return nil, fmt.Errorf("unknown engine %q: use one of %s", name, strings.Join(EngineNames(), ", "))
	}
	if err != nil {
		return nil, err
	}
	f.engines[name] = e
	return e, nil
}

// workers is the local engine's Blender processes at once.
func (f *Fleet) workers() int {
	switch {
	case f.opts.Workers > 0:
		return f.opts.Workers
	case f.Config.Render.Workers > 0:
		return f.Config.Render.Workers
	}
	return DefaultWorkers(runtime.NumCPU())
}

// DefaultWorkers runs two Blenders on two cores, so the single-threaded
// parts of one (start-up, scene sync, saving PNGs) overlap the rendering of
// the other (docs/BENCHMARKS.md, "framefleet render"); one per two cores
// beyond that, at most 8 (each holds the whole scene in memory), and never
// more than the cores, so each gets at least one thread.
func DefaultWorkers(cpus int) int { return min(max(cpus/2, 2), cpus, 8) }

// NewRequest is a render of blendPath with every default the configuration
// and the engine imply; callers change what the user asked for per run.
func (f *Fleet) NewRequest(blendPath string) pipeline.Request {
	c := f.Config
	req := pipeline.Request{
		BlendPath:            blendPath,
		Engine:               c.Engine,
		Chunk:                c.Render.Chunk,
		ResolutionPercentage: c.Render.Resolution,
		Samples:              c.Render.Samples,
		Stitch:               plan.StitchMode(c.Render.Stitch),
		AllowMissing:         c.Render.AllowMissing,
		LinkExpiry:           time.Duration(c.LinkExpiry),
		PricePerVCPUHour:     c.PricePerVCPUHour,
		Env:                  f.WorkerEnv(),
		Scope:                f.Scope(),
		Ceiling:              c.Limits.Ceiling(),
	}
	if c.Engine == config.EngineBatch {
		// Each container gets its job's vCPUs (Blender's -t 0 would take the
		// whole host); the job definition's retry strategy applies (Attempts
		// 0) and the configured per-attempt timeout.
		req.Parallelism = BatchParallelism
		if w := max(f.opts.Workers, c.Render.Workers); w > 0 {
			req.Parallelism = w
		}
		req.Threads = max(1, int(c.Batch.VCPUs))
		req.AttemptTimeout = time.Duration(c.Batch.AttemptTimeout)
		req.PollInterval = BatchPoll
		return req
	}
	w := f.workers()
	req.Parallelism = w
	req.Threads = max(1, runtime.NumCPU()/w)
	req.Attempts = pipeline.DefaultAttempts
	req.PollInterval = LocalPoll
	return req
}

// WorkerEnv is what every worker needs to reach the same store the client
// uses (an S3-compatible endpoint, the resolved region, how often to try an
// S3 call) and to run the chosen Blender.
func (f *Fleet) WorkerEnv() map[string]string {
	env := map[string]string{}
	for k, v := range map[string]string{
		"FRAMEFLEET_REGION":      f.Config.Region,
		"FRAMEFLEET_S3_ENDPOINT": f.Config.S3.Endpoint,
		"FRAMEFLEET_BLENDER":     f.opts.Blender,
	} {
		if v != "" {
			env[k] = v
		}
	}
	if f.Config.S3.PathStyle {
		env["FRAMEFLEET_S3_PATH_STYLE"] = "true"
	}
	if n := f.Config.S3.MaxAttempts; n > 0 {
		env["FRAMEFLEET_S3_MAX_ATTEMPTS"] = strconv.Itoa(n)
	}
	return env
}

// Link is a link a person can open for a stored key, valid for the
// configured link_expiry (a file:// URL for a local store).
func (f *Fleet) Link(ctx context.Context, key string) (string, error) {
	return f.Store.Link(ctx, key, time.Duration(f.Config.LinkExpiry))
}

// Cost is what a run has used so far: vCPU time of its finished attempts
// and its price at the configured price_per_vcpu_hour.
type Cost struct {
	VCPUSeconds float64 `json:"vcpu_seconds"`
	USD         float64 `json:"usd"`
	// Final: the run finished and these are its result's figures.
	Final bool `json:"final"`
}

// CostSoFar is a run's cost: its result's once it succeeded, else the
// finished attempts the engine reports (one status call).
func (f *Fleet) CostSoFar(ctx context.Context, rec *pipeline.RunRecord) (Cost, error) {
	if rec.Result != nil {
		return Cost{VCPUSeconds: rec.Result.VCPUSeconds, USD: rec.Result.CostUSD, Final: true}, nil
	}
	if rec.Handle == nil {
		return Cost{Final: rec.State.Final()}, nil
	}
	eng, err := f.Engine(ctx, rec.Engine)
	if err != nil {
		return Cost{}, err
	}
	st, err := eng.Status(ctx, *rec.Handle)
	if err != nil {
		return Cost{}, fmt.Errorf("ask the %s engine about run %s: %w", rec.Engine, rec.ID, err)
	}
	// Earlier submissions of a resumed run used vCPUs too; Status knows only the current jobs.
	c := Cost{VCPUSeconds: rec.PriorVCPUSeconds + pipeline.VCPUSeconds(st.Attempts)}
	price := rec.Settings.PricePerVCPUHour
	if price == 0 {
		price = f.Config.PricePerVCPUHour
	}
	c.USD = c.VCPUSeconds / 3600 * price
	c.Final = rec.State.Final()
	return c, nil
}
