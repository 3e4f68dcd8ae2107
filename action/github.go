package action

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-github/v62/github"
)

// GitHub is the part of GitHub's REST API the action uses.
type GitHub interface {
	// PullRequestFiles lists every file a PR changes (all pages).
	PullRequestFiles(ctx context.Context, owner, repo string, number int) ([]ChangedFile, error)
	// CompareFiles lists the files changed between two commits. capped says
	// the API's list stopped at its 300-file limit. An unknown or unrelated
	// base gives an error wrapping ErrCompareUnavailable.
	CompareFiles(ctx context.Context, owner, repo, base, head string) (files []ChangedFile, capped bool, err error)
	Comments(ctx context.Context, owner, repo string, number int) ([]Comment, error)
	CreateComment(ctx context.Context, owner, repo string, number int, body string) (Comment, error)
	EditComment(ctx context.Context, owner, repo string, id int64, body string) error
	// DeleteComment deletes a comment; one already gone is no error.
	DeleteComment(ctx context.Context, owner, repo string, id int64) error
	// Statuses are the latest status per context on a commit.
	Statuses(ctx context.Context, owner, repo, sha string) ([]Status, error)
	CreateStatus(ctx context.Context, owner, repo, sha string, s Status) error
	// Login is the token's user, or "" when the token cannot tell (the
	// workflow token cannot read /user).
	Login(ctx context.Context) (string, error)
}

// ErrNotFound wraps a 404 answer: right after a PR is opened GitHub may not
// list its files yet.
var ErrNotFound = errors.New("not found")

// ErrCompareUnavailable says the API cannot compare two commits (a base
// lost to a force push, or unrelated histories).
var ErrCompareUnavailable = errors.New("the commits cannot be compared")

// ChangedFile is a file a PR or a push touched.
type ChangedFile struct {
	Path     string
	Previous string // a renamed file's old path
	Status   string // added, modified, removed, renamed, copied, changed, unchanged
}

// Comment is an issue (PR) comment.
type Comment struct {
	ID     int64
	Author string
	Body   string
}

// Status is a commit status.
type Status struct {
	Context, State, Description, TargetURL string
}

// statusOf is the HTTP status of GitHub's error answer (0 for other errors).
func statusOf(err error) int {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// compareFileCap is how many files the compare API lists at most.
const compareFileCap = 300

// restClient implements GitHub with go-github.
type restClient struct{ c *github.Client }

// NewGitHub returns a GitHub client for apiURL (GITHUB_API_URL) with token,
// sending requests through hc (whose transport should pace them, see
// NewRateLimitTransport).
func NewGitHub(hc *http.Client, apiURL, token string) (GitHub, error) {
	c := github.NewClient(hc).WithAuthToken(token)
	if apiURL != "" && strings.TrimRight(apiURL, "/") != "https://api.github.com" {
		u, err := url.Parse(strings.TrimRight(apiURL, "/") + "/")
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("GITHUB_API_URL %q is not a URL: leave it to the runner, which sets it", apiURL)
		}
		// GITHUB_API_URL is already the API's root (GHES: https://host/api/v3),
		// so it is used as is rather than through WithEnterpriseURLs.
		c.BaseURL, c.UploadURL = u, u
	}
	return &restClient{c: c}, nil
}

