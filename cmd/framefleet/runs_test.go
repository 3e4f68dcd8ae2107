package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
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
	if got := cliWording(fmt.Errorf("status: %w", &pipeline.RunNotFoundError{ID: "zz"})).Error(); !strings.Contains(got, "`framefleet runs`") || !strings.Contains(got, "--out") {
		t.Errorf("a missing run is worded %q: want the command that lists runs and the store flag", got)
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

// TestStatusTableOfAFailedRun: each failed chunk with the worker's error,
// its CloudWatch Logs stream and the end of Blender's log.
func TestStatusTableOfAFailedRun(t *testing.T) {
	created := time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	finished := created.Add(90 * time.Second)
	two := 2
	rec := &pipeline.RunRecord{
		ID: "k3x9p2ad", State: pipeline.RunFailed, Engine: "batch", Scene: "Shot", FramesTotal: 48, ChunkTotal: 4,
		Width: 320, Height: 180, FrameRate: "24", CreatedAt: created, FinishedAt: &finished,
		Source:   pipeline.RunSource{Name: "shot.blend", SHA256: "0123456789abcdef0123", Size: 1000},
		Handle:   &pipeline.Handle{Engine: "batch", RenderID: "r-1", StitchID: "s-1"},
		Progress: pipeline.Progress{FramesDone: 36, Chunks: map[pipeline.JobState]int{pipeline.StateSucceeded: 3, pipeline.StateFailed: 1}},
		Labels:   map[string]string{"ticket": "PRJ-7"},
		Failure: &pipeline.RunFailure{Message: "run k3x9p2ad failed\n  chunk 3 ...", Failures: []pipeline.ChildFailure{
			{Index: 3, Attempts: 3, Reason: "Essential container in task exited", ExitCode: &two,
				WorkerError: "blender exited with status 1", LogStream: "framefleet/default/abc"},
		}},
	}
	v := pipeline.NewRunView(pipeline.ViewInput{Record: rec})
	v.Cost = pipeline.ViewCost{VCPUSeconds: 1800, USD: 0.02, Final: true}
	st := &runStatus{Run: rec, View: &v,
		LogTails: map[int]string{3: "line 1\nline 2\nline 3\nError: Cannot read image\n"},
		LogGroup: "/aws/batch/job",
	}
	var b strings.Builder
	printStatus(&b, st, 2, finished.Add(time.Hour))
	out := b.String()
	// Table rows are compared with their column padding collapsed.
	rows := regexp.MustCompile(`(?m)^(\S+(?: \S+)?) {2,}`).ReplaceAllString(out, "$1: ")
	for _, want := range []string{
		"state: failed",
		"scene: Shot: 48 frames in 4 chunks, 320x180 at 24 fps",
		"engine: AWS Batch: render job r-1, stitch job s-1",
		"chunks: 3 SUCCEEDED, 1 FAILED",
		"finished: 2026-11-30 11:01:30 UTC, after 1m30s",
		"cost: $0.0200 (1800 vCPU-seconds)",
		"next: framefleet logs k3x9p2ad",
	} {
		if !strings.Contains(rows, want) {
			t.Errorf("status lacks row %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		"chunk 3 failed after 3 attempts: Blender exited with status 1.\n",
		"CloudWatch Logs: /aws/batch/job framefleet/default/abc (framefleet logs k3x9p2ad --chunk 3)",
		"Blender's log, last lines:\n    line 3\n    Error: Cannot read image\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "line 2") {
		t.Errorf("status shows more than --lines 2 of the log:\n%s", out)
	}
}
