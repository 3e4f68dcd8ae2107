package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/framefleet/framefleet/pipeline"
)

// commentMarker starts the action's sticky comment; it is found again by
// this marker and its author (anyone can paste the marker).
const commentMarker = "<!-- framefleet:render -->"

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
	pipeline.RunSucceeded:   {"✅ succeeded", "success"},
	pipeline.RunFailed:      {"❌ failed", "failure"},
	pipeline.RunCancelled:   {"⛔ cancelled", "error"},
}

func stateLabel(s pipeline.RunState) string {
	if w, ok := stateWords[s]; ok {
		return w.label
	}
	return string(s)
}

// isWebLink says whether a link opens in a browser (else it is a path in a
// local store, uploaded as the workflow run's artifact).
func isWebLink(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// linkExpiry is when a presigned S3 link stops working (X-Amz-Date +
// X-Amz-Expires), zero for links that name no expiry.
func linkExpiry(link string) time.Time {
	u, err := url.Parse(link)
	if err != nil {
		return time.Time{}
	}
	q := u.Query()
	signed, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return time.Time{}
	}
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil {
		return time.Time{}
	}
	return signed.Add(time.Duration(secs) * time.Second)
}

// mdText escapes text for a Markdown table cell.
func mdText(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "|", "\\|", "<", "&lt;", ">", "&gt;", "[", "\\[", "]", "\\]",
		"*", "\\*", "_", "\\_", "`", "\\`", "\n", " ", "\r", " ")
	return r.Replace(s)
}

// mdCode is s as inline code in a table cell.
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
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "|", "%7C").Replace(s)
}

// sortRuns orders runs by path, for stable tables.
func sortRuns(runs []Run) {
	slices.SortStableFunc(runs, func(a, b Run) int { return strings.Compare(a.Path(), b.Path()) })
}

const tableHeader = "| File | Scene | Frames | State | Progress | Preview | Results |\n|---|---|---|---|---|---|---|\n"

// row is one run's line of the table the comment and the summary share.
func row(r Run) string {
	file := mdCode(r.Path())
	if why := r.Labels[LabelReason]; why != "" {
		file += " <sub>" + mdText(why) + "</sub>"
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s |\n",
		file, sceneCell(r), orDash(mdText(r.Frames)), stateLabel(r.State),
		progressCell(r), latestFrameCell(r), linksCell(r))
}

