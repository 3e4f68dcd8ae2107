// Package batchtest is an AWS Batch test server: an httptest server speaking
// the REST-JSON protocol aws-sdk-go-v2/service/batch uses, with Batch's job
// state machine (array jobs, dependencies, retry strategies with
// evaluateOnExit, job definition revisions, terminate and cancel). Jobs are
// executed by an injected Executor, so tests can run the real worker binary.
//
// Test hooks: Spot reclaim of chosen attempts (at start or mid-attempt),
// seeded fault injection (500 / 429 answers before the call takes effect, and
// 500 answers after it did, as a lost response), per-API call counters and
// inspection of registered job definitions.
package batchtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Batch's job states.
const (
	Submitted = "SUBMITTED"
	Pending   = "PENDING"
	Runnable  = "RUNNABLE"
	Starting  = "STARTING"
	Running   = "RUNNING"
	Succeeded = "SUCCEEDED"
	Failed    = "FAILED"
)

// SpotReclaimReason is the status reason Batch gives an attempt whose Spot host was reclaimed.
const SpotReclaimReason = "Host EC2 (instance i-0abc) terminated."

// ExecJob is one attempt of one job (a plain job or an array child) as the
// container would see it.
type ExecJob struct {
	JobID      string // "<parent>:<index>" for array children
	JobName    string
	ArrayIndex int // -1 for a job that is not an array child
	ArraySize  int
	Attempt    int // 1-based, like AWS_BATCH_JOB_ATTEMPT
	Image      string
	Command    []string
	// Env is the definition's environment, overridden by containerOverrides,
	// plus the AWS_BATCH_* variables Batch sets.
	Env map[string]string
}

// Environ returns Env as sorted KEY=value strings for exec.Cmd.Env.
func (j ExecJob) Environ() []string {
	out := make([]string, 0, len(j.Env))
	for _, k := range slices.Sorted(maps.Keys(j.Env)) {
		out = append(out, k+"="+j.Env[k])
	}
	return out
}

// Executor runs one attempt and returns the container's exit code. An error
// means the container could not run at all (its text becomes the container
// reason). It must return promptly when ctx is cancelled; context.Cause(ctx)
// then says how Batch stops the container: ErrJobTerminated and
// ErrAttemptTimedOut stop it gracefully (SIGTERM, SIGKILL after a grace
// period), ErrHostReclaimed kills it at once (the host is gone).
type Executor func(ctx context.Context, job ExecJob) (exitCode int, err error)

// Why a running attempt's context was cancelled (context.Cause).
var (
	// ErrJobTerminated: TerminateJob. Batch sends SIGTERM, then SIGKILL 30 s later.
	ErrJobTerminated = errors.New("batchtest: job terminated")
	// ErrAttemptTimedOut: the attempt outlived timeout.attemptDurationSeconds;
	// stopped like a terminated job.
	ErrAttemptTimedOut = errors.New("batchtest: attempt duration exceeded timeout")
	// ErrHostReclaimed: a Spot interruption; the container dies with its host, without a signal to handle.
	ErrHostReclaimed = errors.New("batchtest: Spot host reclaimed")
	// ErrServerClosed: the test server shut down.
	ErrServerClosed = errors.New("batchtest: server closed")
)

// Graceful reports whether an attempt whose context ended with cause is
// stopped gracefully (SIGTERM first) rather than killed at once.
func Graceful(cause error) bool { return !errors.Is(cause, ErrHostReclaimed) }

// Options configure a Server.
type Options struct {
	// Executor runs jobs; nil means every attempt exits 0 at once.
	Executor Executor
	// MaxRunning is the compute capacity: how many attempts run at once (default 4).
	MaxRunning int
	// Queues are the job queues that exist. With neither Queues nor
	// QueueSettings, any queue name exists: SubmitJob accepts it and
	// DescribeJobQueues describes it as an ENABLED, VALID queue of one EC2
	// compute environment.
	Queues []string
	// QueueSettings describe queues beyond their name (a queue named here
	// exists too).
	QueueSettings map[string]QueueSettings
	// ListDelay hides a new job from ListJobs for this long after it was
	// created, as Batch's job list lags a SubmitJob.
	ListDelay time.Duration
	Region    string // default us-east-1
	AccountID string // default 123456789012
}

// QueueSettings describe one job queue.
type QueueSettings struct {
	// SchedulingPolicyARN gives the queue a fair-share scheduling policy:
	// SubmitJob then refuses jobs without a shareIdentifier, as Batch does.
	SchedulingPolicyARN string
	// ComputeType is the type of the queue's compute environment: EC2
	// (default), SPOT, FARGATE or FARGATE_SPOT.
	ComputeType string
}

// queue returns the settings of the named queue (name or ARN) and whether it exists.
func (s *Server) queue(ref string) (string, QueueSettings, bool) {
	name := strings.TrimPrefix(ref, s.arn("job-queue", ""))
	if len(s.opts.Queues) == 0 && len(s.opts.QueueSettings) == 0 {
		return name, QueueSettings{}, name != ""
	}
	if qs, ok := s.opts.QueueSettings[name]; ok {
		return name, qs, true
	}
	return name, QueueSettings{}, slices.Contains(s.opts.Queues, name)
}

// Server is a running AWS Batch test server. Its methods are safe for concurrent use.
type Server struct {
	URL string

	http   *httptest.Server
	opts   Options
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	mu       sync.Mutex
	seq      int
	jobs     map[string]*job
	order    []*job // every schedulable job (plain jobs and children) not yet terminal, in submission order
	parents  []*job // array parents not yet terminal
	defs     map[string][]*JobDefinition
	calls    map[string]int
	faulted  map[string]int
	running  int
	fault    float64 // fraction of calls failed before they take effect
	late     float64 // fraction of calls failed after they took effect
	lateNext map[string]int
	failNext map[string][]int // HTTP statuses the next calls of an op answer before taking effect
	rng      *rand.Rand
	reclaim  func(ExecJob) bool
	reject   func(jobName string) bool
	requests []SubmitRecord
}

