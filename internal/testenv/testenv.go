// Package testenv finds the real external programs tests need. In CI
// (CI=true) a missing program fails the test; elsewhere it skips, naming
// the command that installs it.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
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
func Shared(t testing.TB) string {
	t.Helper()
	dir := SharedDir()
	if _, err := os.Stat(dir); err != nil {
		if CI() {
			t.Fatalf("shared data missing at %s: check out the repository beside shared/ or set FRAMEFLEET_SHARED", dir)
		}
		t.Skipf("shared data missing at %s (set FRAMEFLEET_SHARED)", dir)
	}
	return dir
}

// SharedDir is where Shared looks, without checking that it exists:
// $FRAMEFLEET_SHARED, else ../shared beside the checkout, else the copy in
// testdata/shared (for CI services that only have the repository).
func SharedDir() string {
	if dir := os.Getenv("FRAMEFLEET_SHARED"); dir != "" {
		return dir
	}
	beside := filepath.Join(RepoRoot(), "..", "shared")
	if _, err := os.Stat(filepath.Join(beside, "blendfiles")); err == nil {
		return beside
	}
	return filepath.Join(RepoRoot(), "testdata", "shared")
}