func sceneCell(r Run) string {
	s := mdText(r.Scene)
	if r.Width > 0 && r.Height > 0 {
		s += fmt.Sprintf(" <sub>%d×%d</sub>", r.Width, r.Height)
	}
	return orDash(s)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func progressCell(r Run) string {
	if r.FramesTotal == 0 {
		return "—"
	}
	pct := 100 * r.FramesDone / r.FramesTotal
	const width = 10
	filled := width * r.FramesDone / r.FramesTotal
	return fmt.Sprintf("%s %d/%d (%d%%)", strings.Repeat("▰", filled)+strings.Repeat("▱", width-filled), r.FramesDone, r.FramesTotal, pct)
}

// latestFrameCell shows the newest frame while rendering, and the
// preview (the before/after one when there is one) once done; images
// need web links (GitHub proxies them), local files are only named.
func latestFrameCell(r Run) string {
	if r.Final {
		img, alt := r.Preview, "preview"
		if isWebLink(r.ComparisonPreview) {
			img, alt = r.ComparisonPreview, "before / after"
		}
		target := r.Video
		if isWebLink(r.Comparison) {
			target = r.Comparison
		}
		if r.State == pipeline.RunSucceeded && isWebLink(img) {
			if !isWebLink(target) {
				target = img
			}
			return fmt.Sprintf(`<a href="%s"><img src="%s" alt="%s" height="90"></a>`, htmlAttr(target), htmlAttr(img), alt)
		}
		return "—"
	}
	if r.LatestFrame == 0 {
		return "—"
	}
	if isWebLink(r.LatestFrameLink) {
		return fmt.Sprintf(`<a href="%s"><img src="%s" alt="frame %d" height="60"></a> %d`,
			htmlAttr(r.LatestFrameLink), htmlAttr(r.LatestFrameLink), r.LatestFrame, r.LatestFrame)
	}
	return strconv.Itoa(r.LatestFrame)
}

func htmlAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", `"`, "&quot;", "<", "&lt;", ">", "&gt;", "|", "%7C").Replace(s)
}

func linksCell(r Run) string {
	var parts []string
	local := false
	for _, l := range []struct{ name, link, path string }{
		{"video", r.Video, r.VideoPath},
		{"preview", r.Preview, r.PreviewPath},
		{"before / after", r.Comparison, r.ComparisonPath},
	} {
		switch {
		case isWebLink(l.link):
			parts = append(parts, fmt.Sprintf("[%s](%s)", l.name, mdURL(l.link)))
		case l.path != "" || l.link != "":
			p := l.path
			if p == "" {
				p = l.link
			}
			parts = append(parts, l.name+" "+mdCode(path.Base(strings.ReplaceAll(p, "\\", "/"))))
			local = true
		}
	}
	cell := strings.Join(parts, " · ")
	if local {
		// A local store's files reach reviewers as the workflow run's artifact.
		cell += artifactRef(r)
	}
	if r.ID != "" {
		if cell != "" {
			cell += " · "
		}
		cell += "run " + mdCode(r.ID)
	}
	return orDash(cell)
}

// artifactRef points at the workflow run whose artifacts hold a local store's files.
func artifactRef(r Run) string {
	if u := r.Labels[LabelRunURL]; isWebLink(u) {
		return fmt.Sprintf(" in the [artifacts](%s)", mdURL(u+"#artifacts"))
	}
	return ""
}

// failureNote is the line under the table saying why r failed ("" if it did not).
func failureNote(r Run) string {
	if r.Failure == "" {
		return ""
	}
	msg := r.Failure
	if utf8.RuneCountInString(msg) > 600 {
		msg = string([]rune(msg)[:600]) + "…"
	}
	return fmt.Sprintf("\n**%s**: %s\n", mdCode(r.Path()), mdText(msg))
}

// soonestExpiry is when the first of the runs' signed links expires (zero for none).
func soonestExpiry(runs []Run) time.Time {
	var soonest time.Time
	for _, r := range runs {
		for _, l := range []string{r.Video, r.Preview, r.Comparison, r.ComparisonPreview} {
			if e := linkExpiry(l); !e.IsZero() && (soonest.IsZero() || e.Before(soonest)) {
				soonest = e
			}
		}
	}
	return soonest
}

// expiryNote says when the soonest signed link expires ("" for none).
func expiryNote(runs []Run) string {
	soonest := soonestExpiry(runs)
	if soonest.IsZero() {
		return ""
	}
	when := soonest.UTC().Format("2006-01-02 15:04 UTC")
	for _, r := range runs {
		for _, l := range []string{r.Video, r.Preview, r.Comparison, r.ComparisonPreview} {
			if u, err := url.Parse(l); err == nil && u.Query().Get("X-Amz-Security-Token") != "" {
				// A presigned URL dies with the credentials that signed it.
				return fmt.Sprintf("\nLinks expire %s at the latest: they were signed with temporary credentials (GitHub OIDC gives an hour) and stop working when those do. CloudFront signed URLs outlive them (deploy/README.md, \"Links that outlive the credentials\").\n", when)
			}
		}
	}
	return fmt.Sprintf("\nLinks expire %s (signed S3 links). CloudFront signed URLs last longer (deploy/README.md, \"Links that outlive the credentials\").\n", when)
}

// report is the table and its notes for runs (sorted), within limit bytes:
// rows that do not fit are left out with a line saying how many.
func report(runs []Run, limit int) string {
	runs = slices.Clone(runs)
	sortRuns(runs)
	tail := expiryNote(runs)
	budget := limit - len(tableHeader) - len(tail) - 100 // 100: the "… and N more" line
	var rows, notes strings.Builder
	shown := 0
	for _, r := range runs {
		line, note := row(r), failureNote(r)
		if rows.Len()+notes.Len()+len(line)+len(note) > budget {
			break
		}
		rows.WriteString(line)
		notes.WriteString(note)
		shown++
	}
	out := tableHeader + rows.String() + notes.String() + tail
	if shown < len(runs) {
		out += fmt.Sprintf("\n… and %d more files: see the workflow run's summary.\n", len(runs)-shown)
	}
	return out
}

// commentBody is the sticky comment for a PR's runs at sha.
func commentBody(sha string, runs []Run) string {
	head := fmt.Sprintf("%s\n### 🎬 framefleet renders of %s\n\n", commentMarker, mdCode(short(sha)))
	foot := "\n<sub>Updated in place by framefleet as the renders progress.</sub>\n"
	return head + report(runs, maxCommentLength-len(head)-len(foot)) + foot
}

// summary is the step summary for a set of runs.
func summary(title string, runs []Run) string {
	head := "### 🎬 " + title + "\n\n" // our own words: a commit, a repository name
	return head + report(runs, maxSummaryLength/2) + "\n"
}

// statusFor is the commit status reporting r.
func statusFor(r Run) Status {
	st := Status{Context: statusContext(r.Path()), State: "pending", TargetURL: r.Labels[LabelRunURL]}
	if w, ok := stateWords[r.State]; ok {
		st.State = w.status
	}
	switch r.State {
	case pipeline.RunSucceeded:
		st.Description = fmt.Sprintf("rendered %d frames", r.FramesTotal)
		for _, l := range []string{r.Video, r.Comparison, r.Preview} {
			if isWebLink(l) {
				st.TargetURL = l
				break
			}
		}
	case pipeline.RunFailed, pipeline.RunCancelled:
		st.Description = string(r.State)
		if r.Failure != "" {
			st.Description += ": " + strings.Join(strings.Fields(r.Failure), " ")
		}
	case pipeline.RunRunning:
		// Whole tens of percent: GitHub keeps every status (at most 1000
		// per commit and context), so progress is posted coarsely.
		st.Description = "rendering"
		if r.FramesTotal > 0 {
			st.Description = fmt.Sprintf("rendering: %d%% of %d frames", 100*r.FramesDone/r.FramesTotal/10*10, r.FramesTotal)
		}
	default:
		st.Description = string(r.State)
	}
	if !isWebLink(st.TargetURL) {
		st.TargetURL = ""
	}
	if utf8.RuneCountInString(st.Description) > maxStatusDescription {
		st.Description = string([]rune(st.Description)[:maxStatusDescription-1]) + "…"
	}
	return st
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

// linkRenewMargin: published signed links are replaced by freshly signed
// ones only when they expire sooner than this.
const linkRenewMargin = 24 * time.Hour

// linkPatterns are what same looks for in published text, compiled on
// first use so that commands other than the action do not pay for them at
// start-up.
var linkPatterns = sync.OnceValue(func() (p struct{ signedQuery, expiryNote, webLink *regexp.Regexp }) {
	p.signedQuery = regexp.MustCompile(`\?[^\s)"]*X-Amz-Signature=[0-9a-fA-F]+[^\s)"]*`)
	p.expiryNote = regexp.MustCompile(`Links expire [0-9-]+ [0-9:]+ UTC`)
	p.webLink = regexp.MustCompile(`https?://[^\s)"]+`)
	return p
})

