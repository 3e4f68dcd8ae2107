package config_test

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
)

// envMap is an environment for Load.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func loadFile(t *testing.T, path string) (*config.Config, error) {
	t.Helper()
	return config.Load(path, nil)
}

func TestGoodFiles(t *testing.T) {
	for _, tc := range []struct {
		file  string
		store string
		check func(t *testing.T, c *config.Config)
	}{
		{"empty.yaml", "", func(t *testing.T, c *config.Config) {
			want := config.Defaults()
			want.Source = c.Source
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got %+v, want the defaults %+v", c, want)
			}
		}},
		{"batch_ec2.yaml", "s3://acme-renders/framefleet", func(t *testing.T, c *config.Config) {
			b := c.Batch
			if c.Engine != "batch" || c.Region != "eu-west-1" || b.JobQueue != "framefleet-spot" || b.JobDefinition != "framefleet-blender" ||
				b.VCPUs != 8 || b.MemoryMiB != 16384 || b.GPUs != 1 || b.Attempts != 5 || b.Platform != "EC2" ||
				time.Duration(b.AttemptTimeout) != 2*time.Hour || b.BlenderVersion != "3.4.1" {
				t.Errorf("batch settings: %+v", c)
			}
			r := c.Render
			if r.Chunk != 12 || r.Workers != 20 || r.Resolution != 50 || r.Samples != 64 || r.Stitch != "encode" {
				t.Errorf("render settings: %+v", r)
			}
			if c.PricePerVCPUHour != 0.0125 || time.Duration(c.LinkExpiry) != 72*time.Hour {
				t.Errorf("price %g, link expiry %s", c.PricePerVCPUHour, c.LinkExpiry)
			}
		}},
		{"batch_fargate.yaml", "s3://acme-renders/ci", func(t *testing.T, c *config.Config) {
			if c.Engine != "batch" || c.Batch.Platform != "FARGATE" || c.Batch.VCPUs != 0.25 || c.Batch.MemoryMiB != 2048 {
				t.Errorf("spellings not normalised or values lost: %+v", c.Batch)
			}
			if time.Duration(c.Batch.AttemptTimeout) != time.Hour {
				t.Errorf("attempt_timeout 3600 (seconds) = %s, want 1h", c.Batch.AttemptTimeout)
			}
			if c.Batch.Attempts != 3 {
				t.Errorf("unset attempts = %d, want the default 3", c.Batch.Attempts)
			}
		}},
		{"local_minio.yaml", "s3://renders/team", func(t *testing.T, c *config.Config) {
			o := c.StoreOptions()
			if o.Endpoint != "http://127.0.0.1:9000" || !o.UsePathStyle || o.Region != "us-east-1" || o.PresignExpiry != 24*time.Hour {
				t.Errorf("StoreOptions = %+v", o)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := loadFile(t, filepath.Join("testdata", "good", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			uri, err := c.StoreURI()
			if err != nil || uri != tc.store {
				t.Errorf("StoreURI = %q, %v; want %q", uri, err, tc.store)
			}
			tc.check(t, c)
		})
	}
}

// TestBadFiles: each file in testdata/bad starts with "# want: <text>", the
// text its error must contain (from Load or from Validate).
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := wantLine(t, path)
			c, err := loadFile(t, path)
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}

func wantLine(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			return w
		}
	}
	t.Fatalf("%s: first line must be # want: <error text>", path)
	return ""
}

