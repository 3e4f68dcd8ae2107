package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/githubtest"
	"github.com/framefleet/framefleet/internal/testenv"
)

const actionToken = "ghs_actiontesttoken42"

// actionRepo is a workspace (a real git repository) with a PR whose head
// changes one blend and adds another.
type actionRepo struct {
	ws, base, head string
}

func newActionRepo(t *testing.T, a, a2, b string) actionRepo {
	t.Helper()
	ws := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = ws
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	cp := func(src, dst string) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(ws, filepath.Dir(dst)), 0o755)
		if err := os.WriteFile(filepath.Join(ws, dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "-b", "main")
	git("config", "user.email", "artist@example.com")
	git("config", "user.name", "Artist")
	cp(a, "scenes/a.blend")
	git("add", "-A")
	git("commit", "-q", "-m", "base")
	base := git("rev-parse", "HEAD")
	cp(a2, "scenes/a.blend")
	cp(b, "scenes/b.blend")
	cp(b, "scenes/copy of b.blend") // the same render: one run shared by two rows
	git("add", "-A")
	git("commit", "-q", "-m", "head")
	return actionRepo{ws: ws, base: base, head: git("rev-parse", "HEAD")}
}

// actionWorld is everything `framefleet action` talks to: GitHub, S3 and
// AWS Batch test servers (a batchRig), Batch attempts running the real worker.
type actionWorld struct {
	gh  *githubtest.Server
	env []string
}

func newActionWorld(t *testing.T, repo actionRepo, prefix string) *actionWorld {
	t.Helper()
	w := &actionWorld{gh: githubtest.New(t, actionToken)}
	w.gh.SetPRFiles(5, githubtest.File{Filename: "scenes/a.blend", Status: "modified"}, githubtest.File{Filename: "scenes/b.blend", Status: "added"},
		githubtest.File{Filename: "scenes/copy of b.blend", Status: "added"})
	dir := t.TempDir()
	w.env = startBatchRig(t, batchRigOptions{capacity: 2, prefix: prefix, env: []string{
		"GITHUB_ACTIONS=true", "GITHUB_WORKSPACE=" + repo.ws, "GITHUB_REPOSITORY=octo-org/scenes",
		"GITHUB_API_URL=" + w.gh.URL, "GITHUB_SERVER_URL=https://github.com", "GITHUB_RUN_ID=77",
		"GITHUB_OUTPUT=" + filepath.Join(dir, "output"), "GITHUB_STEP_SUMMARY=" + filepath.Join(dir, "summary"),
		"INPUT_GITHUB-TOKEN=" + actionToken, "INPUT_ENGINE=batch", "INPUT_QUEUE=renders", "INPUT_CHUNK-SIZE=2", "INPUT_SAMPLES=1", "INPUT_COMPARE=true",
	}}).env
	return w
}

// event writes a payload file and returns the GITHUB_EVENT_* variables.
func eventEnv(t *testing.T, name string, payload map[string]any, sha string) []string {
	t.Helper()
	data, _ := json.Marshal(payload)
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"GITHUB_EVENT_NAME=" + name, "GITHUB_EVENT_PATH=" + p, "GITHUB_SHA=" + sha}
}

func prEvent(t *testing.T, repo actionRepo) []string {
	ev := githubtest.Example(t, "pull_request", "synchronize")
	ev["number"] = 5
	pr := ev["pull_request"].(map[string]any)
	pr["number"] = 5
	pr["head"].(map[string]any)["sha"] = repo.head
	pr["head"].(map[string]any)["repo"].(map[string]any)["full_name"] = "octo-org/scenes"
	pr["base"].(map[string]any)["sha"] = repo.base
	pr["base"].(map[string]any)["repo"].(map[string]any)["full_name"] = "octo-org/scenes"
	ev["repository"].(map[string]any)["full_name"] = "octo-org/scenes"
	return eventEnv(t, "pull_request", ev, repo.head)
}

// execAction runs `framefleet action` as the runner does.
func execAction(t *testing.T, bin, dir string, env ...string) string {
	t.Helper()
	cmd := exec.Command(bin, "action")
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("framefleet action:\n%s", out.String())
	if err != nil {
		t.Fatalf("framefleet action: %v", err)
	}
	return out.String()
}

func actionComment(t *testing.T, gh *githubtest.Server) string {
	t.Helper()
	cs := gh.Comments(5)
	if len(cs) != 1 {
		t.Fatalf("%d comments on the PR, want 1", len(cs))
	}
	return cs[0].Body
}

var (
	linkRE   = regexp.MustCompile(`\]\(http[^)]+\)|href="http[^"]+"|src="http[^"]+"`)
	runIDRE  = regexp.MustCompile("run `[0-9a-z]+`")
	expiryRE = regexp.MustCompile(`Links expire [0-9-]+ [0-9:]+ UTC`)
)

