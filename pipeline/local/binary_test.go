package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

// framefleetBinary is built once per test binary, on first use.
var framefleetBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildFramefleet builds ./cmd/framefleet into a temp dir, for tests that run the real worker.
func buildFramefleet(t *testing.T) string {
	t.Helper()
	b := &framefleetBinary
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "framefleet-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "framefleet")
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/framefleet")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = &buildError{out: string(out), err: err}
		}
	})
	if b.err != nil {
		t.Fatalf("build framefleet: %v", b.err)
	}
	return b.path
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func cleanupBinary() {
	if framefleetBinary.dir != "" {
		os.RemoveAll(framefleetBinary.dir)
	}
}
