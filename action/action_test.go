package action

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/githubtest"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
)

// scenes makes tiny real scenes (Blender) for the tests.
func scenes(t *testing.T) (a, a2, b, b2 string) {
	t.Helper()
	testenv.Blender(t)
	testenv.FFmpeg(t)
	a = testenv.MakeScene(t, map[string]any{"name": "Shot A", "end": 4})
	a2 = testenv.MakeScene(t, map[string]any{"name": "Shot A", "end": 4, "width": 80})
	b = testenv.MakeScene(t, map[string]any{"name": "Shot B", "end": 3})
	b2 = testenv.MakeScene(t, map[string]any{"name": "Shot B", "end": 3, "height": 40})
	return a, a2, b, b2
}

// mergeInto makes the test merge commit GitHub checks out for a PR (main
// plus head) and checks it out, as actions/checkout does.
func (h *harness) mergeInto(head string) string {
	h.git("checkout", "-q", "--detach", "main")
	h.git("merge", "-q", "--no-ff", "-m", "Merge "+head+" into main", head)
	return h.git("rev-parse", "HEAD")
}

func commentsByAction(cs []githubtest.Comment) []githubtest.Comment {
	var out []githubtest.Comment
	for _, c := range cs {
		if c.Author == defaultBotLogin && strings.HasPrefix(c.Body, commentMarker) {
			out = append(out, c)
		}
	}
	return out
}

