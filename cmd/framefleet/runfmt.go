package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/config"
)

// flagOfSetting maps the core's setting keys (pipeline.SettingError) to the
// flags a CLI user types.
var flagOfSetting = map[string]string{
	pipeline.KeyFrames:     "--frames",
	pipeline.KeyChunk:      "--chunk",
	pipeline.KeyWorkers:    "--workers",
	pipeline.KeyResolution: "--resolution",
	pipeline.KeySamples:    "--samples",
	pipeline.KeyStitch:     "--stitch",
	pipeline.KeyAttempts:   "--attempts",
	pipeline.KeyTimeout:    "--timeout",
	pipeline.KeyForce:      "--force",
	pipeline.KeyBlender:    "--blender",
	pipeline.KeyPoll:       "--poll",
	pipeline.KeyLabels:     "--label",
	pipeline.KeyLinkExpiry: "--set link_expiry",
	pipeline.KeySource:     "FILE.blend",
	pipeline.KeyRoot:       "--root",
}

// cliWording words the core's front-end-neutral errors for a CLI user: a
// setting error names the flag, a missing run names the command that lists
// runs and the flag that picks the store; other errors pass unchanged.
func cliWording(err error) error {
	var mi *pipeline.MissingInputsError
	if errors.As(err, &mi) && mi.AllowHint == "" {
		mi.AllowHint = "add --allow-missing"
		return err
	}
	var nf *pipeline.RunNotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("no run %q in this store: `framefleet runs` lists its runs (add --out DIR or s3://bucket/prefix if the run was rendered into another store)", nf.ID)
	}
	var se *pipeline.SettingError
	if !errors.As(err, &se) {
		return err
	}
	name, ok := flagOfSetting[se.Key]
	if !ok {
		return err
	}
	if se.Value == "" {
		return fmt.Errorf("%s: %s", name, se.Reason)
	}
	return fmt.Errorf("%s %s: %s", name, se.Value, se.Reason)
}

// parseLabels reads --label k=v flags.
func parseLabels(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--label %q: give NAME=VALUE, e.g. --label ticket=PRJ-12", kv)
		}
		m[strings.TrimSpace(k)] = v
	}
	return m, nil
}

// engineTitle is an engine's name for people.
func engineTitle(engine string) string {
	switch engine {
	case config.EngineBatch:
		return "AWS Batch"
	case config.EngineLocal:
		return "this machine"
	}
	return engine
}

func labelList(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// ago is a short age: "45s ago", "3m ago", "2h ago", "4d ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
