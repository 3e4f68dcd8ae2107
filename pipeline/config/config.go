// Package config is the one configuration the CLI, the GitHub Action and the
// Slack bot share: framefleet.yaml, overridden by FRAMEFLEET_* environment
// variables, overridden by command-line flags.
//
// Precedence, lowest first: Defaults < file < environment < flags. A front-end
// calls Load (defaults, file, environment), then Set for each flag the user
// gave, then Validate:
//
//	cfg, err := config.Load(path, os.Getenv)   // path "" finds ./framefleet.yaml
//	for each changed flag: err = cfg.Set("batch.job_queue", value)
//	err = cfg.Validate()
//
// Every setting has a key (its YAML path, e.g. "batch.memory_mib") and an
// environment variable; Keys lists them for help texts.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/store"
)

// FileName is the configuration file looked for in the working directory.
const FileName = "framefleet.yaml"

// PathEnv names a configuration file when Load is given no path.
const PathEnv = "FRAMEFLEET_CONFIG"

// Engines and platforms.
const (
	EngineLocal     = "local"
	EngineBatch     = "batch"
	PlatformEC2     = "EC2"
	PlatformFargate = "FARGATE"
)

// MinMemoryMiB is the least memory a Batch job gets. The limits of the
// render settings (attempts, resolution, timeout, ...) are the pipeline's
// (pipeline.Check*), defined once there; a link's longest life is
// store.MaxLinkExpiry.
const MinMemoryMiB = 512

// Config is framefleet's whole configuration. Field comments name the YAML key.
type Config struct {
	// Engine runs the jobs: "local" (this machine) or "batch" (AWS Batch).
	Engine string `yaml:"engine"`
	// Store is where inputs and results live: a directory, file:///dir or
	// s3://bucket/prefix. Bucket and Prefix are a shorter way to say s3://.
	Store  string `yaml:"store"`
	Bucket string `yaml:"bucket"`
	Prefix string `yaml:"prefix"`
	// Region is the AWS region (default: the AWS SDK's, e.g. AWS_REGION).
	Region string `yaml:"region"`
	S3     S3     `yaml:"s3"`
	Batch  Batch  `yaml:"batch"`
	Render Render `yaml:"render"`
	// PricePerVCPUHour turns vCPU time into the cost report (USD).
	PricePerVCPUHour float64 `yaml:"price_per_vcpu_hour"`
	// LinkExpiry is how long result links work (at most 7 days; with
	// CloudFront links at most 366 days).
	LinkExpiry Duration `yaml:"link_expiry"`
	Links      Links    `yaml:"links"`
	// Slack configures `framefleet bot` (see slack.go); its secrets come
	// from the environment, never from this file.
	Slack Slack `yaml:"slack"`
	// Scope is the trust scope of the runs this front-end starts (trusted,
	// preview, bot, bot-<name>; deploy/README.md "Trust scopes"). Empty: the
	// front-end's default (CLI trusted, bot "bot", the Action from the event).
	Scope string `yaml:"scope"`
	// Limits is the cost ceiling of one request in this scope.
	Limits Limits `yaml:"limits"`

	// Source is the file the configuration was read from ("" for none).
	Source string `yaml:"-"`
}

// Limits bound one request; 0 takes the scope's default (pipeline.DefaultCeiling).
type Limits struct {
	MaxFrames int `yaml:"max_frames"`
	MaxChunks int `yaml:"max_chunks"`
}

// Ceiling is the limits as the pipeline takes them.
func (l Limits) Ceiling() pipeline.Ceiling {
	return pipeline.Ceiling{MaxFrames: l.MaxFrames, MaxChunks: l.MaxChunks}
}

