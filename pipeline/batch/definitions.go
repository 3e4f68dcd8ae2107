package batch

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
)

// EnsureJobDefinition is `framefleet setup`'s step, run with an
// administrator's credentials: it returns the ARN of an ACTIVE revision
// matching spec (its SpecHashTag and its contents), registering a new
// revision only when none does. It refuses a spec that would fail every job.
// The render path never registers (see JobDefinition).
func (e *Engine) EnsureJobDefinition(ctx context.Context, spec Spec) (arn string, registered bool, err error) {
	spec = spec.withDefaults()
	if err := spec.Validate(); err != nil {
		return "", false, fmt.Errorf("job definition %s: %w", spec.Name, err)
	}
	if err := spec.CheckForSetup(); err != nil {
		return "", false, fmt.Errorf("job definition %s: %w", spec.Name, err)
	}
	match, _, err := e.matchingRevision(ctx, spec)
	if err != nil {
		return "", false, err
	}
	if match != nil {
		e.log.Debug("job definition unchanged", "arn", aws.ToString(match.JobDefinitionArn))
		return aws.ToString(match.JobDefinitionArn), false, nil
	}
	in := spec.registerInput()
	in.Tags = map[string]string{SpecHashTag: specHash(in), ManagedTag: "true"}
	out, err := e.api.RegisterJobDefinition(ctx, in)
	if err != nil {
		return "", false, fmt.Errorf("registering job definition %s: %w", spec.Name, err)
	}
	e.log.Info("registered job definition", "arn", aws.ToString(out.JobDefinitionArn), "revision", aws.ToInt32(out.Revision))
	return aws.ToString(out.JobDefinitionArn), true, nil
}

// JobDefinition returns the ARN of the newest ACTIVE revision whose tag and
// contents match spec. It never registers: whoever may submit must not be
// able to choose the image (or role, or privileges) every render runs with,
// so a missing or mismatching revision is an error naming `framefleet setup`.
func (e *Engine) JobDefinition(ctx context.Context, spec Spec) (string, error) {
	spec = spec.withDefaults()
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("job definition %s: %w", spec.Name, err)
	}
	match, rejected, err := e.matchingRevision(ctx, spec)
	if err != nil {
		return "", err
	}
	if match != nil {
		return aws.ToString(match.JobDefinitionArn), nil
	}
	if len(rejected) > 0 {
		return "", fmt.Errorf("%w: job definition %s %s; it was not registered by `framefleet setup` from this configuration: "+
			"run `framefleet setup` with administrator credentials to register a matching revision, and deregister the other one",
			ErrDefinitionMismatch, spec.Name, strings.Join(rejected, "; "))
	}
	return "", fmt.Errorf("%w: job definition %s has no ACTIVE revision with image %s and this configuration's settings: "+
		"run `framefleet setup` (with administrator credentials) to register it", ErrDefinitionMismatch, spec.Name, spec.Image)
}

// matchingRevision finds the newest ACTIVE revision of spec's definition that
// carries spec's hash tag and whose contents match. rejected describes the
// revisions that carry the tag but differ (someone registered them by hand,
// or with a forged tag); they are never used.
func (e *Engine) matchingRevision(ctx context.Context, spec Spec) (match *types.JobDefinition, rejected []string, err error) {
	want := spec.registerInput()
	hash := specHash(want)
	// Any ACTIVE revision with the same spec will do (e.g. going back to an
	// earlier image), not only the latest: every registration is a new
	// revision, and submissions name the exact one.
	defs, err := e.activeDefinitions(ctx, spec.Name)
	if err != nil {
		return nil, nil, err
	}
	for i := range defs {
		d := &defs[i]
		if d.Tags[SpecHashTag] != hash {
			continue
		}
		if diffs := mismatches(want, d); len(diffs) > 0 {
			e.log.Warn("job definition revision carries framefleet's spec tag but differs from the spec: not using it",
				"arn", aws.ToString(d.JobDefinitionArn), "differences", strings.Join(diffs, "; "))
			rejected = append(rejected, fmt.Sprintf("revision %d carries the spec tag but %s", aws.ToInt32(d.Revision), strings.Join(diffs, ", ")))
			continue
		}
		if match == nil || aws.ToInt32(d.Revision) > aws.ToInt32(match.Revision) {
			match = d
		}
	}
	return match, rejected, nil
}

