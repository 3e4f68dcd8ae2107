package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/s3test"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

// These tests put the store behind the faults real S3 servers show: a
// server that accepts connections and never answers, one that ignores
// conditional writes, and configuration mistakes on first use.

// s3Env gives this process and its workers the test server's credentials,
// and nothing of the machine's AWS configuration.
func s3Env(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey, "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED": "true", "FRAMEFLEET_CONFIG": "",
	} {
		t.Setenv(k, v)
	}
}

func s3Config(srv *s3test.Server, endpoint string) *config.Config {
	cfg := config.Defaults()
	cfg.Engine = "local"
	cfg.Store = "s3://" + srv.Bucket + "/ff"
	cfg.Region = s3test.Region
	cfg.S3.Endpoint = endpoint
	cfg.S3.PathStyle = true
	return cfg
}

// shortStoreTimeouts keep tests against a hung server short; no test
// asserts how long anything took.
var shortStoreTimeouts = store.Timeouts{Connect: time.Second, ResponseHeader: 500 * time.Millisecond, Call: time.Second, Stall: time.Second}

func openS3Fleet(t *testing.T, cfg *config.Config) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Open(context.Background(), cfg, fleet.Options{Workers: 1, StoreTimeouts: shortStoreTimeouts,
		WorkerCommand: []string{framefleetBinary(t), "worker"}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tinyRender is a few frames of the demo scene, as cheap as Blender makes them.
func tinyRender(f *fleet.Fleet, frames string) pipeline.Request {
	req := f.NewRequest(filepath.Join(testenv.RepoRoot(), "examples", "demo.blend"))
	req.Frames, req.Chunk, req.ResolutionPercentage, req.Samples = frames, 2, 10, 1
	return req
}

// events collects a render's events for the test to look at.
type events struct {
	mu  sync.Mutex
	all []pipeline.Event
}

func (e *events) add(ev pipeline.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) of(kind pipeline.EventKind) []pipeline.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []pipeline.Event
	for _, ev := range e.all {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func TestConfigurationMistakesOnFirstUseFailFastWithTheHint(t *testing.T) {
	s3Env(t)
	srv := s3test.Start(t)
	for _, tc := range []struct {
		name     string
		endpoint string
		kind     store.HintKind
		words    string // in the CLI's message
	}{
		{"refused port", s3test.RefusedEndpoint(t), store.HintEndpoint, "nothing accepts connections at"},
		{"https on a plain-HTTP port", srv.WrongSchemeEndpoint(), store.HintScheme, "use s3.endpoint " + srv.Endpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := openS3Fleet(t, s3Config(srv, tc.endpoint))
			_, err := f.List(context.Background(), pipeline.ListFilter{})
			var hint *store.HintError
			if !errors.As(err, &hint) || hint.Kind != tc.kind || !hint.FirstContact {
				t.Fatalf("runs on first use: %v; want a *store.HintError of kind %q from the first-contact path", err, tc.kind)
			}
			var outage *pipeline.OutageError
			if errors.As(err, &outage) {
				t.Errorf("a configuration mistake was retried as an outage: %v", err)
			}
			// A render fails the same way, before anything is planned.
			_, err = f.Submit(context.Background(), tinyRender(f, "1-2"))
			if !errors.As(err, &hint) || hint.Kind != tc.kind || !hint.FirstContact || errors.As(err, &outage) {
				t.Errorf("render on first use: %v; want the same first-contact hint, not an outage", err)
			}

			t.Setenv("FRAMEFLEET_STORE", "s3://"+srv.Bucket+"/ff")
			t.Setenv("FRAMEFLEET_S3_ENDPOINT", tc.endpoint)
			t.Setenv("FRAMEFLEET_S3_PATH_STYLE", "true")
			t.Setenv("FRAMEFLEET_REGION", s3test.Region)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"runs"}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), tc.words) {
				t.Errorf("framefleet runs: exit %d, stderr %q; want the hint %q", code, stderr.String(), tc.words)
			}
		})
	}
}

