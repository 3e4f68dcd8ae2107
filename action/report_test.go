package action

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/internal/golden"
	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
)

var (
	reportCreated = time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	reportDone    = reportCreated.Add(3 * time.Minute)
	reportExpires = time.Date(2026, 12, 7, 11, 3, 0, 0, time.UTC)
)

// s3Link is a presigned S3 link as the batch engine's store makes them.
func s3Link(key string) string {
	parts := strings.Split(key, "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return "https://renders.s3.eu-west-1.amazonaws.com/" + strings.Join(parts, "/") + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261130T110300Z&X-Amz-Expires=604800&X-Amz-Signature=ab12"
}

// reportRecord is a run record of state for file, as the pipeline stores it.
func reportRecord(id, file, scene string, state pipeline.RunState) *pipeline.RunRecord {
	rec := &pipeline.RunRecord{Schema: pipeline.RecordSchema, ID: id, State: state, Scene: scene, Engine: "batch",
		Source: pipeline.RunSource{Name: testRepo + "/" + file + "@abc1234"}, FramesTotal: 48, ChunkTotal: 4, Width: 320, Height: 180,
		Progress: pipeline.Progress{FramesTotal: 48}, CreatedAt: reportCreated, UpdatedAt: reportCreated}
	if state.Final() {
		rec.FinishedAt = &reportDone
	}
	return rec
}

// reportRun is file's row showing the view of rec.
func reportRun(file, change string, in pipeline.ViewInput) Run {
	v := pipeline.NewRunView(in)
	if l := v.Links; l != nil {
		l.Video, l.Preview, l.ExpiresAt = s3Link(l.VideoKey), s3Link(l.PreviewKey), &reportExpires
	}
	if l := v.Latest; l != nil {
		l.ThumbnailLink = s3Link(l.ThumbnailKey)
	}
	return Run{View: v, Change: change, Labels: map[string]string{LabelPath: file, LabelSHA: "abc1234def", LabelRunURL: testRunURL}}
}

func succeededRun(id, file, scene, change string) Run {
	return reportRun(file, change, pipeline.ViewInput{Record: reportRecord(id, file, scene, pipeline.RunSucceeded),
		Manifest: &pipeline.Manifest{VideoKey: "runs/" + id + "/" + scene + ".mp4", PreviewKey: "runs/" + id + "/preview.gif", CostUSD: 0.02}})
}

// reportCases are the reports the golden files show, one per situation.
func reportCases(t *testing.T) map[string][]Run {
	t.Helper()
	var noCamera pipeline.RunRecord
	var noCameraPlan plan.Plan
	for path, v := range map[string]any{"../pipeline/testdata/view/failed-no-camera.run.json": &noCamera, "../pipeline/testdata/view/failed-no-camera.plan.json": &noCameraPlan} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	noCamera.CreatedAt, noCamera.FinishedAt = reportCreated, &reportDone

	queued := reportRun("scenes/a.blend", "added", pipeline.ViewInput{Record: reportRecord("q1q1q1q1", "scenes/a.blend", "Shot A", pipeline.RunSubmitted)})
	renderingRec := reportRecord("r2r2r2r2", "scenes/b.blend", "Shot B", pipeline.RunRunning)
	renderingRec.Progress = pipeline.Progress{FramesDone: 12, FramesTotal: 48, LatestFrame: 12,
		LatestFrameKey: "runs/r2r2r2r2/frames/frame_000012.png", LatestThumbnailKey: "runs/r2r2r2r2/thumbs/frame_000012.jpg"}
	rendering := reportRun("scenes/b.blend", "modified", pipeline.ViewInput{Record: renderingRec})
	failed := reportRun("scenes/nocam.blend", "added", pipeline.ViewInput{Record: &noCamera, Plan: &noCameraPlan})
	cancelledRec := reportRecord("c4c4c4c4", "scenes/c.blend", "Shot C", pipeline.RunCancelled)
	cancelledRec.Failure = &pipeline.RunFailure{CancelReason: "the workflow run was cancelled", CancelledBy: cancelledBy}
	cancelled := reportRun("scenes/c.blend", "modified", pipeline.ViewInput{Record: cancelledRec})
	missingRec := reportRecord("m5m5m5m5", "scenes/m.blend", "Shot M", pipeline.RunFailed)
	missingRec.Failure = &pipeline.RunFailure{Message: "the scene needs 2 files that were not found"}
	missing := reportRun("scenes/m.blend", "modified", pipeline.ViewInput{Record: missingRec})
	missing.View.MissingInputs = []pipeline.MissingInput{
		{StoredPath: "//textures/wood.png", Kind: "image", UsedBy: []string{"IMwood"}},
		{StoredPath: "//../lib/props.blend", Kind: "library", UsedBy: []string{"OBtable", "OBchair"}},
	}

	compared := succeededRun("d6d6d6d6", "scenes/d.blend", "Shot D", "renamed")
	compared.Previous = "old/d.blend"
	compared.Compare = RunRef{CompareBase: "e7e7e7e7", BaseLabel: "base 1111111", HeadLabel: "head abc1234"}
	compared.Comparison, compared.ComparisonPreview = s3Link("runs/d6d6d6d6/compare/e7e7e7e7.mp4"), s3Link("runs/d6d6d6d6/compare/e7e7e7e7.gif")
	lfsNote := succeededRun("f8f8f8f8", "scenes/lfs.blend", "Shot L", "modified")
	lfsNote.CompareNote = "git lfs smudge: the base commit's object is not on the LFS server"

	localRec := reportRecord("l9l9l9l9", "scenes/local.blend", "Shot", pipeline.RunSucceeded)
	localRec.Engine = "local"
	local := Run{View: pipeline.NewRunView(pipeline.ViewInput{Record: localRec, Manifest: &pipeline.Manifest{VideoKey: "runs/l9l9l9l9/Shot.mp4"}}),
		Change: "added", Labels: map[string]string{LabelPath: "scenes/local.blend", LabelRunURL: testRunURL}}
	local.View.Links.Video, local.View.Links.VideoPath = "/github/workspace/framefleet-renders/runs/l9l9l9l9/Shot.mp4", "/github/workspace/framefleet-renders/runs/l9l9l9l9/Shot.mp4"

	hostile := succeededRun("h0h0h0h0", "scenes/@everyone [x](http:/e.vil) <b>.blend", "@everyone [x](http://e.vil) <b>", "added")
	deleted := Run{Change: changeRemoved, Labels: map[string]string{LabelPath: "scenes/gone.blend"}}
	lfsProblem := Run{Change: "added", Problem: "scenes/big.blend is a Git LFS pointer and git lfs pull failed: set lfs: true on actions/checkout",
		Labels: map[string]string{LabelPath: "scenes/big.blend"}}

	var sixty []Run
	for i := range 60 {
		file := fmt.Sprintf("shots/sh%03d.blend", i)
		switch {
		case i == 7 || i == 41:
			r := failed
			r.Labels = map[string]string{LabelPath: file, LabelRunURL: testRunURL}
			sixty = append(sixty, r)
		case i == 59:
			rec := *renderingRec
			rec.ID = "r2r2r259"
			sixty = append(sixty, reportRun(file, "added", pipeline.ViewInput{Record: &rec}))
		default:
			sixty = append(sixty, succeededRun(fmt.Sprintf("s%07d", i), file, fmt.Sprintf("Shot %d", i), "modified"))
		}
	}
	return map[string][]Run{
		"queued":         {queued},
		"rendering":      {rendering, queued},
		"succeeded":      {succeededRun("s3s3s3s3", "scenes/a.blend", "Shot A", "modified")},
		"failed":         {failed, lfsProblem},
		"cancelled":      {cancelled},
		"missing-inputs": {missing},
		"compare":        {compared, lfsNote},
		"changes":        {succeededRun("s3s3s3s3", "scenes/a.blend", "Shot A", "added"), compared, deleted},
		"local":          {local},
		"escaping":       {hostile},
		"60-files":       sixty,
	}
}

func TestReportGolden(t *testing.T) {
	f := reportFormat{artifact: "framefleet-renders"}
	for name, runs := range reportCases(t) {
		t.Run(name, func(t *testing.T) {
			body := f.commentBody(commentMarker, "abc1234def", runs)
			golden.Check(t, "comment/"+name+".md", body)
			golden.Check(t, "summary/"+name+".md", f.summary("framefleet renders of abc1234", runs))
			if len(body) > maxCommentLength {
				t.Errorf("comment is %d bytes, GitHub takes %d", len(body), maxCommentLength)
			}
			if !strings.HasPrefix(body, commentMarker+"\n**") {
				t.Errorf("the comment does not start with its marker and the count line:\n%s", body)
			}
			for _, line := range strings.Split(body, "\n") {
				if strings.HasPrefix(line, "|---") {
					if got := strings.Count(line, "|") - 1; got > 5 {
						t.Errorf("a table has %d columns, want at most 5", got)
					}
				}
			}
			assertNothingLive(t, body)
		})
	}
}

// assertNothingLive fails when the body would mention, reference or link
// anything the action did not write itself.
func assertNothingLive(t *testing.T, body string) {
	t.Helper()
	// The action's own links (attributes and link destinations) are left out.
	body = regexp.MustCompile(`(href|src|alt)="[^"]*"|\]\(https://[^\s)]*\)`).ReplaceAllString(body, "$1")
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(^|[^\w\x60])@[A-Za-z]`),        // a mention (outside code)
		regexp.MustCompile(`\]\(http://e\.vil`),             // a Markdown link from a name
		regexp.MustCompile(`(?i)<b>`),                       // raw HTML from a name
		regexp.MustCompile(`(^|[^\x{200b}/])http://e\.vil`), // a bare URL GitHub would link
		regexp.MustCompile(`(^|[^\\])\[x\]`),                // an unescaped link text
	} {
		for _, line := range strings.Split(body, "\n") {
			if inCode := strings.Contains(line, "`") && codeOnly(line, re); inCode {
				continue
			}
			if re.MatchString(line) {
				t.Errorf("live text %s in line:\n%s", re, line)
			}
		}
	}
}

