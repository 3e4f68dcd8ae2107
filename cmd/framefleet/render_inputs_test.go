package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

// TestRenderRefusesMissingInputs: a scene whose texture is missing is
// refused before anything is stored, naming the file, its user and the
// flag that renders anyway; a --root that does not hold the scene is
// refused naming the flag.
func TestRenderRefusesMissingInputs(t *testing.T) {
	proj := testenv.MakeProject(t, t.TempDir())
	if err := os.Remove(filepath.Join(proj.Root, "textures", "left.png")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing texture", []string{proj.Scene, "--out", out},
			[]string{"needs a file that does not exist", "//../textures/left.png", "IMleft.png", "shots/shot.blend", "add --allow-missing"}},
		{"root that does not hold the scene", []string{proj.Scene, "--root", filepath.Join(proj.Root, "lib"), "--out", out},
			[]string{"--root", "does not hold the scene"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := renderRun(t, tc.args...)
			if code == 0 || stdout != "" {
				t.Fatalf("exit %d, stdout %q: want a refusal", code, stdout)
			}
			for _, s := range tc.want {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q does not mention %q", stderr, s)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "runs")); err == nil {
				t.Error("a run directory was created for a refused render")
			}
		})
	}
}
