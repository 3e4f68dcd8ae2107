package action

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestHandBackWorkspace: what root wrote in a workspace someone else owns
// becomes theirs; others' files and link targets outside are left alone.
func TestHandBackWorkspace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the action's user in its container) to write root-owned files and chown them")
	}
	const ownerUID, ownerGID, otherUID = 4242, 4343, 1234
	ws := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	for _, p := range []string{outside, filepath.Join(ws, DefaultStoreDir, "run", "video.mp4"), filepath.Join(ws, "scenes", "lfs.blend"), filepath.Join(ws, "theirs.blend")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(ws, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(ws, "theirs.blend"), otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ws, ownerUID, ownerGID); err != nil {
		t.Fatal(err)
	}

	if err := HandBackWorkspace(ws); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) (uint32, uint32) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}
	for _, p := range []string{DefaultStoreDir, DefaultStoreDir + "/run", DefaultStoreDir + "/run/video.mp4", "scenes", "scenes/lfs.blend", "link"} {
		if uid, gid := owner(filepath.Join(ws, p)); uid != ownerUID || gid != ownerGID {
			t.Errorf("%s is %d:%d, want the workspace owner's %d:%d", p, uid, gid, ownerUID, ownerGID)
		}
	}
	if uid, _ := owner(filepath.Join(ws, "theirs.blend")); uid != otherUID {
		t.Errorf("theirs.blend went from uid %d to %d: only root's files are handed back", otherUID, uid)
	}
	if uid, _ := owner(outside); uid != 0 {
		t.Errorf("the link's target outside the workspace became uid %d: links are not followed", uid)
	}
}