// S3 configures S3-compatible servers (MinIO, R2, gofakes3 …).
type S3 struct {
	// Endpoint is the server's URL with scheme, e.g. http://127.0.0.1:9000.
	Endpoint string `yaml:"endpoint"`
	// PathStyle addresses buckets as host/bucket/key, which most S3-compatible servers need.
	PathStyle bool `yaml:"path_style"`
	// MaxAttempts is how often one S3 call is tried before it fails (0: the
	// store's default, 8). Workers get it through FRAMEFLEET_S3_MAX_ATTEMPTS;
	// a longer outage is then ridden out by the chunk's retried attempts.
	MaxAttempts int `yaml:"max_attempts"`
	// UnsafeNoConditionalWrites accepts a server that ignores If-None-Match
	// and If-Match (framefleet probes it once per store): runs are then not
	// deduplicated, and every front-end says so.
	UnsafeNoConditionalWrites bool `yaml:"unsafe_no_conditional_writes"`
}

// Links configures links that outlive the credentials: CloudFront signed
// URLs for an S3 store whose bucket is a distribution's origin (the
// CloudFormation stack makes one when given a public key). Without them,
// links are presigned S3 URLs, which die with the signing credentials.
type Links struct {
	// CloudFrontDomain is the distribution's domain (stack output CloudFrontDomain).
	CloudFrontDomain string `yaml:"cloudfront_domain"`
	// CloudFrontKeyPairID is the public key's id (stack output CloudFrontKeyPairId).
	CloudFrontKeyPairID string `yaml:"cloudfront_key_pair_id"`
	// CloudFrontPrivateKey is the RSA private key in PEM: best given as the
	// environment variable FRAMEFLEET_CLOUDFRONT_PRIVATE_KEY from a secret.
	CloudFrontPrivateKey string `yaml:"cloudfront_private_key"`
	// CloudFrontPrivateKeyFile names a file holding that key instead.
	CloudFrontPrivateKeyFile string `yaml:"cloudfront_private_key_file"`
}

// CloudFront is the store's view of these settings.
func (l Links) CloudFront() store.CloudFront {
	return store.CloudFront{
		Domain:         l.CloudFrontDomain,
		KeyPairID:      l.CloudFrontKeyPairID,
		PrivateKey:     l.CloudFrontPrivateKey,
		PrivateKeyFile: l.CloudFrontPrivateKeyFile,
	}
}

// Batch configures the AWS Batch engine.
type Batch struct {
	JobQueue string `yaml:"job_queue"`
	// JobDefinition is the definition's name. With Image set, framefleet
	// registers it (only when changed); without, it uses an existing
	// definition (name, name:revision or ARN) as is.
	JobDefinition    string   `yaml:"job_definition"`
	Image            string   `yaml:"image"`
	VCPUs            float64  `yaml:"vcpus"`
	MemoryMiB        int      `yaml:"memory_mib"`
	Platform         string   `yaml:"platform"` // EC2 or FARGATE
	GPUs             int      `yaml:"gpus"`
	Attempts         int      `yaml:"attempts"`
	AttemptTimeout   Duration `yaml:"attempt_timeout"`
	ExecutionRoleARN string   `yaml:"execution_role_arn"`
	JobRoleARN       string   `yaml:"job_role_arn"`
	// LogGroup is the CloudWatch Logs group the workers log to (empty:
	// Batch's /aws/batch/job, which keeps logs forever).
	LogGroup string `yaml:"log_group"`
	// BlenderVersion is the Blender the image carries, e.g. "3.4.1".
	BlenderVersion string `yaml:"blender_version"`
}

// Render holds render defaults; 0 means "the scene's" or "automatic".
type Render struct {
	Chunk      int    `yaml:"chunk"`      // frames per array child; 0 = automatic
	Workers    int    `yaml:"workers"`    // children at once; 0 = automatic
	Resolution int    `yaml:"resolution"` // percentage of the scene's resolution; 0 = the scene's
	Samples    int    `yaml:"samples"`    // Cycles samples; 0 = the scene's
	Stitch     string `yaml:"stitch"`     // concat or encode
	// AllowMissing renders scenes whose files are missing (listed in the run).
	AllowMissing bool `yaml:"allow_missing"`
}

