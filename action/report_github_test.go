package action

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/githubtest"
	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/framefleet/framefleet/pipeline"
)

// Inputs that render the tiny test scenes quickly on the runner.
var quickInputs = map[string]string{"engine": "local", "resolution": "50", "samples": "1"}

// prWith commits files (repository path → source) on a branch and opens PR 7 with them.
func (h *harness) prWith(files map[string]string, prFiles []githubtest.File) (head string) {
	h.t.Helper()
	base := h.commit("start", map[string]string{"README.md": "/etc/hostname"})
	h.git("checkout", "-q", "-b", "feature")
	head = h.commit("scenes", files)
	merge := h.mergeInto(head)
	h.gh.SetPRFiles(7, prFiles...)
	h.pullRequest("synchronize", 7, head, base, merge, "")
	return head
}

func oneScene(t *testing.T, opts map[string]any) string {
	t.Helper()
	testenv.Blender(t)
	testenv.FFmpeg(t)
	return testenv.MakeScene(t, opts)
}

// TestFailedStatusReadsLoseNothing: the statuses read (only used to skip
// unchanged statuses) answers 404, then 500; the render is still reported
// completely: comment, statuses, summary and outputs.
func TestFailedStatusReadsLoseNothing(t *testing.T) {
	scene := oneScene(t, map[string]any{"name": "Shot", "end": 2})
	h := newHarness(t)
	head := h.prWith(map[string]string{"a.blend": scene}, []githubtest.File{{Filename: "a.blend", Status: "added"}})
	h.gh.FailOnce("GET", `/commits/[^/]+/status$`, http.StatusNotFound)
	h.gh.FailOnce("GET", `/commits/[^/]+/status$`, http.StatusInternalServerError)
	if err := h.run(quickInputs); err != nil {
		t.Fatalf("action: %v", err)
	}
	mine := commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 || !strings.Contains(mine[0].Body, "**✅ 1**") || !strings.Contains(mine[0].Body, "✅ done") {
		t.Fatalf("comments %+v: want one saying the render is done", mine)
	}
	if s := h.gh.Statuses(head)["framefleet/a.blend"]; s.State != "success" {
		t.Errorf("status %+v, want success", s)
	}
	if sum := h.summary(); !strings.Contains(sum, "`a.blend`") || !strings.Contains(sum, "✅ done") {
		t.Errorf("summary:\n%s", sum)
	}
	if runs := h.runsOutput(); len(runs) != 1 || runs[0].State != pipeline.RunSucceeded || strings.HasPrefix(runs[0].VideoPath, "/") {
		t.Errorf("runs output %+v: want a.blend succeeded with a workspace-relative video path", runs)
	}
	reads := 0
	for _, r := range h.gh.Requests() {
		if r.Method == "GET" && strings.HasSuffix(r.Path, "/status") {
			reads++
		}
	}
	if reads < 2 {
		t.Errorf("%d statuses reads: the faults were not exercised", reads)
	}
}

// TestSixtyBlendsOneCommentSixtyFinalStatuses: every file ends final in
// one comment and its own status, within the action's own time (the fake
// clock paces the writes a second apart, as GitHub asks).
func TestSixtyBlendsOneCommentSixtyFinalStatuses(t *testing.T) {
	scene := oneScene(t, map[string]any{"name": "Shot", "end": 1})
	h := newHarness(t)
	files := map[string]string{}
	var pr []githubtest.File
	for i := range 60 {
		p := fmt.Sprintf("shots/sh%02d.blend", i)
		files[p] = scene // identical blends make one run (the render cache); each file is still reported
		pr = append(pr, githubtest.File{Filename: p, Status: "added"})
	}
	head := h.prWith(files, pr)
	if err := h.run(quickInputs); err != nil {
		t.Fatalf("action: %v", err)
	}
	mine := commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 || !strings.Contains(mine[0].Body, "**✅ 60**") {
		t.Fatalf("%d comments; want one counting 60 done:\n%v", len(mine), mine)
	}
	st := h.gh.Statuses(head)
	final := 0
	for i := range 60 {
		if s := st[fmt.Sprintf("framefleet/shots/sh%02d.blend", i)]; s.State == "success" {
			final++
		}
	}
	if final != 60 {
		t.Errorf("%d of 60 statuses are final (success)", final)
	}
	if n := len(h.runsOutput()); n != 60 {
		t.Errorf("runs output lists %d files, want 60", n)
	}
}

