package action

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/framefleet/framefleet/pipeline/blend"
)

// LabelReason says why a blend that did not change itself is rendered
// ("texture textures/wood.png changed"); the report shows it.
const LabelReason = "github.reason"

// maxTraceRounds bounds the rounds of fetching a project's files: each
// round may bring libraries (Git LFS objects, or files of another commit)
// whose own dependencies the next round fetches.
const maxTraceRounds = 8

// kindWord is how a dependency's kind reads in a reason.
func kindWord(k blend.DepKind) string {
	switch k {
	case blend.DepImage:
		return "texture"
	case blend.DepMovieClip:
		return "movie clip"
	case blend.DepCacheFile:
		return "cache"
	case blend.DepPointCache:
		return "baked cache"
	case blend.DepMeshCache:
		return "mesh cache"
	case blend.DepSequence:
		return "sequencer strip"
	}
	return string(k)
}

// dependentTargets adds to targets the blends matched by globs at the head
// commit whose dependencies changed: a PR that changes only
// textures/wood.png renders every matched blend that uses it, with the
// reason. Each candidate is traced in the workspace without Blender; one
// that is a Git LFS pointer is fetched first (it is matched, so it may
// render), and so are the libraries it links.
func (a *runner) dependentTargets(ctx context.Context, files []ChangedFile, globs Globs, sha string, targets []Target) []Target {
	changed := map[string]ChangedFile{}
	for _, f := range files {
		if f.Status == "unchanged" {
			continue
		}
		changed[f.Path] = f
		if f.Previous != "" {
			changed[f.Previous] = f
		}
	}
	taken := map[string]bool{}
	for _, t := range targets {
		taken[t.Path] = true
	}
	others := false
	for p := range changed {
		if !taken[p] {
			others = true
		}
	}
	if !others {
		return targets
	}
	names, err := a.git.lines(ctx, "ls-tree", "-r", "-z", "--name-only", sha)
	if err != nil {
		a.gha.Warningf("blends whose textures or libraries changed are not rendered: %s", err)
		return targets
	}
	for _, n := range names {
		if taken[n] || !globs.Match(n) || strings.ToLower(filepath.Ext(n)) != ".blend" {
			continue
		}
		local := filepath.Join(a.git.dir, filepath.FromSlash(n))
		// Only the libraries are fetched to trace through: textures a
		// render does not need stay pointers.
		if _, err := a.workspaceProject(ctx, local, n, func(k blend.DepKind) bool { return k == blend.DepLibrary }); err != nil {
			a.log.Info("not traced", "file", n, "err", err)
			continue
		}
		deps, err := blend.Trace(ctx, local)
		if err != nil {
			a.log.Info("not traced", "file", n, "err", err)
			continue
		}
		var reasons []string
		for _, d := range deps.Dependencies {
			rel, ok := a.repoPath(d.File)
			if !ok {
				continue
			}
			if f, ok := changed[rel]; ok {
				verb := "changed"
				if f.Status == "removed" {
					verb = "removed"
				}
				reasons = append(reasons, fmt.Sprintf("%s %s %s", kindWord(d.Kind), rel, verb))
			}
		}
		if len(reasons) == 0 {
			continue
		}
		slices.Sort(reasons)
		reason := reasons[0]
		if len(reasons) > 1 {
			reason += fmt.Sprintf(" (and %d more)", len(reasons)-1)
		}
		taken[n] = true
		targets = append(targets, Target{Path: n, SHA: sha, Status: "dependency", Reason: reason})
	}
	slices.SortFunc(targets, func(a, b Target) int { return strings.Compare(a.Path, b.Path) })
	return targets
}

// repoPath is a traced file's repository path, when it is in the workspace.
func (a *runner) repoPath(file string) (string, bool) {
	rel, err := filepath.Rel(a.git.dir, filepath.FromSlash(file))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// project makes the files the blend at local (repository path p, as of
// t.SHA) needs available beside it and returns the project root to render
// it from: the repository's top for a blend in the workspace, whose Git
// LFS objects are fetched for the files the render needs and no others;
// for a blend written from another commit, the folder it was written
// under, where its dependencies are written from the same commit.
func (a *runner) project(ctx context.Context, t Target, local, tmp string) (string, error) {
	if strings.HasPrefix(local, a.git.dir+string(filepath.Separator)) {
		return a.workspaceProject(ctx, local, t.Path, func(blend.DepKind) bool { return true })
	}
	// A copy from another commit (a PR's base): its own LFS object first.
	if err := a.fetchLFS(ctx, local, t.Path); err != nil {
		return "", err
	}
	root := filepath.Join(tmp, short(t.SHA))
	for range maxTraceRounds {
		deps, err := blend.Trace(ctx, local)
		if err != nil {
			return "", fmt.Errorf("find the files %s needs: %w", t.Path, err)
		}
		wrote := false
		for _, d := range deps.Dependencies {
			file := filepath.FromSlash(d.File)
			rel, err := filepath.Rel(root, file)
			if err != nil || strings.HasPrefix(rel, "..") || d.Exists {
				continue
			}
			if ok, err := a.git.blobTo(ctx, t.SHA, filepath.ToSlash(rel), file); err != nil {
				return "", err
			} else if ok {
				wrote = true
				if err := a.fetchLFS(ctx, file, filepath.ToSlash(rel)); err != nil {
					return "", err
				}
			}
		}
		if !wrote {
			return root, nil
		}
	}
	return root, nil
}

// workspaceProject fetches the Git LFS objects of the blend at local and of
// the workspace files it needs of the kinds fetch accepts, and returns the
// repository's top.
func (a *runner) workspaceProject(ctx context.Context, local, p string, fetch func(blend.DepKind) bool) (string, error) {
	if err := a.fetchLFS(ctx, local, p); err != nil {
		return "", err
	}
	fetched := map[string]bool{}
	for range maxTraceRounds {
		deps, err := blend.Trace(ctx, local)
		if err != nil {
			return "", fmt.Errorf("find the files %s needs: %w", p, err)
		}
		more := false
		for _, d := range deps.Dependencies {
			rel, ok := a.repoPath(d.File)
			if !ok || !d.Exists || fetched[rel] || !fetch(d.Kind) {
				continue
			}
			fetched[rel] = true
			if _, isPtr, err := ReadLFSPointer(filepath.FromSlash(d.File)); err != nil || !isPtr {
				continue
			}
			if err := a.fetchLFS(ctx, filepath.FromSlash(d.File), rel); err != nil {
				return "", err
			}
			more = more || d.Kind == blend.DepLibrary // its own files are traced next round
		}
		if !more {
			break
		}
	}
	return a.git.dir, nil
}

// blobTo writes path as of sha to out; false when the commit has no such file.
func (g gitRepo) blobTo(ctx context.Context, sha, path, out string) (bool, error) {
	id, err := g.output(ctx, "rev-parse", "--verify", "--quiet", sha+":"+path)
	if err != nil || strings.TrimSpace(id) == "" {
		return false, nil
	}
	if err := g.catBlob(ctx, id, out); err != nil {
		return false, fmt.Errorf("write %s at %s: %w", path, short(sha), err)
	}
	return true, nil
}

// catBlob writes the blob with this object id to out, making its folder.
func (g gitRepo) catBlob(ctx context.Context, id, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "git", "cat-file", "blob", strings.TrimSpace(id))
	cmd.Dir, cmd.Stdout = g.dir, f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
