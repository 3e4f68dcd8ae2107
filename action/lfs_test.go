package action_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/action"
	"github.com/framefleet/framefleet/internal/lfstest"
	"github.com/framefleet/framefleet/internal/testenv"
)

// gitIn runs the real git in dir and fails the test when it fails.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Artist", "GIT_AUTHOR_EMAIL=artist@example.com",
		"GIT_COMMITTER_NAME=Artist", "GIT_COMMITTER_EMAIL=artist@example.com", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// isolateGit keeps the user's and the system's git configuration (credential
// helpers, a global LFS install) out of the test.
func isolateGit(t *testing.T) {
	t.Helper()
	testenv.LookPath(t, "git")
	testenv.LookPath(t, "git-lfs")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
}

// lfsCheckout makes what actions/checkout leaves with `lfs: false`: a
// repository whose blends are LFS pointers, whose origin is the LFS
// server's repository, with the token as an http.extraheader. The objects
// were pushed to the server by the real git-lfs client.
func lfsCheckout(t *testing.T, srv *lfstest.Server, files map[string][]byte) (workspace string) {
	t.Helper()
	upstream := t.TempDir()
	gitIn(t, upstream, "init", "-q", "-b", "main")
	gitIn(t, upstream, "lfs", "install", "--local")
	gitIn(t, upstream, "lfs", "track", "*.blend")
	var oids []string
	for name, data := range files {
		p := filepath.Join(upstream, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".blend") {
			oids = append(oids, lfstest.OID(data))
		}
	}
	gitIn(t, upstream, "add", "-A")
	gitIn(t, upstream, "commit", "-q", "-m", "scenes")
	gitIn(t, upstream, "remote", "add", "origin", srv.RepoURL("owner/repo"))
	gitIn(t, upstream, "config", "http."+srv.URL+"/.extraheader", "AUTHORIZATION: "+srv.AuthHeader())
	gitIn(t, upstream, append([]string{"lfs", "push", "--object-id", "origin"}, oids...)...)

	workspace = filepath.Join(t.TempDir(), "workspace")
	gitIn(t, filepath.Dir(workspace), "clone", "-q", upstream, workspace) // no filter installed: pointers stay
	gitIn(t, workspace, "remote", "set-url", "origin", srv.RepoURL("owner/repo"))
	gitIn(t, workspace, "config", "http."+srv.URL+"/.extraheader", "AUTHORIZATION: "+srv.AuthHeader())
	return workspace
}

func downloads(srv *lfstest.Server) [][]string {
	var out [][]string
	for _, r := range srv.Requests() {
		if r.Operation == "download" {
			out = append(out, r.OIDs)
		}
	}
	return out
}

