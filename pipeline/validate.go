package pipeline

import (
	"fmt"
	"time"

	"github.com/framefleet/framefleet/pipeline/plan"
)

// SettingError is a request setting out of range. Key is the setting's
// configuration key (render.resolution, render.attempts, frames, ...), never
// a command-line flag: each front-end words the fix in its own terms (a
// flag, an action input, a Slack option).
type SettingError struct {
	Key    string // e.g. "render.attempts"
	Value  string // the value given, as text
	Reason string // what is allowed, e.g. "give 1 to 10 (AWS Batch's range)"
	Err    error  // the parser's error, if any
}

func (e *SettingError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("%s %s: %s", e.Key, e.Value, e.Reason)
}

func (e *SettingError) Unwrap() error { return e.Err }

// Setting keys, as in framefleet.yaml where one exists.
const (
	KeyFrames       = "frames"
	KeyChunk        = "render.chunk"
	KeyWorkers      = "render.workers"
	KeyResolution   = "render.resolution"
	KeySamples      = "render.samples"
	KeyThreads      = "render.threads"
	KeyStitch       = "render.stitch"
	KeyAttempts     = "render.attempts"
	KeyTimeout      = "render.timeout"
	KeyForce        = "force"
	KeyBlender      = "blender"
	KeySource       = "source"
	KeyPoll         = "poll"
	KeyOutage       = "store_outage_budget"
	KeyLabels       = "labels"
	KeyLinkExpiry   = "link_expiry"
	KeyStallWarning = "stall_warning"
)

// MaxAttempts is AWS Batch's limit on attempts per job; the local engine keeps it too.
const MaxAttempts = 10

// MaxResolutionPercentage is Blender's limit on the resolution percentage.
const MaxResolutionPercentage = 32767

// MinBatchTimeout is AWS Batch's shortest attempt timeout.
const MinBatchTimeout = time.Minute

// Validate checks every limit of a request in one place; front-ends call it
// to check their input early, Submit calls it again. Errors are *SettingError.
func (r Request) Validate() error {
	bad := func(key string, v any, reason string, err error) error {
		return &SettingError{Key: key, Value: fmt.Sprint(v), Reason: reason, Err: err}
	}
	switch {
	case r.BlendPath == "":
		return &SettingError{Key: KeySource, Reason: "no .blend file given"}
	case r.Attempts < 0 || r.Attempts > MaxAttempts:
		return bad(KeyAttempts, r.Attempts, "give 1 to 10 attempts per chunk (AWS Batch's range), or 0 for the engine's default", nil)
	case r.ResolutionPercentage < 0 || r.ResolutionPercentage > MaxResolutionPercentage:
		return bad(KeyResolution, r.ResolutionPercentage, "give a percentage from 1 to 32767 (e.g. 25 for a quick preview), or 0 to keep the scene's", nil)
	case r.Samples < 0:
		return bad(KeySamples, r.Samples, "give a positive number of samples, or 0 to keep the scene's", nil)
	case r.Chunk < 0:
		return bad(KeyChunk, r.Chunk, "give a positive number of frames per chunk, or 0 to choose automatically", nil)
	case r.Parallelism < 0:
		return bad(KeyWorkers, r.Parallelism, "give a positive number of workers, or 0 for one", nil)
	case r.Threads < 0:
		return bad(KeyThreads, r.Threads, "give a positive number of threads per worker, or 0 for all cores", nil)
	case r.AttemptTimeout < 0:
		return bad(KeyTimeout, r.AttemptTimeout, "give a positive duration such as 30m, or 0 for none", nil)
	case r.AttemptTimeout > 0 && r.AttemptTimeout < MinBatchTimeout && r.Engine == "batch":
		return bad(KeyTimeout, r.AttemptTimeout, "AWS Batch needs at least 1m per attempt", nil)
	case r.PollInterval < 0:
		return bad(KeyPoll, r.PollInterval, "give a positive duration", nil)
	case r.StoreOutageBudget < 0:
		return bad(KeyOutage, r.StoreOutageBudget, "give a positive duration such as 5m", nil)
	case r.LinkExpiry < 0 || r.LinkExpiry > 7*24*time.Hour:
		return bad(KeyLinkExpiry, r.LinkExpiry, "give a duration up to 7 days (S3's limit for presigned links)", nil)
	case r.StallWarning < 0:
		return bad(KeyStallWarning, r.StallWarning, "give a positive duration such as 15m", nil)
	}
	if r.Stitch != "" {
		if _, err := plan.ParseStitchMode(string(r.Stitch)); err != nil {
			return bad(KeyStitch, r.Stitch, "use concat (join per-chunk segments) or encode (one pass over every frame)", err)
		}
	}
	if r.Frames != "" {
		if _, err := plan.ParseFrames(r.Frames); err != nil {
			return bad(KeyFrames, fmt.Sprintf("%q", r.Frames), err.Error(), err)
		}
	}
	for k, v := range r.Labels {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			return bad(KeyLabels, fmt.Sprintf("%q", k), "label names must be 1 to 128 characters and values at most 1024", nil)
		}
	}
	return nil
}
