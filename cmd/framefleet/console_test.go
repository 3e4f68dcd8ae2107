package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline"
)

// runEvents is what a two-chunk local run with one failed attempt reports.
func runEvents() []pipeline.Event {
	two := 2
	return []pipeline.Event{
		{Kind: pipeline.EventPlanned, RunID: "k3x9q2", FramesTotal: 48, ChunkTotal: 4,
			Message: "48 frames (1-48) in 4 chunk(s) of 12, 320x180 at 24 fps",
			Record:  &pipeline.RunRecord{ID: "k3x9q2", FramesTotal: 48, ChunkTotal: 4, Width: 320, Height: 180, FrameRate: "24"}},
		{Kind: pipeline.EventResumed, RunID: "k3x9q2", FramesDone: 15, FramesTotal: 48},
		{Kind: pipeline.EventProgress, RunID: "k3x9q2", FramesDone: 15, FramesTotal: 48, Message: "attached to identical unfinished run k3x9q2"},
		{Kind: pipeline.EventSubmitted, RunID: "k3x9q2", FramesTotal: 48, Handle: &pipeline.Handle{Engine: "local", RenderID: "r", StitchID: "s"}},
		{Kind: pipeline.EventProgress, RunID: "k3x9q2", FramesDone: 12, FramesTotal: 48,
			Chunks: map[pipeline.JobState]int{pipeline.StateRunning: 2, pipeline.StateSucceeded: 1, pipeline.StateRunnable: 1}},
		{Kind: pipeline.EventChunkRetried, RunID: "k3x9q2", Failure: &pipeline.ChildFailure{Index: 3, Attempts: 1, Reason: "worker killed by signal"}},
		{Kind: pipeline.EventChunkFailed, RunID: "k3x9q2", Failure: &pipeline.ChildFailure{Index: 3, Attempts: 3, Reason: "Blender exited with status 1", ExitCode: &two}},
		{Kind: pipeline.EventFailed, RunID: "k3x9q2", Message: "run k3x9q2 failed"},
	}
}

func TestConsoleFormats(t *testing.T) {
	tests := []struct {
		name    string
		format  string
		tty     bool
		want    []string
		notWant []string
	}{
		{
			name:   "terminal: sentences above the bar",
			format: logAuto, tty: true,
			want: []string{
				"Planned 48 frames in 4 chunks, 320x180 at 24 fps (run k3x9q2).\n",
				"Resumed run k3x9q2: 15 of 48 frames were already stored",
				"Attached to identical unfinished run k3x9q2.\n",
				"Started run k3x9q2 on this machine.\n",
				"12/48",
				"chunks 1 RUNNABLE, 2 RUNNING, 1 SUCCEEDED",
				"Chunk 3 attempt 1 failed, retrying: worker killed by signal\n",
				"Chunk 3 failed after 3 attempts: Blender exited with status 1\n",
			},
			notWant: []string{"level=", "msg=", "time="},
		},
		{
			name:   "not a terminal: structured text",
			format: logAuto, tty: false,
			want:    []string{"level=INFO msg=planned run=k3x9q2", `level=ERROR msg="chunk failed" chunk=3 attempts=3`, "frames_done=12"},
			notWant: []string{"Planned", "12/48"},
		},
		{
			name:   "text asked for on a terminal",
			format: logText, tty: true,
			want:    []string{"level=WARN msg=\"chunk attempt failed, retrying\""},
			notWant: []string{"Planned"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			g := &globalFlags{logFormat: tc.format, isTerminal: func(io.Writer) bool { return tc.tty }}
			c, err := g.console(&buf)
			if err != nil {
				t.Fatal(err)
			}
			rep := newReporter(c, false)
			for _, ev := range runEvents() {
				rep.event(ev)
			}
			c.endBar()
			out := buf.String()
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestConsoleJSONLines(t *testing.T) {
	var buf bytes.Buffer
	g := &globalFlags{logFormat: logJSON, isTerminal: func(io.Writer) bool { return true }}
	c, err := g.console(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rep := newReporter(c, false)
	for _, ev := range runEvents() {
		rep.event(ev)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d lines, want one per event but the final failure:\n%s", len(lines), buf.String())
	}
	var rec struct {
		Msg   string `json:"msg"`
		Chunk int    `json:"chunk"`
	}
	if err := json.Unmarshal([]byte(lines[7]), &rec); err != nil || rec.Msg != "chunk failed" || rec.Chunk != 3 {
		t.Errorf("last line %q (%v): want the chunk failure as JSON", lines[7], err)
	}
}

// TestHumanLogLines: the engines' warnings reach a person as sentences
// printed above the progress bar, their info notes only with --verbose.
func TestHumanLogLines(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var buf bytes.Buffer
		g := &globalFlags{verbose: verbose, isTerminal: func(io.Writer) bool { return true }}
		c, err := g.console(&buf)
		if err != nil {
			t.Fatal(err)
		}
		c.progress(1, 4, "chunks 1 RUNNING")
		c.log.Info("registered job definition", "revision", 3)
		c.log.Warn("job submission failed; checking whether Batch created the job", "job_name", "ff-x")
		out := buf.String()
		if want := "Warning: job submission failed; checking whether Batch created the job (job name ff-x)\n"; !strings.Contains(out, want) {
			t.Errorf("verbose=%v: output lacks %q:\n%q", verbose, want, out)
		}
		if got := strings.Contains(out, "Registered job definition (revision 3)\n"); got != verbose {
			t.Errorf("verbose=%v: info note shown %v:\n%q", verbose, got, out)
		}
		if i := strings.LastIndex(out, "Warning:"); !strings.Contains(out[i:], "1/4") {
			t.Errorf("the bar was not drawn again below the warning:\n%q", out)
		}
	}
}

func TestBadLogFormat(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--log-format", "yaml", "inspect", "x.blend"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), `--log-format "yaml": use auto, text, json`) {
		t.Errorf("exit %d, stderr %q: want the formats named", code, stderr.String())
	}
}
