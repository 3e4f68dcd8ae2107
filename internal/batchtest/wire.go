package batchtest

import "encoding/json"

// The JSON shapes below follow the AWS Batch REST-JSON protocol as
// aws-sdk-go-v2/service/batch serializes requests and deserializes responses
// (member names are the API's camelCase names). Only the members framefleet
// and its tests use are modelled; unknown request members are ignored.

type keyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type resourceRequirement struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type evaluateOnExit struct {
	Action         string `json:"action"`
	OnExitCode     string `json:"onExitCode,omitempty"`
	OnReason       string `json:"onReason,omitempty"`
	OnStatusReason string `json:"onStatusReason,omitempty"`
}

type retryStrategy struct {
	Attempts       int              `json:"attempts,omitempty"`
	EvaluateOnExit []evaluateOnExit `json:"evaluateOnExit,omitempty"`
}

type jobTimeout struct {
	AttemptDurationSeconds int `json:"attemptDurationSeconds,omitempty"`
}

type networkConfiguration struct {
	AssignPublicIP string `json:"assignPublicIp,omitempty"`
}

type fargatePlatformConfiguration struct {
	PlatformVersion string `json:"platformVersion,omitempty"`
}

type containerProperties struct {
	Image                        string                        `json:"image,omitempty"`
	Command                      []string                      `json:"command,omitempty"`
	Environment                  []keyValue                    `json:"environment,omitempty"`
	ResourceRequirements         []resourceRequirement         `json:"resourceRequirements,omitempty"`
	Vcpus                        int                           `json:"vcpus,omitempty"`
	Memory                       int                           `json:"memory,omitempty"`
	JobRoleArn                   string                        `json:"jobRoleArn,omitempty"`
	ExecutionRoleArn             string                        `json:"executionRoleArn,omitempty"`
	NetworkConfiguration         *networkConfiguration         `json:"networkConfiguration,omitempty"`
	FargatePlatformConfiguration *fargatePlatformConfiguration `json:"fargatePlatformConfiguration,omitempty"`
	Privileged                   bool                          `json:"privileged,omitempty"`
	User                         string                        `json:"user,omitempty"`
	LogConfiguration             *logConfiguration             `json:"logConfiguration,omitempty"`
	// Kept as sent, so a client sees what a revision would mount or map.
	Volumes         json.RawMessage `json:"volumes,omitempty"`
	MountPoints     json.RawMessage `json:"mountPoints,omitempty"`
	LinuxParameters json.RawMessage `json:"linuxParameters,omitempty"`
}

type logConfiguration struct {
	LogDriver string            `json:"logDriver"`
	Options   map[string]string `json:"options,omitempty"`
}

type registerJobDefinitionInput struct {
	JobDefinitionName    string               `json:"jobDefinitionName"`
	Type                 string               `json:"type"`
	ContainerProperties  *containerProperties `json:"containerProperties"`
	PlatformCapabilities []string             `json:"platformCapabilities"`
	RetryStrategy        *retryStrategy       `json:"retryStrategy"`
	Timeout              *jobTimeout          `json:"timeout"`
	Tags                 map[string]string    `json:"tags"`
	Parameters           map[string]string    `json:"parameters"`
}

// JobDefinition is a registered revision, as DescribeJobDefinitions returns it.
type JobDefinition struct {
	JobDefinitionName    string              `json:"jobDefinitionName"`
	JobDefinitionArn     string              `json:"jobDefinitionArn"`
	Revision             int                 `json:"revision"`
	Status               string              `json:"status"`
	Type                 string              `json:"type"`
	ContainerProperties  containerProperties `json:"containerProperties"`
	PlatformCapabilities []string            `json:"platformCapabilities,omitempty"`
	RetryStrategy        *retryStrategy      `json:"retryStrategy,omitempty"`
	Timeout              *jobTimeout         `json:"timeout,omitempty"`
	Tags                 map[string]string   `json:"tags,omitempty"`
	Parameters           map[string]string   `json:"parameters,omitempty"`
}

// LogGroup is the awslogs-group of the definition's log configuration, or "".
func (d JobDefinition) LogGroup() string {
	if l := d.ContainerProperties.LogConfiguration; l != nil && l.LogDriver == "awslogs" {
		return l.Options["awslogs-group"]
	}
	return ""
}

// Image is the container image of the definition.
func (d JobDefinition) Image() string { return d.ContainerProperties.Image }

// Command is the definition's default command.
func (d JobDefinition) Command() []string {
	return append([]string(nil), d.ContainerProperties.Command...)
}

// Env is the definition's environment as a map.
func (d JobDefinition) Env() map[string]string { return kvMap(d.ContainerProperties.Environment) }

// Resource returns a resourceRequirements value ("VCPU", "MEMORY", "GPU"), or "".
func (d JobDefinition) Resource(typ string) string {
	for _, r := range d.ContainerProperties.ResourceRequirements {
		if r.Type == typ {
			return r.Value
		}
	}
	return ""
}

// Retry returns the definition's retry attempts and rules as (action, onStatusReason, onReason, onExitCode) tuples.
func (d JobDefinition) Retry() (attempts int, rules [][4]string) {
	if d.RetryStrategy == nil {
		return 0, nil
	}
	for _, r := range d.RetryStrategy.EvaluateOnExit {
		rules = append(rules, [4]string{r.Action, r.OnStatusReason, r.OnReason, r.OnExitCode})
	}
	return d.RetryStrategy.Attempts, rules
}

// FargateAssignPublicIP reports networkConfiguration.assignPublicIp.
func (d JobDefinition) FargateAssignPublicIP() string {
	if d.ContainerProperties.NetworkConfiguration == nil {
		return ""
	}
	return d.ContainerProperties.NetworkConfiguration.AssignPublicIP
}

