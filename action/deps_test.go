package action

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/githubtest"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
)

// TestPullRequestChangingATextureRendersTheBlendUsingIt: a PR that changes
// only textures/left.png renders shots/shot.blend, which uses it (one level
// up, beside a linked library with its own texture), and not the blends
// that do not; the comment says why, and the frame shows the new texture.
func TestPullRequestChangingATextureRendersTheBlendUsingIt(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	testenv.FFmpeg(t)
	proj := testenv.MakeProject(t, t.TempDir())
	plain := testenv.MakeScene(t, map[string]any{"name": "Plain", "end": 1})
	red := filepath.Join(t.TempDir(), "red.png")
	testenv.WritePNG(t, red, testenv.Red)

	h := newHarness(t)
	src := func(p string) string { return filepath.Join(proj.Root, filepath.FromSlash(p)) }
	base := h.commit("project", map[string]string{
		"shots/shot.blend": src("shots/shot.blend"), "lib/prop.blend": src("lib/prop.blend"),
		"textures/left.png": src("textures/left.png"), "lib/tex/right.png": src("lib/tex/right.png"),
		"other/plain.blend": plain,
	})
	h.git("checkout", "-q", "-b", "feature")
	head := h.commit("redder", map[string]string{"textures/left.png": red})
	merge := h.mergeInto(head)
	h.gh.SetPRFiles(9, githubtest.File{Filename: "textures/left.png", Status: "modified"})
	h.pullRequest("synchronize", 9, head, base, merge, "")

	if err := h.run(map[string]string{"engine": "local", "samples": "1"}); err != nil {
		t.Fatalf("action: %v", err)
	}
	runs := h.runsOutput()
	if len(runs) != 1 || runs[0].File != "shots/shot.blend" || runs[0].State != pipeline.RunSucceeded {
		t.Fatalf("runs %+v: want shots/shot.blend alone rendered (lib/prop.blend and other/plain.blend do not use the texture)", runs)
	}
	frame, err := os.ReadFile(filepath.Join(h.ws, filepath.Dir(runs[0].VideoPath), "frames", "frame_000001.png"))
	if err != nil {
		t.Fatal(err)
	}
	if left, right := testenv.HalvesOf(t, frame); !testenv.Near(left, testenv.Red) || !testenv.Near(right, testenv.Blue) {
		t.Errorf("frame: left %v right %v, want the PR's red texture | the library's blue one", left, right)
	}
	mine := commentsByAction(h.gh.Comments(9))
	if len(mine) != 1 {
		t.Fatalf("%d comments by the action, want 1", len(mine))
	}
	if want := "texture textures/left.png changed"; !slices.ContainsFunc(strings.Split(mine[0].Body, "\n"), func(l string) bool {
		return strings.Contains(l, "`shots/shot.blend`") && strings.Contains(l, want)
	}) {
		t.Errorf("comment lacks the reason %q:\n%s", want, mine[0].Body)
	}
}
