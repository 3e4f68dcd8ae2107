package action

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
	"github.com/framefleet/framefleet/pipeline/plan"
)

// Modes of the action.
const (
	// ModeRender renders what the event changed.
	ModeRender = "render"
	// ModeRefresh brings the comments and statuses of this repository's
	// pending runs up to date from the run records (a scheduled workflow).
	ModeRefresh = "refresh"
)

// Inputs are the action's inputs (action.yml), parsed and validated.
type Inputs struct {
	Mode  string
	Paths []string // globs; a leading "!" excludes
	// Engine, ConfigPath and the AWS settings override framefleet.yaml.
	Engine, ConfigPath                   string
	Bucket, Queue, JobDefinition, Region string
	Frames                               string
	ChunkSize, Resolution, Samples       int
	Wait, Compare, Comment               bool
	// CommentKey names the sticky comment: each key keeps one comment per
	// pull request (jobs with different paths use different keys).
	CommentKey string
	// CancelSuperseded: a new push to a PR cancels the runs of its earlier
	// pushes that are still unfinished.
	CancelSuperseded bool
	// ArtifactName is the workflow artifact that holds a local store's
	// files, as the rows name it.
	ArtifactName string
	Token        string
	// RefreshSince bounds how far back refresh looks for runs.
	RefreshSince time.Duration
}

// InputError is one bad input, named as the workflow file spells it.
type InputError struct {
	Input, Value, Problem, Fix string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("input %s %q %s: %s", e.Input, e.Value, e.Problem, e.Fix)
}

// ParseInputs reads the INPUT_* variables through get (go-githubactions'
// GetInput) and returns every problem at once, each naming the input and the fix.
func ParseInputs(get func(string) string) (Inputs, error) {
	in := Inputs{Mode: ModeRender, Wait: true, Comment: true, RefreshSince: 14 * 24 * time.Hour}
	var errs []error
	bad := func(input, value, problem, fix string) {
		errs = append(errs, &InputError{Input: input, Value: value, Problem: problem, Fix: fix})
	}

	if v := get("mode"); v != "" {
		switch v {
		case ModeRender, ModeRefresh:
			in.Mode = v
		default:
			bad("mode", v, "is not a mode", "use render (render what changed) or refresh (update pending runs' comments and statuses, from a scheduled workflow)")
		}
	}

	in.Paths = splitList(get("paths"))
	if len(in.Paths) == 0 {
		in.Paths = []string{"**/*.blend"}
	}
	include := 0
	for _, p := range in.Paths {
		g := strings.TrimPrefix(p, "!")
		if !strings.HasPrefix(p, "!") {
			include++
		}
		if err := checkGlob(g); err != nil {
			bad("paths", p, "is not a glob", err.Error()+": use patterns like **/*.blend or scenes/*.blend, one per line or comma-separated")
		}
	}
	if include == 0 && len(in.Paths) > 0 {
		bad("paths", strings.Join(in.Paths, ","), "only excludes", "add at least one pattern to include, e.g. **/*.blend")
	}

	in.Engine = get("engine")
	switch in.Engine {
	case "", config.EngineLocal, config.EngineBatch:
	default:
		bad("engine", in.Engine, "is not an engine", "use local (render on the runner) or batch (AWS Batch)")
	}
	in.ConfigPath = get("config")
	in.Bucket = get("bucket")
	if in.Bucket != "" && strings.ContainsAny(in.Bucket, "/: ") {
		bad("bucket", in.Bucket, "is not a bucket name", "give only the bucket's name, e.g. my-renders (without s3:// or a folder)")
	}
	in.Queue = get("queue")
	in.JobDefinition = get("job-definition")
	in.Region = get("region")
	if in.Region != "" && !regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`).MatchString(in.Region) {
		bad("region", in.Region, "is not an AWS region", "give a region name such as us-east-1")
	}

	in.Frames = get("frames")
	if in.Frames != "" {
		if _, err := plan.ParseFrames(in.Frames); err != nil {
			bad("frames", in.Frames, "is not a frame list", "use ranges like 1-48, 1-100x5 (every 5th) or 3,7,12-20 ("+err.Error()+")")
		}
	}
	num := func(name string, lo, hi int, fix string) int {
		v := get(name)
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			bad(name, v, fmt.Sprintf("is not a whole number from %d to %d", lo, hi), fix)
			return 0
		}
		return n
	}
	in.ChunkSize = num("chunk-size", 1, 100000, "give frames per job, e.g. 10, or leave it empty to choose automatically")
	in.Resolution = num("resolution", 1, pipeline.MaxResolutionPercentage, "give a percentage of the scene's resolution, e.g. 50 for a quick preview, or leave it empty for the scene's")
	in.Samples = num("samples", 1, pipeline.MaxSamples, "give Cycles samples per pixel, e.g. 16, or leave it empty for the scene's")

	boolean := func(name string, def bool) bool {
		v := get(name)
		if v == "" {
			return def
		}
		// YAML 1.2 core schema booleans, as GitHub's own inputs accept.
		switch v {
		case "true", "True", "TRUE":
			return true
		case "false", "False", "FALSE":
			return false
		}
		bad(name, v, "is not a boolean", "use true or false")
		return def
	}
	in.Wait = boolean("wait", true)
	in.Compare = boolean("compare", false)
	in.Comment = boolean("comment", true)
	in.CancelSuperseded = boolean("cancel-superseded", true)
	in.CommentKey = strings.TrimSpace(get("comment-key"))
	if strings.ContainsAny(in.CommentKey, "\n<>") || len(in.CommentKey) > 100 {
		bad("comment-key", in.CommentKey, "cannot name a comment", "use a short name without < > or line breaks, e.g. the job's name")
	}
	in.ArtifactName = strings.TrimSpace(get("artifact-name"))
	if in.ArtifactName == "" {
		in.ArtifactName = DefaultStoreDir
	}

	in.Token = get("github-token")
	if in.Token == "" {
		bad("github-token", "", "is empty", "leave it out to use the workflow's token (${{ github.token }}), or pass a token with pull-requests: write and statuses: write")
	}
	return in, errors.Join(errs...)
}

// splitList splits an input on newlines and commas, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, f := range strings.Split(line, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// checkGlob reports a pattern path.Match cannot use.
func checkGlob(g string) error {
	if g == "" {
		return errors.New("the pattern is empty")
	}
	if strings.HasPrefix(g, "/") {
		return errors.New("patterns are relative to the repository's top, without a leading /")
	}
	for _, part := range strings.Split(g, "/") {
		if part == "**" {
			continue
		}
		if _, err := path.Match(part, ""); err != nil {
			return fmt.Errorf("%q: %v", part, err)
		}
	}
	return nil
}

// Globs matches repository paths (slash-separated) against include and
// "!"-exclude patterns; "**" spans directories, the rest is path.Match's.
type Globs []string

// Match reports whether p is included by some pattern and excluded by none.
func (gs Globs) Match(p string) bool {
	in := false
	for _, g := range gs {
		if ex, ok := strings.CutPrefix(g, "!"); ok {
			if globMatch(strings.Split(ex, "/"), strings.Split(p, "/")) {
				return false
			}
			continue
		}
		if globMatch(strings.Split(g, "/"), strings.Split(p, "/")) {
			in = true
		}
	}
	return in
}

func globMatch(pat, parts []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(parts); i++ {
				if globMatch(pat[1:], parts[i:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], parts[0]); !ok {
			return false
		}
		pat, parts = pat[1:], parts[1:]
	}
	return len(parts) == 0
}
