package deploy

import (
	"bufio"
	"encoding/json"
	"github.com/framefleet/framefleet/pipeline/batch"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The images cannot be built here (no Docker engine), so these tests read
// container/Dockerfile (the worker) and the root Dockerfile (the GitHub
// Action) and hold them to the rules a build would otherwise reveal late:
// which stages exist, what each installs, who runs the worker.

type instruction struct {
	stage string // the stage's name ("AS ..."), or its FROM image
	cmd   string // upper-case keyword
	args  string
	line  int
}

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	return parseDockerfileAt(t, filepath.Join("..", "container", "Dockerfile"))
}

func parseDockerfileAt(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out     []instruction
		stage   string
		pending strings.Builder
		start   int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending.WriteString(cont + " ")
			continue
		}
		if strings.HasPrefix(line, "#") { // a comment inside a continued instruction
			continue
		}
		pending.WriteString(line)
		cmd, args, _ := strings.Cut(pending.String(), " ")
		pending.Reset()
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			fields := strings.Fields(args)
			stage = fields[0]
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				stage = fields[2]
			}
		}
		out = append(out, instruction{stage: stage, cmd: cmd, args: strings.TrimSpace(args), line: start})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfileStages(t *testing.T) {
	ins := parseDockerfile(t)
	stages := map[string]string{} // name -> FROM image
	args := map[string]string{}   // global ARG defaults (before the first FROM)
	for _, in := range ins {
		switch {
		case in.cmd == "ARG" && in.stage == "":
			name, def, _ := strings.Cut(in.args, "=")
			args[name] = def
		case in.cmd == "FROM":
			stages[in.stage] = strings.Fields(in.args)[0]
		}
	}
	if args["BLENDER_SOURCE"] != "debian" {
		t.Errorf("ARG BLENDER_SOURCE defaults to %q, want debian", args["BLENDER_SOURCE"])
	}
	for _, name := range []string{"GO_IMAGE", "DEBIAN_IMAGE"} {
		img := args[name]
		if !regexp.MustCompile(`^[a-z]+:[0-9a-z.]+-bookworm$|^[a-z]+:bookworm-slim$`).MatchString(img) {
			t.Errorf("ARG %s=%q: want a bookworm image by explicit tag (never latest)", name, img)
		}
	}
	want := map[string]string{
		"build":            "${GO_IMAGE}",
		"base":             "${DEBIAN_IMAGE}",
		"blender-debian":   "base",
		"blender-official": "base",
		"tools":            "blender-${BLENDER_SOURCE}",
		"runtime":          "tools",
	}
	for name, from := range want {
		if stages[name] != from {
			t.Errorf("stage %s is FROM %q, want %q", name, stages[name], from)
		}
	}
}