// Defaults returns the configuration before any file, variable or flag.
func Defaults() *Config {
	return &Config{
		Engine: EngineLocal,
		Batch: Batch{
			JobDefinition: "framefleet",
			VCPUs:         2,
			MemoryMiB:     4096,
			Platform:      PlatformEC2,
			Attempts:      3,
		},
		Render:     Render{Stitch: "concat"},
		LinkExpiry: Duration(store.MaxLinkExpiry),
		Slack:      SlackDefaults(),
	}
}

// StoreURI is the store to open: Store, or s3://Bucket/Prefix.
func (c *Config) StoreURI() (string, error) {
	switch {
	case c.Store != "" && c.Bucket != "":
		want := "s3://" + c.Bucket
		if p := strings.Trim(c.Prefix, "/"); p != "" {
			want += "/" + p
		}
		if strings.TrimRight(c.Store, "/") != want {
			return "", fmt.Errorf("store %q and bucket %q disagree: give either store or bucket (+ prefix), not both", c.Store, c.Bucket)
		}
		return want, nil
	case c.Store != "":
		if c.Prefix != "" {
			return "", fmt.Errorf("prefix %q is only used with bucket: put it in the store URI instead (s3://bucket/%s)", c.Prefix, strings.Trim(c.Prefix, "/"))
		}
		return c.Store, nil
	case c.Bucket != "":
		uri := "s3://" + c.Bucket
		if p := strings.Trim(c.Prefix, "/"); p != "" {
			uri += "/" + p
		}
		return uri, nil
	case c.Prefix != "":
		return "", fmt.Errorf("prefix %q is set but bucket is empty: set bucket too", c.Prefix)
	}
	return "", nil
}

// StoreOptions are the store.Options this configuration implies.
func (c *Config) StoreOptions() store.Options {
	return store.Options{
		Region:        c.Region,
		Endpoint:      c.S3.Endpoint,
		UsePathStyle:  c.S3.PathStyle,
		MaxAttempts:   c.S3.MaxAttempts,
		PresignExpiry: time.Duration(c.LinkExpiry),
		CloudFront:    c.Links.CloudFront(),
	}
}

