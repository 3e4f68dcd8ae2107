package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline/blend"
)

// ReadLFSPointer reports whether the file is an LFS pointer, and which.
func ReadLFSPointer(file string) (blend.LFSPointer, bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return blend.LFSPointer{}, false, err
	}
	defer f.Close()
	head, err := io.ReadAll(io.LimitReader(f, blend.LFSPointerMaxSize+1))
	if err != nil {
		return blend.LFSPointer{}, false, fmt.Errorf("read %s: %w", file, err)
	}
	p, ok := blend.ParseLFSPointer(head)
	return p, ok, nil
}

// LFSFetchError is a file that is a Git LFS pointer and could not be
// fetched; its message names the fix. Other files still render.
type LFSFetchError struct {
	Path   string // repository path, slash-separated
	OID    string
	Size   int64
	Reason string // why the fetch failed, e.g. git-lfs's own message
	Err    error
}

func (e *LFSFetchError) Error() string {
	return fmt.Sprintf("%s is a Git LFS pointer, not the file (object sha256:%.12s…, %d bytes), and fetching it failed: %s. "+
		"Fix: check out with `lfs: true` on actions/checkout, or run `git lfs pull --include=%s` in a step before this action",
		e.Path, e.OID, e.Size, strings.TrimRight(e.Reason, ". "), e.Path)
}

func (e *LFSFetchError) Unwrap() error { return e.Err }

// FetchLFS makes sure the file at the repository path p (slash-separated,
// relative to the git checkout workspace) holds its content, not a Git LFS
// pointer: a pointer is fetched alone with `git lfs pull --include=<p>`, so
// a checkout without `lfs: true` downloads only the blends that render.
// A file that is no pointer is left as it is. When the fetch is impossible
// (no git-lfs, no access, the object is missing) the error is an
// *LFSFetchError naming the fix.
func FetchLFS(ctx context.Context, workspace, p string) error {
	return fetchLFS(ctx, "git", workspace, p)
}

func fetchLFS(ctx context.Context, git, workspace, p string) error {
	if p == "" || path.IsAbs(p) || strings.Contains(p, "\\") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("lfs: %q is not a path inside the repository: give it relative to the workspace, with slashes", p)
	}
	file := filepath.Join(workspace, filepath.FromSlash(p))
	ptr, isPtr, err := ReadLFSPointer(file)
	if err != nil || !isPtr {
		return err
	}
	fail := func(reason string, err error) error {
		return &LFSFetchError{Path: p, OID: ptr.OID, Size: ptr.Size, Reason: reason, Err: err}
	}
	// --include takes comma-separated wildmatch patterns: a name with a
	// comma or pattern characters cannot be matched alone.
	if strings.ContainsAny(p, ",*?[]") {
		return fail("its name contains a comma or one of *?[], which `git lfs pull --include` would read as a pattern", nil)
	}
	if out, err := runGit(ctx, git, workspace, "lfs", "version"); err != nil {
		return fail("git-lfs is not installed here ("+out+"): install it (apt-get install git-lfs)", err)
	}
	// The filters are given for this command only: a checkout without
	// `lfs: true` has none installed, and git lfs pull will not check files
	// out without them; the repository's configuration is left as it was.
	out, err := runGit(ctx, git, workspace,
		"-c", "filter.lfs.required=true",
		"-c", "filter.lfs.clean=git-lfs clean -- %f",
		"-c", "filter.lfs.smudge=git-lfs smudge -- %f",
		"-c", "filter.lfs.process=git-lfs filter-process",
		"lfs", "pull", "--include="+p, "--exclude=")
	if err != nil {
		return fail("git lfs pull: "+out, err)
	}
	after, stillPtr, err := ReadLFSPointer(file)
	if err != nil {
		return fail("reading the fetched file: "+err.Error(), err)
	}
	if stillPtr {
		why := "git lfs pull left the pointer in place"
		if after.OID != ptr.OID {
			why = "the file changed while it was fetched"
		} else if out != "" {
			why += ": " + out
		}
		return fail(why, nil)
	}
	if st, err := os.Stat(file); err == nil && st.Size() != ptr.Size {
		return fail(fmt.Sprintf("the fetched file has %d bytes, the pointer says %d", st.Size(), ptr.Size), nil)
	}
	return nil
}

// runGit runs git in dir from an argument list, never a shell, without
// prompting for credentials (a prompt would hang the runner), and returns
// its output's last lines.
func runGit(ctx context.Context, git, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, git, append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never", "GIT_ASKPASS=", "SSH_ASKPASS=")
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if errors.Is(err, exec.ErrNotFound) {
		return "git is not installed", err
	}
	return lastLines(strings.TrimSpace(buf.String()), 5), err
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// SmudgeLFS replaces the Git LFS pointer in file (a copy of repository
// path p from another commit than the checkout's, e.g. a PR's base for a
// before/after) by its content, downloaded with `git lfs smudge` in the
// workspace (whose remote and credentials it uses). A file that is no
// pointer is left as it is; a failed download is an *LFSFetchError.
func SmudgeLFS(ctx context.Context, workspace, file, p string) error {
	ptr, isPtr, err := ReadLFSPointer(file)
	if err != nil || !isPtr {
		return err
	}
	fail := func(reason string, err error) error {
		return &LFSFetchError{Path: p, OID: ptr.OID, Size: ptr.Size, Reason: reason, Err: err}
	}
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := file + ".lfs-content"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, "git", "-C", workspace, "lfs", "smudge", "--", p)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never", "GIT_ASKPASS=", "SSH_ASKPASS=", "GIT_LFS_SKIP_SMUDGE=0")
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, &stderr
	err = cmd.Run()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("git lfs smudge: "+lastLines(strings.TrimSpace(stderr.String()), 5), err)
	}
	if st, err := os.Stat(tmp); err != nil || st.Size() != ptr.Size {
		return fail("the downloaded object does not have the pointer's size", err)
	}
	return os.Rename(tmp, file)
}