func TestDockerfileRuntime(t *testing.T) {
	var last = map[string]instruction{} // last instruction of each kind in the final stage
	var runtimeStage string
	ins := parseDockerfile(t)
	for _, in := range ins {
		runtimeStage = in.stage
	}
	for _, in := range ins {
		if in.stage == runtimeStage {
			last[in.cmd] = in
		}
	}
	if got := last["ENTRYPOINT"].args; got != `["/usr/local/bin/framefleet"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/usr/local/bin/framefleet\"]", got)
	}
	if got := last["CMD"].args; got != `["worker", "render"]` {
		t.Errorf("CMD %s, want [\"worker\", \"render\"]", got)
	}
	if got := last["WORKDIR"].args; got != "/work" {
		t.Errorf("WORKDIR %s, want /work", got)
	}
	if u := last["USER"].args; u == "" || u == "root" || strings.HasPrefix(u, "0") {
		t.Errorf("final USER is %q: the worker must not run as root", u)
	}
	// The job definitions name that user (the stack's and setup's): a
	// different one would run the worker without its home and files.
	if u, _, _ := strings.Cut(last["USER"].args, ":"); u != batch.DefaultUser {
		t.Errorf("final USER %q is not the job definitions' user %s (pipeline/batch.DefaultUser)", last["USER"].args, batch.DefaultUser)
	}
	if runtimeStage != "runtime" {
		t.Errorf("the last stage is %q: the worker (runtime) must stay the default target", runtimeStage)
	}
	copied := false
	for _, in := range ins {
		copied = copied || in.stage == "tools" && in.cmd == "COPY" && strings.Contains(in.args, "--from=build /out/framefleet /usr/local/bin/framefleet")
	}
	if !copied {
		t.Error("the tools stage (shared by the worker and the action) does not copy the built binary")
	}
}

func TestDockerfileBuildsStaticReproducibleBinary(t *testing.T) {
	for _, in := range parseDockerfile(t) {
		if in.stage != "build" || in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/framefleet"} {
			if !strings.Contains(in.args, want) {
				t.Errorf("line %d: go build lacks %s", in.line, want)
			}
		}
		return
	}
	t.Fatal("no go build step in the build stage")
}

func TestDockerfileRecordsBlenderVersion(t *testing.T) {
	env := map[string]string{}
	var recorded bool
	for _, in := range parseDockerfile(t) {
		if in.cmd == "ENV" && strings.HasPrefix(in.args, "FRAMEFLEET_BLENDER_VERSION=") {
			env[in.stage] = strings.TrimPrefix(in.args, "FRAMEFLEET_BLENDER_VERSION=")
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "blender -b -Y --version") &&
			strings.Contains(in.args, "/etc/framefleet/blender-version") {
			recorded = true
		}
	}
	if env["blender-debian"] != "${DEBIAN_BLENDER_VERSION}" || env["blender-official"] != "${BLENDER_VERSION}" {
		t.Errorf("FRAMEFLEET_BLENDER_VERSION per stage = %v, want the version each stage installs", env)
	}
	if !recorded {
		t.Error("no step runs `blender -b -Y --version` and writes /etc/framefleet/blender-version")
	}
}

func TestDockerfileAptHygiene(t *testing.T) {
	for _, in := range parseDockerfile(t) {
		if in.cmd != "RUN" || !strings.Contains(in.args, "apt-get install") {
			continue
		}
		if !strings.Contains(in.args, "--no-install-recommends") {
			t.Errorf("line %d: apt-get install without --no-install-recommends", in.line)
		}
		if !strings.Contains(in.args, "apt-get update") || !strings.Contains(in.args, "rm -rf /var/lib/apt/lists/*") {
			t.Errorf("line %d: apt-get install must update and remove the lists in the same layer", in.line)
		}
	}
}

// The action image (root Dockerfile) is the worker's tools stage plus git
// and git-lfs: it shares the stages, never copies them.
func TestActionDockerfile(t *testing.T) {
	ins := parseDockerfileAt(t, filepath.Join("..", "Dockerfile"))
	var froms []string
	last := map[string]instruction{}
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
		}
		last[in.cmd] = in
		switch {
		case in.cmd == "USER":
			t.Errorf("line %d: USER %s: a Docker action must run as root to write GITHUB_WORKSPACE", in.line, in.args)
		case in.cmd == "WORKDIR":
			t.Errorf("line %d: WORKDIR %s: the runner sets the working directory to the workspace", in.line, in.args)
		case in.cmd == "RUN" && (strings.Contains(in.args, "go build") || strings.Contains(in.args, "blender") || strings.Contains(in.args, "ffmpeg")):
			t.Errorf("line %d: builds or installs what container/Dockerfile's tools stage has: share the stage instead", in.line)
		case in.cmd == "RUN" && strings.Contains(in.args, "apt-get install"):
			for _, pkg := range []string{" git ", "git-lfs"} {
				if !strings.Contains(in.args+" ", pkg) {
					t.Errorf("line %d: the action image lacks %s", in.line, strings.TrimSpace(pkg))
				}
			}
			if !strings.Contains(in.args, "safe.directory") {
				t.Errorf("line %d: git would refuse the runner's workspace (dubious ownership): set safe.directory", in.line)
			}
		}
	}
	if len(froms) != 1 || froms[0] != "tools AS action" {
		t.Errorf("FROM %q, want the one stage `FROM tools AS action` (the worker's tools stage via docker-bake.json)", froms)
	}
	if got := last["ENTRYPOINT"].args; got != `["/usr/local/bin/framefleet", "action"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/usr/local/bin/framefleet\", \"action\"]", got)
	}
	// The stages the action inherits must leave the user root and the working directory alone too.
	inherited := map[string]bool{"base": true, "blender-debian": true, "blender-official": true, "tools": true}
	for _, in := range parseDockerfileAt(t, filepath.Join("..", "container", "Dockerfile")) {
		if inherited[in.stage] && (in.cmd == "USER" || in.cmd == "WORKDIR") {
			t.Errorf("container/Dockerfile line %d: %s %s in stage %s, which the action image inherits: put it in runtime", in.line, in.cmd, in.args, in.stage)
		}
		if in.stage == "base" && in.cmd == "RUN" && strings.Contains(in.args, "apt-get install") && !strings.Contains(in.args, "fonts-dejavu-core") {
			t.Errorf("container/Dockerfile line %d: the base stage lacks fonts-dejavu-core, which labels before/after comparisons", in.line)
		}
	}
}

// docker-bake.json builds the action from the worker's own stages.
func TestBakeLinksActionToWorkerStages(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docker-bake.json"))
	if err != nil {
		t.Fatal(err)
	}
	var bake struct {
		Target map[string]struct {
			Context    string            `json:"context"`
			Dockerfile string            `json:"dockerfile"`
			Target     string            `json:"target"`
			Contexts   map[string]string `json:"contexts"`
			Inherits   []string          `json:"inherits"`
		} `json:"target"`
	}
	if err := json.Unmarshal(b, &bake); err != nil {
		t.Fatalf("docker-bake.json: %v", err)
	}
	tools, action, worker := bake.Target["tools"], bake.Target["action"], bake.Target["worker"]
	if tools.Dockerfile != "container/Dockerfile" || tools.Target != "tools" {
		t.Errorf("bake target tools builds %s target %q, want container/Dockerfile target tools", tools.Dockerfile, tools.Target)
	}
	if action.Dockerfile != "Dockerfile" || action.Contexts["tools"] != "target:tools" {
		t.Errorf("bake target action builds %s with contexts %v, want Dockerfile with tools=target:tools", action.Dockerfile, action.Contexts)
	}
	if worker.Target != "runtime" || len(worker.Inherits) != 1 || worker.Inherits[0] != "tools" {
		t.Errorf("bake target worker: target %q inherits %v, want runtime inheriting tools", worker.Target, worker.Inherits)
	}
	stages := map[string]bool{}
	for _, in := range parseDockerfile(t) {
		stages[in.stage] = true
	}
	if !stages[tools.Target] || !stages[worker.Target] {
		t.Errorf("container/Dockerfile has no stage %q or %q", tools.Target, worker.Target)
	}
}