// Validate checks the whole configuration and returns every problem found,
// each naming the setting and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	// limit reports a limit the pipeline defines under this configuration's
	// key, as a plain error: it names a setting of the file or the
	// environment, not an option a front-end would word as its own.
	limit := func(key string, err error) {
		var se *pipeline.SettingError
		if errors.As(err, &se) {
			bad("%s %s: %s", key, se.Value, se.Reason)
		} else if err != nil {
			bad("%s: %v", key, err)
		}
	}

	switch c.Engine {
	case EngineLocal, EngineBatch:
	default:
		bad("engine %q is not known: use local or batch", c.Engine)
	}
	if c.Scope != "" {
		limit("scope", pipeline.CheckScope(c.Scope))
	}
	limit("limits", pipeline.CheckCeilingSettings(c.Limits.Ceiling()))

	uri, err := c.StoreURI()
	if err != nil {
		errs = append(errs, err)
	} else if uri != "" {
		if err := checkStoreURI(uri); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Bucket != "" && strings.ContainsAny(c.Bucket, "/: ") {
		bad("bucket %q is not a bucket name: give only the name, e.g. my-renders (put the folder in prefix)", c.Bucket)
	}
	if c.Engine == EngineBatch && err == nil && !strings.HasPrefix(uri, "s3://") {
		if uri == "" {
			bad("store is empty: the batch engine needs an S3 store: set bucket (and prefix) or store: s3://bucket/prefix")
		} else {
			bad("store %q is local: the batch engine's containers cannot reach it: use store: s3://bucket/prefix", uri)
		}
	}
	if c.S3.MaxAttempts < 0 || c.S3.MaxAttempts > 100 {
		bad("s3.max_attempts %d: give 1 to 100 tries per S3 call, or 0 for the default", c.S3.MaxAttempts)
	}
	if err := store.CheckEndpoint(c.S3.Endpoint); err != nil {
		bad("s3.endpoint: %v", err)
	}

	c.validateBatch(bad, limit)
	c.validateSlack(bad)

	r := c.Render
	limit("render.chunk", pipeline.CheckChunk(r.Chunk))
	if r.Workers < 0 {
		bad("render.workers %d is negative: give how many jobs run at once, or 0 to choose automatically", r.Workers)
	}
	limit("render.resolution", pipeline.CheckResolution(r.Resolution))
	limit("render.samples", pipeline.CheckSamples(r.Samples))
	limit("render.stitch", pipeline.CheckStitch(r.Stitch))
	if c.PricePerVCPUHour < 0 {
		bad("price_per_vcpu_hour %g is negative: give the price in USD, e.g. 0.0408", c.PricePerVCPUHour)
	}
	cf := c.Links.CloudFront()
	if cf.Enabled() {
		if _, err := store.NewCloudFrontSigner(cf); err != nil {
			errs = append(errs, err)
		}
		if err == nil && !strings.HasPrefix(uri, "s3://") {
			bad("links.cloudfront_domain is set but the store is not S3: CloudFront serves an S3 bucket: use store: s3://bucket/prefix, or remove the links settings")
		}
	}
	switch d := time.Duration(c.LinkExpiry); {
	case cf.Enabled() && (d <= 0 || d > store.MaxCloudFrontLinkExpiry):
		bad("link_expiry %s is out of range: CloudFront links last more than 0 and at most 366 days: use e.g. 30d", d)
	case !cf.Enabled() && (d <= 0 || d > store.MaxLinkExpiry):
		bad("link_expiry %s is out of range: S3 links last more than 0 and at most 7 days (set links.cloudfront_* for longer): use e.g. 24h or 7d", d)
	}
	return errors.Join(errs...)
}

