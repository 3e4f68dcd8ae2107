package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/githubtest"
)

// TestPushChangedFiles: a push's files come from the compare API, or from
// git in the workspace when the API's list is capped, before is zero (a new
// branch) or the API cannot compare (a force push lost before).
func TestPushChangedFiles(t *testing.T) {
	h := newHarness(t)
	blob := "/etc/hostname" // content does not matter: nothing renders here
	c1 := h.commit("first", map[string]string{"a.blend": blob, "b.blend": blob, "gone.blend": blob, "notes.txt": blob})
	h.git("update-ref", "refs/remotes/origin/main", c1)
	if err := shell(h, "mkdir", "c"); err != nil {
		t.Fatal(err)
	}
	h.git("mv", "b.blend", "c/b.blend")
	if err := shell(h, "sh", "-c", "echo changed >> a.blend"); err != nil {
		t.Fatal(err)
	}
	c2 := h.commit("second", map[string]string{"d.blend": blob, "gone.blend": ""})
	gitSays := []string{"a.blend", "c/b.blend", "d.blend"}

	var many []githubtest.File
	for i := range 301 {
		many = append(many, githubtest.File{Filename: fmt.Sprintf("docs/%03d.md", i), Status: "added"})
	}
	tests := []struct {
		name    string
		before  string
		deleted bool
		api     []githubtest.File // nil: the API answers 404
		want    []string
	}{
		{"the API's list", c1, false, []githubtest.File{{Filename: "a.blend", Status: "modified"}, {Filename: "gone.blend", Status: "removed"}}, []string{"a.blend"}},
		{"capped list: git", c1, false, many, gitSays},
		{"API cannot compare: git", c1, false, nil, gitSays},
		{"new branch: git against the default branch", zeroSHA, false, nil, gitSays},
		{"before lost: every blend of the commit", "1111111111111111111111111111111111111111", false, nil, []string{"a.blend", "c/b.blend", "d.blend"}},
		{"deleted branch", c1, true, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gh := githubtest.New(t, testToken)
			if tc.api != nil {
				gh.SetCompare(tc.before, c2, tc.api...)
			}
			client, err := NewGitHub(&http.Client{}, gh.URL, testToken)
			if err != nil {
				t.Fatal(err)
			}
			a := &runner{
				in:    Inputs{Paths: []string{"**/*.blend"}},
				event: Event{Name: EventPush, Owner: "octo-org", Repo: "scenes", BaseSHA: tc.before, HeadSHA: c2, Deleted: tc.deleted, DefaultBranch: "main"},
				gh:    client, git: gitRepo{dir: h.ws}, log: slog.New(slog.DiscardHandler),
			}
			targets, err := a.changedTargets(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tg := range targets {
				got = append(got, tg.Path)
				if tg.SHA != c2 {
					t.Errorf("%s at %s, want the pushed commit", tg.Path, tg.SHA)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("targets %v, want %v", got, tc.want)
			}
		})
	}
}

func shell(h *harness, name string, args ...string) error {
	cmd := osexec.Command(name, args...)
	cmd.Dir = h.ws
	return cmd.Run()
}

// TestMaterializeRendersTheCommitAsked: the checkout's file when it holds
// the commit's content, else the commit's blob (a PR's merge commit whose
// base changed the file too).
func TestMaterializeRendersTheCommitAsked(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := h.commit("v1", map[string]string{"s/a.blend": write("v1", "version one"), "s/same.blend": write("same", "unchanged")})
	head := h.commit("v2", map[string]string{"s/a.blend": write("v2", "version two")})
	h.git("checkout", "-q", "--detach", old)
	g := gitRepo{dir: h.ws}
	tmp := t.TempDir()
	for _, tc := range []struct {
		path, sha, want string
		inWorkspace     bool
	}{
		{"s/a.blend", head, "version two", false},
		{"s/a.blend", old, "version one", true},
		{"s/same.blend", head, "unchanged", true},
	} {
		p, err := g.materialize(context.Background(), Target{Path: tc.path, SHA: tc.sha}, tmp)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(p)
		if string(data) != tc.want || strings.HasPrefix(p, h.ws) != tc.inWorkspace {
			t.Errorf("%s at %s: %s holds %q, want %q (in the workspace: %v)", tc.path, short(tc.sha), p, data, tc.want, tc.inWorkspace)
		}
	}
	if _, err := g.materialize(context.Background(), Target{Path: "s/none.blend", SHA: head}, tmp); err == nil {
		t.Error("a path not in the commit materialized")
	}
}

// TestPullRequestFilesAskedAgain: a new PR's files may answer 404 for a
// moment; the action asks again (on its clock) before giving up.
func TestPullRequestFilesAskedAgain(t *testing.T) {
	h := newHarness(t)
	head := h.commit("scene", map[string]string{"a.blend": "/etc/hostname"})
	h.gh.SetPRFiles(4, githubtest.File{Filename: "a.blend", Status: "added"})
	h.gh.FailOnce("GET", `/pulls/4/files$`, http.StatusNotFound)
	client, err := NewGitHub(&http.Client{}, h.gh.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	a := &runner{
		o:     Options{Clock: h.clock},
		in:    Inputs{Paths: []string{"**/*.blend"}},
		event: Event{Name: EventPullRequest, Owner: "octo-org", Repo: "scenes", PR: 4, HeadSHA: head},
		gh:    client, git: gitRepo{dir: h.ws}, log: slog.New(slog.DiscardHandler),
	}
	targets, err := a.changedTargets(context.Background())
	if err != nil || len(targets) != 1 || targets[0].Path != "a.blend" {
		t.Fatalf("targets %+v, %v: want a.blend after asking again", targets, err)
	}
	if got := h.clock.slept(); len(got) != 1 || got[0] != 2*time.Second {
		t.Errorf("waits %v, want one of 2 s", got)
	}
	for range prFilesAttempts {
		h.gh.FailOnce("GET", `/pulls/4/files$`, http.StatusNotFound)
	}
	if _, err := a.changedTargets(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("after %d 404s: %v, want ErrNotFound", prFilesAttempts, err)
	}
}
