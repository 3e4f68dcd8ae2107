package main

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline"
)

// TestSettingErrorsNameFlags: the core's setting keys become the flags a
// CLI user types, wherever the error was wrapped.
func TestSettingErrorsNameFlags(t *testing.T) {
	tests := []struct {
		name string
		req  pipeline.Request
		want string
	}{
		{"attempts", pipeline.Request{BlendPath: "a.blend", Attempts: 11}, "--attempts 11: give 1 to 10"},
		{"resolution", pipeline.Request{BlendPath: "a.blend", ResolutionPercentage: 40000}, "--resolution 40000: give a percentage"},
		{"batch timeout", pipeline.Request{BlendPath: "a.blend", Engine: "batch", AttemptTimeout: 30 * time.Second}, "--timeout 30s: AWS Batch needs at least 1m"},
		{"frames", pipeline.Request{BlendPath: "a.blend", Frames: "9-x"}, `--frames "9-x": `},
		{"labels", pipeline.Request{BlendPath: "a.blend", Labels: map[string]string{"": "x"}}, `--label "": label names`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			if err == nil {
				t.Fatal("Validate accepted the request")
			}
			got := cliWording(fmt.Errorf("submit: %w", err)).Error()
			if len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("%q, want it to start with %q", got, tc.want)
			}
		})
	}
	plain := errors.New("no run \"zz\"")
	if cliWording(plain) != plain {
		t.Error("an error without a setting was changed")
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{5 * time.Second: "5s ago", 3 * time.Minute: "3m ago", 5 * time.Hour: "5h ago", 72 * time.Hour: "3d ago"} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
	if got := ago(now, time.Time{}); got != "-" {
		t.Errorf("ago(zero) = %q", got)
	}
}
