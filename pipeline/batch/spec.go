package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
)

// Platform is where Batch runs the containers.
type Platform string

const (
	PlatformEC2     Platform = "EC2"
	PlatformFargate Platform = "FARGATE"
)

// Defaults for a Spec's zero fields.
const (
	DefaultDefinitionName = "framefleet"
	DefaultAttempts       = 3
	DefaultVCPUs          = 2
	DefaultMemoryMiB      = 4096
	// DefaultUser is the worker image's unprivileged user (container/Dockerfile
	// USER 10001): the instances' metadata block holds only for non-root
	// processes, so every definition runs as it.
	DefaultUser = "10001"
	// DefaultTimeout bounds every attempt of a render chunk or the stitch
	// that the submission gives no shorter limit: nothing runs unbounded.
	DefaultTimeout = 6 * time.Hour
)

// Tags framefleet puts on what it creates.
const (
	// SpecHashTag holds the SHA-256 of the wanted job definition, so an
	// unchanged spec is recognised without comparing Batch's normalised copy.
	SpecHashTag = "framefleet-spec-sha256"
	ManagedTag  = "framefleet"
	RunTag      = "framefleet-run"
	SceneTag    = "framefleet-scene"
	StageTag    = "framefleet-stage"
	// ScopeTag is the trust scope of the run a job belongs to.
	ScopeTag = "framefleet-scope"
)

// BlenderVersionEnv is the job definition variable naming the Blender the image carries.
const BlenderVersionEnv = "FRAMEFLEET_BLENDER_VERSION"

// CyclesDeviceEnv tells the worker which Cycles device to render on. A
// definition reserving GPUs sets it to "GPU" (unless Environment sets it),
// since a reserved GPU is otherwise idle.
const CyclesDeviceEnv = "FRAMEFLEET_CYCLES_DEVICE"

// TransientExitCode is the worker's "try again" exit status; the definition retries it.
const TransientExitCode = pipeline.ExitTransient

// Spec describes the job definition framefleet registers: one definition for
// both stages, whose default command renders; the stitch job overrides the
// command with ["worker", "stitch"].
type Spec struct {
	// Name of the job definition (default "framefleet"). With no Image, Name
	// refers to an existing definition (name, name:revision or ARN) that is
	// used as is and never registered.
	Name     string
	Image    string
	Platform Platform // default EC2
	// VCPUs and MemoryMiB size every container (defaults 2 and 4096). On
	// Fargate they must be one of Fargate's combinations.
	VCPUs     float64
	MemoryMiB int
	GPUs      int // EC2 only
	// JobRoleARN is the role the containers use (S3 access).
	JobRoleARN string
	// ExecutionRoleARN is required on Fargate (image pull, logs).
	ExecutionRoleARN string
	// AssignPublicIP is needed on Fargate in public subnets without a NAT gateway.
	AssignPublicIP bool
	// FargatePlatformVersion defaults to LATEST.
	FargatePlatformVersion string
	// BlenderVersion is the Blender the image carries (e.g. "3.4.1"); stored
	// as FRAMEFLEET_BLENDER_VERSION so clients can check scenes before submitting.
	BlenderVersion string
	// LogGroup is the CloudWatch Logs group the containers log to (the
	// deploy/ stack's, which has a retention). Empty uses Batch's default
	// group /aws/batch/job, which keeps logs forever.
	LogGroup string
	// Environment is passed to every container.
	Environment map[string]string
	// Attempts per child (1–10, default 3). Spot reclaims, tasks that
	// failed to start and exit code 75 are retried; any other failure ends
	// the child at once.
	Attempts int
	// User the containers run as (default DefaultUser); never root.
	User string
	// Timeout bounds each attempt of both stages (default DefaultTimeout);
	// a chunk's own budget (pipeline.Job.AttemptTimeout) is sent with the
	// render submission and replaces it there.
	Timeout time.Duration
}

// Registers reports whether the spec describes a definition to register
// (rather than naming an existing one).
func (s Spec) Registers() bool { return s.Image != "" }