// SubmitRecord is what one SubmitJob call asked for, for assertions.
type SubmitRecord struct {
	JobID         string
	JobName       string
	JobDefinition string
	ArraySize     int // 0 when arrayProperties was not sent
	DependsOn     []Dependency
	Command       []string // containerOverrides.command
	Env           map[string]string
	Tags          map[string]string
	RetryOverride bool // retryStrategy was sent (it replaces the definition's)
	// RetryAttempts and RetryRules are the sent retryStrategy, rules as
	// (action, onStatusReason, onReason, onExitCode).
	RetryAttempts    int
	RetryRules       [][4]string
	TimeoutSeconds   int
	HasTimeoutOption bool
}

// Dependency is one dependsOn entry.
type Dependency struct{ JobID, Type string }

type job struct {
	id, name, arn, queue string
	def                  *JobDefinition
	status, reason       string
	createdAt            int64
	startedAt, stoppedAt int64
	deps                 []jobDependency
	parent               *job
	children             []*job
	arraySize            int // > 0 for array parents and children
	index                int // child index, -1 otherwise
	command              []string
	env                  []keyValue // definition env + overrides
	retry                *retryStrategy
	timeout              int
	tags                 map[string]string
	attempts             []attemptDetail
	isCancelled          bool
	isTerminated         bool
	stopReason           string // TerminateJob/CancelJob reason of an array parent

	// set while an attempt runs
	stop       context.CancelCauseFunc
	killReason string // why the running attempt is being stopped (terminate, reclaim)
	terminated bool   // killed by TerminateJob: not retried
}

// Start starts a server and closes it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := New(opts)
	t.Cleanup(s.Close)
	return s
}

// New starts a server; Close stops it and every running attempt.
func New(opts Options) *Server {
	if opts.MaxRunning <= 0 {
		opts.MaxRunning = 4
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.Executor == nil {
		opts.Executor = func(context.Context, ExecJob) (int, error) { return 0, nil }
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Server{
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		wake:     make(chan struct{}, 1),
		jobs:     map[string]*job{},
		defs:     map[string][]*JobDefinition{},
		calls:    map[string]int{},
		faulted:  map[string]int{},
		lateNext: map[string]int{},
		failNext: map[string][]int{},
		rng:      rand.New(rand.NewPCG(1, 2)),
	}
	s.http = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.http.URL
	s.wg.Add(1)
	go s.schedule()
	return s
}

// Close stops the scheduler, cancels running attempts and shuts the server down.
func (s *Server) Close() {
	s.cancel(ErrServerClosed)
	s.http.Close()
	s.wg.Wait()
}

// SetFaults makes the given fraction of API calls fail with HTTP 500
// (ServerException) or 429 (TooManyRequestsException), chosen by a seeded
// random source. Faulted calls have no effect.
func (s *Server) SetFaults(rate float64, seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = rate
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// SetFaultsAfterWork makes the given fraction of API calls take effect and
// then answer HTTP 500 (ServerException), as when the response is lost: a
// SubmitJob answered so has created its job all the same. Chosen by the
// same seeded source as SetFaults; both modes can be on at once.
func (s *Server) SetFaultsAfterWork(rate float64, seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.late = rate
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// FailBeforeWork makes the next n calls of op answer status without taking
// effect: 429 (TooManyRequestsException) or 500 (ServerException).
func (s *Server) FailBeforeWork(op string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext[op] = append(s.failNext[op], status)
	}
}

// FailAfterWork makes the next n calls of op (e.g. "SubmitJob") that succeed
// answer HTTP 500 all the same: the call takes effect, the client sees an error.
func (s *Server) FailAfterWork(op string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lateNext[op] += n
}

// SetCapacity changes how many attempts may run at once. 0 models a compute
// environment that cannot start instances (no quota, no Spot capacity, bad
// instance types): jobs wait in RUNNABLE, as they do on AWS, indefinitely.
func (s *Server) SetCapacity(n int) {
	s.mu.Lock()
	s.opts.MaxRunning = max(n, 0)
	s.mu.Unlock()
	s.kick()
}

// SetReclaim makes every attempt for which match returns true lose its host
// right after it started running: the attempt is killed and fails with
// status reason SpotReclaimReason, as a Spot interruption does. See Reclaim
// for a reclaim in the middle of an attempt.
func (s *Server) SetReclaim(match func(ExecJob) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reclaim = match
}

// Reclaim makes the running attempt of job id (a plain job or a child
// "<parent>:<i>") lose its Spot host now: the container is killed at once
// (context cause ErrHostReclaimed) and the attempt fails with status reason
// SpotReclaimReason. It reports false when no attempt of id is running.
func (s *Server) Reclaim(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok || j.status != Running || j.stop == nil || j.killReason != "" {
		return false
	}
	j.killReason = SpotReclaimReason
	j.stop(ErrHostReclaimed)
	return true
}

// SetRejectSubmit makes SubmitJob answer ClientException for every job name
// for which match returns true.
func (s *Server) SetRejectSubmit(match func(jobName string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = match
}

// Calls returns how many calls each API received (e.g. "SubmitJob"), faulted ones included.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Faulted returns how many calls of each API were answered with an injected
// fault (before or after the call took effect).
func (s *Server) Faulted() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.faulted)
}

// ResetCalls zeroes the call counters.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	clear(s.faulted)
}

// JobDefinitions returns every registered revision of name, oldest first.
func (s *Server) JobDefinitions(name string) []JobDefinition {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []JobDefinition
	for _, d := range s.defs[name] {
		out = append(out, *d)
	}
	return out
}

// Submissions returns every accepted SubmitJob request, in order.
func (s *Server) Submissions() []SubmitRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// JobStatus returns a job's status and status reason.
func (s *Server) JobStatus(id string) (status, reason string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return "", "", false
	}
	return j.status, j.reason, true
}

// Attempts returns how many attempts a job (or child "<parent>:<i>") has made.
func (s *Server) Attempts(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[id]; ok {
		return len(j.attempts)
	}
	return 0
}