// same says whether published text needs no update to become next: equal,
// or equal but for the signatures of links that stay valid long enough.
// Links are signed afresh on every look, so without this every refresh
// would edit every finished report again.
func (p *reporter) same(published, next string) bool {
	if published == next {
		return true
	}
	re := linkPatterns()
	unsigned := func(s string) string {
		return re.expiryNote.ReplaceAllString(re.signedQuery.ReplaceAllString(s, "?signed"), "Links expire (when)")
	}
	if unsigned(published) != unsigned(next) {
		return false
	}
	for _, l := range re.webLink.FindAllString(published, -1) {
		l = strings.ReplaceAll(l, "&amp;", "&")
		if e := linkExpiry(l); !e.IsZero() && e.Sub(p.clock.Now()) < linkRenewMargin {
			return false
		}
		if u, err := url.Parse(l); err == nil && u.Query().Get("X-Amz-Security-Token") != "" {
			return false // signed with temporary credentials, which may be gone already
		}
	}
	return true
}

// reporter publishes runs to a PR comment and commit statuses. Publishing
// is a pure function of the runs, and unchanged comments and statuses are
// not sent again, so any process can publish the final state, any number of
// times.
type reporter struct {
	gh          GitHub
	owner, repo string
	comment     bool
	clock       Clock

	mu       sync.Mutex
	authors  []string
	comments map[int]*Comment             // PR → the sticky comment once found
	statuses map[string]map[string]Status // sha → context → last known
}

