package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/framefleet/framefleet/pipeline/config"
)

// The action's metadata (action.yml), the example workflow that uses it and
// the workflow that publishes its image must agree; nothing runs them here.

type actionMeta struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Inputs      map[string]struct {
		Description string  `yaml:"description"`
		Required    bool    `yaml:"required"`
		Default     *string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Description string `yaml:"description"`
	} `yaml:"outputs"`
	Runs struct {
		Using      string   `yaml:"using"`
		Image      string   `yaml:"image"`
		Entrypoint string   `yaml:"entrypoint"`
		Args       []string `yaml:"args"`
	} `yaml:"runs"`
}

type workflow struct {
	On   map[string]any `yaml:"on"`
	Jobs map[string]struct {
		Permissions map[string]string `yaml:"permissions"`
		Steps       []struct {
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
			Env  map[string]string `yaml:"env"`
			Run  string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestActionMetadata(t *testing.T) {
	var a actionMeta
	readYAML(t, filepath.Join("..", "action.yml"), &a)
	if a.Name == "" || a.Description == "" {
		t.Error("action.yml needs a name and a description")
	}
	// The inputs issue 9 lists, plus mode; nothing else.
	want := []string{"mode", "paths", "engine", "config", "bucket", "queue", "job-definition", "region", "frames",
		"chunk-size", "resolution", "samples", "wait", "compare", "comment", "github-token",
		"comment-key", "cancel-superseded", "artifact-name"} // issue 15's
	var got []string
	for name, in := range a.Inputs {
		got = append(got, name)
		if in.Description == "" {
			t.Errorf("input %s has no description", name)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("inputs %v, want %v", got, want)
	}
	if d := a.Inputs["github-token"].Default; d == nil || *d != "${{ github.token }}" {
		t.Errorf("github-token default %v, want ${{ github.token }}", d)
	}
	for _, o := range []string{"runs", "failures"} {
		if a.Outputs[o].Description == "" {
			t.Errorf("output %s missing or undescribed", o)
		}
	}
	r := a.Runs
	if r.Using != "docker" || !regexp.MustCompile(`^docker://ghcr\.io/[a-z0-9-]+/[a-z0-9-]+:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$`).MatchString(r.Image) {
		t.Errorf("runs: using %q image %q; want docker with a prebuilt docker://ghcr.io/<owner>/<name>:vX.Y.Z, pinned @sha256:<digest> on release (no build on every use)", r.Using, r.Image)
	}
	if r.Entrypoint != "/usr/local/bin/framefleet" || !slices.Equal(r.Args, []string{"action"}) {
		t.Errorf("runs: entrypoint %q args %q; want /usr/local/bin/framefleet [action]", r.Entrypoint, r.Args)
	}
}

var shaPinned = regexp.MustCompile(`^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$`)

func TestExampleWorkflowUsesTheAction(t *testing.T) {
	var a actionMeta
	readYAML(t, filepath.Join("..", "action.yml"), &a)
	var w workflow
	readYAML(t, filepath.Join("..", "examples", "workflows", "render.yml"), &w)

	for _, ev := range []string{"pull_request", "schedule", "push"} {
		if _, ok := w.On[ev]; !ok {
			t.Errorf("the example is not triggered by %s", ev)
		}
	}
	if _, ok := w.On["pull_request_target"]; ok {
		t.Error("the example uses pull_request_target: a fork's blend would render with this repository's secrets")
	}
	envNames := map[string]bool{}
	for _, n := range config.EnvNames() {
		envNames[n] = true
	}
	uses, modes := 0, map[string]bool{}
	usedInputs := map[string]bool{}
	var oidc, upload bool
	for job, j := range w.Jobs {
		for _, s := range j.Steps {
			switch {
			case strings.HasPrefix(s.Uses, "framefleet/framefleet@"):
				uses++
				for in := range s.With {
					usedInputs[in] = true
					if _, ok := a.Inputs[in]; !ok {
						t.Errorf("job %s passes input %q, which action.yml does not declare", job, in)
					}
				}
				for name, in := range a.Inputs {
					if in.Required && in.Default == nil && s.With[name] == "" {
						t.Errorf("job %s does not give the required input %s", job, name)
					}
				}
				mode := s.With["mode"]
				if mode == "" {
					mode = *a.Inputs["mode"].Default
				}
				modes[mode+"/"+s.With["engine"]] = true
				for e := range s.Env {
					if !envNames[e] {
						t.Errorf("job %s sets %s, which is no framefleet setting's environment variable", job, e)
					}
				}
				if s.With["engine"] == "batch" && j.Permissions["id-token"] != "write" {
					t.Errorf("job %s renders on Batch without id-token: write (OIDC)", job)
				}
			case strings.HasPrefix(s.Uses, "aws-actions/configure-aws-credentials@"):
				oidc = s.With["role-to-assume"] != ""
			case strings.HasPrefix(s.Uses, "actions/upload-artifact@"):
				upload = strings.Contains(s.With["path"], "framefleet-renders/")
			}
			if s.Uses != "" && !strings.HasPrefix(s.Uses, "framefleet/framefleet@") && !shaPinned.MatchString(s.Uses) {
				t.Errorf("job %s uses %s: pin third-party actions by commit SHA", job, s.Uses)
			}
		}
	}
	if uses == 0 {
		t.Fatal("the example never uses the action")
	}
	for _, m := range []string{"render/batch", "refresh/batch", "render/local"} {
		if !modes[m] {
			t.Errorf("the example has no job with mode/engine %s (have %v)", m, modes)
		}
	}
	if !oidc || !upload {
		t.Errorf("OIDC role %v, local results uploaded as an artifact %v; want both", oidc, upload)
	}
	if !usedInputs["compare"] || !usedInputs["wait"] {
		t.Error("the example should show compare and wait")
	}
}

func TestReleaseWorkflowPinsActions(t *testing.T) {
	var w workflow
	readYAML(t, filepath.Join("..", ".github", "workflows", "action-image.yml"), &w)
	n := 0
	for job, j := range w.Jobs {
		for _, s := range j.Steps {
			if s.Uses == "" {
				continue
			}
			n++
			if !shaPinned.MatchString(s.Uses) {
				t.Errorf("job %s uses %s: pin by commit SHA", job, s.Uses)
			}
		}
	}
	if n == 0 {
		t.Error("the release workflow uses no actions: did its shape change?")
	}
	// On release, action.yml is rewritten to name the pushed image by digest.
	pinned := false
	for _, j := range w.Jobs {
		for _, s := range j.Steps {
			if strings.Contains(s.Run, `image: docker://$IMAGE@$DIGEST`) && strings.Contains(s.Run, "git push") {
				pinned = true
			}
		}
	}
	if !pinned {
		t.Error("the release workflow does not pin the image by digest in action.yml")
	}
}