func (s Spec) withDefaults() Spec {
	if s.Name == "" {
		s.Name = DefaultDefinitionName
	}
	if s.Platform == "" {
		s.Platform = PlatformEC2
	}
	if s.VCPUs == 0 {
		s.VCPUs = DefaultVCPUs
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = DefaultMemoryMiB
	}
	if s.Attempts == 0 {
		s.Attempts = DefaultAttempts
	}
	if s.User == "" {
		s.User = DefaultUser
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Platform == PlatformFargate && s.FargatePlatformVersion == "" {
		s.FargatePlatformVersion = "LATEST"
	}
	return s
}

// Validate checks a spec (after defaults) and names the fix for each problem.
func (s Spec) Validate() error {
	s = s.withDefaults()
	var errs []error
	if !validName(s.Name) {
		errs = append(errs, fmt.Errorf("job definition name %q is invalid: use up to 128 letters, digits, hyphens and underscores", s.Name))
	}
	if err := pipeline.CheckAttempts(s.Attempts); err != nil {
		errs = append(errs, fmt.Errorf("job definition: %w", err))
	}
	if IsRootUser(s.User) {
		errs = append(errs, fmt.Errorf("job definition user %q is root: the instances keep only non-root processes from the instance role's credentials; use the image's unprivileged user, e.g. %s", s.User, DefaultUser))
	}
	if s.Timeout < pipeline.MinBatchTimeout {
		errs = append(errs, fmt.Errorf("job definition timeout %s: AWS Batch needs at least 1m; leave it 0 for the default %s", s.Timeout, DefaultTimeout))
	}
	if s.MemoryMiB < 0 || s.GPUs < 0 || s.VCPUs < 0 {
		errs = append(errs, errors.New("vCPUs, memory and GPUs cannot be negative"))
	}
	for k := range s.Environment {
		if strings.HasPrefix(k, "AWS_BATCH") {
			errs = append(errs, fmt.Errorf("environment variable %s uses the AWS_BATCH prefix, which Batch reserves: rename it", k))
		}
	}
	switch s.Platform {
	case PlatformEC2:
		if s.VCPUs != math.Trunc(s.VCPUs) || s.VCPUs < 1 {
			errs = append(errs, fmt.Errorf("%g vCPUs: EC2 jobs need a whole number of vCPUs (1, 2, 4 …)", s.VCPUs))
		}
		if s.MemoryMiB < config.MinMemoryMiB {
			errs = append(errs, fmt.Errorf("memory %d MiB is too small: use at least %d (Blender needs 2048 or more for most scenes)", s.MemoryMiB, config.MinMemoryMiB))
		}
	case PlatformFargate:
		if s.ExecutionRoleARN == "" {
			errs = append(errs, errors.New("Fargate job definitions need an execution role: set the execution role ARN"))
		}
		if s.GPUs > 0 {
			errs = append(errs, errors.New("Fargate has no GPUs: use the EC2 platform for GPU rendering or set GPUs to 0"))
		}
		lo, hi, step, ok := config.FargateMemory(s.VCPUs)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%g vCPUs is not a Fargate size: use 0.25, 0.5, 1, 2, 4, 8 or 16", s.VCPUs))
		case s.MemoryMiB < lo || s.MemoryMiB > hi || (s.MemoryMiB-lo)%step != 0 || (s.VCPUs == 0.25 && s.MemoryMiB == 1536):
			errs = append(errs, fmt.Errorf("%d MiB with %g vCPUs is not a Fargate combination: use %d to %d MiB in steps of %d", s.MemoryMiB, s.VCPUs, lo, hi, step))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown platform %q: use EC2 or FARGATE", s.Platform))
	}
	return errors.Join(errs...)
}

// StartFailureRules retry an attempt whose task never started, as AWS's own
// retry example does: Batch reports "Task failed to start" as the status
// reason when the image cannot be pulled (CannotPullContainerError) or the
// task cannot be set up (ResourceInitializationError: ENI, volumes,
// secrets); an image pull error can also show only in the container's
// reason. These are the registry's or the host's hiccups, not the scene's.
var StartFailureRules = []pipeline.RetryRule{
	{OnStatusReason: "Task failed to start*", Action: pipeline.ActionRetry},
	{OnReason: "CannotPullContainerError*", Action: pipeline.ActionRetry},
}

// MaxRetryRules is Batch's limit on evaluateOnExit entries.
const MaxRetryRules = 5

// BatchRetryRules is the definition's policy as pipeline rules: pipeline's
// shared one (the local engine applies the same rules) with the start
// failures after the lost host, and without the rules that can only match
// the local engine's reasons. A Spot host loss, a task that failed to start
// and the worker's transient exit code are retried; everything else fails
// at once (a failure matching no rule would otherwise be retried).
func BatchRetryRules() []pipeline.RetryRule {
	var out []pipeline.RetryRule
	for _, r := range pipeline.DefaultRetryRules() {
		if strings.HasPrefix(r.OnStatusReason, "Host local") {
			continue
		}
		out = append(out, r)
		if r.OnStatusReason == "Host EC2*" {
			out = append(out, StartFailureRules...)
		}
	}
	return out
}

// RetryRules is BatchRetryRules in the API's form.
func RetryRules() []types.EvaluateOnExit {
	var out []types.EvaluateOnExit
	for _, r := range BatchRetryRules() {
		e := types.EvaluateOnExit{Action: types.RetryAction(r.Action)}
		if r.OnStatusReason != "" {
			e.OnStatusReason = aws.String(r.OnStatusReason)
		}
		if r.OnReason != "" {
			e.OnReason = aws.String(r.OnReason)
		}
		if r.OnExitCode != "" {
			e.OnExitCode = aws.String(r.OnExitCode)
		}
		out = append(out, e)
	}
	return out
}

// CheckForSetup refuses, before registering, a spec whose jobs could only
// fail: an EC2 definition with no job role leaves the workers the instance
// role, which may not touch the bucket (S3 answers AccessDenied on every
// chunk).
func (s Spec) CheckForSetup() error {
	if s.withDefaults().Platform == PlatformEC2 && s.JobRoleARN == "" {
		return errors.New("the EC2 job definition has no job role: its workers would fall back to the instance role, which may not use the bucket, and every chunk would fail with AccessDenied; " +
			"set batch.job_role_arn (env FRAMEFLEET_JOB_ROLE_ARN) to a role that may read and write the bucket, e.g. the deploy/ stack's JobRoleArn output")
	}
	return nil
}

// registerInput builds the RegisterJobDefinition request for a validated,
// defaulted spec, without tags.
func (s Spec) registerInput() *batch.RegisterJobDefinitionInput {
	env := maps.Clone(s.Environment)
	if env == nil {
		env = map[string]string{}
	}
	if s.BlenderVersion != "" {
		env[BlenderVersionEnv] = s.BlenderVersion
	}
	if _, set := env[CyclesDeviceEnv]; !set && s.GPUs > 0 {
		env[CyclesDeviceEnv] = "GPU"
	}
	var kvs []types.KeyValuePair
	for _, k := range slices.Sorted(maps.Keys(env)) {
		kvs = append(kvs, types.KeyValuePair{Name: aws.String(k), Value: aws.String(env[k])})
	}
	res := []types.ResourceRequirement{
		{Type: types.ResourceTypeVcpu, Value: aws.String(strconv.FormatFloat(s.VCPUs, 'f', -1, 64))},
		{Type: types.ResourceTypeMemory, Value: aws.String(strconv.Itoa(s.MemoryMiB))},
	}
	if s.GPUs > 0 {
		res = append(res, types.ResourceRequirement{Type: types.ResourceTypeGpu, Value: aws.String(strconv.Itoa(s.GPUs))})
	}
	cp := &types.ContainerProperties{
		Image:                aws.String(s.Image),
		User:                 aws.String(s.User),
		Command:              []string{"worker", "render"},
		Environment:          kvs,
		ResourceRequirements: res,
	}
	if s.JobRoleARN != "" {
		cp.JobRoleArn = aws.String(s.JobRoleARN)
	}
	if s.LogGroup != "" {
		cp.LogConfiguration = &types.LogConfiguration{LogDriver: types.LogDriverAwslogs, Options: map[string]string{"awslogs-group": s.LogGroup}}
	}
	if s.ExecutionRoleARN != "" {
		cp.ExecutionRoleArn = aws.String(s.ExecutionRoleARN)
	}
	if s.Platform == PlatformFargate {
		ip := types.AssignPublicIpDisabled
		if s.AssignPublicIP {
			ip = types.AssignPublicIpEnabled
		}
		cp.NetworkConfiguration = &types.NetworkConfiguration{AssignPublicIp: ip}
		cp.FargatePlatformConfiguration = &types.FargatePlatformConfiguration{PlatformVersion: aws.String(s.FargatePlatformVersion)}
	}
	in := &batch.RegisterJobDefinitionInput{
		JobDefinitionName:    aws.String(s.Name),
		Type:                 types.JobDefinitionTypeContainer,
		ContainerProperties:  cp,
		PlatformCapabilities: []types.PlatformCapability{types.PlatformCapability(s.Platform)},
		RetryStrategy:        &types.RetryStrategy{Attempts: aws.Int32(int32(s.Attempts)), EvaluateOnExit: RetryRules()},
		Timeout:              &types.JobTimeout{AttemptDurationSeconds: aws.Int32(int32(math.Ceil(s.Timeout.Seconds())))},
	}
	return in
}

// specHash is the SHA-256 of the request framefleet would register. Any change
// to what is sent (image, resources, policy, environment) changes it.
func specHash(in *batch.RegisterJobDefinitionInput) string {
	c := *in
	c.Tags = nil
	b, err := json.Marshal(c)
	if err != nil { // plain data: cannot happen, but never panic
		b = []byte(fmt.Sprintf("%#v", c))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// validName checks a Batch job or definition name: letters, digits, '-' and
// '_', starting with a letter or digit, at most 128 characters.
func validName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for i, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || r == '-' || r == '_'
		}
		if !ok {
			return false
		}
	}
	return true
}

// jobName builds a valid Batch job name "ff-<run>-<stage>", replacing
// characters Batch refuses and shortening the run part to fit 128.
func jobName(runID, stage string) string {
	var b strings.Builder
	for _, r := range runID {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	run := b.String()
	if limit := 128 - len("ff--") - len(stage); len(run) > limit {
		run = run[:limit]
	}
	return "ff-" + run + "-" + stage
}