// Running returns how many attempts are running now.
func (s *Server) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// ---- HTTP ----

type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func clientErr(format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, "ClientException", fmt.Sprintf(format, a...)}
}

var operations = map[string]string{
	"/v1/submitjob":                   "SubmitJob",
	"/v1/describejobs":                "DescribeJobs",
	"/v1/listjobs":                    "ListJobs",
	"/v1/terminatejob":                "TerminateJob",
	"/v1/canceljob":                   "CancelJob",
	"/v1/registerjobdefinition":       "RegisterJobDefinition",
	"/v1/describejobdefinitions":      "DescribeJobDefinitions",
	"/v1/deregisterjobdefinition":     "DeregisterJobDefinition",
	"/v1/describejobqueues":           "DescribeJobQueues",
	"/v1/describecomputeenvironments": "DescribeComputeEnvironments",
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := operations[r.URL.Path]
	if !ok || r.Method != http.MethodPost {
		writeErr(w, &apiError{http.StatusNotFound, "UnknownOperationException", "unknown operation " + r.Method + " " + r.URL.Path})
		return
	}
	buf, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, clientErr("reading request: %v", err))
		return
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		buf = []byte("{}")
	}

	s.mu.Lock()
	s.calls[op]++
	if next := s.failNext[op]; len(next) > 0 {
		s.failNext[op] = next[1:]
		s.faulted[op]++
		s.mu.Unlock()
		if next[0] == http.StatusTooManyRequests {
			writeErr(w, &apiError{http.StatusTooManyRequests, "TooManyRequestsException", "Too Many Requests"})
		} else {
			writeErr(w, &apiError{http.StatusInternalServerError, "ServerException", "injected server error"})
		}
		return
	}
	if s.fault > 0 && s.rng.Float64() < s.fault {
		s.faulted[op]++
		throttle := s.rng.IntN(2) == 0
		s.mu.Unlock()
		if throttle {
			writeErr(w, &apiError{http.StatusTooManyRequests, "TooManyRequestsException", "Too Many Requests"})
		} else {
			writeErr(w, &apiError{http.StatusInternalServerError, "ServerException", "injected server error"})
		}
		return
	}
	var out any
	switch op {
	case "SubmitJob":
		out, err = s.submitJob(buf)
	case "DescribeJobs":
		out, err = s.describeJobs(buf)
	case "ListJobs":
		out, err = s.listJobs(buf)
	case "TerminateJob":
		out, err = s.terminateJob(buf, true)
	case "CancelJob":
		out, err = s.terminateJob(buf, false)
	case "RegisterJobDefinition":
		out, err = s.registerJobDefinition(buf)
	case "DescribeJobDefinitions":
		out, err = s.describeJobDefinitions(buf)
	case "DeregisterJobDefinition":
		out, err = s.deregisterJobDefinition(buf)
	case "DescribeJobQueues":
		out, err = s.describeJobQueues(buf)
	case "DescribeComputeEnvironments":
		out, err = s.describeComputeEnvironments(buf)
	}
	lost := false
	if err == nil {
		if s.lateNext[op] > 0 {
			s.lateNext[op]--
			lost = true
		} else if s.late > 0 && s.rng.Float64() < s.late {
			lost = true
		}
		if lost {
			s.faulted[op]++
		}
	}
	s.mu.Unlock()
	s.kick()
	if lost {
		writeErr(w, &apiError{http.StatusInternalServerError, "ServerException", "injected server error after the call took effect"})
		return
	}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, "ServerException", err.Error()}
		}
		writeErr(w, ae)
		return
	}
	body, err := json.Marshal(out)
	if err != nil {
		writeErr(w, &apiError{http.StatusInternalServerError, "ServerException", err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", e.code)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": e.msg})
}

func decode(buf []byte, v any) error {
	if err := json.Unmarshal(buf, v); err != nil {
		return clientErr("invalid request: %v", err)
	}
	return nil
}

func nowMS() int64 { return time.Now().UnixMilli() }

func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", s.seq*2654435761%(1<<32), s.seq%0x10000, s.seq%0x1000, (s.seq*7)%0x1000, s.seq)
}

func (s *Server) arn(kind, name string) string {
	return fmt.Sprintf("arn:aws:batch:%s:%s:%s/%s", s.opts.Region, s.opts.AccountID, kind, name)
}

// ---- job definitions ----

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

// validGlob follows EvaluateOnExit: letters, digits, '.', ':', whitespace, optional trailing '*'.
func validGlob(g string, digitsOnly bool) bool {
	if len(g) > 512 {
		return false
	}
	body := strings.TrimSuffix(g, "*")
	if strings.Contains(body, "*") {
		return false
	}
	for _, r := range body {
		switch {
		case r >= '0' && r <= '9':
		case digitsOnly:
			return false
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '.', r == ':', r == ' ', r == '\t':
		default:
			return false
		}
	}
	return true
}

func validateRetry(rs *retryStrategy) error {
	if rs == nil {
		return nil
	}
	if rs.Attempts < 1 || rs.Attempts > 10 {
		return clientErr("retryStrategy.attempts must be between 1 and 10, got %d", rs.Attempts)
	}
	if len(rs.EvaluateOnExit) > 5 {
		return clientErr("retryStrategy.evaluateOnExit has %d entries, at most 5 allowed", len(rs.EvaluateOnExit))
	}
	for i, e := range rs.EvaluateOnExit {
		a := strings.ToUpper(e.Action)
		if a != "RETRY" && a != "EXIT" {
			return clientErr("evaluateOnExit[%d].action must be RETRY or EXIT, got %q", i, e.Action)
		}
		if !validGlob(e.OnStatusReason, false) || !validGlob(e.OnReason, false) || !validGlob(e.OnExitCode, true) {
			return clientErr("evaluateOnExit[%d] has an invalid pattern", i)
		}
	}
	return nil
}