// TestConcurrentRunsLeaveOneComment: two jobs of one PR at once (same
// comment key) end with one sticky comment.
func TestConcurrentRunsLeaveOneComment(t *testing.T) {
	scene := oneScene(t, map[string]any{"name": "Shot", "end": 1})
	h := newHarness(t)
	h.prWith(map[string]string{"a.blend": scene}, []githubtest.File{{Filename: "a.blend", Status: "added"}})
	// An earlier race left two already: the next run keeps the oldest.
	h.gh.AddComment(7, defaultBotLogin, commentMarker+"\nold one")
	h.gh.AddComment(7, defaultBotLogin, commentMarker+"\nold two")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.run(quickInputs) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("action: %v", err)
		}
	}
	mine := commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 || !strings.Contains(mine[0].Body, "✅ done") {
		t.Fatalf("comments %+v: want one, done", mine)
	}
	// Another key keeps a comment of its own.
	if err := h.run(map[string]string{"engine": "local", "resolution": "50", "samples": "1", "comment-key": "other job"}); err != nil {
		t.Fatal(err)
	}
	var keyed int
	for _, c := range h.gh.Comments(7) {
		if strings.HasPrefix(c.Body, commentMarkerFor("other job")+"\n") {
			keyed++
		}
	}
	if keyed != 1 || len(commentsByAction(h.gh.Comments(7))) != 1 {
		t.Errorf("comments %+v: want one per key", h.gh.Comments(7))
	}
}

// TestHostileSceneNameIsInert: a scene named like a mention, a link and
// HTML shows as text.
func TestHostileSceneNameIsInert(t *testing.T) {
	scene := oneScene(t, map[string]any{"name": "@everyone [x](http://e.vil) <b>", "end": 1})
	h := newHarness(t)
	head := h.prWith(map[string]string{"a.blend": scene}, []githubtest.File{{Filename: "a.blend", Status: "added"}})
	if err := h.run(quickInputs); err != nil {
		t.Fatalf("action: %v", err)
	}
	mine := commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 {
		t.Fatalf("%d comments", len(mine))
	}
	if !strings.Contains(mine[0].Body, "@\u200beveryone") {
		t.Errorf("the scene's name is not shown (defused):\n%s", mine[0].Body)
	}
	assertNothingLive(t, mine[0].Body)
	assertNothingLive(t, h.summary())
	if s := h.gh.Statuses(head)["framefleet/a.blend"]; strings.Contains(s.Description, "@everyone") {
		t.Errorf("status %+v mentions", s)
	}
}

