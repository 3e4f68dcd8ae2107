package blend

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

// depProjects holds the projects testdata/make_deps.py builds: one Blender
// process for every case, since starting Blender costs about a second.
var depProjects struct {
	once sync.Once
	dir  string
	err  string
}

// TestMain removes the folders shared by tests and benchmarks at the end.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range []string{depProjects.dir, traceBench.dir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// DepProjects (exported to the blend_test package) returns the folder holding one sub-folder per case of
// make_deps.py, building them on first use.
func DepProjects(t testing.TB) string {
	t.Helper()
	blender := testenv.Blender(t)
	testenv.FFmpeg(t) // the sound_strip case makes its movie with ffmpeg
	depProjects.once.Do(func() {
		dir, err := os.MkdirTemp("", "framefleet-deps-")
		if err != nil {
			depProjects.err = err.Error()
			return
		}
		depProjects.dir = dir
		script, err := filepath.Abs(filepath.Join("testdata", "make_deps.py"))
		if err != nil {
			depProjects.err = err.Error()
			return
		}
		cmd := exec.Command(blender, "-b", "-Y", "--factory-startup", "--python-exit-code", "1", "--python", script, "--", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			depProjects.err = "make_deps.py: " + err.Error() + "\n" + string(out)
		}
	})
	if depProjects.err != "" {
		t.Fatal(depProjects.err)
	}
	return depProjects.dir
}
