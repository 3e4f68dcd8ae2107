package action

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// HandBackWorkspace gives the workspace's owner what root wrote in it.
// GitHub runs a Docker action as root on a workspace that belongs to the
// runner's user: the renders directory, fetched LFS files and git's own
// files would stay root-owned, and later steps (and the runner's clean-up)
// could not change or remove them. Every file and directory under workspace
// owned by root becomes the workspace directory's owner's; symbolic links are
// changed themselves, never followed. It does nothing unless this process
// runs as root and the workspace belongs to someone else.
func HandBackWorkspace(workspace string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	info, err := os.Stat(workspace)
	if err != nil {
		return fmt.Errorf("hand the workspace back to its owner: %w", err)
	}
	owner, ok := info.Sys().(*syscall.Stat_t)
	if !ok || owner.Uid == 0 {
		return nil
	}
	var errs []error
	walkErr := filepath.WalkDir(workspace, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
			if err := os.Lchown(path, int(owner.Uid), int(owner.Gid)); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if err := errors.Join(append(errs, walkErr)...); err != nil {
		return fmt.Errorf("hand the workspace back to uid %d (later steps may not be able to change these files): %w", owner.Uid, err)
	}
	return nil
}
