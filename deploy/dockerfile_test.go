package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The worker image cannot be built here (no Docker engine), so these tests
// read container/Dockerfile and hold it to the rules a build would otherwise
// reveal late: which stages exist, what each installs, who runs the worker.

type instruction struct {
	stage string // the stage's name ("AS ..."), or its FROM image
	cmd   string // upper-case keyword
	args  string
	line  int
}

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "container", "Dockerfile"))
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
		"runtime":          "blender-${BLENDER_SOURCE}",
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
	if !strings.Contains(last["COPY"].args, "--from=build /out/framefleet /usr/local/bin/framefleet") {
		t.Errorf("runtime does not copy the built binary: COPY %s", last["COPY"].args)
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
