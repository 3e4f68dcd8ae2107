package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Target is one blend to render: its repository path and the commit it is
// rendered at.
type Target struct {
	Path string // slash-separated, relative to the repository's top
	SHA  string
	// Previous is the path before a rename (for the compare's base render).
	Previous string
	// Status is the change: added, modified, renamed (empty for dispatch),
	// or "dependency" for a blend rendered because a file it uses changed.
	Status string
	// Reason says why a blend that did not change is rendered
	// ("texture textures/wood.png changed").
	Reason string
}

// changedTargets lists the blends the event asks to render, matched by globs.
func (a *runner) changedTargets(ctx context.Context) ([]Target, error) {
	ev := a.event
	var files []ChangedFile
	var err error
	switch ev.Name {
	case EventPullRequest:
		// GitHub is eventually consistent right after a PR opens: a 404 is
		// asked again, briefly.
		for attempt := 1; ; attempt++ {
			files, err = a.gh.PullRequestFiles(ctx, ev.Owner, ev.Repo, ev.PR)
			if err == nil || !errors.Is(err, ErrNotFound) || attempt == prFilesAttempts {
				break
			}
			a.log.Info("the pull request's files are not listed yet: asking again", "attempt", attempt)
			if err := a.o.Clock.Sleep(ctx, time.Duration(attempt)*2*time.Second); err != nil {
				return nil, err
			}
		}
		if err != nil {
			return nil, err
		}
	case EventPush:
		if ev.Deleted {
			return nil, nil
		}
		files, err = a.pushChanges(ctx)
		if err != nil {
			return nil, err
		}
	default: // workflow_dispatch: every tracked file the paths match
		names, err := a.git.lines(ctx, "ls-tree", "-r", "-z", "--name-only", ev.HeadSHA)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			files = append(files, ChangedFile{Path: n})
		}
	}
	a.removed = selectRemoved(files, Globs(a.in.Paths), ev.HeadSHA)
	targets := selectTargets(files, Globs(a.in.Paths), ev.HeadSHA)
	return a.dependentTargets(ctx, files, Globs(a.in.Paths), ev.HeadSHA, targets), nil
}