func TestFetchLFS(t *testing.T) {
	isolateGit(t)
	ctx := context.Background()
	srv := lfstest.Start(t, lfstest.WithBasicAuth("x-access-token", "ghs_test"))
	shot := append([]byte("BLENDER-v304"), bytes.Repeat([]byte("shot"), 4096)...)
	other := append([]byte("BLENDER-v304"), bytes.Repeat([]byte("other"), 4096)...)
	ws := lfsCheckout(t, srv, map[string][]byte{"scenes/shot 01.blend": shot, "scenes/other.blend": other, "plain.txt": []byte("not lfs\n")})
	for name, want := range map[string][]byte{"scenes/shot 01.blend": shot, "scenes/other.blend": other} {
		if got, _ := os.ReadFile(filepath.Join(ws, filepath.FromSlash(name))); !bytes.Equal(got, lfstest.Pointer(want)) {
			t.Fatalf("checkout holds %q for %s, want its pointer", got, name)
		}
	}
	if _, ok := srv.Object(lfstest.OID(shot)); !ok {
		t.Fatal("git lfs push did not upload the object")
	}

	if err := action.FetchLFS(ctx, ws, "scenes/shot 01.blend"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "scenes", "shot 01.blend")); !bytes.Equal(got, shot) {
		t.Errorf("after FetchLFS the file holds %d bytes starting %q, want the %d-byte blend", len(got), got[:min(len(got), 20)], len(shot))
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "scenes", "other.blend")); !bytes.Equal(got, lfstest.Pointer(other)) {
		t.Error("the other blend was fetched too: only the file asked for should be")
	}
	if d := downloads(srv); len(d) != 1 || !slices.Equal(d[0], []string{lfstest.OID(shot)}) {
		t.Errorf("download batches %v, want one for the shot's object alone", d)
	}
	// Seen through the LFS filters, the checkout is unchanged; the
	// repository's own configuration gained none.
	if st := gitIn(t, ws, "-c", "filter.lfs.clean=git-lfs clean -- %f", "status", "--porcelain"); st != "" {
		t.Errorf("the fetched file shows as changed in git status:\n%s", st)
	}
	if cfg := gitIn(t, ws, "config", "--local", "--list"); strings.Contains(cfg, "filter.lfs") {
		t.Errorf("FetchLFS changed the repository's configuration:\n%s", cfg)
	}

	t.Run("not a pointer is left alone", func(t *testing.T) {
		before := len(srv.Requests())
		for _, p := range []string{"plain.txt", "scenes/shot 01.blend"} {
			if err := action.FetchLFS(ctx, ws, p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		if n := len(srv.Requests()) - before; n != 0 {
			t.Errorf("%d requests to the LFS server for files that are not pointers", n)
		}
	})

	t.Run("missing object fails with the fix", func(t *testing.T) {
		srv.Remove(lfstest.OID(other))
		err := action.FetchLFS(ctx, ws, "scenes/other.blend")
		var fe *action.LFSFetchError
		if !errors.As(err, &fe) || fe.Path != "scenes/other.blend" || fe.OID != lfstest.OID(other) || fe.Size != int64(len(other)) {
			t.Fatalf("err = %v, want an LFSFetchError for scenes/other.blend", err)
		}
		for _, want := range []string{"`lfs: true` on actions/checkout", "`git lfs pull --include=scenes/other.blend`"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		if got, _ := os.ReadFile(filepath.Join(ws, "scenes", "other.blend")); !bytes.Equal(got, lfstest.Pointer(other)) {
			t.Error("a failed fetch changed the pointer file")
		}
	})

	t.Run("no credentials fails without prompting", func(t *testing.T) {
		ws2 := lfsCheckout(t, srv, map[string][]byte{"a.blend": shot})
		gitIn(t, ws2, "config", "--unset", "http."+srv.URL+"/.extraheader")
		err := action.FetchLFS(ctx, ws2, "a.blend")
		var fe *action.LFSFetchError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "lfs: true") {
			t.Errorf("err = %v, want an LFSFetchError with the fix", err)
		}
	})

	t.Run("names git lfs cannot match alone", func(t *testing.T) {
		ws3 := lfsCheckout(t, srv, map[string][]byte{"shots/a,b.blend": shot})
		err := action.FetchLFS(ctx, ws3, "shots/a,b.blend")
		var fe *action.LFSFetchError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "comma") {
			t.Errorf("err = %v, want an LFSFetchError about the comma", err)
		}
	})

	t.Run("no git-lfs", func(t *testing.T) {
		git, _ := exec.LookPath("git")
		bin := t.TempDir()
		if err := os.Symlink(git, filepath.Join(bin, "git")); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin) // git, but no git-lfs
		err := action.FetchLFS(ctx, ws, "scenes/other.blend")
		if err == nil || !strings.Contains(err.Error(), "git-lfs is not installed") || !strings.Contains(err.Error(), "lfs: true") {
			t.Errorf("err = %v, want one saying git-lfs is missing, with the fix", err)
		}
	})

	t.Run("paths outside the repository", func(t *testing.T) {
		for _, p := range []string{"", "../x.blend", "/etc/passwd", "a/../../x.blend", `a\b.blend`} {
			if err := action.FetchLFS(ctx, ws, p); err == nil || !strings.Contains(err.Error(), "not a path inside the repository") {
				t.Errorf("%q: err = %v", p, err)
			}
		}
	})
}

// TestSmudgeLFS: a pointer copied out of another commit (a PR's base for
// the before/after) is replaced by its content, downloaded by object id.
func TestSmudgeLFS(t *testing.T) {
	isolateGit(t)
	ctx := context.Background()
	srv := lfstest.Start(t, lfstest.WithBasicAuth("x-access-token", "ghs_test"))
	base := append([]byte("BLENDER-v304"), bytes.Repeat([]byte("base"), 4096)...)
	ws := lfsCheckout(t, srv, map[string][]byte{"scenes/shot.blend": base})
	copied := filepath.Join(t.TempDir(), "shot.blend")
	if err := os.WriteFile(copied, lfstest.Pointer(base), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := action.SmudgeLFS(ctx, ws, copied, "scenes/shot.blend"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(copied); !bytes.Equal(got, base) {
		t.Errorf("after SmudgeLFS the copy holds %d bytes, want the %d-byte blend", len(got), len(base))
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "scenes", "shot.blend")); !bytes.Equal(got, lfstest.Pointer(base)) {
		t.Error("the workspace's own file changed")
	}
	missing := append([]byte("BLENDER-v304"), bytes.Repeat([]byte("gone"), 10)...)
	if err := os.WriteFile(copied, lfstest.Pointer(missing), 0o644); err != nil {
		t.Fatal(err)
	}
	var fe *action.LFSFetchError
	if err := action.SmudgeLFS(ctx, ws, copied, "scenes/shot.blend"); !errors.As(err, &fe) || !strings.Contains(err.Error(), "Fix:") {
		t.Errorf("an object the server lacks: %v, want an LFSFetchError with the fix", err)
	}
}
