package pipeline

import (
	"fmt"
	"time"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
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
	// KeyRoot is the project root the render's workspace is laid out from.
	KeyRoot = "root"
	// KeyAllowMissing renders a scene although files it needs are missing.
	KeyAllowMissing = "render.allow_missing"
)

// Limits of a request's settings. Each is defined here once: Request.Validate,
// the configuration (pipeline/config), the engines and the front-ends check
// them through the Check functions below, which return *SettingError.
const (
	// MaxAttempts is AWS Batch's limit on attempts per job; the local engine keeps it too.
	MaxAttempts = 10
	// MaxResolutionPercentage bounds the resolution percentage at ten times
	// the scene's size (Blender itself takes up to 32767%, which no farm
	// should be asked for by a typo).
	MaxResolutionPercentage = 1000
	// MaxSamples bounds render samples per pixel (far above any production
	// setting; 2000000000 would never finish).
	MaxSamples = 65536
	// MaxRequestFrames bounds the frames of one request.
	MaxRequestFrames = 100_000
	// MinBatchTimeout is AWS Batch's shortest attempt timeout.
	MinBatchTimeout = time.Minute
)

func settingError(key string, v any, reason string, err error) error {
	return &SettingError{Key: key, Value: fmt.Sprint(v), Reason: reason, Err: err}
}

// CheckAttempts checks a number of attempts per chunk (1 to MaxAttempts).
func CheckAttempts(n int) error {
	if n < 1 || n > MaxAttempts {
		return settingError(KeyAttempts, n, fmt.Sprintf("give 1 to %d attempts per chunk (AWS Batch's range)", MaxAttempts), nil)
	}
	return nil
}

// CheckResolution checks a resolution percentage; 0 keeps the scene's.
func CheckResolution(n int) error {
	if n < 0 || n > MaxResolutionPercentage {
		return settingError(KeyResolution, n, fmt.Sprintf("give a percentage from 1 to %d (e.g. 25 for a quick preview), or 0 to keep the scene's", MaxResolutionPercentage), nil)
	}
	return nil
}

// CheckSamples checks a number of render samples; 0 keeps the scene's.
func CheckSamples(n int) error {
	if n < 0 {
		return settingError(KeySamples, n, "give a positive number of samples, or 0 to keep the scene's", nil)
	}
	if n > MaxSamples {
		return settingError(KeySamples, n, fmt.Sprintf("give at most %d samples, or 0 to keep the scene's", MaxSamples), nil)
	}
	return nil
}

// CheckFrameCount checks how many frames one request renders.
func CheckFrameCount(n int) error {
	if n > MaxRequestFrames {
		return settingError(KeyFrames, fmt.Sprintf("(%d frames)", n), fmt.Sprintf("give at most %d frames per render; split a longer one into several", MaxRequestFrames), nil)
	}
	return nil
}

// CheckChunk checks a number of frames per chunk; 0 chooses automatically.
func CheckChunk(n int) error {
	if n < 0 {
		return settingError(KeyChunk, n, "give a positive number of frames per chunk, or 0 to choose automatically", nil)
	}
	return nil
}

// CheckStitch checks a stitch mode; "" is the default (concat).
func CheckStitch(mode string) error {
	if mode == "" {
		return nil
	}
	if _, err := plan.ParseStitchMode(mode); err != nil {
		return settingError(KeyStitch, mode, "use concat (join per-chunk segments) or encode (one pass over every frame)", err)
	}
	return nil
}

// CheckAttemptTimeout checks a time limit per attempt on the named engine;
// 0 is none.
func CheckAttemptTimeout(d time.Duration, engine string) error {
	switch {
	case d < 0:
		return settingError(KeyTimeout, d, "give a positive duration such as 30m, or 0 for none", nil)
	case d > 0 && d < MinBatchTimeout && engine == "batch":
		return settingError(KeyTimeout, d, fmt.Sprintf("AWS Batch needs at least %[1]s per attempt: give %[1]s or more, or 0 for none", fmtDuration(MinBatchTimeout)), nil)
	}
	return nil
}

// fmtDuration writes whole minutes as "1m", not "1m0s".
func fmtDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// Validate checks every limit of a request in one place; front-ends call it
// to check their input early, Submit calls it again. Errors are *SettingError.
func (r Request) Validate() error {
	bad := settingError
	if r.BlendPath == "" {
		return &SettingError{Key: KeySource, Reason: "no .blend file given"}
	}
	if r.Attempts != 0 { // 0: the engine's default
		if err := CheckAttempts(r.Attempts); err != nil {
			return err
		}
	}
	for _, err := range []error{CheckResolution(r.ResolutionPercentage), CheckSamples(r.Samples), CheckChunk(r.Chunk),
		CheckAttemptTimeout(r.AttemptTimeout, r.Engine), CheckStitch(string(r.Stitch))} {
		if err != nil {
			return err
		}
	}
	switch {
	case r.Parallelism < 0:
		return bad(KeyWorkers, r.Parallelism, "give a positive number of workers, or 0 for one", nil)
	case r.Threads < 0:
		return bad(KeyThreads, r.Threads, "give a positive number of threads per worker, or 0 for all cores", nil)
	case r.PollInterval < 0:
		return bad(KeyPoll, r.PollInterval, "give a positive duration", nil)
	case r.StoreOutageBudget < 0:
		return bad(KeyOutage, r.StoreOutageBudget, "give a positive duration such as 5m", nil)
	case r.LinkExpiry < 0 || r.LinkExpiry > store.MaxLinkExpiry:
		return bad(KeyLinkExpiry, r.LinkExpiry, "give a duration up to 7 days (S3's limit for presigned links)", nil)
	case r.StallWarning < 0:
		return bad(KeyStallWarning, r.StallWarning, "give a positive duration such as 15m", nil)
	}
	var frames []int
	if r.Frames != "" {
		var err error
		if frames, err = plan.ParseFrames(r.Frames); err != nil {
			return bad(KeyFrames, fmt.Sprintf("%q", r.Frames), err.Error(), err)
		}
		if err := CheckFrameCount(len(frames)); err != nil {
			return err
		}
	}
	for k, v := range r.Labels {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			return bad(KeyLabels, fmt.Sprintf("%q", k), "label names must be 1 to 128 characters and values at most 1024", nil)
		}
	}
	if err := r.checkRequestScope(); err != nil {
		return err
	}
	return r.checkRequestCeiling(frames)
}