func (r *restClient) PullRequestFiles(ctx context.Context, owner, repo string, number int) ([]ChangedFile, error) {
	var out []ChangedFile
	opts := &github.ListOptions{PerPage: 100}
	for {
		files, resp, err := r.c.PullRequests.ListFiles(ctx, owner, repo, number, opts)
		if err != nil {
			if statusOf(err) == http.StatusNotFound {
				return nil, fmt.Errorf("list the files of pull request #%d: %w (%v)", number, ErrNotFound, err)
			}
			return nil, fmt.Errorf("list the files of pull request #%d: %w", number, err)
		}
		for _, f := range files {
			out = append(out, ChangedFile{Path: f.GetFilename(), Previous: f.GetPreviousFilename(), Status: f.GetStatus()})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (r *restClient) CompareFiles(ctx context.Context, owner, repo, base, head string) ([]ChangedFile, bool, error) {
	cmp, _, err := r.c.Repositories.CompareCommits(ctx, owner, repo, base, head, &github.ListOptions{PerPage: 1})
	if err != nil {
		if st := statusOf(err); st == http.StatusNotFound || st == http.StatusUnprocessableEntity {
			return nil, false, fmt.Errorf("compare %s...%s: %w (%v)", short(base), short(head), ErrCompareUnavailable, err)
		}
		return nil, false, fmt.Errorf("compare %s...%s: %w", short(base), short(head), err)
	}
	var out []ChangedFile
	for _, f := range cmp.Files {
		out = append(out, ChangedFile{Path: f.GetFilename(), Previous: f.GetPreviousFilename(), Status: f.GetStatus()})
	}
	return out, len(cmp.Files) >= compareFileCap, nil
}

func (r *restClient) Comments(ctx context.Context, owner, repo string, number int) ([]Comment, error) {
	var out []Comment
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		cs, resp, err := r.c.Issues.ListComments(ctx, owner, repo, number, opts)
		if err != nil {
			return nil, fmt.Errorf("list the comments of #%d: %w", number, err)
		}
		for _, c := range cs {
			out = append(out, Comment{ID: c.GetID(), Author: c.GetUser().GetLogin(), Body: c.GetBody()})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (r *restClient) CreateComment(ctx context.Context, owner, repo string, number int, body string) (Comment, error) {
	c, _, err := r.c.Issues.CreateComment(ctx, owner, repo, number, &github.IssueComment{Body: github.String(body)})
	if err != nil {
		return Comment{}, fmt.Errorf("comment on #%d: %w", number, err)
	}
	return Comment{ID: c.GetID(), Author: c.GetUser().GetLogin(), Body: c.GetBody()}, nil
}

func (r *restClient) EditComment(ctx context.Context, owner, repo string, id int64, body string) error {
	if _, _, err := r.c.Issues.EditComment(ctx, owner, repo, id, &github.IssueComment{Body: github.String(body)}); err != nil {
		return fmt.Errorf("edit comment %d: %w", id, err)
	}
	return nil
}

func (r *restClient) DeleteComment(ctx context.Context, owner, repo string, id int64) error {
	if _, err := r.c.Issues.DeleteComment(ctx, owner, repo, id); err != nil && statusOf(err) != http.StatusNotFound {
		return fmt.Errorf("delete comment %d: %w", id, err)
	}
	return nil
}

func (r *restClient) Statuses(ctx context.Context, owner, repo, sha string) ([]Status, error) {
	var out []Status
	opts := &github.ListOptions{PerPage: 100}
	for {
		cs, resp, err := r.c.Repositories.GetCombinedStatus(ctx, owner, repo, sha, opts)
		if err != nil {
			return nil, fmt.Errorf("read the statuses of %s: %w", short(sha), err)
		}
		for _, s := range cs.Statuses {
			out = append(out, Status{Context: s.GetContext(), State: s.GetState(), Description: s.GetDescription(), TargetURL: s.GetTargetURL()})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (r *restClient) CreateStatus(ctx context.Context, owner, repo, sha string, s Status) error {
	st := &github.RepoStatus{State: github.String(s.State), Context: github.String(s.Context)}
	if s.Description != "" {
		st.Description = github.String(s.Description)
	}
	if s.TargetURL != "" {
		st.TargetURL = github.String(s.TargetURL)
	}
	if _, _, err := r.c.Repositories.CreateStatus(ctx, owner, repo, sha, st); err != nil {
		return fmt.Errorf("set status %s on %s: %w", s.Context, short(sha), err)
	}
	return nil
}

func (r *restClient) Login(ctx context.Context) (string, error) {
	u, _, err := r.c.Users.Get(ctx, "")
	if err != nil {
		if st := statusOf(err); st == http.StatusForbidden || st == http.StatusNotFound {
			return "", nil // an installation token (the workflow's) has no user
		}
		return "", fmt.Errorf("read the token's user: %w", err)
	}
	return u.GetLogin(), nil
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