func (c *Config) validateBatch(bad func(string, ...any), limit func(string, error)) {
	b := c.Batch
	if c.Engine == EngineBatch && b.JobQueue == "" {
		bad("batch.job_queue is empty: set it to your AWS Batch job queue's name or ARN (env FRAMEFLEET_JOB_QUEUE; `framefleet setup` creates one)")
	}
	if b.JobDefinition == "" {
		bad("batch.job_definition is empty: give a job definition name, e.g. framefleet")
	} else if b.Image != "" && !validDefinitionName(b.JobDefinition) {
		bad("batch.job_definition %q is not a valid name to register: use up to 128 letters, digits, hyphens and underscores", b.JobDefinition)
	}
	limit("batch.attempts", pipeline.CheckAttempts(b.Attempts))
	limit("batch.attempt_timeout", pipeline.CheckAttemptTimeout(time.Duration(b.AttemptTimeout), EngineBatch))
	for _, arn := range []struct{ key, val, example string }{
		{"batch.execution_role_arn", b.ExecutionRoleARN, "arn:aws:iam::123456789012:role/framefleet-execution"},
		{"batch.job_role_arn", b.JobRoleARN, "arn:aws:iam::123456789012:role/framefleet-job"},
	} {
		if arn.val != "" && !strings.HasPrefix(arn.val, "arn:") {
			bad("%s %q is not an ARN: give the role's full ARN, e.g. %s", arn.key, arn.val, arn.example)
		}
	}
	if b.BlenderVersion != "" && !validVersion(b.BlenderVersion) {
		bad("batch.blender_version %q is not a version: give the Blender the image carries, e.g. 3.4.1", b.BlenderVersion)
	}
	if c.Engine == EngineBatch && b.Image != "" && b.BlenderVersion == "" {
		// Without it, a scene saved by a newer Blender would be submitted and
		// fail in every child instead of being refused up front.
		bad("batch.blender_version is empty: give the Blender the image carries (the image records it in /etc/framefleet/blender-version and its FRAMEFLEET_BLENDER_VERSION), e.g. 3.4.1")
	}
	if b.GPUs < 0 {
		bad("batch.gpus %d is negative: give 0 or more", b.GPUs)
	}
	if b.MemoryMiB < MinMemoryMiB {
		bad("batch.memory_mib %d is too small: give at least %d (Blender needs 2048 or more for most scenes)", b.MemoryMiB, MinMemoryMiB)
	}
	switch b.Platform {
	case PlatformEC2:
		if b.VCPUs < 1 || b.VCPUs != float64(int(b.VCPUs)) {
			bad("batch.vcpus %g is not valid on EC2: give a whole number of vCPUs (1, 2, 4 …), or use platform FARGATE for 0.25 or 0.5", b.VCPUs)
		}
	case PlatformFargate:
		if b.GPUs > 0 {
			bad("batch.gpus %d: Fargate has no GPUs: set gpus to 0 or use platform EC2", b.GPUs)
		}
		if b.Image != "" && b.ExecutionRoleARN == "" {
			bad("batch.execution_role_arn is empty: Fargate needs an execution role to pull the image and write logs: set the role's ARN")
		}
		lo, hi, step, ok := FargateMemory(b.VCPUs)
		switch {
		case !ok:
			bad("batch.vcpus %g is not a Fargate size: use 0.25, 0.5, 1, 2, 4, 8 or 16", b.VCPUs)
		case b.MemoryMiB >= MinMemoryMiB && !FargateFits(b.VCPUs, b.MemoryMiB):
			bad("batch.memory_mib %d does not fit %g Fargate vCPUs: use %d to %d in steps of %d%s", b.MemoryMiB, b.VCPUs, lo, hi, step, quarterNote(b.VCPUs))
		}
	default:
		bad("batch.platform %q is not known: use EC2 or FARGATE", b.Platform)
	}
}

func quarterNote(vcpus float64) string {
	if vcpus == 0.25 {
		return " (512, 1024 or 2048)"
	}
	return ""
}

// FargateMemory returns the memory range (MiB) and step Fargate offers for a
// vCPU size, ok=false when the size is not one of Fargate's.
func FargateMemory(vcpus float64) (lo, hi, step int, ok bool) {
	switch vcpus {
	case 0.25:
		return 512, 2048, 512, true // 512, 1024, 2048 (no 1536)
	case 0.5:
		return 1024, 4096, 1024, true
	case 1:
		return 2048, 8192, 1024, true
	case 2:
		return 4096, 16384, 1024, true
	case 4:
		return 8192, 30720, 1024, true
	case 8:
		return 16384, 61440, 4096, true
	case 16:
		return 32768, 122880, 8192, true
	}
	return 0, 0, 0, false
}

// FargateFits reports whether vcpus and memoryMiB are a Fargate combination.
func FargateFits(vcpus float64, memoryMiB int) bool {
	lo, hi, step, ok := FargateMemory(vcpus)
	if !ok || memoryMiB < lo || memoryMiB > hi || (memoryMiB-lo)%step != 0 {
		return false
	}
	return !(vcpus == 0.25 && memoryMiB == 1536)
}

func checkStoreURI(uri string) error {
	if !strings.Contains(uri, "://") {
		return nil // a plain directory
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("store %q is not a valid URI: use a directory, file:///dir or s3://bucket/prefix", uri)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return fmt.Errorf("store %q names a host: use file:///absolute/path", uri)
		}
	case "s3":
		if u.Host == "" {
			return fmt.Errorf("store %q has no bucket: use s3://bucket/prefix", uri)
		}
	default:
		return fmt.Errorf("store %q: unknown scheme %q: use a directory, file:///dir or s3://bucket/prefix", uri, u.Scheme)
	}
	return nil
}

func validDefinitionName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func validVersion(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}
