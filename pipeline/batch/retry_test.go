package batch

import (
	"testing"

	"github.com/framefleet/framefleet/pipeline"
)

// The definition's rules, applied as Batch applies them (first match
// decides, no match retries), to the failures a render meets.
func TestBatchRetryRules(t *testing.T) {
	rules := BatchRetryRules()
	if len(rules) > MaxRetryRules {
		t.Fatalf("%d evaluateOnExit rules, Batch accepts at most %d", len(rules), MaxRetryRules)
	}
	code := func(c int) *int { return &c }
	tests := []struct {
		name, statusReason, reason string
		exit                       *int
		want                       pipeline.RetryAction
	}{
		{"Spot reclaim", "Host EC2 (instance i-04b17daec78ef4a0b) terminated.", "Essential container in task exited", nil, pipeline.ActionRetry},
		{"image pull failed", "Task failed to start", "CannotPullContainerError: pull image manifest has been retried 5 time(s)", nil, pipeline.ActionRetry},
		{"image pull failed, only the container says so", "Essential container in task exited", "CannotPullContainerError: failed to resolve ref", nil, pipeline.ActionRetry},
		{"task set-up failed", "Task failed to start", "ResourceInitializationError: failed to configure ENI", nil, pipeline.ActionRetry},
		{"transient worker exit", "Essential container in task exited", "", code(pipeline.ExitTransient), pipeline.ActionRetry},
		{"broken scene", "Essential container in task exited", "", code(1), pipeline.ActionExit},
		{"out of memory", "Essential container in task exited", "OutOfMemoryError: Container killed due to memory usage", code(137), pipeline.ActionExit},
		{"timeout", "Job attempt duration exceeded timeout", "", nil, pipeline.ActionExit},
		{"local rules are not Batch's", "Host local (pid 12) terminated.", "", nil, pipeline.ActionExit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pipeline.EvaluateOnExit(rules, tt.statusReason, tt.reason, tt.exit); got != tt.want {
				t.Errorf("%s / %s / %v: %s, want %s", tt.statusReason, tt.reason, tt.exit, got, tt.want)
			}
		})
	}
	if api := RetryRules(); len(api) != len(rules) || *api[len(api)-1].OnReason != "*" || api[len(api)-1].Action != "EXIT" {
		t.Errorf("API rules %v do not end with the catch-all EXIT", api)
	}
}