// ExecutionRoleArn is the Fargate execution role.
func (d JobDefinition) ExecutionRoleArn() string { return d.ContainerProperties.ExecutionRoleArn }

// JobRoleArn is the job's IAM role.
func (d JobDefinition) JobRoleArn() string { return d.ContainerProperties.JobRoleArn }

// TimeoutSeconds is timeout.attemptDurationSeconds (0 = none).
func (d JobDefinition) TimeoutSeconds() int {
	if d.Timeout == nil {
		return 0
	}
	return d.Timeout.AttemptDurationSeconds
}

type containerOverrides struct {
	Command              []string              `json:"command"`
	Environment          []keyValue            `json:"environment"`
	ResourceRequirements []resourceRequirement `json:"resourceRequirements"`
}

type jobDependency struct {
	JobID string `json:"jobId,omitempty"`
	Type  string `json:"type,omitempty"`
}

type arrayProperties struct {
	Size *int `json:"size"`
}

type submitJobInput struct {
	JobName            string              `json:"jobName"`
	JobQueue           string              `json:"jobQueue"`
	JobDefinition      string              `json:"jobDefinition"`
	ArrayProperties    *arrayProperties    `json:"arrayProperties"`
	DependsOn          []jobDependency     `json:"dependsOn"`
	ContainerOverrides *containerOverrides `json:"containerOverrides"`
	RetryStrategy      *retryStrategy      `json:"retryStrategy"`
	Timeout            *jobTimeout         `json:"timeout"`
	Tags               map[string]string   `json:"tags"`
	Parameters         map[string]string   `json:"parameters"`
	ShareIdentifier    string              `json:"shareIdentifier"`
}

type submitJobOutput struct {
	JobArn  string `json:"jobArn"`
	JobName string `json:"jobName"`
	JobID   string `json:"jobId"`
}

type attemptContainerDetail struct {
	ExitCode      *int   `json:"exitCode,omitempty"`
	Reason        string `json:"reason,omitempty"`
	LogStreamName string `json:"logStreamName,omitempty"`
	TaskArn       string `json:"taskArn,omitempty"`
}

type attemptDetail struct {
	Container    attemptContainerDetail `json:"container"`
	StartedAt    int64                  `json:"startedAt,omitempty"`
	StoppedAt    int64                  `json:"stoppedAt,omitempty"`
	StatusReason string                 `json:"statusReason,omitempty"`
}

type arrayPropertiesDetail struct {
	StatusSummary map[string]int `json:"statusSummary,omitempty"`
	Size          int            `json:"size,omitempty"`
	Index         *int           `json:"index,omitempty"`
}

type containerDetail struct {
	Image                string                `json:"image,omitempty"`
	Command              []string              `json:"command,omitempty"`
	Environment          []keyValue            `json:"environment,omitempty"`
	ResourceRequirements []resourceRequirement `json:"resourceRequirements,omitempty"`
	JobRoleArn           string                `json:"jobRoleArn,omitempty"`
	ExecutionRoleArn     string                `json:"executionRoleArn,omitempty"`
	ExitCode             *int                  `json:"exitCode,omitempty"`
	Reason               string                `json:"reason,omitempty"`
	LogStreamName        string                `json:"logStreamName,omitempty"`
}

type jobDetail struct {
	JobArn               string                 `json:"jobArn"`
	JobName              string                 `json:"jobName"`
	JobID                string                 `json:"jobId"`
	JobQueue             string                 `json:"jobQueue"`
	Status               string                 `json:"status"`
	StatusReason         string                 `json:"statusReason,omitempty"`
	Attempts             []attemptDetail        `json:"attempts,omitempty"`
	CreatedAt            int64                  `json:"createdAt"`
	StartedAt            int64                  `json:"startedAt,omitempty"`
	StoppedAt            int64                  `json:"stoppedAt,omitempty"`
	DependsOn            []jobDependency        `json:"dependsOn,omitempty"`
	JobDefinition        string                 `json:"jobDefinition"`
	Container            *containerDetail       `json:"container,omitempty"`
	ArrayProperties      *arrayPropertiesDetail `json:"arrayProperties,omitempty"`
	RetryStrategy        *retryStrategy         `json:"retryStrategy,omitempty"`
	Timeout              *jobTimeout            `json:"timeout,omitempty"`
	Tags                 map[string]string      `json:"tags,omitempty"`
	PlatformCapabilities []string               `json:"platformCapabilities,omitempty"`
	IsCancelled          bool                   `json:"isCancelled,omitempty"`
	IsTerminated         bool                   `json:"isTerminated,omitempty"`
}

type jobSummaryContainer struct {
	ExitCode *int   `json:"exitCode,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

type jobSummaryArray struct {
	Size  int  `json:"size,omitempty"`
	Index *int `json:"index,omitempty"`
}

type jobSummary struct {
	JobArn          string               `json:"jobArn"`
	JobID           string               `json:"jobId"`
	JobName         string               `json:"jobName"`
	CreatedAt       int64                `json:"createdAt"`
	Status          string               `json:"status"`
	StatusReason    string               `json:"statusReason,omitempty"`
	StartedAt       int64                `json:"startedAt,omitempty"`
	StoppedAt       int64                `json:"stoppedAt,omitempty"`
	Container       *jobSummaryContainer `json:"container,omitempty"`
	ArrayProperties *jobSummaryArray     `json:"arrayProperties,omitempty"`
	JobDefinition   string               `json:"jobDefinition,omitempty"`
}

func kvMap(kvs []keyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Name] = kv.Value
	}
	return m
}
