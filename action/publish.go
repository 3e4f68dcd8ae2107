package action

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// linkRenewMargin: published links are replaced by freshly signed ones
// only when they expire sooner than this.
const linkRenewMargin = 24 * time.Hour

// linkPatterns are what same looks for in published text, compiled on
// first use so that commands other than the action do not pay for them at
// start-up.
var linkPatterns = sync.OnceValue(func() (p struct{ expiryNote, webLink *regexp.Regexp }) {
	p.expiryNote = regexp.MustCompile(`Links expire ([0-9-]+ [0-9:]+) UTC`)
	p.webLink = regexp.MustCompile(`https?://[^\s)"<>]+`)
	return p
})

// withoutLinks is published text with every link and the expiry time
// left out: links are signed afresh on every look (S3 or CloudFront
// alike), so they never compare equal.
func withoutLinks(s string) string {
	re := linkPatterns()
	return re.expiryNote.ReplaceAllString(re.webLink.ReplaceAllString(s, "<link>"), "Links expire (when)")
}

// same says whether published text needs no update to become next: equal
// but for its links, whose expiry (the one the published text states, or
// the one a published link carries) is far enough away.
func (p *reporter) same(published, next string) bool {
	if published == next {
		return true
	}
	if withoutLinks(published) != withoutLinks(next) {
		return false
	}
	re := linkPatterns()
	now := p.clock.Now()
	if m := re.expiryNote.FindStringSubmatch(published); m != nil {
		if at, err := time.Parse("2006-01-02 15:04", m[1]); err == nil && at.Sub(now) < linkRenewMargin {
			return false
		}
	}
	for _, l := range re.webLink.FindAllString(published, -1) {
		l = strings.ReplaceAll(l, "&amp;", "&")
		if e := linkExpiry(l); !e.IsZero() && e.Sub(now) < linkRenewMargin {
			return false
		}
		if u, err := url.Parse(l); err == nil && u.Query().Get("X-Amz-Security-Token") != "" {
			return false // signed with temporary credentials, which may be gone already
		}
	}
	return true
}

// linkExpiry is when a signed link stops working, from its own query: S3
// (X-Amz-Date + X-Amz-Expires) or CloudFront's canned policy (Expires, Unix
// seconds); zero for links that name no expiry.
func linkExpiry(link string) time.Time {
	u, err := url.Parse(link)
	if err != nil {
		return time.Time{}
	}
	q := u.Query()
	if signed, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date")); err == nil {
		if secs, err := strconv.Atoi(q.Get("X-Amz-Expires")); err == nil {
			return signed.Add(time.Duration(secs) * time.Second)
		}
	}
	if secs, err := strconv.ParseInt(q.Get("Expires"), 10, 64); err == nil && q.Get("Signature") != "" {
		return time.Unix(secs, 0).UTC()
	}
	return time.Time{}
}

// reporter publishes runs to a PR comment and commit statuses. Publishing
// is a pure function of the runs, and unchanged comments and statuses are
// not sent again, so any process can publish the final state, any number of
// times. The comment goes first (it says everything at once), then the
// statuses; a failed read only costs a skipped comparison, never the report.
type reporter struct {
	gh          GitHub
	owner, repo string
	comment     bool
	key         string // the comment-key input: this job's comment
	format      reportFormat
	clock       Clock
	log         *slog.Logger

	mu       sync.Mutex
	authors  []string
	comments map[commentSlot]*Comment     // the sticky comments once found
	statuses map[string]map[string]Status // sha → context → last known
}

func newReporter(gh GitHub, owner, repo string, comment bool, key string, format reportFormat, clock Clock, log *slog.Logger) *reporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &reporter{gh: gh, owner: owner, repo: repo, comment: comment, key: key, format: format, clock: clock, log: log,
		comments: map[commentSlot]*Comment{}, statuses: map[string]map[string]Status{}}
}

// commentSlot is one sticky comment: a PR's, under one comment key's marker.
type commentSlot struct {
	pr     int
	marker string
}

// publish brings report k's comment (a PR's, under k's comment key) and
// its commit's statuses up to runs. Every part is tried; the errors are joined.
func (p *reporter) publish(ctx context.Context, k reportKey, runs []Run) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if k.pr > 0 && p.comment {
		slot := commentSlot{pr: k.pr, marker: commentMarkerFor(k.comment)}
		errs = append(errs, p.publishComment(ctx, slot, p.format.commentBody(slot.marker, k.sha, runs)))
	}
	errs = append(errs, p.publishStatuses(ctx, k.sha, runs))
	return errors.Join(errs...)
}

