// Package testenv finds the real external programs tests need. In CI
// (CI=true) a missing program fails the test; elsewhere it skips, naming
// the command that installs it.
package testenv

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// CI reports whether tests run in CI, where nothing may be skipped for a missing tool.
func CI() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

// LookPath returns the path of a program the test needs.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " is not installed: run `make deps` (apt-get install -y blender ffmpeg)"
		if CI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// Blender returns the path of the real Blender.
func Blender(t testing.TB) string { t.Helper(); return LookPath(t, "blender") }

// FFmpeg returns the paths of the real ffmpeg and ffprobe.
func FFmpeg(t testing.TB) (ffmpeg, ffprobe string) {
	t.Helper()
	return LookPath(t, "ffmpeg"), LookPath(t, "ffprobe")
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Shared is the directory of real .blend files and scenes (see SharedDir).
// It is never part of the repository: the files belong to other projects.
func Shared(t testing.TB) string {
	t.Helper()
	dir := SharedDir()
	if _, err := os.Stat(filepath.Join(dir, "blendfiles")); err != nil {
		msg := "shared test data missing at " + dir + ": set FRAMEFLEET_SHARED to a directory laid out like ../shared, " +
			"or build one with `.ci/fetch-shared.sh DIR` (it downloads the public files at pinned commits, as CI does)"
		if CI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// SharedDir is where Shared looks, without checking that it exists:
// $FRAMEFLEET_SHARED, else ../shared beside the checkout.
func SharedDir() string {
	if dir := os.Getenv("FRAMEFLEET_SHARED"); dir != "" {
		return dir
	}
	return filepath.Join(RepoRoot(), "..", "shared")
}

// SharedSource is one public file of the shared directory, as
// .ci/shared-sources.txt pins it.
type SharedSource struct {
	Path   string // slash-separated, under the shared directory
	SHA256 string // hex
	URL    string // upstream, at a pinned commit
}

// SharedSources reads .ci/shared-sources.txt.
func SharedSources() ([]SharedSource, error) {
	f, err := os.Open(filepath.Join(RepoRoot(), ".ci", "shared-sources.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []SharedSource
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("shared-sources.txt:%d: want path, sha256 and url, got %q", n, line)
		}
		out = append(out, SharedSource{Path: fields[0], SHA256: fields[1], URL: fields[2]})
	}
	return out, sc.Err()
}

// CorpusExpected loads blendfiles/expected.json from the shared directory:
// for each real .blend file, the values a reader must produce. It is part of
// the project's shared data, not of any public repository, so GitHub's
// runners (which fetch only the public .blend files, see .ci/fetch-shared.sh)
// do not have it: there the value checks are skipped, saying why. Anywhere
// else a missing file fails in CI and skips outside it.
func CorpusExpected(t testing.TB) map[string]map[string]any {
	t.Helper()
	path := filepath.Join(Shared(t), "blendfiles", "expected.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		msg := path + " is missing: it comes with the shared data (FRAMEFLEET_SHARED or ../shared), not from the files' upstream repositories"
		if os.Getenv("GITHUB_ACTIONS") == "true" || !CI() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]map[string]any
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(expected) == 0 {
		t.Fatalf("%s lists no files", path)
	}
	return expected
}

// BlenderScript runs a Python script in the real Blender, as every test that
// makes scenes does: background, no embedded Python from files (-Y), factory
// settings, and a Python error fails Blender. args follow "--". The test
// fails with Blender's output if it does.
func BlenderScript(t testing.TB, script string, args ...string) {
	t.Helper()
	blender := Blender(t)
	argv := append([]string{"-b", "-Y", "--factory-startup", "--python-exit-code", "1", "--python", script, "--"}, args...)
	cmd := exec.Command(blender, argv...)
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("blender %s: %v\n%s", filepath.Base(script), err, out)
	}
}

// MakeScene saves a tiny Cycles scene made by container/testdata/make_scene.py
// with the given options (see that script: start, end, step, fps, name, ...)
// and returns its path.
func MakeScene(t testing.TB, opts map[string]any) string {
	t.Helper()
	o, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "scene.blend")
	BlenderScript(t, filepath.Join(RepoRoot(), "container", "testdata", "make_scene.py"), out, string(o))
	return out
}
