package pipeline

import (
	"strconv"
	"strings"
)

// ExitTransient is the worker's exit code for a failure worth retrying
// (a store hiccup, a lost download); every other non-zero code is permanent.
// The worker exits with it (container.ExitTransient); EX_TEMPFAIL in sysexits.h.
const ExitTransient = 75

// RetryAction is what an evaluateOnExit rule decides.
type RetryAction string

const (
	ActionRetry RetryAction = "RETRY"
	ActionExit  RetryAction = "EXIT"
)

// RetryRule is one AWS Batch evaluateOnExit entry. Every non-empty glob must
// match; a glob is literal text with an optional trailing '*' (prefix match).
type RetryRule struct {
	OnStatusReason string      `json:"onStatusReason,omitempty"`
	OnReason       string      `json:"onReason,omitempty"`
	OnExitCode     string      `json:"onExitCode,omitempty"`
	Action         RetryAction `json:"action"`
}

// DefaultAttempts is how many times a child runs at most (Batch retryStrategy.attempts).
const DefaultAttempts = 3

// DefaultRetryRules is framefleet's retry policy, used as the Batch job
// definition's evaluateOnExit and emulated by the local engine: retry a lost
// host (Spot reclaim; locally a worker killed by a signal) and the worker's
// transient exit code, exit at once on anything else, because Batch retries
// a failure that matches no rule.
func DefaultRetryRules() []RetryRule {
	return []RetryRule{
		{OnStatusReason: "Host EC2*", Action: ActionRetry},
		{OnStatusReason: "Host local*", Action: ActionRetry},
		{OnExitCode: strconv.Itoa(ExitTransient), Action: ActionRetry},
		{OnReason: "*", Action: ActionExit},
	}
}

// EvaluateOnExit applies rules in order to a failed attempt, as Batch does:
// the first matching rule decides, and a failure no rule matches is retried.
// exitCode is nil when the attempt has none (killed by a signal).
func EvaluateOnExit(rules []RetryRule, statusReason, reason string, exitCode *int) RetryAction {
	code := ""
	if exitCode != nil {
		code = strconv.Itoa(*exitCode)
	}
	for _, r := range rules {
		if r.OnStatusReason == "" && r.OnReason == "" && r.OnExitCode == "" {
			continue
		}
		if globMatch(r.OnStatusReason, statusReason) && globMatch(r.OnReason, reason) && globMatch(r.OnExitCode, code) {
			return RetryAction(strings.ToUpper(string(r.Action)))
		}
	}
	return ActionRetry
}

// globMatch matches Batch's glob: empty matches anything, "x*" is a prefix.
func globMatch(glob, s string) bool {
	switch {
	case glob == "":
		return true
	case strings.HasSuffix(glob, "*"):
		return strings.HasPrefix(s, strings.TrimSuffix(glob, "*"))
	}
	return glob == s
}
