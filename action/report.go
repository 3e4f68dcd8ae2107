package action

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/framefleet/framefleet/pipeline"
)

// commentMarker starts the action's sticky comment; it is found again by
// this marker and its author (anyone can paste the marker). A comment-key
// input gives each key a marker of its own (commentMarkerFor).
const commentMarker = "<!-- framefleet:render -->"

// commentMarkerFor is the marker of the sticky comment for key ("" is the default one).
func commentMarkerFor(key string) string {
	if key == "" {
		return commentMarker
	}
	return "<!-- framefleet:render key=" + strings.NewReplacer("-->", "", "\n", " ").Replace(key) + " -->"
}

// GitHub's limits.
const (
	maxCommentLength     = 65536   // an issue comment's body
	maxSummaryLength     = 1 << 20 // a step summary (the runner drops a larger one)
	maxStatusDescription = 140
	maxStatusContext     = 100 // keeps the checks list readable; longer ones end in a hash
	defaultBotLogin      = "github-actions[bot]"
)

// stateWords are how a state reads in the table, and its commit status.
var stateWords = map[pipeline.RunState]struct{ label, status string }{
	pipeline.RunPlanned:     {"⏳ queued", "pending"},
	pipeline.RunSubmitted:   {"⏳ queued", "pending"},
	pipeline.RunRunning:     {"🎞️ rendering", "pending"},
	pipeline.RunStitching:   {"🧵 stitching", "pending"},
	pipeline.RunInterrupted: {"⏸️ interrupted", "pending"},
	pipeline.RunSucceeded:   {"✅ done", "success"},
	pipeline.RunFailed:      {"❌ failed", "failure"},
	pipeline.RunCancelled:   {"⛔ cancelled", "error"},
}

func stateLabel(r Run) string {
	if r.Change == changeRemoved && r.ID() == "" {
		return "🗑️ deleted"
	}
	if w, ok := stateWords[r.State()]; ok {
		return w.label
	}
	return string(r.State())
}

// isWebLink says whether a link opens in a browser (else it is a path in a
// local store, uploaded as the workflow run's artifact).
func isWebLink(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// defuse keeps free text (scene names, paths, error messages) from doing
// anything on GitHub: a zero-width space after @ and # stops mentions
// (@user, @org/team) and issue references, and one inside :// and www.
// stops bare URLs from becoming links.
func defuse(s string) string {
	const zw = "\u200b"
	return strings.NewReplacer("@", "@"+zw, "#", "#"+zw, "://", ":"+zw+"//", "www.", "www"+zw+".").Replace(s)
}

// mdText escapes free text for Markdown (a table cell or a line): no
// formatting, links, HTML, mentions or references survive.
func mdText(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "|", "\\|", "&", "&amp;", "<", "&lt;", ">", "&gt;", "[", "\\[", "]", "\\]",
		"(", "\\(", ")", "\\)", "*", "\\*", "_", "\\_", "`", "\\`", "~", "\\~", "!", "\\!", "\n", " ", "\r", " ")
	return defuse(r.Replace(s))
}

// mdCode is s as inline code in a table cell (nothing is live in code).
func mdCode(s string) string {
	s = strings.NewReplacer("|", "\\|", "\n", " ", "\r", " ").Replace(s)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdURL keeps a URL from breaking Markdown link syntax.
func mdURL(s string) string {
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "|", "%7C", "<", "%3C", ">", "%3E").Replace(s)
}

func htmlAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", `"`, "&quot;", "<", "&lt;", ">", "&gt;", "|", "%7C").Replace(s)
}

// sortRuns orders runs by path, for stable tables.
func sortRuns(runs []Run) {
	slices.SortStableFunc(runs, func(a, b Run) int { return strings.Compare(a.Path(), b.Path()) })
}

// countLine is the report's first line: how many files are in each state.
func countLine(runs []Run) string {
	var done, failed, cancelled, pending, deleted int
	for _, r := range runs {
		switch {
		case r.Change == changeRemoved && r.ID() == "":
			deleted++
		case r.State() == pipeline.RunSucceeded:
			done++
		case r.State() == pipeline.RunFailed:
			failed++
		case r.State() == pipeline.RunCancelled:
			cancelled++
		default:
			pending++
		}
	}
	var parts []string
	for _, c := range []struct {
		sign string
		n    int
	}{{"✅", done}, {"❌", failed}, {"⛔", cancelled}, {"⏳", pending}, {"🗑️", deleted}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c.sign, c.n))
		}
	}
	if len(parts) == 0 {
		return "no files"
	}
	return strings.Join(parts, " · ")
}

// The table has five columns, so that at 760 px nothing is pushed off screen.
const tableHeader = "| File | State | Frames | Preview | Open |\n|---|---|---|---|---|\n"

// row is one run's line of the table the comment and the summary share.
func (f reportFormat) row(r Run) string {
	return fmt.Sprintf("| %s | %s | %s | %s | %s |\n", fileCell(r), stateLabel(r), progressCell(r), previewCell(r), f.linksCell(r))
}

// fileCell is the path, and under it what changed and what was rendered.
func fileCell(r Run) string {
	cell := mdCode(r.Path())
	var notes []string
	switch {
	case r.Change == "renamed" && r.Previous != "":
		notes = append(notes, "renamed from "+mdCode(r.Previous))
	case r.Change == "removed":
		notes = append(notes, "deleted")
	case r.Change != "":
		notes = append(notes, mdText(r.Change))
	}
	v := r.View
	if v.Scene != "" {
		notes = append(notes, "scene "+mdText(v.Scene))
	}
	if v.Width > 0 && v.Height > 0 {
		notes = append(notes, fmt.Sprintf("%d×%d", v.Width, v.Height))
	}
	if len(notes) > 0 {
		cell += "<br><sub>" + strings.Join(notes, " · ") + "</sub>"
	}
	return cell
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func progressCell(r Run) string {
	p := r.View.Progress
	if p.FramesTotal == 0 || r.ID() == "" {
		return "—"
	}
	if r.State() == pipeline.RunSucceeded {
		return strconv.Itoa(p.FramesTotal)
	}
	if r.Final() {
		return fmt.Sprintf("%d/%d", p.FramesDone, p.FramesTotal)
	}
	return fmt.Sprintf("%d/%d<br><sub>%d%%</sub>", p.FramesDone, p.FramesTotal, p.Percent())
}

// Preview sizes: big enough to see the shot, small enough for five columns at 760 px.
const (
	previewWidth = 200
	latestWidth  = 160
)

// previewCell shows the newest frame while rendering, and the preview
// once done; images need web links (GitHub proxies them).
func previewCell(r Run) string {
	v := r.View
	if l := v.Links; l != nil && r.State() == pipeline.RunSucceeded && isWebLink(l.Preview) {
		target := l.Video
		if !isWebLink(target) {
			target = l.Preview
		}
		return fmt.Sprintf(`<a href="%s"><img src="%s" alt="preview of %s" width="%d"></a>`,
			htmlAttr(target), htmlAttr(l.Preview), htmlAttr(defuse(r.Path())), previewWidth)
	}
	if l := v.Latest; l != nil && !r.Final() {
		if isWebLink(l.ThumbnailLink) {
			return fmt.Sprintf(`<img src="%s" alt="frame %d" width="%d"><br><sub>frame %d</sub>`,
				htmlAttr(l.ThumbnailLink), l.Frame, latestWidth, l.Frame)
		}
		return fmt.Sprintf("frame %d", l.Frame)
	}
	return "—"
}

// reportFormat is what the tables need beyond the runs.
type reportFormat struct {
	// artifact names the workflow run's artifact that holds a local
	// store's files ("" when the action does not know one).
	artifact string
}

func (f reportFormat) linksCell(r Run) string {
	var parts []string
	local := false
	l := r.View.Links
	if l == nil {
		l = &pipeline.ViewLinks{}
	}
	for _, x := range []struct{ name, link, path string }{
		{"video", l.Video, l.VideoPath},
		{"before / after", r.Comparison, r.ComparisonPath},
	} {
		switch {
		case isWebLink(x.link):
			parts = append(parts, fmt.Sprintf("[%s](%s)", x.name, mdURL(x.link)))
		case x.path != "" || x.link != "":
			p := x.path
			if p == "" {
				p = x.link
			}
			parts = append(parts, x.name+" "+mdCode(path.Base(strings.ReplaceAll(p, "\\", "/"))))
			local = true
		}
	}
	cell := strings.Join(parts, "<br>")
	if local {
		// A local store's files reach reviewers as the workflow run's artifact.
		cell += f.artifactRef(r)
	}
	if r.ID() != "" {
		if cell != "" {
			cell += "<br>"
		}
		cell += "<sub>run " + mdCode(r.ID()) + "</sub>"
	}
	return orDash(cell)
}

// artifactRef names and links the artifact that holds a local store's files.
func (f reportFormat) artifactRef(r Run) string {
	name := f.artifact
	if name == "" {
		name = DefaultStoreDir
	}
	if u := r.Labels[LabelRunURL]; isWebLink(u) {
		return fmt.Sprintf("<br>in artifact [%s](%s)", mdText(name), mdURL(u+"#artifacts"))
	}
	return "<br>in artifact " + mdCode(name)
}

// problemNote is the lines under the table saying why r failed or was
// cancelled ("" if it did not).
func problemNote(r Run) string {
	v := r.View
	head := "- " + stateLabel(r)[:strings.IndexByte(stateLabel(r), ' ')] + " " + mdCode(r.Path())
	switch {
	case r.State() == pipeline.RunCancelled && v.Cancelled != nil:
		by := ""
		if v.Cancelled.By != "" {
			by = " by " + mdText(v.Cancelled.By)
		}
		return fmt.Sprintf("%s: cancelled%s: %s\n", head, by, mdText(v.Cancelled.Reason))
	case r.State() == pipeline.RunFailed && len(v.Failures) > 0:
		var b strings.Builder
		for i, f := range v.Failures {
			if i == 3 {
				fmt.Fprintf(&b, "  - … and %d more failures: see `framefleet status %s`\n", len(v.Failures)-3, v.ID)
				break
			}
			where := ""
			if f.Frames != "" {
				where = " (frames " + mdText(f.Frames) + ")"
			}
			if i == 0 {
				fmt.Fprintf(&b, "%s%s: **%s**\n", head, where, mdText(f.Summary))
			} else {
				fmt.Fprintf(&b, "  - also%s: **%s**\n", where, mdText(f.Summary))
			}
			if f.Fix != "" {
				fmt.Fprintf(&b, "  <br>Fix: %s\n", mdText(f.Fix))
			}
			var refs []string
			if f.BlenderError != "" && !strings.Contains(f.Summary, strings.TrimPrefix(f.BlenderError, "Error: ")) {
				refs = append(refs, "Blender said "+mdCode(f.BlenderError))
			}
			switch {
			case isWebLink(f.LogLink):
				refs = append(refs, fmt.Sprintf("[Blender's log](%s)", mdURL(f.LogLink)))
			case f.LogKey != "":
				refs = append(refs, "Blender's log: "+mdCode(f.LogKey))
			}
			if f.LogStream != "" {
				refs = append(refs, "CloudWatch Logs stream "+mdCode(f.LogStream))
			}
			if len(refs) > 0 {
				fmt.Fprintf(&b, "  <br><sub>%s</sub>\n", strings.Join(refs, " · "))
			}
		}
		b.WriteString(missingNote(v))
		return b.String()
	case r.failed() && r.Problem != "":
		return fmt.Sprintf("%s: %s\n", head, mdText(oneLine(r.Problem, 400)))
	}
	if r.CompareNote != "" {
		return fmt.Sprintf("- ℹ️ %s: no before / after: %s\n", mdCode(r.Path()), mdText(r.CompareNote))
	}
	return ""
}

// missingNote names the inputs the scene needs that were not found.
func missingNote(v pipeline.RunView) string {
	if len(v.MissingInputs) == 0 {
		return ""
	}
	var names []string
	for i, m := range v.MissingInputs {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(v.MissingInputs)-10))
			break
		}
		n := mdCode(m.Path)
		if m.Kind != "" {
			n += " (" + mdText(m.Kind) + ")"
		}
		names = append(names, n)
	}
	note := "  <br>Missing: " + strings.Join(names, ", ")
	if v.Scope != "" {
		note += " · looked in " + mdCode(v.Scope)
	}
	return note + "\n"
}

// oneLine is s on one line, cut to n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n-1]) + "…"
	}
	return s
}

// comparisonBlock shows the before/afters below the table, wide enough to read.
func comparisonBlock(runs []Run, limit int) string {
	var b strings.Builder
	shown := 0
	for _, r := range runs {
		if !isWebLink(r.ComparisonPreview) {
			continue
		}
		if shown == limit {
			b.WriteString("\n… more before / after comparisons are linked in the table.\n")
			break
		}
		target := r.ComparisonPreview
		if isWebLink(r.Comparison) {
			target = r.Comparison
		}
		fmt.Fprintf(&b, "\n%s, %s\n\n<a href=\"%s\"><img src=\"%s\" alt=\"before and after of %s\" width=\"640\"></a>\n",
			mdCode(r.Path()), beforeAfterLabels(r), htmlAttr(target), htmlAttr(r.ComparisonPreview), htmlAttr(defuse(r.Path())))
		shown++
	}
	if shown == 0 {
		return ""
	}
	return "\n#### Before / after\n" + b.String()
}

func beforeAfterLabels(r Run) string {
	base, head := r.Compare.BaseLabel, r.Compare.HeadLabel
	if base == "" || head == "" {
		return "left: before, right: after"
	}
	return "left: " + mdText(base) + ", right: " + mdText(head)
}

// soonestExpiry is when the first of the runs' links expires (zero for none).
func soonestExpiry(runs []Run) time.Time {
	var soonest time.Time
	for _, r := range runs {
		if l := r.View.Links; l != nil && l.ExpiresAt != nil && (soonest.IsZero() || l.ExpiresAt.Before(soonest)) {
			soonest = *l.ExpiresAt
		}
	}
	return soonest
}

// expiryNote says when the soonest link expires ("" for none).
func expiryNote(runs []Run) string {
	soonest := soonestExpiry(runs)
	if soonest.IsZero() {
		return ""
	}
	when := soonest.UTC().Format("2006-01-02 15:04 UTC")
	for _, r := range runs {
		l := r.View.Links
		if l == nil {
			continue
		}
		for _, link := range []string{l.Video, l.Preview, r.Comparison, r.ComparisonPreview} {
			if u, err := url.Parse(link); err == nil && u.Query().Get("X-Amz-Security-Token") != "" {
				// A presigned URL dies with the credentials that signed it.
				return fmt.Sprintf("\n<sub>Links expire %s at the latest: they were signed with temporary credentials (GitHub OIDC gives an hour) and stop working when those do. CloudFront signed URLs outlive them (deploy/README.md, \"Links that outlive the credentials\").</sub>\n", when)
			}
		}
	}
	return fmt.Sprintf("\n<sub>Links expire %s.</sub>\n", when)
}

// foldAbove: a report with more files than this folds its finished rows
// (done, deleted) into a collapsed table, so what needs a look comes first.
const foldAbove = 10

// report is the failures, the table and the before/afters for runs
// (sorted), within limit bytes: rows that do not fit are left out with a
// line saying how many.
func (f reportFormat) report(runs []Run, limit int) string {
	runs = slices.Clone(runs)
	sortRuns(runs)
	tail := expiryNote(runs)
	cmp := comparisonBlock(runs, 10)
	if len(cmp) > limit/4 {
		cmp = ""
	}
	budget := limit - 2*len(tableHeader) - len(tail) - len(cmp) - 300 // 300: the fold and "… and N more" lines
	var open, folded, notes strings.Builder
	shown, nFolded := 0, 0
	for _, r := range runs {
		line, note := f.row(r), problemNote(r)
		if open.Len()+folded.Len()+notes.Len()+len(line)+len(note) > budget {
			break
		}
		if len(runs) > foldAbove && (r.State() == pipeline.RunSucceeded || r.Change == changeRemoved && r.ID() == "") && r.CompareNote == "" {
			folded.WriteString(line)
			nFolded++
		} else {
			open.WriteString(line)
		}
		notes.WriteString(note)
		shown++
	}
	var out strings.Builder
	if notes.Len() > 0 {
		out.WriteString(notes.String() + "\n")
	}
	if open.Len() > 0 {
		out.WriteString(tableHeader + open.String())
	}
	if nFolded > 0 {
		fmt.Fprintf(&out, "\n<details><summary>%d finished files</summary>\n\n%s%s\n</details>\n", nFolded, tableHeader, folded.String())
	}
	if shown < len(runs) {
		fmt.Fprintf(&out, "\n… and %d more files: see the workflow run's summary.\n", len(runs)-shown)
	}
	return out.String() + cmp + tail
}

// commentBody is the sticky comment (marker) for a PR's runs at sha.
func (f reportFormat) commentBody(marker, sha string, runs []Run) string {
	head := fmt.Sprintf("%s\n**%s** · framefleet renders of %s\n\n", marker, countLine(runs), mdCode(short(sha)))
	foot := "\n<sub>Updated in place by framefleet as the renders progress.</sub>\n"
	return head + f.report(runs, maxCommentLength-len(head)-len(foot)) + foot
}

// noBlendsBody is the sticky comment once a push touches no blends.
func noBlendsBody(marker, sha string, paths []string) string {
	return fmt.Sprintf("%s\n**No blends to render** · framefleet at %s\n\nThe pull request's latest commit %s changes no file matching `paths` (%s); earlier renders of this pull request are superseded.\n\n<sub>Updated in place by framefleet.</sub>\n",
		marker, mdCode(short(sha)), mdCode(short(sha)), mdText(strings.Join(paths, ", ")))
}

// summary is the step summary for a set of runs.
func (f reportFormat) summary(title string, runs []Run) string {
	head := fmt.Sprintf("### 🎬 %s\n\n**%s**\n\n", title, countLine(runs)) // title: our own words
	return head + f.report(runs, maxSummaryLength/2) + "\n"
}

// statusFor is the commit status reporting r (ok false: none, e.g. a deleted file).
func statusFor(r Run) (Status, bool) {
	if r.Change == changeRemoved && r.ID() == "" {
		return Status{}, false
	}
	v := r.View
	st := Status{Context: statusContext(r.Path()), State: "pending", TargetURL: r.Labels[LabelRunURL]}
	if w, ok := stateWords[r.State()]; ok {
		st.State = w.status
	}
	switch r.State() {
	case pipeline.RunSucceeded:
		st.Description = fmt.Sprintf("rendered %d frames", v.Progress.FramesTotal)
		if l := v.Links; l != nil {
			for _, link := range []string{l.Video, r.Comparison, l.Preview} {
				if isWebLink(link) {
					st.TargetURL = link
					break
				}
			}
		}
	case pipeline.RunFailed:
		st.Description = "failed"
		switch {
		case len(v.Failures) > 0:
			st.Description = "failed: " + v.Failures[0].Summary
		case r.Problem != "":
			st.Description = "failed: " + r.Problem
		}
	case pipeline.RunCancelled:
		st.Description = "cancelled"
		if c := v.Cancelled; c != nil {
			if c.By != "" {
				st.Description += " by " + c.By
			}
			st.Description += ": " + c.Reason
		}
	case pipeline.RunRunning, pipeline.RunStitching:
		// No percentages: GitHub keeps every status (at most 1000 per
		// commit and context), and each write is paced, so a status
		// changes only when its state does.
		st.Description = "rendering"
	case pipeline.RunInterrupted:
		st.Description = "interrupted: the next watch resumes it"
	default:
		st.Description = "queued"
	}
	st.Description = oneLine(defuse(st.Description), maxStatusDescription)
	if !isWebLink(st.TargetURL) {
		st.TargetURL = ""
	}
	return st, true
}

// statusContext is framefleet/<path>, shortened with a hash when long.
func statusContext(p string) string {
	c := "framefleet/" + p
	if len(c) <= maxStatusContext {
		return c
	}
	sum := sha256.Sum256([]byte(p))
	tail := "…" + hex.EncodeToString(sum[:4])
	cut := maxStatusContext - len(tail)
	for cut > 0 && !utf8.RuneStart(c[cut]) {
		cut--
	}
	return c[:cut] + tail
}
