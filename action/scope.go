package action

import (
	"encoding/json"
	"os"

	"github.com/framefleet/framefleet/pipeline"
)

// githubScope is the trust scope of this workflow run when the
// configuration names none (framefleet.yaml scope, FRAMEFLEET_SCOPE): a
// push or dispatch on the repository's default branch is trusted, a pull
// request or any other ref a preview. A job in the trusted environment sets
// FRAMEFLEET_SCOPE=trusted (a job cannot see its environment's name). The
// AWS roles make the choice binding: the preview role cannot write the
// trusted scope, whatever a workflow claims.
func githubScope(getenv func(string) string) string {
	var p struct {
		Repository struct {
			DefaultBranch string `json:"default_branch"`
		} `json:"repository"`
	}
	if path := getenv("GITHUB_EVENT_PATH"); path != "" {
		if data, err := os.ReadFile(path); err == nil {
			_ = json.Unmarshal(data, &p) // unreadable: no default branch, so a preview
		}
	}
	return pipeline.GitHubScope(getenv("GITHUB_EVENT_NAME"), getenv("GITHUB_REF"), p.Repository.DefaultBranch, "", "", nil)
}