// TestSIGINTReportsCancelled: a cancelled workflow run (SIGINT ends the
// action's context) cancels its runs and says so, not "failed".
func TestSIGINTReportsCancelled(t *testing.T) {
	scene := oneScene(t, map[string]any{"name": "Long", "end": 400})
	h := newHarness(t)
	head := h.prWith(map[string]string{"long.blend": scene}, []githubtest.File{{Filename: "long.blend", Status: "added"}})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		// Stop once the run is submitted (the comment shows its id).
		for ctx.Err() == nil {
			if mine := commentsByAction(h.gh.Comments(7)); len(mine) == 1 && strings.Contains(mine[0].Body, "run `") {
				cancel(fmt.Errorf("interrupt"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	err := h.runContext(ctx, quickInputs)
	if err == nil {
		t.Fatal("the interrupted action succeeded")
	}
	mine := commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 || !strings.Contains(mine[0].Body, "⛔ cancelled") || strings.Contains(mine[0].Body, "❌") ||
		!strings.Contains(mine[0].Body, "cancelled by GitHub Actions") || strings.Contains(mine[0].Body, "context canceled") {
		t.Errorf("comment after SIGINT:\n%v", mine)
	}
	if s := h.gh.Statuses(head)["framefleet/long.blend"]; s.State != "error" || !strings.HasPrefix(s.Description, "cancelled") {
		t.Errorf("status after SIGINT %+v, want error: cancelled …", s)
	}
	if runs := h.runsOutput(); len(runs) != 1 || runs[0].State != pipeline.RunCancelled {
		t.Errorf("runs output %+v, want cancelled", runs)
	}
}

// TestCloudFrontLinksRefreshWritesNothing: publishing the same runs again
// with freshly signed CloudFront links (a scheduled refresh) writes
// nothing; links that are about to expire are rewritten.
func TestCloudFrontLinksRefreshWritesNothing(t *testing.T) {
	gh := githubtest.New(t, testToken)
	client, err := NewGitHub(&http.Client{}, gh.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	cf := func(key string, expires time.Time, sig string) string {
		return fmt.Sprintf("https://d111111abcdef8.cloudfront.net/%s?Expires=%d&Signature=%s&Key-Pair-Id=K2JCJMDEHXQW5F", key, expires.Unix(), sig)
	}
	runsSigned := func(expires time.Time, sig string) []Run {
		r := succeededRun("cf000001", "a.blend", "Shot", "modified")
		r.View.Links.Video, r.View.Links.Preview = cf("runs/cf000001/Shot.mp4", expires, sig), cf("runs/cf000001/preview.gif", expires, sig)
		r.View.Links.ExpiresAt = &expires
		return []Run{r}
	}
	p := newReporter(client, "octo-org", "scenes", true, "", reportFormat{}, clock, nil)
	ctx := context.Background()
	in90 := clock.Now().Add(90 * 24 * time.Hour)
	if err := p.publish(ctx, reportKey{pr: 7, sha: "abc1234def"}, runsSigned(in90, "AAAA")); err != nil {
		t.Fatal(err)
	}
	writes := func() int {
		n := 0
		for _, r := range gh.Requests() {
			if r.Method != "GET" {
				n++
			}
		}
		return n
	}
	before := writes()
	// A later refresh: another process, links signed afresh.
	clock.Sleep(ctx, time.Hour)
	again := newReporter(client, "octo-org", "scenes", true, "", reportFormat{}, clock, nil)
	if err := again.publish(ctx, reportKey{pr: 7, sha: "abc1234def"}, runsSigned(in90.Add(time.Hour), "BBBB")); err != nil {
		t.Fatal(err)
	}
	if n := writes() - before; n != 0 {
		t.Errorf("a refresh with nothing changed made %d writes", n)
	}
	// Links that expire within a day are replaced.
	soon := newReporter(client, "octo-org", "scenes", true, "", reportFormat{}, clock, nil)
	clock.Sleep(ctx, 90*24*time.Hour-12*time.Hour)
	if err := soon.publish(ctx, reportKey{pr: 7, sha: "abc1234def"}, runsSigned(clock.Now().Add(90*24*time.Hour), "CCCC")); err != nil {
		t.Fatal(err)
	}
	if n := writes() - before; n == 0 {
		t.Error("links about to expire were not renewed")
	}
}

// TestPushWithoutBlendsSupersedesTheEarlierRenders: a later push to the PR
// that touches no blends cancels the earlier push's unfinished runs and
// says in the comment that there is nothing to render.
func TestPushWithoutBlendsSupersedesTheEarlierRenders(t *testing.T) {
	scene := oneScene(t, map[string]any{"name": "Shot", "end": 1})
	h := newHarness(t)
	base := h.commit("start", map[string]string{"README.md": "/etc/hostname"})
	h.git("checkout", "-q", "-b", "feature")
	head := h.commit("scene", map[string]string{"a.blend": scene})
	h.gh.SetPRFiles(7, githubtest.File{Filename: "a.blend", Status: "added"})
	h.pullRequest("synchronize", 7, head, base, h.mergeInto(head), "")
	if err := h.run(map[string]string{"engine": "local", "resolution": "50", "samples": "1", "wait": "false"}); err != nil {
		t.Fatalf("first push: %v", err)
	}
	first := h.runsOutput()
	if len(first) != 1 || first[0].RunID == "" {
		t.Fatalf("first push's runs %+v", first)
	}

	// The next push reverts the blend: the PR changes no blend any more.
	h.git("checkout", "-q", "feature")
	head2 := h.commit("drop the scene", map[string]string{"a.blend": "", "notes.txt": "/etc/hostname"})
	h.gh.SetPRFiles(7, githubtest.File{Filename: "notes.txt", Status: "added"})
	h.clock.Sleep(context.Background(), time.Minute)
	h.pullRequest("synchronize", 7, head2, base, h.mergeInto(head2), "")
	if err := h.run(quickInputs); err != nil {
		t.Fatalf("second push: %v", err)
	}
	mine := commentsByAction(h.gh.Comments(7))
	if len(mine) != 1 || !strings.Contains(mine[0].Body, "No blends to render") || !strings.Contains(mine[0].Body, short(head2)) {
		t.Errorf("comment after a push without blends:\n%v", mine)
	}
	runs, err := OpenFleet(context.Background(), Inputs{Engine: "local"}, FleetOptions{Getenv: func(string) string { return "" }, Workspace: h.ws})
	if err != nil {
		t.Fatal(err)
	}
	got, err := runs.Get(context.Background(), RunRef{ID: first[0].RunID})
	if err != nil {
		t.Fatal(err)
	}
	// With wait: false nobody follows the run, so it is unfinished when the next push comes.
	if c := got.View.Cancelled; got.State() != pipeline.RunCancelled || c == nil || c.By != cancelledBy ||
		!strings.Contains(c.Reason, "superseded by the push of "+short(head2)) {
		t.Errorf("the superseded run is %s (%+v), want cancelled by %s as superseded", got.State(), c, cancelledBy)
	}
}
