package fleet_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/fleet"
	"github.com/framefleet/framefleet/pipeline/store"
)

// isolateAWS keeps the developer's AWS files and metadata service out of a test.
func isolateAWS(t *testing.T, region string) {
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "a")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "b")
	t.Setenv("AWS_REGION", region)
	t.Setenv("AWS_DEFAULT_REGION", "")
}

func configWith(t *testing.T, sets map[string]string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	for k, v := range sets {
		if err := cfg.Set(k, v); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	return cfg
}

func batchSettings(extra map[string]string) map[string]string {
	m := map[string]string{
		"engine":                "batch",
		"bucket":                "renders",
		"batch.job_queue":       "q",
		"batch.image":           "123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet:1",
		"batch.blender_version": "3.4.1",
		"batch.vcpus":           "4",
		"s3.endpoint":           "http://127.0.0.1:1",
		"s3.path_style":         "true",
	}
	maps.Copy(m, extra)
	return m
}

func TestNewRequestDefaults(t *testing.T) {
	isolateAWS(t, "eu-west-3")
	dir := t.TempDir()
	tests := []struct {
		name string
		sets map[string]string
		opts fleet.Options
		want pipeline.Request
	}{
		{
			name: "local",
			sets: map[string]string{"store": dir, "render.workers": "2", "render.resolution": "25", "render.chunk": "4", "link_expiry": "1h"},
			opts: fleet.Options{Blender: "/opt/blender/blender"},
			want: pipeline.Request{Scope: pipeline.ScopeTrusted, Engine: "local", Chunk: 4, Parallelism: 2, ResolutionPercentage: 25, Threads: max(1, runtime.NumCPU()/2),
				Stitch: "concat", Attempts: pipeline.DefaultAttempts, PollInterval: fleet.LocalPoll, LinkExpiry: time.Hour,
				Env: map[string]string{"FRAMEFLEET_BLENDER": "/opt/blender/blender"}},
		},
		{
			name: "local, workers from the front-end",
			sets: map[string]string{"store": dir, "render.workers": "2"},
			opts: fleet.Options{Workers: 1},
			want: pipeline.Request{Scope: pipeline.ScopeTrusted, Engine: "local", Parallelism: 1, Threads: runtime.NumCPU(), Stitch: "concat", Attempts: pipeline.DefaultAttempts,
				PollInterval: fleet.LocalPoll, LinkExpiry: store.MaxLinkExpiry, Env: map[string]string{}},
		},
		{
			// The job definition's retry strategy (Attempts 0), the job's vCPUs
			// as threads, the region the SDK resolved for the workers.
			name: "batch",
			sets: batchSettings(map[string]string{"batch.attempt_timeout": "20m", "price_per_vcpu_hour": "0.05", "s3.max_attempts": "3"}),
			want: pipeline.Request{Scope: pipeline.ScopeTrusted, Engine: "batch", Parallelism: fleet.BatchParallelism, Threads: 4, Stitch: "concat", AttemptTimeout: 20 * time.Minute,
				PollInterval: fleet.BatchPoll, LinkExpiry: store.MaxLinkExpiry, PricePerVCPUHour: 0.05,
				Env: map[string]string{"FRAMEFLEET_REGION": "eu-west-3", "FRAMEFLEET_S3_ENDPOINT": "http://127.0.0.1:1", "FRAMEFLEET_S3_PATH_STYLE": "true",
					"FRAMEFLEET_S3_MAX_ATTEMPTS": "3"}},
		},
		{
			name: "batch, configured parallelism and region",
			sets: batchSettings(map[string]string{"render.workers": "7", "region": "us-west-2"}),
			want: pipeline.Request{Scope: pipeline.ScopeTrusted, Engine: "batch", Parallelism: 7, Threads: 4, Stitch: "concat", PollInterval: fleet.BatchPoll, LinkExpiry: store.MaxLinkExpiry,
				Env: map[string]string{"FRAMEFLEET_REGION": "us-west-2", "FRAMEFLEET_S3_ENDPOINT": "http://127.0.0.1:1", "FRAMEFLEET_S3_PATH_STYLE": "true"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := configWith(t, tc.sets)
			f, err := fleet.Open(context.Background(), cfg, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := f.NewRequest("shot.blend")
			tc.want.BlendPath = "shot.blend"
			if !maps.Equal(got.Env, tc.want.Env) {
				t.Errorf("worker env %v, want %v", got.Env, tc.want.Env)
			}
			got.Env, tc.want.Env = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("request\n%+v\nwant\n%+v", got, tc.want)
			}
			if cfg.Region != tc.sets["region"] {
				t.Errorf("Open changed the caller's configuration: region %q", cfg.Region)
			}
		})
	}
}

func TestOpenRefusesWhatCannotWork(t *testing.T) {
	isolateAWS(t, "")
	tests := []struct {
		name string
		sets map[string]string
		want string
	}{
		{"batch without a bucket", map[string]string{"engine": "batch", "batch.job_queue": "q"}, "S3 store"},
		{"batch with a directory", map[string]string{"engine": "batch", "batch.job_queue": "q", "store": "/tmp/x"}, "containers cannot reach it"},
		{"batch without a region", batchSettings(nil), "no AWS region"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.Open(context.Background(), configWith(t, tc.sets), fleet.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDefaultStoreAndEngines(t *testing.T) {
	t.Chdir(t.TempDir())
	f, err := fleet.Open(context.Background(), config.Defaults(), fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(fleet.DefaultStore)
	if !strings.HasSuffix(f.Store.URI(), abs) {
		t.Errorf("store %s, want the directory %s", f.Store.URI(), abs)
	}
	a, err := f.Engine(context.Background(), "local")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.Engine(context.Background(), "local")
	if a != b {
		t.Error("two local engines: runs of one process must share one worker pool")
	}
	if _, err := f.Engine(context.Background(), "cloud9"); err == nil || !strings.Contains(err.Error(), `unknown engine "cloud9"`) {
		t.Errorf("unknown engine: %v", err)
	}
	link, err := f.Link(context.Background(), "runs/x/out.mp4")
	if err != nil || !strings.HasPrefix(link, "file://") {
		t.Errorf("Link = %q, %v; want a file:// URL", link, err)
	}
}

func TestDefaultWorkersLeaveAThreadEach(t *testing.T) {
	for cpus, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 2, 6: 3, 16: 8, 64: 8} {
		got := fleet.DefaultWorkers(cpus)
		if got != want || cpus/got < 1 {
			t.Errorf("DefaultWorkers(%d) = %d, want %d", cpus, got, want)
		}
	}
}

// A front-end's scope: the configuration's, else the front-end's default,
// else trusted; the fleet's store and requests are that scope's.
func TestFleetScope(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		sets  map[string]string
		def   string
		want  string
		limit int
	}{
		{"the CLI", map[string]string{"store": dir}, "", pipeline.ScopeTrusted, 0},
		{"the bot", map[string]string{"store": dir}, pipeline.ScopeBot, pipeline.ScopeBot, 0},
		{"configured", map[string]string{"store": dir, "scope": "preview", "limits.max_frames": "100"}, pipeline.ScopeBot, pipeline.ScopePreview, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := fleet.Open(context.Background(), configWith(t, tc.sets), fleet.Options{DefaultScope: tc.def})
			if err != nil {
				t.Fatal(err)
			}
			req := f.NewRequest("shot.blend")
			if f.Scope() != tc.want || req.Scope != tc.want || store.ScopeOf(f.Store) != tc.want || req.Ceiling.MaxFrames != tc.limit {
				t.Errorf("fleet scope %s, request scope %s, store %s, ceiling %+v; want %s", f.Scope(), req.Scope, f.Store.URI(), req.Ceiling, tc.want)
			}
		})
	}
	if _, err := fleet.Open(context.Background(), configWith(t, map[string]string{"store": dir, "scope": "Main"}), fleet.Options{}); err == nil {
		t.Error("a bad scope name opens")
	}
}