func TestRunsAnswersWhenTheStoreHangs(t *testing.T) {
	s3Env(t)
	srv := s3test.Start(t)
	t.Setenv("FRAMEFLEET_STORE", "s3://"+srv.Bucket+"/ff")
	t.Setenv("FRAMEFLEET_S3_ENDPOINT", srv.Endpoint)
	t.Setenv("FRAMEFLEET_S3_PATH_STYLE", "true")
	t.Setenv("FRAMEFLEET_REGION", s3test.Region)
	srv.Hang()
	defer srv.Resume()
	// The real command with its default timeouts: it must come back with
	// the store's timeout, not hang until it is killed.
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"runs"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "no answer within") {
		t.Fatalf("framefleet runs against a hung server: exit %d, stderr %q; want the store's timeout", code, stderr.String())
	}
	if srv.Held() == 0 {
		t.Error("no request reached the hung server")
	}

	f := openS3Fleet(t, s3Config(srv, srv.Endpoint))
	if _, err := f.List(context.Background(), pipeline.ListFilter{}); !errors.Is(err, store.ErrTimeout) {
		t.Errorf("List against a hung server: %v; want store.ErrTimeout", err)
	}
}

func TestRenderPastTheOutageBudgetFailsClearlyAndSaysSoWhileWaiting(t *testing.T) {
	testenv.Blender(t)
	s3Env(t)
	srv := s3test.Start(t)
	f := openS3Fleet(t, s3Config(srv, srv.Endpoint))
	if _, err := f.List(context.Background(), pipeline.ListFilter{}); err != nil {
		t.Fatal(err) // the store answered once: from now on a failure is an outage
	}
	srv.Hang()
	defer srv.Resume()
	req := tinyRender(f, "1-2")
	req.StoreOutageBudget = 2 * time.Second
	var evs events
	_, err := f.Render(context.Background(), req, evs.add)
	var outage *pipeline.OutageError
	if !errors.As(err, &outage) || !errors.Is(err, store.ErrTimeout) {
		t.Fatalf("render against a hung store: %v; want a *pipeline.OutageError caused by store timeouts", err)
	}
	if !strings.Contains(err.Error(), "still failing after 2s") {
		t.Errorf("error %q does not name the budget it spent", err)
	}
	waits := evs.of(pipeline.EventStoreUnreachable)
	if len(waits) == 0 || !strings.Contains(waits[0].Message, "store unreachable since") || !strings.Contains(waits[0].Message, "(outage budget 2s)") {
		t.Errorf("waiting events %+v; want one saying since when and until when the store is retried", waits)
	}
}

func TestOutageBeforeSubmitIsRiddenOutAndSaid(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	s3Env(t)
	srv := s3test.Start(t)
	f := openS3Fleet(t, s3Config(srv, srv.Endpoint))
	if _, err := f.List(context.Background(), pipeline.ListFilter{}); err != nil {
		t.Fatal(err)
	}
	srv.Down()
	var evs events
	waiting := make(chan struct{})
	var once sync.Once
	obs := func(ev pipeline.Event) {
		evs.add(ev)
		if ev.Kind == pipeline.EventStoreUnreachable {
			once.Do(func() { close(waiting) })
		}
	}
	go func() { <-waiting; srv.Up() }() // back once the wait was said
	res, err := f.Render(context.Background(), tinyRender(f, "1-2"), obs)
	if err != nil {
		t.Fatalf("render across an outage before submit: %v", err)
	}
	if res.FrameCount != 2 {
		t.Errorf("%d frames, want 2", res.FrameCount)
	}
	waits := evs.of(pipeline.EventStoreUnreachable)
	if len(waits) == 0 || !strings.Contains(waits[0].Message, "store unreachable since") || !strings.Contains(waits[0].Message, "(outage budget 5 min)") {
		t.Fatalf("waiting events %+v; want the waiting message", waits)
	}
	if submitted := evs.of(pipeline.EventSubmitted); len(submitted) == 0 || submitted[0].Time.Before(waits[0].Time) {
		t.Errorf("the wait was not said before the run was submitted: %+v", evs.all)
	}
}

func TestRenderRidesOutAShortHang(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	s3Env(t)
	srv := s3test.Start(t)
	f := openS3Fleet(t, s3Config(srv, srv.Endpoint))
	var hangOnce sync.Once
	res, err := f.Render(context.Background(), tinyRender(f, "1-4"), func(ev pipeline.Event) {
		if ev.Kind == pipeline.EventFirstFrame {
			hangOnce.Do(func() { srv.HangFor(3 * time.Second) })
		}
	})
	if err != nil {
		t.Fatalf("render across a 3 s hang: %v", err)
	}
	if res.FrameCount != 4 {
		t.Errorf("%d frames, want 4", res.FrameCount)
	}
	if srv.Held() == 0 {
		t.Error("no request met the hang: the test proved nothing")
	}
}

