package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// usesLine is a step's `uses:` line: the action, its ref and the comment.
var usesLine = regexp.MustCompile(`^\s*(?:-\s+)?uses:\s+(\S+?)@(\S+)(?:\s+#\s*(\S+))?\s*$`)

// TestWorkflowsArePinnedAndBounded checks the repository's own workflows:
// every action is pinned by commit SHA with its release in a comment (a tag
// can be moved to other code), an action has one version across workflows,
// every job has a timeout, and a pull request's runs cancel the ones its
// previous push started.
func TestWorkflowsArePinnedAndBounded(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows: %v", err)
	}
	versions := map[string]string{} // action -> "sha # tag" and where
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		for n, line := range strings.Split(string(b), "\n") {
			m := usesLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			action, ref, tag := m[1], m[2], m[3]
			if strings.HasPrefix(action, "./") {
				continue // this repository's own
			}
			if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(ref) || !strings.HasPrefix(tag, "v") {
				t.Errorf("%s:%d: %s@%s: pin it by commit SHA with the release in a comment (uses: %s@<sha> # vX.Y.Z)", name, n+1, action, ref, action)
				continue
			}
			at := ref + " # " + tag
			if prev, ok := versions[action]; ok && !strings.HasPrefix(prev, at) {
				t.Errorf("%s:%d: %s at %s, elsewhere at %s: use one version", name, n+1, action, at, prev)
			}
			versions[action] = at + " (" + name + ")"
		}

		var w struct {
			Concurrency *struct {
				CancelInProgress any `yaml:"cancel-in-progress"`
			} `yaml:"concurrency"`
			On   map[string]any `yaml:"on"`
			Jobs map[string]struct {
				TimeoutMinutes any `yaml:"timeout-minutes"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(b, &w); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for job, j := range w.Jobs {
			if j.TimeoutMinutes == nil {
				t.Errorf("%s: job %s has no timeout-minutes: a hung step would hold a runner for 6 hours", name, job)
			}
		}
		if _, pr := w.On["pull_request"]; pr {
			if w.Concurrency == nil || !strings.Contains(strings.ToLower(toString(w.Concurrency.CancelInProgress)), "pull_request") &&
				toString(w.Concurrency.CancelInProgress) != "true" {
				t.Errorf("%s runs on pull requests without concurrency.cancel-in-progress: a new push would wait for the old runs", name)
			}
		}
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
	}
	return ""
}