func (s *Server) registerJobDefinition(buf []byte) (any, error) {
	var in registerJobDefinitionInput
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	if !validName(in.JobDefinitionName) {
		return nil, clientErr("jobDefinitionName %q is invalid: up to 128 letters, digits, hyphens and underscores", in.JobDefinitionName)
	}
	if in.Type != "container" {
		return nil, clientErr("type must be container, got %q", in.Type)
	}
	if in.ContainerProperties == nil || in.ContainerProperties.Image == "" {
		return nil, clientErr("containerProperties.image is required")
	}
	if err := validateRetry(in.RetryStrategy); err != nil {
		return nil, err
	}
	if in.Timeout != nil && in.Timeout.AttemptDurationSeconds < 60 {
		return nil, clientErr("timeout.attemptDurationSeconds must be at least 60")
	}
	for _, kv := range in.ContainerProperties.Environment {
		if strings.HasPrefix(kv.Name, "AWS_BATCH") {
			return nil, clientErr("environment variable %s uses the reserved AWS_BATCH prefix", kv.Name)
		}
	}
	cp := *in.ContainerProperties
	fargate := slices.Contains(in.PlatformCapabilities, "FARGATE")
	hasVCPU := false
	for _, r := range cp.ResourceRequirements {
		switch r.Type {
		case "VCPU":
			hasVCPU = true
		case "MEMORY", "GPU":
		default:
			return nil, clientErr("unknown resourceRequirements type %q", r.Type)
		}
	}
	if fargate {
		if cp.ExecutionRoleArn == "" {
			return nil, clientErr("Fargate job definitions require executionRoleArn")
		}
		if cp.Vcpus != 0 || cp.Memory != 0 || !hasVCPU {
			return nil, clientErr("Fargate job definitions must set VCPU and MEMORY through resourceRequirements")
		}
		for _, r := range cp.ResourceRequirements {
			if r.Type == "GPU" {
				return nil, clientErr("Fargate does not support GPU resources")
			}
		}
	}
	// The service normalises vcpus/memory into resourceRequirements.
	if cp.Vcpus > 0 {
		cp.ResourceRequirements = append(cp.ResourceRequirements, resourceRequirement{"VCPU", strconv.Itoa(cp.Vcpus)})
		cp.Vcpus = 0
	}
	if cp.Memory > 0 {
		cp.ResourceRequirements = append(cp.ResourceRequirements, resourceRequirement{"MEMORY", strconv.Itoa(cp.Memory)})
		cp.Memory = 0
	}
	platform := in.PlatformCapabilities
	if len(platform) == 0 {
		platform = []string{"EC2"}
	}
	rev := len(s.defs[in.JobDefinitionName]) + 1
	d := &JobDefinition{
		JobDefinitionName:    in.JobDefinitionName,
		JobDefinitionArn:     s.arn("job-definition", fmt.Sprintf("%s:%d", in.JobDefinitionName, rev)),
		Revision:             rev,
		Status:               "ACTIVE",
		Type:                 in.Type,
		ContainerProperties:  cp,
		PlatformCapabilities: platform,
		RetryStrategy:        in.RetryStrategy,
		Timeout:              in.Timeout,
		Tags:                 in.Tags,
		Parameters:           in.Parameters,
	}
	s.defs[in.JobDefinitionName] = append(s.defs[in.JobDefinitionName], d)
	return map[string]any{"jobDefinitionName": d.JobDefinitionName, "jobDefinitionArn": d.JobDefinitionArn, "revision": d.Revision}, nil
}

// resolveDef finds a definition by name (latest ACTIVE), name:revision or ARN.
func (s *Server) resolveDef(ref string) *JobDefinition {
	ref = strings.TrimPrefix(ref, s.arn("job-definition", ""))
	name, revStr, hasRev := strings.Cut(ref, ":")
	revs := s.defs[name]
	if hasRev {
		rev, err := strconv.Atoi(revStr)
		if err != nil || rev < 1 || rev > len(revs) {
			return nil
		}
		return revs[rev-1]
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].Status == "ACTIVE" {
			return revs[i]
		}
	}
	return nil
}