// activeDefinitions lists every ACTIVE revision of the named definition.
func (e *Engine) activeDefinitions(ctx context.Context, name string) ([]types.JobDefinition, error) {
	var defs []types.JobDefinition
	p := batch.NewDescribeJobDefinitionsPaginator(e.api, &batch.DescribeJobDefinitionsInput{
		JobDefinitionName: aws.String(name),
		Status:            aws.String("ACTIVE"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing job definition %s: %w", name, err)
		}
		defs = append(defs, page.JobDefinitions...)
	}
	return defs, nil
}

// latestDefinition is the highest ACTIVE revision, which SubmitJob uses for a bare name.
func (e *Engine) latestDefinition(ctx context.Context, name string) (*types.JobDefinition, error) {
	defs, err := e.activeDefinitions(ctx, name)
	if err != nil {
		return nil, err
	}
	var latest *types.JobDefinition
	for i := range defs {
		if d := &defs[i]; latest == nil || aws.ToInt32(d.Revision) > aws.ToInt32(latest.Revision) {
			latest = d
		}
	}
	return latest, nil
}

// definition returns the job definition to submit with: the revision
// matching the configured spec (looked up once per Engine, never
// registered), or the named existing one.
func (e *Engine) definition(ctx context.Context) (string, error) {
	spec := e.opts.Definition
	if !spec.Registers() {
		return spec.Name, nil
	}
	e.mu.Lock()
	arn := e.def
	e.mu.Unlock()
	if arn != "" {
		return arn, nil
	}
	arn, err := e.JobDefinition(ctx, spec)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.def = arn
	e.mu.Unlock()
	return arn, nil
}

// retryOverride is the retryStrategy the render submission of a job asking
// for a different number of attempts carries (nil keeps the definition's).
// A retryStrategy sent with SubmitJob replaces the definition's, rules
// included, so it carries the same rules with the other count.
func (e *Engine) retryOverride(attempts int) (*types.RetryStrategy, error) {
	spec := e.opts.Definition
	if attempts == 0 {
		return nil, nil
	}
	if !spec.Registers() {
		return nil, fmt.Errorf("job asks for %d attempts but the existing job definition %s is used as is: set attempts in the definition instead", attempts, spec.Name)
	}
	if attempts == spec.withDefaults().Attempts {
		return nil, nil
	}
	return &types.RetryStrategy{Attempts: aws.Int32(int32(attempts)), EvaluateOnExit: RetryRules()}, nil
}

// BlenderVersion is the Blender the image carries: the spec's, or the
// FRAMEFLEET_BLENDER_VERSION of the existing job definition.
func (e *Engine) BlenderVersion(ctx context.Context) (string, error) {
	spec := e.opts.Definition
	if spec.BlenderVersion != "" {
		return spec.BlenderVersion, nil
	}
	ref := spec.withDefaults().Name
	var def *types.JobDefinition
	if strings.Contains(ref, ":") { // name:revision or ARN
		out, err := e.api.DescribeJobDefinitions(ctx, &batch.DescribeJobDefinitionsInput{JobDefinitions: []string{ref}})
		if err != nil {
			return "", fmt.Errorf("describing job definition %s: %w", ref, err)
		}
		if len(out.JobDefinitions) > 0 {
			def = &out.JobDefinitions[0]
		}
	} else {
		d, err := e.latestDefinition(ctx, ref)
		if err != nil {
			return "", err
		}
		def = d
	}
	if def == nil {
		return "", fmt.Errorf("job definition %s not found: run `framefleet setup` to register it", ref)
	}
	if def.ContainerProperties != nil {
		for _, kv := range def.ContainerProperties.Environment {
			if aws.ToString(kv.Name) == BlenderVersionEnv && aws.ToString(kv.Value) != "" {
				return aws.ToString(kv.Value), nil
			}
		}
	}
	return "", fmt.Errorf("job definition %s does not say which Blender its image carries: set the Blender version in the configuration (it is stored as %s)", aws.ToString(def.JobDefinitionArn), BlenderVersionEnv)
}
