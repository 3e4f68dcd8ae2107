package action

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// lfsPointerPrefix starts every Git LFS pointer file (git-lfs docs/spec.md).
var lfsPointerPrefix = []byte("version https://git-lfs.github.com/spec/v1\n")

// isLFSPointer says whether the file is a Git LFS pointer, not its content.
func isLFSPointer(file string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(lfsPointerPrefix))
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, fmt.Errorf("read %s: %w", file, err)
	}
	return bytes.Equal(head[:n], lfsPointerPrefix), nil
}

// lfsPointerError is a blend the action could not fetch from Git LFS.
//
// This is the seam for action/lfs.go (FetchLFS): without a fetcher, or for
// a file outside the workspace, a pointer fails with the fix.
type lfsPointerError struct{ Path string }

func (e *lfsPointerError) Error() string {
	return fmt.Sprintf("%s is a Git LFS pointer, not the .blend: check out with `lfs: true` (actions/checkout), or run `git lfs pull --include=%q` before the action", e.Path, e.Path)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
