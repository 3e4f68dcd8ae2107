package batch

import (
	"github.com/framefleet/framefleet/pipeline/config"
)

// SpecFromConfig is the job definition the configuration's batch section
// describes. Without an image it names an existing definition.
func SpecFromConfig(b config.Batch) Spec {
	s := Spec{
		Name:             b.JobDefinition,
		Image:            b.Image,
		Platform:         Platform(b.Platform),
		VCPUs:            b.VCPUs,
		MemoryMiB:        b.MemoryMiB,
		GPUs:             b.GPUs,
		JobRoleARN:       b.JobRoleARN,
		ExecutionRoleARN: b.ExecutionRoleARN,
		BlenderVersion:   b.BlenderVersion,
		LogGroup:         b.LogGroup,
		Attempts:         b.Attempts,
		// b.AttemptTimeout is not the definition's: the render submission
		// carries it (pipeline.Request.AttemptTimeout), the stitch does not.
	}
	if s.Platform == PlatformFargate {
		// Tasks in a default VPC's public subnets reach ECR and S3 only with a
		// public IP; with a NAT gateway it does no harm.
		s.AssignPublicIP = true
	}
	return s
}

// OptionsFromConfig is the engine configuration for c.
func OptionsFromConfig(c *config.Config) Options {
	return Options{Queue: c.Batch.JobQueue, Definition: SpecFromConfig(c.Batch)}
}