// TestPullRequestRendersAndReportsInPlace renders a PR's changed blends for
// real with the local engine, at the PR's head commit, and reports them; a
// second push to the PR edits the same comment, after waiting out a
// secondary rate limit, and leaves a look-alike comment by someone else alone.
func TestPullRequestRendersAndReportsInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	a, a2, b, b2 := scenes(t)
	h := newHarness(t)
	h.commit("scenes", map[string]string{"scenes/a.blend": a, "old/e.blend": b, "gone.blend": a})
	h.git("checkout", "-q", "-b", "feature")
	h.git("mv", "old/e.blend", "scenes/e.blend")
	head := h.commit("change scenes", map[string]string{"scenes/a.blend": a2, "scenes/b.blend": b, "gone.blend": "", "notes.txt": "/etc/hostname"})
	h.git("checkout", "-q", "main")
	base := h.commit("main moves on", map[string]string{"README.md": "/etc/hostname"})
	merge := h.mergeInto(head)

	files := []githubtest.File{
		{Filename: "scenes/a.blend", Status: "modified"},
		{Filename: "scenes/b.blend", Status: "added"},
		{Filename: "scenes/e.blend", Status: "renamed", PreviousFilename: "old/e.blend"},
		{Filename: "gone.blend", Status: "removed"},
		{Filename: "notes.txt", Status: "added"},
	}
	for i := range 120 { // a second page of files
		files = append(files, githubtest.File{Filename: "docs/page" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".md", Status: "added"})
	}
	h.gh.SetPRFiles(7, files...)
	decoy := h.gh.AddComment(7, "mallory", commentMarker+"\nnot the action's")
	h.pullRequest("opened", 7, head, base, merge, "")

	inputs := map[string]string{"engine": "local", "resolution": "50", "samples": "1", "chunk-size": "2", "compare": "true"}
	if err := h.run(inputs); err != nil {
		t.Fatalf("action: %v", err)
	}

	runs := h.runsOutput()
	var paths []string
	for _, r := range runs {
		paths = append(paths, r.File)
		if r.State != pipeline.RunSucceeded || r.SHA != head || r.RunID == "" {
			t.Errorf("run %+v: want succeeded at the head commit %s with a run id", r, head)
		}
		if _, err := os.Stat(filepath.Join(h.ws, r.VideoPath)); err != nil || filepath.IsAbs(r.VideoPath) {
			t.Errorf("%s: video_path %q: %v", r.File, r.VideoPath, err)
		}
	}
	if want := []string{"scenes/a.blend", "scenes/b.blend", "scenes/e.blend"}; !slices.Equal(paths, want) {
		t.Fatalf("rendered %v, want %v (deleted skipped, rename followed, non-blends ignored)", paths, want)
	}
	// compare: true: the modified a.blend is shown beside its base; the added b.blend has no base.
	if _, err := os.Stat(filepath.Join(h.ws, runs[0].ComparisonPath)); err != nil || runs[1].ComparisonPath != "" {
		t.Errorf("comparison paths %q, %q: want one for the modified a.blend only (%v)", runs[0].ComparisonPath, runs[1].ComparisonPath, err)
	}
	if got := h.outputs()["failures"]; got != "0" {
		t.Errorf("failures output %q, want 0", got)
	}

	mine := commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 {
		t.Fatalf("%d comments by the action, want 1", len(mine))
	}
	first := mine[0]
	t.Logf("the comment:\n%s", first.Body)
	for _, want := range []string{short(head), "`scenes/a.blend`", "`scenes/e.blend`", "Shot A", "Shot B", "✅ done",
		"in artifact [framefleet-renders](" + testRunURL + "#artifacts)", "renamed from `old/e.blend`", "🗑️ deleted", "run `" + runs[0].RunID + "`", "before / after `"} {
		if !strings.Contains(first.Body, want) {
			t.Errorf("comment lacks %q:\n%s", want, first.Body)
		}
	}
	st := h.gh.Statuses(head)
	for _, p := range paths {
		s, ok := st["framefleet/"+p]
		if !ok || s.State != "success" || s.TargetURL != testRunURL {
			t.Errorf("status framefleet/%s = %+v, want success linking to the run's artifacts", p, s)
		}
	}
	if n := len(h.gh.Statuses(merge)); n != 0 {
		t.Errorf("%d statuses on the merge commit: statuses belong on the PR's head", n)
	}
	if sum := h.summary(); !strings.Contains(sum, "| `scenes/b.blend`<br><sub>added · scene Shot B · 32×18</sub> | ✅ done |") {
		t.Errorf("step summary lacks the table:\n%s", sum)
	}
	pages, live := 0, false
	for _, r := range h.gh.Requests() {
		if strings.HasSuffix(r.Path, "/pulls/7/files") {
			pages++
		}
		if (r.Method == "POST" || r.Method == "PATCH") && strings.Contains(r.Path, "/comments") &&
			(strings.Contains(string(r.Body), "queued") || strings.Contains(string(r.Body), "rendering")) {
			live = true
		}
	}
	if !live {
		t.Error("the comment was never shown while the renders ran")
	}
	if pages != 2 {
		t.Errorf("listed the PR's files in %d requests, want 2 pages", pages)
	}

	// A second push: b changes again; GitHub is rate limiting comment edits.
	h.git("checkout", "-q", "feature")
	head2 := h.commit("tweak b", map[string]string{"scenes/b.blend": b2})
	merge2 := h.mergeInto(head2)
	h.pullRequest("synchronize", 7, head2, base, merge2, "")
	h.gh.RateLimitOnce("PATCH", `/issues/comments/\d+$`, http.StatusForbidden, http.Header{"Retry-After": {"60"}})
	if err := h.run(inputs); err != nil {
		t.Fatalf("second run: %v", err)
	}
	mine = commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 || mine[0].ID != first.ID {
		t.Fatalf("after the second run: comments %+v, want the first comment %d edited in place", mine, first.ID)
	}
	if !strings.Contains(mine[0].Body, short(head2)) || strings.Contains(mine[0].Body, short(head)) {
		t.Errorf("edited comment does not report the new head %s:\n%s", short(head2), mine[0].Body)
	}
	for _, c := range h.gh.Comments(7) {
		if c.ID == decoy && c.Body != commentMarker+"\nnot the action's" {
			t.Errorf("the look-alike comment by mallory was edited")
		}
	}
	if !slices.Contains(h.clock.slept(), 60*time.Second) {
		t.Errorf("waits %v: want the 60 s Retry-After waited out", h.clock.slept())
	}
	if s := h.gh.Statuses(head2)["framefleet/scenes/b.blend"]; s.State != "success" {
		t.Errorf("status of b on the new head: %+v", s)
	}
}

// TestForkPullRequestRendersNothing: a fork's PR gets a notice, no API
// calls, no renders, and the step succeeds; the token is masked first.
func TestForkPullRequestRendersNothing(t *testing.T) {
	h := newHarness(t)
	head := h.commit("scene", map[string]string{"x.blend": "/etc/hostname"})
	h.gh.SetPRFiles(9, githubtest.File{Filename: "x.blend", Status: "added"})
	h.pullRequest("opened", 9, head, head, head, "mallory/scenes")
	if err := h.run(map[string]string{"engine": "local"}); err != nil {
		t.Fatalf("fork PR: %v, want success", err)
	}
	out := h.out.String()
	if !strings.HasPrefix(out, "::add-mask::"+testToken) {
		t.Errorf("the token is not masked before anything else:\n%s", out)
	}
	if !strings.Contains(out, "::notice::") || !strings.Contains(out, "fork") {
		t.Errorf("no notice about the fork:\n%s", out)
	}
	if o := h.outputs(); o["runs"] != "[]" || o["failures"] != "0" {
		t.Errorf("outputs %v, want no runs and no failures", o)
	}
	if n := len(h.gh.Requests()); n != 0 {
		t.Errorf("%d GitHub API requests for a fork PR, want none", n)
	}
	if _, err := os.Stat(h.ws + "/" + DefaultStoreDir); err == nil {
		t.Errorf("a store was made: nothing should render")
	}
}

