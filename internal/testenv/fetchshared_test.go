package testenv_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

const rawGitHub = "https://raw.githubusercontent.com"

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// git runs git in dir with a fixed identity and no user configuration.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Upstream", "GIT_AUTHOR_EMAIL=upstream@example.com",
		"GIT_COMMITTER_NAME=Upstream", "GIT_COMMITTER_EMAIL=upstream@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// upstream is a small repository in the shape of the real upstreams, mirrored
// as `git clone --mirror` would: two commits on main that change
// models/a.blend, and a pull-request ref (refs/pull/7/head) with a commit
// that is not on main, as GitHub mirrors have.
type upstream struct {
	mirror               string // the directory of mirrors: <mirror>/octo/models.git
	first, second, pr    string // commits
	alpha1, alpha2, b    []byte // models/a.blend at first and second, models/b.blend throughout
	alpha1Sum, alpha2Sum string
}

func newUpstream(t *testing.T) upstream {
	t.Helper()
	u := upstream{alpha1: []byte("BLENDER-v300 alpha one"), alpha2: []byte("BLENDER-v340 alpha two"), b: []byte("BLENDER-v279 bravo")}
	work := t.TempDir()
	write := func(name string, data []byte) {
		p := filepath.Join(work, "models", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, work, "init", "-q", "-b", "main")
	write("a.blend", u.alpha1)
	write("b.blend", u.b)
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "first")
	u.first = git(t, work, "rev-parse", "HEAD")
	write("a.blend", u.alpha2)
	git(t, work, "commit", "-q", "-am", "second")
	u.second = git(t, work, "rev-parse", "HEAD")
	git(t, work, "checkout", "-q", "-b", "contributor")
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("a pull request\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "add", "README")
	git(t, work, "commit", "-q", "-m", "pull request")
	u.pr = git(t, work, "rev-parse", "HEAD")
	git(t, work, "update-ref", "refs/pull/7/head", u.pr)
	git(t, work, "checkout", "-q", "main")
	git(t, work, "branch", "-q", "-D", "contributor")

	u.mirror = t.TempDir()
	git(t, u.mirror, "clone", "-q", "--mirror", work, filepath.Join(u.mirror, "octo", "models.git"))
	u.alpha1Sum, u.alpha2Sum = sha256Hex(u.alpha1), sha256Hex(u.alpha2)
	return u
}

// rawURL is the pin of models/<name> at commit.
func rawURL(commit, name string) string {
	return fmt.Sprintf("%s/octo/models/%s/models/%s", rawGitHub, commit, name)
}

// rawLayout lays the upstream's files out as raw.githubusercontent.com
// serves them (BASE/OWNER/REPO/COMMIT/PATH) and returns the file:// base.
func (u upstream) rawLayout(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	for commit, files := range map[string]map[string][]byte{
		u.first:  {"a.blend": u.alpha1, "b.blend": u.b},
		u.second: {"a.blend": u.alpha2, "b.blend": u.b},
	} {
		for name, data := range files {
			p := filepath.Join(base, "octo", "models", commit, "models", name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return "file://" + base
}

// TestFetchSharedFromMirror runs .ci/fetch-shared.sh with
// FRAMEFLEET_SHARED_MIRROR over a small upstream made here: right pins fetch
// the expected bytes; a wrong commit, a wrong checksum, a commit only on a
// pull-request ref and an unknown commit each fail with a message that names
// the fix, and leave no file behind.
func TestFetchSharedFromMirror(t *testing.T) {
	testenv.LookPath(t, "git")
	testenv.LookPath(t, "curl")
	u := newUpstream(t)
	bSum := sha256Hex(u.b)
	wrongSum := sha256Hex([]byte("bytes no commit has"))
	tests := []struct {
		name    string
		mirror  func(t *testing.T) string
		sources string   // lines: path sha256 url
		want    []string // in stderr; nil: success
	}{
		{
			name:   "right pins",
			mirror: func(*testing.T) string { return u.mirror },
			sources: "blendfiles/a.blend " + u.alpha2Sum + " " + rawURL(u.second, "a.blend") + "\n" +
				"blendfiles/b.blend " + bSum + " " + rawURL(u.first, "b.blend") + "\n",
		},
		{
			name:    "wrong commit: an older version of the file",
			mirror:  func(*testing.T) string { return u.mirror },
			sources: "blendfiles/a.blend " + u.alpha2Sum + " " + rawURL(u.first, "a.blend") + "\n",
			want:    []string{"is not the file the tests expect", "SHA-256 " + u.alpha1Sum, "pin " + rawURL(u.second, "a.blend")},
		},
		{
			name:    "wrong checksum",
			mirror:  func(*testing.T) string { return u.mirror },
			sources: "blendfiles/a.blend " + wrongSum + " " + rawURL(u.second, "a.blend") + "\n",
			want:    []string{"no commit of models/a.blend has " + wrongSum, "correct the SHA-256"},
		},
		{
			name:    "commit only on a pull-request ref",
			mirror:  func(*testing.T) string { return u.mirror },
			sources: "blendfiles/b.blend " + bSum + " " + rawURL(u.pr, "b.blend") + "\n",
			want:    []string{"not on its default branch", "refs/pull/7/head", "pin " + rawURL(u.first, "b.blend")},
		},
		{
			name:    "unknown commit",
			mirror:  func(*testing.T) string { return u.mirror },
			sources: "blendfiles/a.blend " + u.alpha2Sum + " " + rawURL(strings.Repeat("ab", 20), "a.blend") + "\n",
			want:    []string{"has no commit " + strings.Repeat("ab", 20), "pin " + rawURL(u.second, "a.blend")},
		},
		{
			name:    "no mirror of the repository",
			mirror:  func(t *testing.T) string { return t.TempDir() },
			sources: "blendfiles/a.blend " + u.alpha2Sum + " " + rawURL(u.second, "a.blend") + "\n",
			want:    []string{"no git mirror of octo/models", "git clone --mirror https://github.com/octo/models"},
		},
		{
			name:   "base URL: right pins",
			mirror: u.rawLayout,
			sources: "blendfiles/a.blend " + u.alpha2Sum + " " + rawURL(u.second, "a.blend") + "\n" +
				"blendfiles/b.blend " + bSum + " " + rawURL(u.first, "b.blend") + "\n",
		},
		{
			name:    "base URL: wrong commit",
			mirror:  u.rawLayout,
			sources: "blendfiles/a.blend " + u.alpha2Sum + " " + rawURL(u.first, "a.blend") + "\n",
			want:    []string{"is not the file the tests expect", "pin a commit that has the expected bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sources := filepath.Join(t.TempDir(), "shared-sources.txt")
			if err := os.WriteFile(sources, []byte("# test pins\n"+tt.sources), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := t.TempDir()
			cmd := exec.Command("bash", filepath.Join(testenv.RepoRoot(), ".ci", "fetch-shared.sh"), dest)
			cmd.Env = append(os.Environ(), "FRAMEFLEET_SHARED_SOURCES="+sources, "FRAMEFLEET_SHARED_MIRROR="+tt.mirror(t))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("fetch-shared: %v\n%s", err, stderr.String())
				}
				for name, data := range map[string][]byte{"a.blend": u.alpha2, "b.blend": u.b} {
					got, err := os.ReadFile(filepath.Join(dest, "blendfiles", name))
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("blendfiles/%s: %q, %v; want %q", name, got, err, data)
					}
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("fetch-shared: %v, want it to fail\n%s", err, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			left, _ := filepath.Glob(filepath.Join(dest, "blendfiles", "*"))
			if len(left) != 0 {
				t.Errorf("a failed fetch left %v", left)
			}
		})
	}
}

// checkPinInMirror checks one pin against a directory of git mirrors
// (FRAMEFLEET_SHARED_MIRROR's layout): the commit exists, is on the mirror's
// default branch, and has the file with the pinned SHA-256.
func checkPinInMirror(mirror string, src testenv.SharedSource) error {
	rest, ok := strings.CutPrefix(src.URL, rawGitHub+"/")
	parts := strings.SplitN(rest, "/", 4)
	if !ok || len(parts) != 4 {
		return fmt.Errorf("%s: %s is not %s/OWNER/REPO/COMMIT/PATH", src.Path, src.URL, rawGitHub)
	}
	owner, repo, commit, file := parts[0], parts[1], parts[2], parts[3]
	gitdir := ""
	for _, d := range []string{filepath.Join(mirror, owner, repo+".git"), filepath.Join(mirror, owner, repo)} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			gitdir = d
			break
		}
	}
	if gitdir == "" {
		return fmt.Errorf("%s: no mirror of %s/%s in %s: git clone --mirror https://github.com/%s/%s %s",
			src.Path, owner, repo, mirror, owner, repo, filepath.Join(mirror, owner, repo+".git"))
	}
	run := func(args ...string) ([]byte, error) {
		var stderr bytes.Buffer
		cmd := exec.Command("git", append([]string{"-C", gitdir}, args...)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	if _, err := run("cat-file", "-e", commit+"^{commit}"); err != nil {
		return fmt.Errorf("%s: %s/%s has no commit %s: pin a commit of its default branch", src.Path, owner, repo, commit)
	}
	data, err := run("cat-file", "blob", commit+":"+file)
	if err != nil {
		return fmt.Errorf("%s: %s/%s has no %s at %s: %w", src.Path, owner, repo, file, commit, err)
	}
	if got := sha256Hex(data); got != src.SHA256 {
		return fmt.Errorf("%s: %s at %s has SHA-256 %s, not the pinned %s: pin the commit with the expected bytes (.ci/fetch-shared.sh with FRAMEFLEET_SHARED_MIRROR names it)",
			src.Path, file, commit, got, src.SHA256)
	}
	if _, err := run("merge-base", "--is-ancestor", commit, "HEAD"); err != nil {
		return fmt.Errorf("%s: commit %s is not on %s/%s's default branch, so GitHub may drop it: pin one that is (.ci/fetch-shared.sh with FRAMEFLEET_SHARED_MIRROR names it)",
			src.Path, commit, owner, repo)
	}
	return nil
}

// TestCheckPinInMirror shows that the commit check of
// TestSharedSourcesDescribeTheSharedDir catches the wrong pins.
func TestCheckPinInMirror(t *testing.T) {
	testenv.LookPath(t, "git")
	u := newUpstream(t)
	tests := []struct {
		name string
		src  testenv.SharedSource
		want string // in the error; "" for none
	}{
		{"right", testenv.SharedSource{Path: "a", SHA256: u.alpha2Sum, URL: rawURL(u.second, "a.blend")}, ""},
		{"older version", testenv.SharedSource{Path: "a", SHA256: u.alpha2Sum, URL: rawURL(u.first, "a.blend")}, "SHA-256 " + u.alpha1Sum + ", not the pinned"},
		{"pull-request ref only", testenv.SharedSource{Path: "b", SHA256: sha256Hex(u.b), URL: rawURL(u.pr, "b.blend")}, "is not on octo/models's default branch"},
		{"unknown commit", testenv.SharedSource{Path: "a", SHA256: u.alpha2Sum, URL: rawURL(strings.Repeat("cd", 20), "a.blend")}, "has no commit"},
		{"no such file", testenv.SharedSource{Path: "c", SHA256: u.alpha2Sum, URL: rawURL(u.second, "c.blend")}, "has no models/c.blend at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPinInMirror(u.mirror, tt.src)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
