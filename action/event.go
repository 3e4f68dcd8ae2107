package action

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Events the action understands.
const (
	EventPullRequest      = "pull_request"
	EventPush             = "push"
	EventWorkflowDispatch = "workflow_dispatch"
	EventSchedule         = "schedule"
)

// zeroSHA is "before" of a push that created the branch.
const zeroSHA = "0000000000000000000000000000000000000000"

// Event is what the action needs from the workflow's event payload.
type Event struct {
	Name        string
	Owner, Repo string
	// PR is the pull request's number (0 outside pull_request).
	PR int
	// HeadSHA is the commit rendered and reported on: the PR's head (not
	// GITHUB_SHA, the test merge commit), or the pushed/dispatched commit.
	HeadSHA string
	// BaseSHA is the PR's base commit, or a push's "before".
	BaseSHA string
	// HeadRepo and Fork describe where a PR's commits come from.
	HeadRepo string
	Fork     bool
	// Deleted is a push that deleted the branch.
	Deleted bool
	// DefaultBranch is the repository's default branch.
	DefaultBranch string
}

// payload holds the fields read from $GITHUB_EVENT_PATH.
type payload struct {
	Before     string `json:"before"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	Repository struct {
		FullName      string `json:"full_name"`
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
	PullRequest *struct {
		Number int `json:"number"`
		Head   struct {
			SHA  string `json:"sha"`
			Repo *struct {
				FullName string `json:"full_name"`
				Fork     bool   `json:"fork"`
			} `json:"repo"`
		} `json:"head"`
		Base struct {
			SHA  string `json:"sha"`
			Repo struct {
				FullName string `json:"full_name"`
			} `json:"repo"`
		} `json:"base"`
	} `json:"pull_request"`
}

// ReadEvent reads the event payload file of event name for repository
// ("owner/name", GITHUB_REPOSITORY); sha is GITHUB_SHA.
func ReadEvent(name, path, repository, sha string) (Event, error) {
	ev := Event{Name: name, HeadSHA: sha}
	switch name {
	case EventPullRequest, EventPush, EventWorkflowDispatch, EventSchedule:
	case "pull_request_target":
		return ev, fmt.Errorf("pull_request_target runs with the base repository's secrets: rendering a PR's .blend files there would run untrusted content with them: trigger the workflow on pull_request instead")
	default:
		return ev, fmt.Errorf("event %q is not supported: trigger the workflow on pull_request, push, workflow_dispatch or (mode: refresh) schedule", name)
	}
	owner, repo, ok := strings.Cut(repository, "/")
	if !ok || owner == "" || repo == "" {
		return ev, fmt.Errorf("GITHUB_REPOSITORY %q is not owner/name: run the action from a GitHub workflow", repository)
	}
	ev.Owner, ev.Repo = owner, repo
	if path == "" {
		return ev, fmt.Errorf("GITHUB_EVENT_PATH is empty: run the action from a GitHub workflow, which sets it")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ev, fmt.Errorf("read the event payload: %w", err)
	}
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		return ev, fmt.Errorf("event payload %s is not JSON: %w", path, err)
	}
	ev.DefaultBranch = p.Repository.DefaultBranch
	switch name {
	case EventPullRequest:
		pr := p.PullRequest
		if pr == nil || pr.Number == 0 || pr.Head.SHA == "" {
			return ev, fmt.Errorf("the pull_request payload has no pull_request.number/head.sha")
		}
		ev.PR, ev.HeadSHA, ev.BaseSHA = pr.Number, pr.Head.SHA, pr.Base.SHA
		base := pr.Base.Repo.FullName
		if base == "" {
			base = repository
		}
		if r := pr.Head.Repo; r == nil {
			ev.Fork = true // the fork was deleted: still not this repository
		} else {
			ev.HeadRepo = r.FullName
			ev.Fork = !strings.EqualFold(r.FullName, base)
		}
	case EventPush:
		ev.BaseSHA, ev.Deleted = p.Before, p.Deleted
		if p.After != "" {
			ev.HeadSHA = p.After
		}
	}
	if ev.HeadSHA == "" {
		return ev, fmt.Errorf("no commit to render: GITHUB_SHA is empty")
	}
	return ev, nil
}