// TestDispatchRendersTheOthersWhenOneIsAnLFSPointer: workflow_dispatch
// renders the paths given; a blend that is a Git LFS pointer which cannot
// be fetched fails with the fix, and the other files still render.
func TestDispatchRendersTheOthersWhenOneIsAnLFSPointer(t *testing.T) {
	if testing.Short() {
		t.Skip("renders with Blender")
	}
	a, _, _, _ := scenes(t)
	h := newHarness(t)
	pointer := t.TempDir() + "/pointer"
	os.WriteFile(pointer, []byte("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"), 0o644)
	head := h.commit("scenes", map[string]string{"scenes/a.blend": a, "scenes/big.blend": pointer, "props/chair.blend": a})
	h.event("workflow_dispatch", githubtest.Example(t, "workflow_dispatch", ""), head)

	err := h.run(map[string]string{"engine": "local", "paths": "scenes/*.blend", "samples": "1", "resolution": "50"})
	var failed *RendersFailedError
	if !errors.As(err, &failed) || failed.Failed != 1 || failed.Total != 2 {
		t.Fatalf("action: %v, want 1 of 2 renders failed", err)
	}
	runs := h.runsOutput()
	if len(runs) != 2 || runs[0].File != "scenes/a.blend" || runs[0].State != pipeline.RunSucceeded {
		t.Fatalf("runs %+v: want scenes/a.blend rendered (props/ is not in paths)", runs)
	}
	big := runs[1]
	if big.File != "scenes/big.blend" || big.State != pipeline.RunFailed || !strings.Contains(big.Error, "lfs: true") || !strings.Contains(big.Error, "git lfs pull --include=scenes/big.blend") {
		t.Errorf("the pointer's run %+v: want failed with the fix", big)
	}
	if o := h.outputs(); o["failures"] != "1" {
		t.Errorf("failures output %q, want 1", o["failures"])
	}
	st := h.gh.Statuses(head)
	if st["framefleet/scenes/a.blend"].State != "success" || st["framefleet/scenes/big.blend"].State != "failure" ||
		!strings.Contains(st["framefleet/scenes/big.blend"].Description, "Git LFS pointer") {
		t.Errorf("statuses %+v", st)
	}
	if !strings.Contains(h.out.String(), "::error file=scenes/big.blend,title=framefleet render failed::scenes/big.blend: ") {
		t.Errorf("no error annotation for the pointer:\n%s", h.out.String())
	}
	if sum := h.summary(); !strings.Contains(sum, "- ❌ `scenes/big.blend`: scenes/big.blend is a Git LFS pointer") {
		t.Errorf("summary lacks the failure:\n%s", sum)
	}
	if len(h.gh.Comments(0)) != 0 {
		t.Error("a comment without a pull request")
	}
}

// TestBadInputsStopBeforeAnything: every bad input is named with its fix,
// nothing is asked of GitHub, and a schedule without mode refresh is refused.
func TestBadInputsStopBeforeAnything(t *testing.T) {
	h := newHarness(t)
	head := h.commit("scene", map[string]string{"a.blend": "/etc/hostname"})
	h.event("push", githubtest.Example(t, "push", ""), head)
	err := h.run(map[string]string{"wait": "maybe", "resolution": "0", "engine": "cloud"})
	for _, want := range []string{"input wait \"maybe\" is not a boolean: use true or false", "input resolution \"0\"", "input engine \"cloud\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	h.event("schedule", map[string]any{"schedule": "*/15 * * * *"}, head)
	if err := h.run(nil); err == nil || !strings.Contains(err.Error(), "set mode: refresh") {
		t.Errorf("a schedule in mode render: %v", err)
	}
	if n := len(h.gh.Requests()); n != 0 {
		t.Errorf("%d GitHub API requests, want none", n)
	}
}