func TestStoreWithoutConditionalWrites(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	s3Env(t)
	srv := s3test.Start(t, s3test.WithoutConditionalWrites())
	cfg := s3Config(srv, srv.Endpoint)
	f := openS3Fleet(t, cfg)
	_, err := f.Submit(context.Background(), tinyRender(f, "1-2"))
	var refused *store.NoConditionalWritesError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "s3.unsafe_no_conditional_writes: true") {
		t.Fatalf("render on a store without conditional writes: %v; want it refused with the setting named", err)
	}

	cfg.S3.UnsafeNoConditionalWrites = true
	f = openS3Fleet(t, cfg)
	var ids []string
	for i := range 2 {
		var evs events
		res, err := f.Render(context.Background(), tinyRender(f, "1-2"), evs.add)
		if err != nil {
			t.Fatalf("render %d: %v", i+1, err)
		}
		ids = append(ids, res.RunID)
		warn := evs.of(pipeline.EventWarning)
		if len(warn) != 1 || !strings.Contains(warn[0].Message, "not deduplicated") {
			t.Errorf("render %d warnings %+v; want one saying it is not deduplicated", i+1, warn)
		}
		rec, err := f.Get(context.Background(), res.RunID)
		if err != nil || !strings.Contains(rec.NotDeduplicated, "ignores conditional writes") {
			t.Errorf("run %s's record says not_deduplicated %q (%v); want the reason", res.RunID, rec.NotDeduplicated, err)
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("two identical renders made one run %s: without conditional writes each must be its own", ids[0])
	}
}

func TestGCFindsTheLeftoversOfARunDeletedMidRender(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	s3Env(t)
	srv := s3test.Start(t)
	f := openS3Fleet(t, s3Config(srv, srv.Endpoint))
	ctx := context.Background()
	var deleteOnce sync.Once
	var runID string
	// Deleting the run's record when its first frame is stored leaves, by
	// construction, that frame and the plan without a readable run: whatever
	// else the workers store afterwards joins them. (Deleting the whole
	// directory could find every frame already stored on a busy machine.)
	deleteRun := func(id string) {
		if err := f.Store.Delete(ctx, pipeline.RecordKey(id)); err != nil {
			t.Error(err)
		}
	}
	_, err := f.Render(ctx, tinyRender(f, "1-8"), func(ev pipeline.Event) {
		if ev.Kind == pipeline.EventFirstFrame {
			deleteOnce.Do(func() { runID = ev.RunID; deleteRun(ev.RunID) })
		}
	})
	if runID == "" {
		t.Fatalf("no frame was stored before the render ended: %v", err)
	}
	t.Logf("render after its record was deleted: %v", err)
	// Whatever the workers stored after the deletion is now an orphan.
	left, lerr := f.Store.List(ctx, store.RunPrefix(runID))
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(left) == 0 {
		t.Fatal("the run's frames and plan are gone: nothing to find")
	}
	f.Clock = aheadClock{2 * pipeline.DefaultGCGrace}
	plan, err := f.GC(ctx, pipeline.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(plan.Groups, func(g pipeline.GCGroup) bool { return g.What == store.RunPrefix(runID) })
	// Workers may still be storing: the plan holds at least what was listed.
	if i < 0 || plan.Groups[i].Reason != pipeline.GCOrphanRun || len(plan.Groups[i].Objects) < len(left) {
		t.Fatalf("gc plan %+v; want runs/%s/ with its %d leftover objects as an orphaned run", plan.Groups, runID, len(left))
	}
	if n, err := f.DeleteGarbage(ctx, plan); err != nil || n != plan.Objects {
		t.Fatalf("removed %d of %d: %v", n, plan.Objects, err)
	}
	for _, o := range plan.Groups[i].Objects {
		if _, err := f.Store.Stat(ctx, o.Key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s is still there after gc removed it: %v", o.Key, err)
		}
	}
}

// aheadClock is the real clock moved ahead by d.
type aheadClock struct{ d time.Duration }

func (c aheadClock) Now() time.Time                         { return time.Now().Add(c.d) }
func (c aheadClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
