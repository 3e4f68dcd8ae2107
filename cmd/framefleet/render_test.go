package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/framefleet/framefleet/internal/testenv"
)

func renderRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"render"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRenderRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	notBlend := filepath.Join(dir, "notes.blend")
	if err := os.WriteFile(notBlend, []byte("not a scene"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"not a blend", []string{notBlend, "--out", out}, []string{"notes.blend", "not a .blend"}},
		{"missing file", []string{filepath.Join(dir, "nope.blend"), "--out", out}, []string{"nope.blend"}},
		{"unknown engine", []string{notBlend, "--engine", "cloud9", "--out", out}, []string{`unknown engine "cloud9"`, "local"}},
		{"no workers", []string{notBlend, "--workers", "0", "--out", out}, []string{"--workers 0"}},
		{"too many attempts", []string{notBlend, "--attempts", "11", "--out", out}, []string{"--attempts 11", "1 to 10"}},
		{"bad stitch", []string{notBlend, "--stitch", "zip", "--out", out}, []string{"--stitch zip", "concat", "encode"}},
		{"too big a resolution", []string{notBlend, "--resolution", "40000", "--out", out}, []string{"--resolution 40000", "1 to 1000"}},
		{"negative chunk", []string{notBlend, "--chunk", "-2", "--out", out}, []string{"--chunk -2", "frames per chunk"}},
		{"negative samples", []string{notBlend, "--samples", "-1", "--out", out}, []string{"--samples -1", "samples"}},
		{"no file", []string{"--out", out}, []string{"accepts 1 arg"}},
		{"bad frames", []string{notBlend, "--frames", "9-x", "--out", out}, []string{`--frames "9-x"`}},
		{"bad label", []string{notBlend, "--label", "novalue", "--out", out}, []string{`--label "novalue"`, "NAME=VALUE"}},
		{"detach on the local engine", []string{notBlend, "--detach", "--out", out}, []string{"--detach", "local engine", "--engine batch", "watch RUN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := renderRun(t, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want a failure; stderr %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			for _, s := range tc.want {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q does not mention %q", stderr, s)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "runs")); err == nil {
				t.Error("a run directory was created for refused input")
			}
		})
	}
}

// TestRenderCommand runs the built binary (its workers are the same binary):
// --json prints only the result; a second run is a cache hit that prints
// where the video is.
func TestRenderCommand(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	dir := t.TempDir()
	bin := framefleetBinary(t)
	scene := testenv.MakeScene(t, map[string]any{"start": 1, "end": 3})
	out := filepath.Join(dir, "renders")

	cmd := exec.Command(bin, "render", scene, "--out", out, "--workers", "1", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("render: %v\n%s", err, stderr.String())
	}
	var res struct {
		RunID      string   `json:"run_id"`
		Video      string   `json:"video"`
		VideoPath  string   `json:"video_path"`
		Frames     []string `json:"frames"`
		FrameCount int      `json:"frame_count"`
		Cached     bool     `json:"cached"`
		Store      string   `json:"store"`
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"run_id", "video", "preview", "thumbnail", "frames", "frame_count", "fps", "duration_seconds", "chunks", "cached", "store", "vcpu_seconds", "cost_usd"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("result lacks %q", k)
		}
	}
	if res.FrameCount != 3 || len(res.Frames) != 3 || res.Cached || !strings.HasPrefix(res.Video, "file://") {
		t.Errorf("result %+v: want 3 frames, not cached, a file:// video link", res)
	}
	if _, err := os.Stat(res.VideoPath); err != nil {
		t.Errorf("video_path: %v", err)
	}

	again, err := exec.Command(bin, "render", scene, "--out", out, "--workers", "1").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(again), "video: "+res.VideoPath+" (cached") {
		t.Errorf("second run printed %q, want the cached video's absolute path %s", again, res.VideoPath)
	}
}

// TestRenderOnATerminal runs `framefleet render` on a pseudo-terminal: a
// person reads sentences and a progress bar, no log records; with
// --log-format json the same terminal gets JSON lines.
func TestRenderOnATerminal(t *testing.T) {
	testenv.Blender(t)
	testenv.FFmpeg(t)
	bin := framefleetBinary(t)
	scene := testenv.MakeScene(t, map[string]any{"start": 1, "end": 2})
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"sentences", nil, []string{"Planned 2 frames", "Started run ", "Run ", " finished: 2 frames rendered.", "video: "}, []string{"level=", "msg="}},
		{"json", []string{"--log-format", "json", "--force"}, []string{`"msg":"planned"`, `"msg":"done"`}, []string{"Planned"}},
	}
	out := filepath.Join(t.TempDir(), "renders")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"render", scene, "--out", out, "--workers", "1", "--resolution", "10"}, tc.args...)...)
			tty, err := pty.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = io.Copy(&buf, tty) // ends with EIO once the command exits
			if err := cmd.Wait(); err != nil {
				t.Fatalf("render: %v\n%s", err, buf.String())
			}
			got := buf.String()
			for _, s := range tc.want {
				if !strings.Contains(got, s) {
					t.Errorf("terminal lacks %q:\n%s", s, got)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(got, s) {
					t.Errorf("terminal shows %q:\n%s", s, got)
				}
			}
		})
	}
}

// A limit broken in the configuration file is named by its key, never as a
// flag the user did not type; the same limit broken by a flag names the flag.
func TestRenderNamesWhereABadSettingCameFrom(t *testing.T) {
	dir := t.TempDir()
	scene := filepath.Join(dir, "shot.blend")
	if err := os.WriteFile(scene, []byte("not a scene"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "framefleet.yaml")
	if err := os.WriteFile(config, []byte("render:\n  resolution: 40000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name      string
		args      []string
		want, not string
	}{
		{"file", []string{scene, "--config", config, "--out", out}, "render.resolution 40000: give a percentage from 1 to 1000", "--resolution"},
		{"flag", []string{scene, "--resolution", "40000", "--out", out}, "--resolution 40000: give a percentage from 1 to 1000", "render.resolution"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := renderRun(t, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, tc.not) {
				t.Errorf("exit %d, stderr %q: want %q and no %q", code, stderr, tc.want, tc.not)
			}
		})
	}
}