// selectRemoved lists the deleted files globs match: the report shows them.
func selectRemoved(files []ChangedFile, globs Globs, sha string) []Target {
	var out []Target
	for _, f := range files {
		if f.Status == "removed" && globs.Match(f.Path) {
			out = append(out, Target{Path: f.Path, SHA: sha, Status: changeRemoved})
		}
	}
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// prFilesAttempts bounds the asking for a new PR's files.
const prFilesAttempts = 3

// selectTargets keeps what exists at sha and matches globs, once each, sorted.
func selectTargets(files []ChangedFile, globs Globs, sha string) []Target {
	seen := map[string]bool{}
	var out []Target
	for _, f := range files {
		switch f.Status {
		case "removed", "unchanged":
			continue
		}
		if seen[f.Path] || !globs.Match(f.Path) {
			continue
		}
		seen[f.Path] = true
		out = append(out, Target{Path: f.Path, SHA: sha, Previous: f.Previous, Status: f.Status})
	}
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// pushChanges lists a push's files: the compare API, or git in the
// workspace when the API's list is capped, before is zero (a new branch)
// or before cannot be compared (a force push dropped it).
func (a *runner) pushChanges(ctx context.Context) ([]ChangedFile, error) {
	ev := a.event
	if ev.BaseSHA != "" && ev.BaseSHA != zeroSHA {
		files, capped, err := a.gh.CompareFiles(ctx, ev.Owner, ev.Repo, ev.BaseSHA, ev.HeadSHA)
		switch {
		case err == nil && !capped:
			return files, nil
		case err == nil:
			a.log.Info("the compare API lists at most 300 files: asking git", "before", short(ev.BaseSHA))
		case errors.Is(err, ErrCompareUnavailable):
			a.log.Info("the API cannot compare the push: asking git", "err", err)
		default:
			return nil, err
		}
	}
	return a.gitChanges(ctx)
}

// gitChanges diffs the push in the workspace's history, fetching what a
// shallow checkout lacks; with no usable base it takes every file of the
// pushed commit (a new branch, or history rewritten past before).
func (a *runner) gitChanges(ctx context.Context) ([]ChangedFile, error) {
	ev := a.event
	head := ev.HeadSHA
	if err := a.git.ensureCommit(ctx, head); err != nil {
		return nil, err
	}
	base := ""
	if ev.BaseSHA != "" && ev.BaseSHA != zeroSHA && a.git.ensureCommit(ctx, ev.BaseSHA) == nil {
		base = ev.BaseSHA
	} else if ev.DefaultBranch != "" {
		// A new branch: what it changes against the default branch.
		ref := "refs/remotes/origin/" + ev.DefaultBranch
		if a.git.hasCommit(ctx, ref) {
			if mb, err := a.git.output(ctx, "merge-base", ref, head); err == nil {
				base = strings.TrimSpace(mb)
			}
		}
	}
	if base == "" {
		a.log.Info("no base commit to diff against: taking every matching file of the pushed commit", "sha", short(head))
		names, err := a.git.lines(ctx, "ls-tree", "-r", "-z", "--name-only", head)
		if err != nil {
			return nil, err
		}
		out := make([]ChangedFile, len(names))
		for i, n := range names {
			out[i] = ChangedFile{Path: n, Status: "added"}
		}
		return out, nil
	}
	fields, err := a.git.lines(ctx, "diff", "--name-status", "-z", "-M", base, head)
	if err != nil {
		return nil, err
	}
	return parseNameStatus(fields)
}

// parseNameStatus reads `git diff --name-status -z`: a status, then one
// path, or two (old, new) for renames and copies.
func parseNameStatus(f []string) ([]ChangedFile, error) {
	var out []ChangedFile
	for i := 0; i < len(f); {
		st := f[i]
		if st == "" {
			return nil, fmt.Errorf("git diff: empty status at field %d", i)
		}
		words := map[byte]string{'A': "added", 'M': "modified", 'D': "removed", 'R': "renamed", 'C': "copied", 'T': "changed"}
		status, ok := words[st[0]]
		if !ok {
			status = "changed"
		}
		if st[0] == 'R' || st[0] == 'C' {
			if i+2 >= len(f) {
				return nil, fmt.Errorf("git diff: %s without two paths", st)
			}
			prev := f[i+1]
			if st[0] == 'C' {
				prev = ""
			}
			out = append(out, ChangedFile{Path: f[i+2], Previous: prev, Status: status})
			i += 3
			continue
		}
		if i+1 >= len(f) {
			return nil, fmt.Errorf("git diff: %s without a path", st)
		}
		out = append(out, ChangedFile{Path: f[i+1], Status: status})
		i += 2
	}
	return out, nil
}

// gitRepo runs git in the workspace, from argument lists only.
type gitRepo struct {
	dir string
	env []string
}

func (g gitRepo) output(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(), g.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "dubious ownership") {
			msg += " (run `git config --global --add safe.directory " + g.dir + "` before the action, or check out as the container's user)"
		}
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return string(out), nil
}

// lines runs a -z command and splits its output on NULs.
func (g gitRepo) lines(ctx context.Context, args ...string) ([]string, error) {
	out, err := g.output(ctx, args...)
	if err != nil {
		return nil, err
	}
	out = strings.TrimSuffix(out, "\x00")
	if out == "" {
		return nil, nil
	}
	return strings.Split(out, "\x00"), nil
}

func (g gitRepo) hasCommit(ctx context.Context, rev string) bool {
	_, err := g.output(ctx, "cat-file", "-e", rev+"^{commit}")
	return err == nil
}

// ensureCommit fetches sha from origin when a shallow checkout lacks it.
func (g gitRepo) ensureCommit(ctx context.Context, sha string) error {
	if g.hasCommit(ctx, sha) {
		return nil
	}
	if _, err := g.output(ctx, "fetch", "--no-tags", "--depth=1", "origin", sha); err != nil {
		return fmt.Errorf("commit %s is not in the workspace and could not be fetched (check out with actions/checkout first; fetch-depth: 0 keeps the history): %w", short(sha), err)
	}
	return nil
}

// materialize returns a local file holding path as of sha: the workspace's
// own file when the checkout has the same content (so an LFS fetch into the
// workspace applies), else the blob written under dir.
func (g gitRepo) materialize(ctx context.Context, t Target, dir string) (string, error) {
	local := filepath.Join(g.dir, filepath.FromSlash(t.Path))
	if err := g.ensureCommit(ctx, t.SHA); err != nil {
		return "", err
	}
	want, err := g.output(ctx, "rev-parse", t.SHA+":"+t.Path)
	if err != nil {
		return "", fmt.Errorf("%s is not in commit %s: %w", t.Path, short(t.SHA), err)
	}
	if have, err := g.output(ctx, "rev-parse", "HEAD:"+t.Path); err == nil && have == want {
		if _, err := os.Stat(local); err == nil {
			return local, nil
		}
	}
	// The checkout is another commit (a PR's merge commit whose base changed
	// this file too): render exactly what the head commit holds.
	out := filepath.Join(dir, short(t.SHA), filepath.FromSlash(t.Path))
	if err := g.catBlob(ctx, want, out); err != nil {
		return "", fmt.Errorf("write %s at %s: %w", t.Path, short(t.SHA), err)
	}
	return out, nil
}
