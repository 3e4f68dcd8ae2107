package action

import (
	"context"
	"os"
	"path/filepath"
	"strings"
)

// fetchLFS makes sure the file at local (repository path p) is the blend,
// not a Git LFS pointer: a pointer in the workspace is fetched alone
// (Options.FetchLFS, by default FetchLFS); one extracted from another
// commit than the checkout's is downloaded by its object id (Options.SmudgeLFS).
func (a *runner) fetchLFS(ctx context.Context, local, p string) error {
	_, ok, err := ReadLFSPointer(local)
	if err != nil || !ok {
		return err
	}
	if !strings.HasPrefix(local, a.git.dir+string(filepath.Separator)) {
		// A copy from another commit (a PR's base, for the before/after):
		// its object is downloaded by id, beside the checkout.
		smudge := a.o.SmudgeLFS
		if smudge == nil {
			smudge = SmudgeLFS
		}
		return smudge(ctx, a.git.dir, local, p)
	}
	fetch := a.o.FetchLFS
	if fetch == nil {
		fetch = FetchLFS
	}
	return fetch(ctx, a.git.dir, p)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
