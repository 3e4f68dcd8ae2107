package action

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/lfstest"
	"github.com/framefleet/framefleet/internal/testenv"
)

// TestRenderFetchesOnlyTheLFSObjectsItNeeds: in a checkout without `lfs:
// true`, where every .blend and .png is a Git LFS pointer, preparing
// shots/shot.blend fetches the scene, its library and the two textures
// they use, through the real git-lfs client, and not the texture nothing
// uses.
func TestRenderFetchesOnlyTheLFSObjectsItNeeds(t *testing.T) {
	testenv.LookPath(t, "git-lfs")
	proj := testenv.MakeProject(t, t.TempDir())
	unused := filepath.Join(t.TempDir(), "unused.png")
	testenv.WritePNG(t, unused, testenv.Red)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Artist", "GIT_AUTHOR_EMAIL=artist@example.com",
			"GIT_COMMITTER_NAME=Artist", "GIT_COMMITTER_EMAIL=artist@example.com", "GIT_TERMINAL_PROMPT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	srv := lfstest.Start(t)
	upstream := t.TempDir()
	git(upstream, "init", "-q", "-b", "main")
	git(upstream, "lfs", "install", "--local")
	git(upstream, "lfs", "track", "*.blend", "*.png")
	files := map[string]string{
		"shots/shot.blend": filepath.Join(proj.Root, "shots", "shot.blend"), "lib/prop.blend": filepath.Join(proj.Root, "lib", "prop.blend"),
		"textures/left.png": filepath.Join(proj.Root, "textures", "left.png"), "lib/tex/right.png": filepath.Join(proj.Root, "lib", "tex", "right.png"),
		"textures/unused.png": unused,
	}
	oids := map[string]string{}
	var all []string
	for name, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(upstream, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		oids[name] = lfstest.OID(data)
		all = append(all, oids[name])
	}
	git(upstream, "add", "-A")
	git(upstream, "commit", "-q", "-m", "project")
	git(upstream, "remote", "add", "origin", srv.RepoURL("owner/repo"))
	git(upstream, "config", "http."+srv.URL+"/.extraheader", "AUTHORIZATION: "+srv.AuthHeader())
	git(upstream, append([]string{"lfs", "push", "--object-id", "origin"}, all...)...)
	ws := filepath.Join(t.TempDir(), "workspace")
	git(filepath.Dir(ws), "clone", "-q", upstream, ws) // no filter installed: pointers stay
	git(ws, "remote", "set-url", "origin", srv.RepoURL("owner/repo"))
	git(ws, "config", "http."+srv.URL+"/.extraheader", "AUTHORIZATION: "+srv.AuthHeader())

	a := &runner{git: gitRepo{dir: ws}, log: slog.New(slog.DiscardHandler)}
	local := filepath.Join(ws, "shots", "shot.blend")
	root, err := a.project(context.Background(), Target{Path: "shots/shot.blend"}, local, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if root != ws {
		t.Errorf("root %s, want the repository's top %s", root, ws)
	}
	var fetched []string
	for _, r := range srv.Requests() {
		if r.Operation == "download" {
			fetched = append(fetched, r.OIDs...)
		}
	}
	for name, oid := range oids {
		_, isPtr, err := ReadLFSPointer(filepath.Join(ws, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		needed := name != "textures/unused.png"
		if slices.Contains(fetched, oid) != needed || isPtr == needed {
			t.Errorf("%s: fetched %v, still a pointer %v; want fetched only if the render needs it (%v)", name, slices.Contains(fetched, oid), isPtr, needed)
		}
	}
}
