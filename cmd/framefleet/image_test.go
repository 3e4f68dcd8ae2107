//go:build imagetest

// The image tests run the built images as AWS Batch and GitHub would, against
// the project's test servers. `make image-test` builds the images and runs
// them (go test -tags imagetest -run '^TestImage' ./cmd/framefleet), setting:
//
//	FRAMEFLEET_TEST_CONTAINER_RUNTIME  the container CLI and its options ("docker", "podman --runtime ...")
//	FRAMEFLEET_TEST_WORKER_IMAGE       the worker image (container/Dockerfile)
//	FRAMEFLEET_TEST_ACTION_IMAGE       the action image (Dockerfile)

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/framefleet/framefleet/internal/batchtest"
	"github.com/framefleet/framefleet/internal/githubtest"
	"github.com/framefleet/framefleet/internal/testenv"
)

// imageSetting is a variable make image-test sets.
func imageSetting(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run make image-test, which builds the images and sets it", name)
	}
	return v
}

// demoFrames is how much of examples/demo.blend the worker image renders:
// two chunks and the stitch, quickly.
const demoFrames, demoChunk = 12, 6

// TestImageWorkerRendersTheDemo runs `framefleet render --engine batch` on
// examples/demo.blend with every Batch attempt (both render chunks and the
// stitch) in a container of the worker image, and checks the video it
// stitched with ffprobe.
func TestImageWorkerRendersTheDemo(t *testing.T) {
	runtime := strings.Fields(imageSetting(t, "FRAMEFLEET_TEST_CONTAINER_RUNTIME"))
	image := imageSetting(t, "FRAMEFLEET_TEST_WORKER_IMAGE")
	_, ffprobe := testenv.FFmpeg(t)
	bin := framefleetBinary(t)

	var logMu sync.Mutex
	inContainer := batchtest.Container{Runtime: runtime, Env: jobCredentials(), Logf: func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Logf(format, args...)
	}}
	// The job definition names the image under test, as `framefleet setup`
	// would name the one pushed to ECR.
	var ranMu sync.Mutex
	var ran []string // "<job name> in <image>", one per attempt
	run := func(ctx context.Context, j batchtest.ExecJob) (int, error) {
		ranMu.Lock()
		ran = append(ran, j.JobName+" in "+j.Image)
		ranMu.Unlock()
		return inContainer.Run(ctx, j)
	}
	rig := startBatchRig(t, batchRigOptions{capacity: 2, prefix: "image", exec: run,
		env: []string{"FRAMEFLEET_IMAGE=" + image}})

	demo := filepath.Join(testenv.RepoRoot(), "examples", "demo.blend")
	cmd := exec.Command(bin, "render", demo, "--engine", "batch", "--frames", fmt.Sprintf("1-%d", demoFrames),
		"--chunk", strconv.Itoa(demoChunk), "--samples", "1", "--json")
	cmd.Env = rig.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("render --engine batch: %v\n%s", err, stderr.String())
	}
	var res struct {
		Video      string `json:"video"`
		FrameCount int    `json:"frame_count"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not the result: %v\n%s", err, stdout.String())
	}
	if res.FrameCount != demoFrames {
		t.Errorf("result has %d frames, want %d", res.FrameCount, demoFrames)
	}
	ranMu.Lock()
	t.Logf("attempts: %v", ran)
	if len(ran) < 3 {
		t.Errorf("%d Batch attempts ran, want at least the 2 chunks and the stitch", len(ran))
	}
	for _, r := range ran {
		if !strings.HasSuffix(r, " in "+image) {
			t.Errorf("attempt %s: want every attempt in %s", r, image)
		}
	}
	ranMu.Unlock()

	resp, err := http.Get(res.Video)
	if err != nil {
		t.Fatalf("fetch the video link: %v", err)
	}
	defer resp.Body.Close()
	video := filepath.Join(t.TempDir(), "demo.mp4")
	f, err := os.Create(video)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("video link answered %d", resp.StatusCode)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_type,width,height,nb_read_frames", "-of", "json", video).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", video, err)
	}
	var probe struct {
		Streams []struct {
			CodecType    string `json:"codec_type"`
			Width        int    `json:"width"`
			Height       int    `json:"height"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 1 {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	// examples/make_demo.py: 320x180 at 100 %.
	s := probe.Streams[0]
	if s.CodecType != "video" || s.Width != 320 || s.Height != 180 || s.NbReadFrames != strconv.Itoa(demoFrames) {
		t.Errorf("ffprobe: %+v, want a 320x180 video of %d frames", s, demoFrames)
	}
}

// TestImageActionRendersAPush runs the action image as GitHub runs a Docker
// action on a push (workspace, event and command files mounted under
// /github, the runner's user owning the workspace), rendering on the runner
// (engine local) and reporting to the GitHub fake: a success status for the
// pushed blend, the outputs, and the files it wrote handed back to the
// workspace's owner.
func TestImageActionRendersAPush(t *testing.T) {
	runtime := strings.Fields(imageSetting(t, "FRAMEFLEET_TEST_CONTAINER_RUNTIME"))
	image := imageSetting(t, "FRAMEFLEET_TEST_ACTION_IMAGE")
	const token = "ghs_imagetesttoken42"
	const runnerUID = 1001 // the runner's user on GitHub's hosted runners

	ws := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = ws
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_AUTHOR_NAME=Artist", "GIT_AUTHOR_EMAIL=artist@example.com",
			"GIT_COMMITTER_NAME=Artist", "GIT_COMMITTER_EMAIL=artist@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(ws, "README.md"), []byte("scenes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "first")
	before := git("rev-parse", "HEAD")
	demo, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "demo.blend"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ws, "scenes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "scenes", "demo.blend"), demo, 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "the demo")
	after := git("rev-parse", "HEAD")
	// The workspace belongs to the runner's user, as actions/checkout leaves
	// it; the action runs as root in its container.
	owner := os.Getuid()
	if owner == 0 {
		owner = runnerUID
		if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", runnerUID, runnerUID), ws).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
	}

	gh := githubtest.New(t, token)
	gh.SetCompare(before, after, githubtest.File{Filename: "scenes/demo.blend", Status: "added"})
	ev := githubtest.Example(t, "push", "")
	ev["before"], ev["after"], ev["ref"], ev["deleted"] = before, after, "refs/heads/main", false
	repo := ev["repository"].(map[string]any)
	repo["full_name"], repo["name"], repo["default_branch"] = "octo-org/scenes", "scenes", "main"
	workflow, commands := t.TempDir(), t.TempDir()
	data, _ := json.Marshal(ev)
	if err := os.WriteFile(filepath.Join(workflow, "event.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"output", "summary"} {
		if err := os.WriteFile(filepath.Join(commands, name), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}

	env := map[string]string{
		"GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_WORKSPACE": "/github/workspace",
		"GITHUB_REPOSITORY": "octo-org/scenes", "GITHUB_API_URL": gh.URL, "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "88",
		"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": "/github/workflow/event.json", "GITHUB_SHA": after, "GITHUB_REF": "refs/heads/main",
		"GITHUB_OUTPUT": "/github/file_commands/output", "GITHUB_STEP_SUMMARY": "/github/file_commands/summary",
		"INPUT_GITHUB-TOKEN": token, "INPUT_MODE": "render", "INPUT_PATHS": "**/*.blend", "INPUT_ENGINE": "local",
		"INPUT_FRAMES": "1-4", "INPUT_SAMPLES": "1", "INPUT_RESOLUTION": "50", "INPUT_WAIT": "true", "INPUT_COMPARE": "false", "INPUT_COMMENT": "true",
	}
	args := append(runtime[1:], "run", "--rm", "--network", "host", "--workdir", "/github/workspace",
		"-v", ws+":/github/workspace", "-v", workflow+":/github/workflow", "-v", commands+":/github/file_commands",
		"--entrypoint", "/usr/local/bin/framefleet")
	cmd := exec.Command(runtime[0])
	cmd.Env = os.Environ()
	for k, v := range env {
		args = append(args, "--env", k)
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Args = append(append([]string{runtime[0]}, args...), image, "action")
	out, err := cmd.CombinedOutput()
	t.Logf("the action image:\n%s", out)
	if err != nil {
		t.Fatalf("the action image: %v", err)
	}

	st, ok := gh.Statuses(after)["framefleet/scenes/demo.blend"]
	if !ok || st.State != "success" {
		t.Errorf("status of scenes/demo.blend %+v (found %v): want success", st, ok)
	}
	outputs, _ := os.ReadFile(filepath.Join(commands, "output"))
	if !bytes.Contains(outputs, []byte("scenes/demo.blend")) || !bytes.Contains(outputs, []byte("failures<<")) {
		t.Errorf("outputs lack the run of scenes/demo.blend and the failure count:\n%s", outputs)
	}
	// What the action wrote belongs to the runner's user, as the workspace
	// does (else, here, the test could not even remove it).
	var notTheirs []string
	_ = filepath.Walk(ws, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			if own, ok := fi.Sys().(*syscall.Stat_t); ok && int(own.Uid) != owner {
				notTheirs = append(notTheirs, strings.TrimPrefix(p, ws))
			}
		}
		return nil
	})
	if len(notTheirs) != 0 {
		t.Errorf("the action left files the workspace's owner (uid %d) does not own: %v", owner, notTheirs)
	}
	if _, err := os.Stat(filepath.Join(ws, "framefleet-renders")); err != nil {
		t.Errorf("no renders in the workspace: %v", err)
	}
}
