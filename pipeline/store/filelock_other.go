//go:build !unix

package store

import "errors"

// lockFile needs flock; without it a directory store cannot offer writes
// that are safe across processes, so it refuses rather than risk lost updates.
func lockFile(path string) (unlock func(), err error) {
	return nil, errors.New("conditional writes to a directory store need flock (Linux, macOS, BSD): use an s3:// store on this system")
}