func (s *Server) describeJobDefinitions(buf []byte) (any, error) {
	var in struct {
		JobDefinitionName string   `json:"jobDefinitionName"`
		JobDefinitions    []string `json:"jobDefinitions"`
		Status            string   `json:"status"`
		MaxResults        int      `json:"maxResults"`
		NextToken         string   `json:"nextToken"`
	}
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	var all []*JobDefinition
	switch {
	case len(in.JobDefinitions) > 0:
		for _, ref := range in.JobDefinitions {
			if d := s.resolveDef(ref); d != nil {
				all = append(all, d)
			}
		}
	case in.JobDefinitionName != "":
		all = slices.Clone(s.defs[in.JobDefinitionName])
	default:
		for _, name := range slices.Sorted(maps.Keys(s.defs)) {
			all = append(all, s.defs[name]...)
		}
	}
	var match []JobDefinition
	for _, d := range all {
		if in.Status == "" || d.Status == in.Status {
			match = append(match, *d)
		}
	}
	page, next, err := paginate(match, in.MaxResults, 100, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"jobDefinitions": page}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func (s *Server) deregisterJobDefinition(buf []byte) (any, error) {
	var in struct {
		JobDefinition string `json:"jobDefinition"`
	}
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	d := s.resolveDef(in.JobDefinition)
	if d == nil {
		return nil, clientErr("job definition %s not found", in.JobDefinition)
	}
	d.Status = "INACTIVE"
	return map[string]any{}, nil
}

func (s *Server) describeJobQueues(buf []byte) (any, error) {
	var in struct {
		JobQueues []string `json:"jobQueues"`
	}
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	names := slices.Clone(s.opts.Queues)
	for _, q := range slices.Sorted(maps.Keys(s.opts.QueueSettings)) {
		if !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	if len(names) == 0 { // any queue exists: describe the ones asked for
		for _, ref := range in.JobQueues {
			names = append(names, strings.TrimPrefix(ref, s.arn("job-queue", "")))
		}
	}
	var out []map[string]any
	for _, q := range names {
		if len(in.JobQueues) > 0 && !slices.Contains(in.JobQueues, q) && !slices.Contains(in.JobQueues, s.arn("job-queue", q)) {
			continue
		}
		_, qs, _ := s.queue(q)
		d := map[string]any{
			"jobQueueName": q, "jobQueueArn": s.arn("job-queue", q),
			"state": "ENABLED", "status": "VALID", "priority": 1,
			"computeEnvironmentOrder": []map[string]any{{"order": 1, "computeEnvironment": s.arn("compute-environment", q+"-ce")}},
		}
		if qs.SchedulingPolicyARN != "" {
			d["schedulingPolicyArn"] = qs.SchedulingPolicyARN
		}
		out = append(out, d)
	}
	return map[string]any{"jobQueues": out}, nil
}

// describeComputeEnvironments describes the one managed compute environment
// "<queue>-ce" of each queue.
func (s *Server) describeComputeEnvironments(buf []byte) (any, error) {
	var in struct {
		ComputeEnvironments []string `json:"computeEnvironments"`
	}
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, ref := range in.ComputeEnvironments {
		name := strings.TrimPrefix(ref, s.arn("compute-environment", ""))
		q, ok := strings.CutSuffix(name, "-ce")
		if !ok {
			continue
		}
		_, qs, exists := s.queue(q)
		if !exists {
			continue
		}
		typ := qs.ComputeType
		if typ == "" {
			typ = "EC2"
		}
		out = append(out, map[string]any{
			"computeEnvironmentName": name, "computeEnvironmentArn": s.arn("compute-environment", name),
			"type": "MANAGED", "state": "ENABLED", "status": "VALID",
			"computeResources": map[string]any{"type": typ, "maxvCpus": 256, "subnets": []string{"subnet-1"}},
		})
	}
	return map[string]any{"computeEnvironments": out}, nil
}

// paginate returns one page of items; tokens are offsets.
func paginate[T any](items []T, max, def int, token string) ([]T, string, error) {
	if max <= 0 {
		max = def
	}
	if max > 1000 {
		max = 1000
	}
	start := 0
	if token != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(token, "off-"))
		if err != nil || n < 0 || n > len(items) {
			return nil, "", clientErr("invalid nextToken %q", token)
		}
		start = n
	}
	end := min(start+max, len(items))
	next := ""
	if end < len(items) {
		next = "off-" + strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

// ---- jobs ----

func (s *Server) submitJob(buf []byte) (any, error) {
	var in submitJobInput
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	if !validName(in.JobName) {
		return nil, clientErr("jobName %q is invalid: up to 128 letters, digits, hyphens and underscores, starting with a letter or digit", in.JobName)
	}
	if in.JobQueue == "" {
		return nil, clientErr("jobQueue is required")
	}
	if s.reject != nil && s.reject(in.JobName) {
		return nil, clientErr("submission of %s rejected by the test", in.JobName)
	}
	_, qs, ok := s.queue(in.JobQueue)
	if !ok {
		return nil, clientErr("job queue %s does not exist", in.JobQueue)
	}
	if qs.SchedulingPolicyARN != "" && in.ShareIdentifier == "" {
		return nil, clientErr("job queue %s has a fair-share scheduling policy: shareIdentifier is required", in.JobQueue)
	}
	if qs.SchedulingPolicyARN == "" && in.ShareIdentifier != "" {
		return nil, clientErr("job queue %s has no scheduling policy: do not send a shareIdentifier", in.JobQueue)
	}
	def := s.resolveDef(in.JobDefinition)
	if def == nil || def.Status != "ACTIVE" {
		return nil, clientErr("job definition %s not found or inactive", in.JobDefinition)
	}
	size := 0
	if in.ArrayProperties != nil && in.ArrayProperties.Size != nil {
		size = *in.ArrayProperties.Size
		if size < 2 || size > 10000 {
			return nil, clientErr("arrayProperties.size must be between 2 and 10000, got %d", size)
		}
	}
	if len(in.DependsOn) > 20 {
		return nil, clientErr("a job can depend on at most 20 jobs, got %d", len(in.DependsOn))
	}
	for _, d := range in.DependsOn {
		switch d.Type {
		case "", "N_TO_N", "SEQUENTIAL":
		default:
			return nil, clientErr("dependsOn type %q is invalid", d.Type)
		}
		if d.JobID == "" {
			if d.Type != "SEQUENTIAL" {
				return nil, clientErr("dependsOn entry without jobId")
			}
			continue
		}
		if _, ok := s.jobs[d.JobID]; !ok {
			return nil, clientErr("dependency %s does not exist", d.JobID)
		}
	}
	if err := validateRetry(in.RetryStrategy); err != nil {
		return nil, err
	}
	if in.Timeout != nil && in.Timeout.AttemptDurationSeconds < 60 {
		return nil, clientErr("timeout.attemptDurationSeconds must be at least 60")
	}
	env := slices.Clone(def.ContainerProperties.Environment)
	command := def.ContainerProperties.Command
	rec := SubmitRecord{JobName: in.JobName, JobDefinition: in.JobDefinition, ArraySize: size, Tags: in.Tags, RetryOverride: in.RetryStrategy != nil}
	if in.ContainerOverrides != nil {
		for _, kv := range in.ContainerOverrides.Environment {
			if strings.HasPrefix(kv.Name, "AWS_BATCH") {
				return nil, clientErr("environment variable %s uses the reserved AWS_BATCH prefix", kv.Name)
			}
			env = slices.DeleteFunc(env, func(e keyValue) bool { return e.Name == kv.Name })
			env = append(env, kv)
		}
		if len(in.ContainerOverrides.Command) > 0 {
			command = in.ContainerOverrides.Command
		}
		rec.Command = in.ContainerOverrides.Command
		rec.Env = kvMap(in.ContainerOverrides.Environment)
	}
	for _, d := range in.DependsOn {
		rec.DependsOn = append(rec.DependsOn, Dependency{d.JobID, d.Type})
	}
	retry := def.RetryStrategy
	if in.RetryStrategy != nil {
		retry = in.RetryStrategy // SubmitJob's retryStrategy replaces the definition's
		rec.RetryAttempts, rec.RetryRules = JobDefinition{RetryStrategy: retry}.Retry()
	}
	timeout := def.TimeoutSeconds()
	if in.Timeout != nil {
		timeout = in.Timeout.AttemptDurationSeconds
		rec.TimeoutSeconds, rec.HasTimeoutOption = timeout, true
	}
	id := s.newID()
	j := &job{
		id: id, name: in.JobName, arn: s.arn("job", id), queue: in.JobQueue, def: def,
		status: Submitted, createdAt: nowMS(), deps: in.DependsOn, arraySize: size, index: -1,
		command: command, env: env, retry: retry, timeout: timeout, tags: in.Tags,
	}
	s.jobs[id] = j
	if size > 0 {
		s.parents = append(s.parents, j)
		for i := 0; i < size; i++ {
			c := *j
			c.id = fmt.Sprintf("%s:%d", id, i)
			c.arn = s.arn("job", c.id)
			c.parent, c.index, c.deps, c.children = j, i, nil, nil
			cp := &c
			j.children = append(j.children, cp)
			s.jobs[cp.id] = cp
			s.order = append(s.order, cp)
		}
	} else {
		s.order = append(s.order, j)
	}
	rec.JobID = id
	s.requests = append(s.requests, rec)
	return submitJobOutput{JobArn: j.arn, JobName: j.name, JobID: id}, nil
}

func (s *Server) detail(j *job) jobDetail {
	d := jobDetail{
		JobArn: j.arn, JobName: j.name, JobID: j.id, JobQueue: j.queue, Status: j.status, StatusReason: j.reason,
		CreatedAt: j.createdAt, StartedAt: j.startedAt, StoppedAt: j.stoppedAt, DependsOn: j.deps,
		JobDefinition: j.def.JobDefinitionArn, RetryStrategy: j.retry, Tags: j.tags,
		PlatformCapabilities: j.def.PlatformCapabilities, IsCancelled: j.isCancelled, IsTerminated: j.isTerminated,
		Attempts: slices.Clone(j.attempts),
	}
	if j.timeout > 0 {
		d.Timeout = &jobTimeout{j.timeout}
	}
	if j.children == nil {
		c := &containerDetail{
			Image: j.def.Image(), Command: j.command, Environment: j.env,
			ResourceRequirements: j.def.ContainerProperties.ResourceRequirements,
			JobRoleArn:           j.def.JobRoleArn(), ExecutionRoleArn: j.def.ExecutionRoleArn(),
		}
		if n := len(j.attempts); n > 0 {
			last := j.attempts[n-1].Container
			c.ExitCode, c.Reason, c.LogStreamName = last.ExitCode, last.Reason, last.LogStreamName
		}
		d.Container = c
	}
	switch {
	case j.children != nil:
		sum := map[string]int{}
		for _, c := range j.children {
			sum[c.status]++
		}
		d.ArrayProperties = &arrayPropertiesDetail{StatusSummary: sum, Size: j.arraySize}
	case j.parent != nil:
		idx := j.index
		d.ArrayProperties = &arrayPropertiesDetail{Size: j.arraySize, Index: &idx}
	}
	return d
}

func (s *Server) describeJobs(buf []byte) (any, error) {
	var in struct {
		Jobs []string `json:"jobs"`
	}
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	if len(in.Jobs) == 0 || len(in.Jobs) > 100 {
		return nil, clientErr("jobs must list 1 to 100 job IDs, got %d", len(in.Jobs))
	}
	out := []jobDetail{}
	for _, id := range in.Jobs {
		if j, ok := s.jobs[id]; ok {
			out = append(out, s.detail(j))
		}
	}
	return map[string]any{"jobs": out}, nil
}

func (s *Server) listJobs(buf []byte) (any, error) {
	var in struct {
		JobQueue       string `json:"jobQueue"`
		ArrayJobID     string `json:"arrayJobId"`
		MultiNodeJobID string `json:"multiNodeJobId"`
		JobStatus      string `json:"jobStatus"`
		MaxResults     int    `json:"maxResults"`
		NextToken      string `json:"nextToken"`
		Filters        []struct {
			Name   string   `json:"name"`
			Values []string `json:"values"`
		} `json:"filters"`
	}
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	if in.MaxResults < 0 {
		return nil, clientErr("maxResults must be at least 1, got %d", in.MaxResults)
	}
	// Only JOB_NAME is modelled: a case-insensitive match, a prefix when the
	// value ends in '*'. A filter replaces jobStatus (every status is listed)
	// and does not apply to array children.
	var nameFilter string
	switch {
	case len(in.Filters) > 1:
		return nil, clientErr("only one filter can be used at a time, got %d", len(in.Filters))
	case len(in.Filters) == 1:
		f := in.Filters[0]
		if f.Name != "JOB_NAME" {
			return nil, clientErr("filter %q is not supported by the test server (only JOB_NAME)", f.Name)
		}
		if len(f.Values) != 1 || f.Values[0] == "" {
			return nil, clientErr("filter JOB_NAME needs exactly one non-empty value, got %q", f.Values)
		}
		if in.ArrayJobID != "" || in.MultiNodeJobID != "" {
			return nil, clientErr("filters do not apply to child jobs: list a job queue")
		}
		nameFilter = f.Values[0]
	}
	n := 0
	for _, v := range []string{in.JobQueue, in.ArrayJobID, in.MultiNodeJobID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return nil, clientErr("specify exactly one of jobQueue, arrayJobId or multiNodeJobId")
	}
	status := in.JobStatus
	if status == "" {
		status = Running // Batch lists only RUNNING jobs when no status is given
	}
	var cands []*job
	switch {
	case in.ArrayJobID != "":
		p, ok := s.jobs[in.ArrayJobID]
		if !ok || p.children == nil {
			return nil, clientErr("%s is not an array job", in.ArrayJobID)
		}
		cands = p.children
	case in.JobQueue != "":
		for _, id := range slices.Sorted(maps.Keys(s.jobs)) {
			j := s.jobs[id]
			if j.parent == nil && (j.queue == in.JobQueue || s.arn("job-queue", j.queue) == in.JobQueue) {
				cands = append(cands, j)
			}
		}
		sort.SliceStable(cands, func(a, b int) bool { return cands[a].createdAt < cands[b].createdAt })
	}
	if nameFilter != "" {
		// Most recent first, as Batch sorts filtered results.
		slices.Reverse(cands)
	}
	var match []jobSummary
	for _, j := range cands {
		if s.opts.ListDelay > 0 && time.Since(time.UnixMilli(j.createdAt)) < s.opts.ListDelay {
			continue // not listed yet
		}
		if nameFilter != "" {
			if !nameMatch(nameFilter, j.name) {
				continue
			}
		} else if j.status != status {
			continue
		}
		sm := jobSummary{JobArn: j.arn, JobID: j.id, JobName: j.name, CreatedAt: j.createdAt, Status: j.status,
			StatusReason: j.reason, StartedAt: j.startedAt, StoppedAt: j.stoppedAt, JobDefinition: j.def.JobDefinitionArn}
		if n := len(j.attempts); n > 0 && j.children == nil {
			c := j.attempts[n-1].Container
			sm.Container = &jobSummaryContainer{ExitCode: c.ExitCode, Reason: c.Reason}
		}
		if j.parent != nil {
			idx := j.index
			sm.ArrayProperties = &jobSummaryArray{Size: j.arraySize, Index: &idx}
		} else if j.children != nil {
			sm.ArrayProperties = &jobSummaryArray{Size: j.arraySize}
		}
		match = append(match, sm)
	}
	max := in.MaxResults
	if nameFilter != "" && (max == 0 || max > 100) {
		max = 100 // Batch returns at most 100 filtered jobs per page
	}
	page, next, err := paginate(match, max, 100, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"jobSummaryList": page}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

// nameMatch applies a JOB_NAME filter value: case-insensitive, exact or, with
// a trailing '*', a prefix.
func nameMatch(filter, name string) bool {
	filter, name = strings.ToLower(filter), strings.ToLower(name)
	if p, ok := strings.CutSuffix(filter, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return filter == name
}

// terminateJob implements TerminateJob (terminate=true: running attempts are
// killed too) and CancelJob (only jobs not yet STARTING are stopped).
func (s *Server) terminateJob(buf []byte, terminate bool) (any, error) {
	var in struct {
		JobID  string `json:"jobId"`
		Reason string `json:"reason"`
	}
	if err := decode(buf, &in); err != nil {
		return nil, err
	}
	if in.JobID == "" || in.Reason == "" {
		return nil, clientErr("jobId and reason are required")
	}
	j, ok := s.jobs[in.JobID]
	if !ok {
		return nil, clientErr("job %s not found", in.JobID)
	}
	targets := []*job{j}
	if j.children != nil {
		targets = j.children
		j.stopReason = in.Reason
		if terminate {
			j.isTerminated = true
		} else {
			j.isCancelled = true
		}
	}
	for _, t := range targets {
		switch t.status {
		case Submitted, Pending, Runnable:
			t.isCancelled = true
			s.fail(t, in.Reason)
		case Starting:
			if terminate {
				t.isTerminated = true
				s.running--
				s.fail(t, in.Reason)
			}
		case Running:
			if terminate && t.stop != nil {
				t.isTerminated, t.terminated, t.killReason = true, true, in.Reason
				t.stop(ErrJobTerminated)
			}
		}
	}
	s.updateParents()
	return map[string]any{}, nil
}

func (s *Server) fail(j *job, reason string) {
	j.status, j.reason = Failed, reason
	j.stoppedAt = nowMS()
}

// ---- scheduler ----

func (s *Server) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Server) schedule() {
	defer s.wg.Done()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		s.mu.Lock()
		s.step()
		s.mu.Unlock()
	}
}

// depsState says whether a job's dependencies all SUCCEEDED (ok) or one FAILED (failed).
func (s *Server) depsState(j *job) (ok, failed bool) {
	deps := j.deps
	if j.parent != nil {
		deps = j.parent.deps
		for _, d := range deps {
			if d.Type == "SEQUENTIAL" && j.index > 0 {
				prev := j.parent.children[j.index-1]
				if prev.status == Failed {
					return false, true
				}
				if prev.status != Succeeded {
					return false, false
				}
			}
		}
	}
	ok = true
	for _, d := range deps {
		if d.JobID == "" {
			continue
		}
		dep := s.jobs[d.JobID]
		if d.Type == "N_TO_N" && j.parent != nil && dep.children != nil && j.index < len(dep.children) {
			dep = dep.children[j.index]
		}
		switch dep.status {
		case Failed:
			return false, true
		case Succeeded:
		default:
			ok = false
		}
	}
	return ok, false
}

// step moves every job at most one state forward.
func (s *Server) step() {
	for _, j := range s.order {
		switch j.status {
		case Submitted:
			j.status = Pending
		case Pending:
			ok, failed := s.depsState(j)
			if failed {
				s.fail(j, "Dependent Job failed")
			} else if ok {
				j.status = Runnable
			}
		case Runnable:
			if s.running < s.opts.MaxRunning {
				s.running++
				j.status = Starting
			}
		case Starting:
			s.launch(j)
		}
	}
	s.updateParents()
	s.order = slices.DeleteFunc(s.order, func(j *job) bool { return j.status == Succeeded || j.status == Failed })
}

func (s *Server) updateParents() {
	s.parents = slices.DeleteFunc(s.parents, func(j *job) bool { return j.status == Succeeded || j.status == Failed })
	for _, j := range s.parents {
		done, failed, moved := 0, 0, false
		for _, c := range j.children {
			switch c.status {
			case Succeeded:
				done++
			case Failed:
				done++
				failed++
			}
			if c.status != Submitted {
				moved = true
			}
			if c.startedAt != 0 && (j.startedAt == 0 || c.startedAt < j.startedAt) {
				j.startedAt = c.startedAt
			}
		}
		switch {
		case done == len(j.children) && failed > 0 && j.stopReason != "":
			s.fail(j, j.stopReason)
		case done == len(j.children) && failed > 0:
			s.fail(j, fmt.Sprintf("Array Child Job failed: %d of %d children failed", failed, len(j.children)))
		case done == len(j.children):
			j.status, j.reason, j.stoppedAt = Succeeded, "", nowMS()
		case moved:
			j.status = Pending
		}
	}
}

func (s *Server) execJob(j *job) ExecJob {
	env := kvMap(j.env)
	env["AWS_BATCH_JOB_ID"] = j.id
	env["AWS_BATCH_JOB_ATTEMPT"] = strconv.Itoa(len(j.attempts) + 1)
	env["AWS_BATCH_JQ_NAME"] = j.queue
	env["AWS_BATCH_CE_NAME"] = j.queue + "-ce"
	ej := ExecJob{JobID: j.id, JobName: j.name, ArrayIndex: -1, Attempt: len(j.attempts) + 1,
		Image: j.def.Image(), Command: slices.Clone(j.command), Env: env}
	if j.parent != nil {
		ej.ArrayIndex, ej.ArraySize = j.index, j.arraySize
		env["AWS_BATCH_JOB_ARRAY_INDEX"] = strconv.Itoa(j.index)
		env["AWS_BATCH_JOB_ARRAY_SIZE"] = strconv.Itoa(j.arraySize)
	}
	return ej
}

// launch starts an attempt of a STARTING job.
func (s *Server) launch(j *job) {
	ej := s.execJob(j)
	now := nowMS()
	task := fmt.Sprintf("%032x", uint64(s.seq)<<20|uint64(len(s.order))<<8|uint64(len(j.attempts)))
	s.seq++
	j.status, j.killReason, j.terminated = Running, "", false
	if j.startedAt == 0 {
		j.startedAt = now
	}
	j.attempts = append(j.attempts, attemptDetail{
		StartedAt: now,
		Container: attemptContainerDetail{
			LogStreamName: fmt.Sprintf("%s/default/%s", j.def.JobDefinitionName, task),
			TaskArn:       fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s", s.opts.Region, s.opts.AccountID, task),
		},
	})
	// The executor reads why it was stopped from context.Cause(ctx).
	ctx, cancel := context.WithCancelCause(s.ctx)
	stopTimer := func() bool { return false }
	if j.timeout > 0 {
		t := time.AfterFunc(time.Duration(j.timeout)*time.Second, func() { cancel(ErrAttemptTimedOut) })
		stopTimer = t.Stop
	}
	j.stop = cancel
	if s.reclaim != nil && s.reclaim(ej) {
		j.killReason = SpotReclaimReason
	}
	exec := s.opts.Executor
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		started := make(chan struct{})
		var code int
		var err error
		done := make(chan struct{})
		go func() {
			close(started)
			code, err = exec(ctx, ej)
			close(done)
		}()
		<-started
		s.mu.Lock()
		reclaim := j.killReason == SpotReclaimReason
		s.mu.Unlock()
		if reclaim {
			cancel(ErrHostReclaimed) // the host dies under the running container
		}
		<-done
		stopTimer()
		timedOut := errors.Is(context.Cause(ctx), ErrAttemptTimedOut)
		cancel(nil)
		s.mu.Lock()
		s.finish(j, code, err, timedOut)
		s.mu.Unlock()
		s.kick()
	}()
}

func (s *Server) finish(j *job, code int, err error, timedOut bool) {
	s.running--
	j.stop = nil
	a := &j.attempts[len(j.attempts)-1]
	a.StoppedAt = nowMS()
	retryable := true
	switch {
	case j.killReason == SpotReclaimReason:
		a.StatusReason = SpotReclaimReason
	case j.terminated:
		a.StatusReason = j.killReason
		retryable = false
	case s.ctx.Err() != nil:
		a.StatusReason = "server shut down"
		retryable = false
	case timedOut:
		a.StatusReason = "Job attempt duration exceeded timeout"
		retryable = false
	case err != nil:
		a.StatusReason = "Task failed to start"
		a.Container.Reason = "CannotStartContainerError: " + err.Error()
	default:
		a.StatusReason = "Essential container in task exited"
		c := code
		a.Container.ExitCode = &c
		if code == 0 {
			j.status, j.reason, j.stoppedAt = Succeeded, a.StatusReason, a.StoppedAt
			s.updateParents()
			return
		}
	}
	if retryable && s.shouldRetry(j, *a) {
		j.status = Runnable // still in s.order: only terminal jobs leave it
		return
	}
	s.fail(j, a.StatusReason)
	s.updateParents()
}

// shouldRetry applies the retry strategy: the first evaluateOnExit rule whose
// patterns all match decides; when none matches, the job is retried.
func (s *Server) shouldRetry(j *job, a attemptDetail) bool {
	max := 1
	if j.retry != nil && j.retry.Attempts > 0 {
		max = j.retry.Attempts
	}
	if len(j.attempts) >= max {
		return false
	}
	if j.retry == nil {
		return true
	}
	exit := ""
	if a.Container.ExitCode != nil {
		exit = strconv.Itoa(*a.Container.ExitCode)
	}
	for _, r := range j.retry.EvaluateOnExit {
		if globMatch(r.OnStatusReason, a.StatusReason) && globMatch(r.OnReason, a.Container.Reason) && globMatch(r.OnExitCode, exit) {
			return strings.EqualFold(r.Action, "RETRY")
		}
	}
	return true
}

// globMatch matches an evaluateOnExit pattern: exact, or a prefix when it ends in '*'.
// An empty pattern matches anything.
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	// Patterns are not case sensitive.
	pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return pattern == s
}
