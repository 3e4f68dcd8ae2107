package action

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/githubtest"
	"github.com/framefleet/framefleet/internal/testenv"
)

const (
	testToken  = "ghs_testtoken0123456789"
	testRepo   = "octo-org/scenes"
	testRunURL = "https://github.com/octo-org/scenes/actions/runs/4242"
)

// harness runs the action as the runner would: INPUT_* and GITHUB_*
// variables, an event payload file, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
// files, and a workspace that is a real git repository.
type harness struct {
	t     *testing.T
	gh    *githubtest.Server
	ws    string
	env   map[string]string
	clock *fakeClock
	out   syncBuffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, gh: githubtest.New(t, testToken), ws: t.TempDir(), clock: newFakeClock()}
	dir := t.TempDir()
	h.env = map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_WORKSPACE":    h.ws,
		"GITHUB_REPOSITORY":   testRepo,
		"GITHUB_API_URL":      h.gh.URL,
		"GITHUB_SERVER_URL":   "https://github.com",
		"GITHUB_RUN_ID":       "4242",
		"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
		"INPUT_GITHUB-TOKEN":  testToken,
		"HOME":                os.Getenv("HOME"),
		"PATH":                os.Getenv("PATH"),
	}
	h.git("init", "-q", "-b", "main")
	h.git("config", "user.email", "artist@example.com")
	h.git("config", "user.name", "Artist")
	h.git("config", "commit.gpgsign", "false")
	return h
}

func (h *harness) git(args ...string) string {
	h.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = h.ws
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (repository path → source file to copy, or "" to
// delete) and commits them, returning the commit's SHA.
func (h *harness) commit(msg string, files map[string]string) string {
	h.t.Helper()
	for p, src := range files {
		dst := filepath.Join(h.ws, filepath.FromSlash(p))
		if src == "" {
			h.git("rm", "-q", p)
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	h.git("add", "-A")
	h.git("commit", "-q", "-m", msg)
	return h.git("rev-parse", "HEAD")
}

// event writes the payload and points GITHUB_EVENT_* at it.
func (h *harness) event(name string, payload map[string]any, sha string) {
	h.t.Helper()
	data, err := json.Marshal(payload)
	if err != nil {
		h.t.Fatal(err)
	}
	p := filepath.Join(h.t.TempDir(), "event.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.env["GITHUB_EVENT_NAME"], h.env["GITHUB_EVENT_PATH"], h.env["GITHUB_SHA"] = name, p, sha
}

// pullRequest sets up a pull_request event (from @octokit/webhooks-examples)
// for PR number with head and base commits; headRepo "" is this repository.
func (h *harness) pullRequest(action string, number int, head, base, merge, headRepo string) {
	h.t.Helper()
	ev := githubtest.Example(h.t, "pull_request", action)
	ev["number"] = number
	pr := ev["pull_request"].(map[string]any)
	pr["number"] = number
	owner, name, _ := strings.Cut(testRepo, "/")
	repo := ev["repository"].(map[string]any)
	repo["full_name"], repo["name"] = testRepo, name
	repo["owner"].(map[string]any)["login"] = owner
	hd, bs := pr["head"].(map[string]any), pr["base"].(map[string]any)
	hd["sha"], bs["sha"] = head, base
	bs["repo"].(map[string]any)["full_name"] = testRepo
	hr := hd["repo"].(map[string]any)
	if headRepo == "" {
		hr["full_name"], hr["fork"] = testRepo, false
	} else {
		hr["full_name"], hr["fork"] = headRepo, true
	}
	// GITHUB_SHA of a pull_request is the test merge commit, never the head.
	h.event("pull_request", ev, merge)
}

// run runs the action with inputs (name → value).
func (h *harness) run(inputs map[string]string) error {
	h.t.Helper()
	return h.runContext(context.Background(), inputs)
}

// runContext runs the action until ctx ends (a cancelled workflow run: SIGINT).
func (h *harness) runContext(ctx context.Context, inputs map[string]string) error {
	h.t.Helper()
	env := map[string]string{}
	for k, v := range h.env {
		env[k] = v
	}
	for k, v := range inputs {
		env["INPUT_"+strings.ToUpper(k)] = v
	}
	h.out.Reset()
	log := slog.New(slog.NewTextHandler(&h.out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	err := Main(ctx, Options{
		Getenv: func(k string) string { return env[k] },
		Out:    &h.out,
		Logger: log,
		Clock:  h.clock,
		OpenRuns: func(ctx context.Context, in Inputs) (Runs, error) {
			return OpenFleet(ctx, in, FleetOptions{Getenv: func(k string) string { return env[k] }, Logger: log, Workspace: h.ws, Workers: 2,
				WorkerCommand: []string{framefleetBinary(h.t), "worker"}})
		},
	})
	h.t.Logf("action output:\n%s", h.out.String())
	return err
}

// outputs parses GITHUB_OUTPUT (name<<delimiter … delimiter); later values win.
func (h *harness) outputs() map[string]string {
	h.t.Helper()
	f, err := os.Open(h.env["GITHUB_OUTPUT"])
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, delim, ok := strings.Cut(sc.Text(), "<<")
		if !ok {
			continue
		}
		var lines []string
		for sc.Scan() && sc.Text() != delim {
			lines = append(lines, sc.Text())
		}
		out[name] = strings.Join(lines, "\n")
	}
	return out
}

func (h *harness) summary() string {
	data, _ := os.ReadFile(h.env["GITHUB_STEP_SUMMARY"])
	return string(data)
}

func (h *harness) runsOutput() []RunOutput {
	h.t.Helper()
	var runs []RunOutput
	if err := json.Unmarshal([]byte(h.outputs()["runs"]), &runs); err != nil {
		h.t.Fatalf("output runs is not JSON: %v", err)
	}
	return runs
}

// fakeClock never really waits: Sleep advances it and records the wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	// Yield a little so a coalescing loop does not spin.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
		return nil
	}
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

var _ io.Writer = (*syncBuffer)(nil)

var framefleetBin struct {
	once            sync.Once
	dir, path, fail string
}

// framefleetBinary builds ./cmd/framefleet once per test process: the
// local engine's workers run it (this test binary is no worker).
func framefleetBinary(t *testing.T) string {
	t.Helper()
	b := &framefleetBin
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "framefleet-action-bin-")
		if err != nil {
			b.fail = err.Error()
			return
		}
		b.dir, b.path = dir, filepath.Join(dir, "framefleet")
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/framefleet")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.fail = fmt.Sprintf("%v\n%s", err, out)
		}
	})
	if b.fail != "" {
		t.Fatalf("build framefleet: %s", b.fail)
	}
	return b.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if framefleetBin.dir != "" {
		os.RemoveAll(framefleetBin.dir)
	}
	os.Exit(code)
}
