package pipeline

import "testing"

func TestEvaluateOnExit(t *testing.T) {
	code := func(i int) *int { return &i }
	tests := []struct {
		name         string
		rules        []RetryRule
		statusReason string
		reason       string
		exit         *int
		want         RetryAction
	}{
		{"Spot reclaim", DefaultRetryRules(), "Host EC2 (instance i-04b17daec78ef4a0b) terminated.", "Essential container in task exited", nil, ActionRetry},
		{"local worker killed", DefaultRetryRules(), "Host local (pid 12) terminated.", "worker killed by signal killed", nil, ActionRetry},
		{"transient exit", DefaultRetryRules(), "Essential container in task exited", "exit code 75 (transient)", code(75), ActionRetry},
		{"permanent exit", DefaultRetryRules(), "Essential container in task exited", "exit code 1", code(1), ActionExit},
		{"exit 175 is not 75", DefaultRetryRules(), "Essential container in task exited", "exit code 175", code(175), ActionExit},
		{"timeout", DefaultRetryRules(), "Job attempt duration exceeded timeout", "", nil, ActionExit},
		{"no rule matches: Batch retries", []RetryRule{{OnExitCode: "3", Action: ActionExit}}, "x", "y", code(1), ActionRetry},
		{"first match wins", []RetryRule{{OnReason: "*", Action: ActionExit}, {OnExitCode: "75", Action: ActionRetry}}, "", "", code(75), ActionExit},
		{"action is case-insensitive", []RetryRule{{OnExitCode: "1", Action: "exit"}}, "", "", code(1), ActionExit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := EvaluateOnExit(tc.rules, tc.statusReason, tc.reason, tc.exit); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDefaultRetryRulesFitBatch(t *testing.T) {
	rules := DefaultRetryRules()
	if len(rules) > 5 {
		t.Errorf("%d rules; Batch allows at most 5 evaluateOnExit entries", len(rules))
	}
	last := rules[len(rules)-1]
	if last.OnReason != "*" || last.Action != ActionExit {
		t.Errorf("last rule %+v: must be the catch-all EXIT, or Batch retries every application error", last)
	}
}