func newReporter(gh GitHub, owner, repo string, comment bool, clock Clock) *reporter {
	return &reporter{gh: gh, owner: owner, repo: repo, comment: comment, clock: clock,
		comments: map[int]*Comment{}, statuses: map[string]map[string]Status{}}
}

// publish brings the PR's comment (pr > 0) and sha's statuses up to runs.
func (p *reporter) publish(ctx context.Context, pr int, sha string, runs []Run) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.publishStatuses(ctx, sha, runs); err != nil {
		return err
	}
	if pr > 0 && p.comment {
		return p.publishComment(ctx, pr, commentBody(sha, runs))
	}
	return nil
}

func (p *reporter) publishStatuses(ctx context.Context, sha string, runs []Run) error {
	known, ok := p.statuses[sha]
	if !ok {
		list, err := p.gh.Statuses(ctx, p.owner, p.repo, sha)
		if err != nil {
			return err
		}
		known = map[string]Status{}
		for _, s := range list {
			known[s.Context] = s
		}
		p.statuses[sha] = known
	}
	for _, r := range runs {
		st := statusFor(r)
		if old, ok := known[st.Context]; ok && p.same(old.Description+" "+old.TargetURL, st.Description+" "+st.TargetURL) && old.State == st.State {
			continue
		}
		if err := p.gh.CreateStatus(ctx, p.owner, p.repo, sha, st); err != nil {
			return err
		}
		known[st.Context] = st
	}
	return nil
}

func (p *reporter) publishComment(ctx context.Context, pr int, body string) error {
	c := p.comments[pr]
	if c == nil {
		if p.authors == nil {
			login, err := p.gh.Login(ctx)
			if err != nil {
				return err
			}
			// Only comments this token can edit: its user's, or (the
			// workflow token, which has no user) github-actions[bot]'s.
			p.authors = []string{defaultBotLogin}
			if login != "" {
				p.authors = []string{login}
			}
		}
		list, err := p.gh.Comments(ctx, p.owner, p.repo, pr)
		if err != nil {
			return err
		}
		for _, x := range list {
			if strings.HasPrefix(x.Body, commentMarker) && slices.Contains(p.authors, x.Author) {
				c = &x
				break
			}
		}
	}
	switch {
	case c == nil:
		created, err := p.gh.CreateComment(ctx, p.owner, p.repo, pr, body)
		if err != nil {
			return err
		}
		created.Body = body
		p.comments[pr] = &created
	case !p.same(c.Body, body):
		if err := p.gh.EditComment(ctx, p.owner, p.repo, c.ID, body); err != nil {
			return err
		}
		c.Body = body
		p.comments[pr] = c
	default:
		p.comments[pr] = c
	}
	return nil
}