// normalized drops what differs between two repositories and stores:
// commits, links, run ids, the expiry minute.
func normalized(s string, repo actionRepo) string {
	s = strings.ReplaceAll(s, repo.head[:7], "HEAD")
	s = strings.ReplaceAll(s, repo.base[:7], "BASE")
	s = linkRE.ReplaceAllString(s, "(LINK)")
	s = runIDRE.ReplaceAllString(s, "run `ID`")
	return expiryRE.ReplaceAllString(s, "Links expire WHEN")
}

// TestActionWaitFalseThenRefresh runs `framefleet action` on a PR with the
// Batch engine twice over: once following the renders (wait: true), once
// submitting and returning (wait: false) followed by the scheduled refresh.
// Both end with the same comment and statuses, which link to the videos.
func TestActionWaitFalseThenRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	testenv.Blender(t)
	testenv.FFmpeg(t)
	bin := framefleetBinary(t)
	a := testenv.MakeScene(t, map[string]any{"name": "Shot A", "end": 3})
	a2 := testenv.MakeScene(t, map[string]any{"name": "Shot A", "end": 3, "width": 80})
	b := testenv.MakeScene(t, map[string]any{"name": "Shot B", "end": 2})

	// wait: true
	repo := newActionRepo(t, a, a2, b)
	waited := newActionWorld(t, repo, "waited")
	execAction(t, bin, repo.ws, append(append(waited.env, prEvent(t, repo)...), "INPUT_WAIT=true")...)
	want := actionComment(t, waited.gh)
	t.Logf("the comment with wait: true:\n%s", want)
	for _, s := range []string{"✅ done", "`scenes/copy of b.blend`", "[video](http", "X-Amz-Signature", "Links expire", "[before / after](http", `alt="before and after of scenes/`} {
		if !strings.Contains(want, s) {
			t.Errorf("comment lacks %q:\n%s", s, want)
		}
	}
	var outRuns []struct {
		File          string  `json:"file"`
		Video         string  `json:"video"`
		LinksExpireAt *string `json:"links_expire_at"`
	}
	outputs, _ := os.ReadFile(envValue(waited.env, "GITHUB_OUTPUT"))
	if m := regexp.MustCompile(`runs<<(\S+)\n(.*)\n`).FindSubmatch(outputs); m == nil || json.Unmarshal(m[2], &outRuns) != nil ||
		len(outRuns) != 3 || !strings.Contains(outRuns[0].Video, "X-Amz-Signature") || outRuns[0].LinksExpireAt == nil {
		t.Errorf("output runs: want every file with its video link and expiry:\n%s", outputs)
	}
	wantStatuses := waited.gh.Statuses(repo.head)
	st := wantStatuses["framefleet/scenes/a.blend"]
	if st.State != "success" || !strings.Contains(st.TargetURL, "X-Amz-Signature") {
		t.Fatalf("status of scenes/a.blend %+v: want success linking to the video", st)
	}
	resp, err := http.Get(st.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	video, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(video[:min(len(video), 64)], []byte("ftyp")) {
		t.Fatalf("the status's link answered %d with %d bytes: want the MP4", resp.StatusCode, len(video))
	}

	// wait: false, then the scheduled refresh.
	repo2 := newActionRepo(t, a, a2, b)
	later := newActionWorld(t, repo2, "later")
	out := execAction(t, bin, repo2.ws, append(append(later.env, prEvent(t, repo2)...), "INPUT_WAIT=false")...)
	if strings.Contains(out, "::error") {
		t.Errorf("wait: false reported errors")
	}
	// Submitted and left: nobody watches a Batch run but the refresh.
	if submitted := actionComment(t, later.gh); strings.Count(submitted, "⏳ queued") != 3 {
		t.Errorf("after wait: false the comment should show every file queued:\n%s", submitted)
	}
	if st := later.gh.Statuses(repo2.head)["framefleet/scenes/b.blend"]; st.State != "pending" {
		t.Errorf("after wait: false the status of b is %+v, want pending", st)
	}
	sched := eventEnv(t, "schedule", map[string]any{"schedule": "*/15 * * * *"}, repo2.head)
	execAction(t, bin, repo2.ws, append(append(later.env, sched...), "INPUT_MODE=refresh", "INPUT_WAIT=true")...)
	got := actionComment(t, later.gh)
	if normalized(got, repo2) != normalized(want, repo) {
		t.Errorf("after refresh the comment is\n%s\nwant (as with wait: true)\n%s", got, want)
	}
	gotStatuses := later.gh.Statuses(repo2.head)
	for ctx, w := range wantStatuses {
		g := gotStatuses[ctx]
		if g.State != w.State || g.Description != w.Description || !strings.Contains(g.TargetURL, "X-Amz-Signature") {
			t.Errorf("status %s after refresh %+v, want %+v", ctx, g, w)
		}
	}
	// A second refresh finds nothing to change: no new mutations.
	before := len(later.gh.Requests())
	execAction(t, bin, repo2.ws, append(append(later.env, sched...), "INPUT_MODE=refresh", "INPUT_WAIT=true")...)
	for _, r := range later.gh.Requests()[before:] {
		if r.Method != http.MethodGet {
			t.Errorf("a refresh with nothing new sent %s %s", r.Method, r.Path)
		}
	}
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}
