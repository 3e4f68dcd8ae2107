package batch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
)

// ErrDefinitionMismatch is returned (wrapped) when no ACTIVE revision of the
// job definition is what the configuration asks for. Only `framefleet setup`
// (run with an administrator's credentials) registers revisions.
var ErrDefinitionMismatch = errors.New("no job definition revision matches the configuration")

// Hash is the SHA-256 of the RegisterJobDefinition request the spec makes:
// the value of the SpecHashTag tag of the revisions setup registers. It only
// narrows the search: a revision is used after its contents were checked
// (anyone allowed to register can copy a tag).
func (s Spec) Hash() string { return specHash(s.withDefaults().registerInput()) }

// mismatches lists how the revision d differs from want, the request a spec
// registers (Spec.registerInput), in the fields that decide what runs and
// with which rights: image, roles, command, privileges, host access,
// resources, platform, environment and retries. Empty means d may be
// submitted with.
func mismatches(want *batch.RegisterJobDefinitionInput, d *types.JobDefinition) []string {
	wc := want.ContainerProperties
	var out []string
	diff := func(what, got, want string) {
		if got != want {
			out = append(out, fmt.Sprintf("%s is %q, not %q", what, got, want))
		}
	}
	diff("type", aws.ToString(d.Type), string(want.Type))
	if d.EcsProperties != nil || d.EksProperties != nil || d.NodeProperties != nil {
		out = append(out, "it has ECS, EKS or multi-node properties")
	}
	got := d.ContainerProperties
	if got == nil {
		return append(out, "it has no container properties")
	}
	diff("image", aws.ToString(got.Image), aws.ToString(wc.Image))
	diff("job role", aws.ToString(got.JobRoleArn), aws.ToString(wc.JobRoleArn))
	diff("execution role", aws.ToString(got.ExecutionRoleArn), aws.ToString(wc.ExecutionRoleArn))
	diff("command", strings.Join(got.Command, " "), strings.Join(wc.Command, " "))
	if aws.ToBool(got.Privileged) {
		out = append(out, "it runs privileged")
	}
	// The metadata block holds only for non-root processes: a definition
	// must name its user, never root.
	if IsRootUser(aws.ToString(got.User)) {
		out = append(out, fmt.Sprintf("it runs as root (user %q)", aws.ToString(got.User)))
	} else {
		diff("user", aws.ToString(got.User), aws.ToString(wc.User))
	}
	diff("timeout", timeoutString(d.Timeout), timeoutString(want.Timeout))
	if len(got.Volumes) > 0 || len(got.MountPoints) > 0 {
		out = append(out, "it mounts volumes")
	}
	if got.LinuxParameters != nil && len(got.LinuxParameters.Devices) > 0 {
		out = append(out, "it maps host devices")
	}
	diff("resources", resourceString(got.ResourceRequirements, got.Vcpus, got.Memory), resourceString(wc.ResourceRequirements, nil, nil))
	diff("platform", platformString(d.PlatformCapabilities), platformString(want.PlatformCapabilities))
	diff("environment", envString(got.Environment), envString(wc.Environment))
	diff("log group", logGroup(got.LogConfiguration), logGroup(wc.LogConfiguration))
	diff("retry strategy", retryString(d.RetryStrategy), retryString(want.RetryStrategy))
	return out
}

// resourceString is a canonical form of the reservations: Batch reports
// old-style vcpus/memory as resourceRequirements, either may come back.
func resourceString(rs []types.ResourceRequirement, vcpus, memory *int32) string {
	m := map[string]string{}
	for _, r := range rs {
		v := aws.ToString(r.Value)
		if f, err := strconv.ParseFloat(v, 64); err == nil { // "2" and "2.0" are one reservation
			v = strconv.FormatFloat(f, 'f', -1, 64)
		}
		m[string(r.Type)] = v
	}
	if v := aws.ToInt32(vcpus); v > 0 {
		m[string(types.ResourceTypeVcpu)] = strconv.Itoa(int(v))
	}
	if v := aws.ToInt32(memory); v > 0 {
		m[string(types.ResourceTypeMemory)] = strconv.Itoa(int(v))
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func platformString(ps []types.PlatformCapability) string {
	if len(ps) == 0 {
		return string(PlatformEC2) // Batch's default
	}
	var s []string
	for _, p := range ps {
		s = append(s, string(p))
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// envString is a canonical form of an environment. Batch drops variables
// with empty values, so they are left out on both sides.
func envString(kvs []types.KeyValuePair) string {
	var s []string
	for _, kv := range kvs {
		if aws.ToString(kv.Value) != "" {
			s = append(s, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
		}
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// logGroup is the CloudWatch Logs group a log configuration names, "" for
// Batch's default. Only that is compared: Batch may fill in a default
// configuration of its own.
func logGroup(l *types.LogConfiguration) string {
	if l == nil || (l.LogDriver != "" && l.LogDriver != types.LogDriverAwslogs) {
		if l != nil {
			return "driver " + string(l.LogDriver)
		}
		return ""
	}
	return l.Options["awslogs-group"]
}

func retryString(r *types.RetryStrategy) string {
	if r == nil {
		return ""
	}
	s := strconv.Itoa(int(aws.ToInt32(r.Attempts)))
	for _, e := range r.EvaluateOnExit {
		s += fmt.Sprintf(" %s:%s:%s:%s", strings.ToUpper(string(e.Action)), aws.ToString(e.OnStatusReason), aws.ToString(e.OnReason), aws.ToString(e.OnExitCode))
	}
	return s
}

func timeoutString(t *types.JobTimeout) string {
	if t == nil || t.AttemptDurationSeconds == nil {
		return "none"
	}
	return strconv.Itoa(int(*t.AttemptDurationSeconds)) + "s"
}