// publishNoBlends updates an existing sticky comment to say the PR's
// latest commit touches no blends (it creates none).
func (p *reporter) publishNoBlends(ctx context.Context, pr int, sha string, paths []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr == 0 || !p.comment {
		return nil
	}
	slot := commentSlot{pr: pr, marker: commentMarkerFor(p.key)}
	c, err := p.findComment(ctx, slot)
	if err != nil || c == nil {
		return err
	}
	body := noBlendsBody(slot.marker, sha, paths)
	if c.Body == body {
		return nil
	}
	if err := p.gh.EditComment(ctx, p.owner, p.repo, c.ID, body); err != nil {
		return err
	}
	c.Body = body
	return nil
}

func (p *reporter) publishStatuses(ctx context.Context, sha string, runs []Run) error {
	known, ok := p.statuses[sha]
	if !ok {
		known = map[string]Status{}
		// Read only to skip unchanged statuses: without it, all are written.
		if list, err := p.gh.Statuses(ctx, p.owner, p.repo, sha); err != nil {
			p.log.Warn("could not read the commit's statuses: writing them all", "sha", short(sha), "err", err)
		} else {
			for _, s := range list {
				known[s.Context] = s
			}
			p.statuses[sha] = known
		}
	}
	var errs []error
	for _, r := range runs {
		st, ok := statusFor(r)
		if !ok {
			continue
		}
		if old, ok := known[st.Context]; ok && old.State == st.State && p.same(old.Description+" "+old.TargetURL, st.Description+" "+st.TargetURL) {
			continue
		}
		if err := p.gh.CreateStatus(ctx, p.owner, p.repo, sha, st); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		known[st.Context] = st
	}
	return errors.Join(errs...)
}

// findComment returns the PR's sticky comment, nil when there is none:
// the oldest comment with the marker by an author this token can edit.
func (p *reporter) findComment(ctx context.Context, slot commentSlot) (*Comment, error) {
	if c := p.comments[slot]; c != nil {
		return c, nil
	}
	mine, err := p.ours(ctx, slot)
	if err != nil || len(mine) == 0 {
		return nil, err
	}
	c := mine[0]
	p.comments[slot] = &c
	p.removeExtras(ctx, mine[1:])
	return p.comments[slot], nil
}

// ours lists the PR's comments with the marker by an author this token
// can edit, oldest first.
func (p *reporter) ours(ctx context.Context, slot commentSlot) ([]Comment, error) {
	if p.authors == nil {
		login, err := p.gh.Login(ctx)
		if err != nil {
			return nil, err
		}
		// Only comments this token can edit: its user's, or (the
		// workflow token, which has no user) github-actions[bot]'s.
		p.authors = []string{defaultBotLogin}
		if login != "" {
			p.authors = []string{login}
		}
	}
	list, err := p.gh.Comments(ctx, p.owner, p.repo, slot.pr)
	if err != nil {
		return nil, err
	}
	var mine []Comment
	for _, x := range list {
		if firstLine(x.Body) == slot.marker && slices.Contains(p.authors, x.Author) {
			mine = append(mine, x)
		}
	}
	slices.SortFunc(mine, func(a, b Comment) int { return int(a.ID - b.ID) })
	return mine, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// removeExtras deletes sticky comments beyond the oldest (left by
// concurrent runs); a failure leaves them, for the next run to remove.
func (p *reporter) removeExtras(ctx context.Context, extras []Comment) {
	for _, x := range extras {
		if err := p.gh.DeleteComment(ctx, p.owner, p.repo, x.ID); err != nil {
			p.log.Warn("could not delete an extra sticky comment", "comment", x.ID, "err", err)
		}
	}
}

// publishComment finds or creates the sticky comment and brings it to
// body. Two runs at once may both create one: each then lists again, keeps
// the oldest and deletes the others, so one comment remains.
func (p *reporter) publishComment(ctx context.Context, slot commentSlot, body string) error {
	c, err := p.findComment(ctx, slot)
	if err != nil {
		return err
	}
	if c == nil {
		created, err := p.gh.CreateComment(ctx, p.owner, p.repo, slot.pr, body)
		if err != nil {
			return err
		}
		created.Body = body
		c = &created
		p.comments[slot] = c
		mine, err := p.ours(ctx, slot)
		if err != nil {
			return nil // ours stands; the next publish dedupes
		}
		if len(mine) > 0 && mine[0].ID != created.ID {
			// Another run created one first: keep that, drop ours.
			first := mine[0]
			p.comments[slot] = &first
			c = &first
		}
		var extras []Comment
		for _, x := range mine {
			if x.ID != c.ID {
				extras = append(extras, x)
			}
		}
		p.removeExtras(ctx, extras)
		if c.ID == created.ID {
			return nil
		}
	}
	if p.same(c.Body, body) {
		return nil
	}
	if err := p.gh.EditComment(ctx, p.owner, p.repo, c.ID, body); err != nil {
		p.comments[slot] = nil // it may be gone: find it again next time
		return err
	}
	c.Body = body
	return nil
}
