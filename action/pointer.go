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
// commit than the checkout's cannot be pulled there and fails with the fix.
func (a *runner) fetchLFS(ctx context.Context, local, p string) error {
	ptr, ok, err := ReadLFSPointer(local)
	if err != nil || !ok {
		return err
	}
	if !strings.HasPrefix(local, a.git.dir+string(filepath.Separator)) {
		return &LFSFetchError{Path: p, OID: ptr.OID, Size: ptr.Size,
			Reason: "the checkout is another commit than the one rendered, so the object cannot be pulled into the workspace (check out the PR's head: `ref: ${{ github.event.pull_request.head.sha }}`)"}
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