func TestExampleFileIsValid(t *testing.T) {
	c, err := loadFile(t, filepath.Join("..", "..", "framefleet.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Engine != "batch" || c.Batch.JobQueue == "" {
		t.Errorf("example does not configure the batch engine: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ff.yaml")
	file := "engine: batch\nbucket: file-bucket\nregion: file-region\nbatch:\n  job_queue: file-queue\n  vcpus: 4\n  memory_mib: 8192\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FRAMEFLEET_JOB_QUEUE":  "env-queue",
		"FRAMEFLEET_MEMORY_MIB": "16384",
		"AWS_REGION":            "aws-region",
		"AWS_DEFAULT_REGION":    "default-region",
		"FRAMEFLEET_STITCH":     "  ",
	}
	c, err := config.Load(path, envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set("batch.job_queue", "flag-queue"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"default (nothing overrides)", c.Batch.Attempts, 3},
		{"default (blank env ignored)", c.Render.Stitch, "concat"},
		{"file over default", c.Batch.VCPUs, 4.0},
		{"file", c.Bucket, "file-bucket"},
		{"env over file", c.Batch.MemoryMiB, 16384},
		{"AWS_REGION over AWS_DEFAULT_REGION over file", c.Region, "aws-region"},
		{"flag over env over file", c.Batch.JobQueue, "flag-queue"},
		{"source", c.Source, path},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	env["FRAMEFLEET_REGION"] = "ff-region"
	c, err = config.Load(path, envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "ff-region" {
		t.Errorf("FRAMEFLEET_REGION should win over AWS_REGION: got %q", c.Region)
	}
}

func TestLoadFindsFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	c, err := config.Load("", nil)
	if err != nil {
		t.Fatalf("no file in the working directory: %v", err)
	}
	if c.Source != "" || c.Engine != "local" {
		t.Errorf("without a file: source %q engine %q, want defaults", c.Source, c.Engine)
	}
	if err := os.WriteFile(config.FileName, []byte("engine: batch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = config.Load("", nil); err != nil || c.Engine != "batch" || c.Source != config.FileName {
		t.Errorf("./framefleet.yaml not used: %+v, %v", c, err)
	}
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("engine: local\nbucket: from-other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = config.Load("", envMap(map[string]string{config.PathEnv: other})); err != nil || c.Bucket != "from-other" {
		t.Errorf("FRAMEFLEET_CONFIG not used: %+v, %v", c, err)
	}
	if _, err := config.Load(filepath.Join(dir, "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "missing.yaml does not exist") {
		t.Errorf("missing explicit file: err = %v", err)
	}
	if _, err := config.Load("", envMap(map[string]string{config.PathEnv: "nope.yaml"})); err == nil || !strings.Contains(err.Error(), "nope.yaml does not exist") {
		t.Errorf("missing FRAMEFLEET_CONFIG file: err = %v", err)
	}
}

func TestEnvAndFlagErrorsNameTheSetting(t *testing.T) {
	_, err := config.Load(filepath.Join("testdata", "good", "empty.yaml"), envMap(map[string]string{
		"FRAMEFLEET_MEMORY_MIB":    "lots",
		"FRAMEFLEET_S3_PATH_STYLE": "yes please",
		"FRAMEFLEET_LINK_EXPIRY":   "forever",
	}))
	for _, want := range []string{
		`environment FRAMEFLEET_MEMORY_MIB: batch.memory_mib: "lots" is not a whole number: give e.g. 4096`,
		`environment FRAMEFLEET_S3_PATH_STYLE: s3.path_style: "yes please" is not true or false`,
		`environment FRAMEFLEET_LINK_EXPIRY: link_expiry: "forever" is not a duration`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
	c := config.Defaults()
	if err := c.Set("batch.job_queu", "q"); err == nil || !strings.Contains(err.Error(), `did you mean "batch.job_queue"?`) {
		t.Errorf("Set with a typo: err = %v", err)
	}
	if err := c.Set("batch", "q"); err == nil {
		t.Error("Set of a whole section: no error")
	}
}

// TestKeysCoverEveryField: every YAML field has a Key (so env and flags can
// set it) and every Key can be set.
func TestKeysCoverEveryField(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range config.Keys() {
		keys[k.Name] = true
		if len(k.Env) == 0 || k.Help == "" {
			t.Errorf("key %s has no environment variable or help", k.Name)
		}
		sample := map[string]string{"s3.path_style": "true", "s3.unsafe_no_conditional_writes": "true", "render.allow_missing": "true", "link_expiry": "1h", "batch.attempt_timeout": "1h"}[k.Name]
		if sample == "" {
			sample = "2"
		}
		if err := config.Defaults().Set(k.Name, sample); err != nil {
			t.Errorf("Set(%s, %s): %v", k.Name, sample, err)
		}
	}
	var walk func(t reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if ft := typ.Field(i).Type; ft.Kind() == reflect.Struct {
				walk(ft, prefix+tag+".")
				continue
			}
			if !keys[prefix+tag] {
				t.Errorf("field %s%s has no Key", prefix, tag)
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := config.Defaults()
	c.Engine = "batch"
	c.Batch.MemoryMiB = 100
	c.Batch.Attempts = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"batch.job_queue is empty", "batch.memory_mib 100 is too small", "batch.attempts 0: give 1 to 10 attempts", "store is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestFargateFits(t *testing.T) {
	for _, tc := range []struct {
		vcpus  float64
		memory int
		want   bool
	}{
		{0.25, 512, true}, {0.25, 1024, true}, {0.25, 1536, false}, {0.25, 2048, true}, {0.25, 3072, false},
		{0.5, 1024, true}, {0.5, 4096, true}, {0.5, 512, false}, {0.5, 1536, false},
		{1, 2048, true}, {1, 8192, true}, {1, 9216, false},
		{2, 4096, true}, {2, 16384, true}, {2, 3072, false},
		{4, 8192, true}, {4, 30720, true}, {4, 31744, false},
		{8, 16384, true}, {8, 20480, true}, {8, 17408, false}, {8, 61440, true},
		{16, 32768, true}, {16, 40960, true}, {16, 36864, false}, {16, 122880, true}, {16, 131072, false},
		{3, 8192, false}, {0, 512, false},
	} {
		if got := config.FargateFits(tc.vcpus, tc.memory); got != tc.want {
			t.Errorf("FargateFits(%g, %d) = %v, want %v", tc.vcpus, tc.memory, got, tc.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 0, false},
		{"3600", time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"a week", 0, true},
		{"7 days", 0, true},
	} {
		got, err := config.ParseDuration(tc.in)
		if (err != nil) != tc.err || time.Duration(got) != tc.want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// The configuration checks the render settings' limits the pipeline defines
// (one definition of each): the value at a limit passes, one beyond fails
// with the pipeline's reason, under the configuration's key.
func TestValidateUsesThePipelinesLimits(t *testing.T) {
	tests := []struct {
		key, ok, bad string
		limit        error // the pipeline's verdict on bad
	}{
		{"batch.attempts", strconv.Itoa(pipeline.MaxAttempts), strconv.Itoa(pipeline.MaxAttempts + 1), pipeline.CheckAttempts(pipeline.MaxAttempts + 1)},
		{"batch.attempts", "1", "0", pipeline.CheckAttempts(0)},
		{"render.resolution", strconv.Itoa(pipeline.MaxResolutionPercentage), strconv.Itoa(pipeline.MaxResolutionPercentage + 1), pipeline.CheckResolution(pipeline.MaxResolutionPercentage + 1)},
		{"render.samples", "0", "-1", pipeline.CheckSamples(-1)},
		{"render.chunk", "0", "-1", pipeline.CheckChunk(-1)},
		{"render.stitch", "encode", "mux", pipeline.CheckStitch("mux")},
		{"batch.attempt_timeout", "1m", "59s", pipeline.CheckAttemptTimeout(59*time.Second, "batch")},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.bad, func(t *testing.T) {
			var se *pipeline.SettingError
			if !errors.As(tc.limit, &se) {
				t.Fatalf("the pipeline accepts %s %s", tc.key, tc.bad)
			}
			c := config.Defaults()
			if err := c.Set(tc.key, tc.ok); err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("%s %s (at the limit) refused: %v", tc.key, tc.ok, err)
			}
			if err := c.Set(tc.key, tc.bad); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.key+" ") || !strings.Contains(err.Error(), se.Reason) {
				t.Errorf("%s %s: %v; want the key and the pipeline's reason %q", tc.key, tc.bad, err, se.Reason)
			}
		})
	}
}