// codeOnly says whether every match of re in line is inside a code span.
func codeOnly(line string, re *regexp.Regexp) bool {
	spans := regexp.MustCompile("(`+)[^`]*?(`+)").FindAllStringIndex(line, -1)
	for _, m := range re.FindAllStringIndex(line, -1) {
		inside := false
		for _, s := range spans {
			if m[0] >= s[0] && m[1] <= s[1] {
				inside = true
			}
		}
		if !inside {
			return false
		}
	}
	return true
}

func TestStatusFor(t *testing.T) {
	long := strings.Repeat("dir/", 40) + "shot.blend"
	cases := reportCases(t)
	tests := []struct {
		name string
		run  Run
		want Status
	}{
		{"succeeded links the video", cases["succeeded"][0],
			Status{Context: "framefleet/scenes/a.blend", State: "success", Description: "rendered 48 frames", TargetURL: s3Link("runs/s3s3s3s3/Shot A.mp4")}},
		{"local engine links the workflow run", cases["local"][0],
			Status{Context: "framefleet/scenes/local.blend", State: "success", Description: "rendered 48 frames", TargetURL: testRunURL}},
		{"rendering says no percentage", cases["rendering"][0],
			Status{Context: "framefleet/scenes/b.blend", State: "pending", Description: "rendering", TargetURL: testRunURL}},
		{"failed says the cause first", cases["failed"][0],
			Status{Context: "framefleet/scenes/nocam.blend", State: "failure", Description: "failed: The scene has no active camera, so Blender cannot render it.", TargetURL: testRunURL}},
		{"cancelled is no failure", cases["cancelled"][0],
			Status{Context: "framefleet/scenes/c.blend", State: "error", Description: "cancelled by GitHub Actions: the workflow run was cancelled", TargetURL: testRunURL}},
	}
	for _, tc := range tests {
		got, ok := statusFor(tc.run)
		if !ok || got != tc.want {
			t.Errorf("%s: statusFor = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if _, ok := statusFor(cases["changes"][2]); ok {
		t.Error("a deleted file gets a status")
	}
	c := statusContext(long)
	if len(c) > maxStatusContext || !strings.HasPrefix(c, "framefleet/dir/") || c == statusContext(long+"x") {
		t.Errorf("long context %q: want at most %d bytes, distinct per path", c, maxStatusContext)
	}
}
