package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// RecordSchema is the run record's format version. A framefleet that finds a
// record with a higher number refuses it (*SchemaTooNewError) rather than
// misreading it; fields are only ever added within one version.
const RecordSchema = 1

// RunState is where a durable run is.
type RunState string

const (
	RunPlanned   RunState = "planned"   // recorded, nothing submitted yet
	RunSubmitted RunState = "submitted" // the engine accepted the jobs
	RunRunning   RunState = "running"   // chunks are rendering
	RunStitching RunState = "stitching" // every chunk done, the video is being made
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunCancelled RunState = "cancelled"
	// RunInterrupted: a local run whose host process is gone (its workers
	// died with it); watching it resumes it, rendering only missing frames.
	RunInterrupted RunState = "interrupted"
)

// Final reports whether a run in this state will never change again.
func (s RunState) Final() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled
}

// RunStates lists every state, in lifecycle order.
func RunStates() []RunState {
	return []RunState{RunPlanned, RunSubmitted, RunRunning, RunStitching, RunSucceeded, RunFailed, RunCancelled, RunInterrupted}
}

// RunSource is the scene a run renders.
type RunSource struct {
	// Name is what the front-end calls it: "shot.blend", "owner/repo/path.blend@ref".
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Key    string `json:"key"` // store key of the uploaded copy
}

// RunSettings are the request's settings a later process needs to resume or
// watch the run as the first one would have.
type RunSettings struct {
	Frames               string          `json:"frames,omitempty"`
	Chunk                int             `json:"chunk"`
	Parallelism          int             `json:"parallelism,omitempty"`
	ResolutionPercentage int             `json:"resolution_percentage,omitempty"`
	Samples              int             `json:"samples,omitempty"`
	Threads              int             `json:"threads,omitempty"`
	Stitch               plan.StitchMode `json:"stitch"`
	Force                bool            `json:"force,omitempty"`
	Attempts             int             `json:"attempts,omitempty"`
	AttemptTimeout       time.Duration   `json:"attempt_timeout,omitempty"`
	// Env is stored in the record (a resumed run needs it): never put secrets in it.
	Env               map[string]string `json:"env,omitempty"`
	PollInterval      time.Duration     `json:"poll_interval,omitempty"`
	LinkExpiry        time.Duration     `json:"link_expiry,omitempty"`
	PricePerVCPUHour  float64           `json:"price_per_vcpu_hour,omitempty"`
	StoreOutageBudget time.Duration     `json:"store_outage_budget,omitempty"`
	StallWarning      time.Duration     `json:"stall_warning,omitempty"`
}

// Progress is the run's latest snapshot, as the watcher saw it.
type Progress struct {
	FramesDone  int              `json:"frames_done"`
	FramesTotal int              `json:"frames_total"`
	Chunks      map[JobState]int `json:"chunks,omitempty"`
	// LatestFrame is the newest stored frame (by store time); LatestFrameKey
	// its store key and LatestThumbnailKey a small JPEG of it (a few KB),
	// empty until the worker stored one.
	LatestFrame        int    `json:"latest_frame,omitempty"`
	LatestFrameKey     string `json:"latest_frame_key,omitempty"`
	LatestThumbnailKey string `json:"latest_thumbnail_key,omitempty"`
	// VCPUSeconds and CostUSD are the cost so far: finished attempts only.
	VCPUSeconds float64   `json:"vcpu_seconds,omitempty"`
	CostUSD     float64   `json:"cost_usd,omitempty"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// RunFailure says why a run failed or was cancelled.
type RunFailure struct {
	Message      string         `json:"message"`
	Failures     []ChildFailure `json:"failures,omitempty"`
	StitchReason string         `json:"stitch_reason,omitempty"`
	// CancelReason is the reason given to Cancel (who cancelled, and why).
	CancelReason string `json:"cancel_reason,omitempty"`
	// CancelledBy is who cancelled (a user name, "GitHub Actions"), "" when not said.
	CancelledBy string `json:"cancelled_by,omitempty"`
	// Logs says where the workers' logs are.
	Logs string `json:"logs,omitempty"`
}

// RunHost is the lease of the process hosting a local run's workers. Only
// the holder submits or resumes the run; another watcher takes over only
// once the lease expired, or at once when the holder ran on the same
// machine (same boot and PID namespace) and its process is certainly gone.
type RunHost struct {
	ID      string    `json:"id"`
	PID     int       `json:"pid,omitempty"`
	Machine string    `json:"machine,omitempty"`
	Expires time.Time `json:"expires"`
	// Boot, PIDNS and Start identify the holder's process beyond its PID
	// (Linux; empty elsewhere): the boot id, the PID namespace, and the
	// process's start time in clock ticks after boot, so a reused PID or
	// another container's process is never taken for the holder.
	Boot  string `json:"boot_id,omitempty"`
	PIDNS string `json:"pid_ns,omitempty"`
	Start uint64 `json:"start_ticks,omitempty"`
}

// RunRecord is a durable run, stored at runs/<id>/run.json before anything
// is submitted and kept current by whoever watches it.
type RunRecord struct {
	Schema      int         `json:"schema"`
	ID          string      `json:"id"`
	State       RunState    `json:"state"`
	Source      RunSource   `json:"source"`
	Settings    RunSettings `json:"settings"`
	CacheKey    string      `json:"cache_key"`
	Scene       string      `json:"scene"`
	FramesTotal int         `json:"frames_total"`
	ChunkTotal  int         `json:"chunk_total"`
	Width       int         `json:"width"`
	Height      int         `json:"height"`
	FrameRate   string      `json:"frame_rate"`
	Blender     string      `json:"blender,omitempty"`
	Engine      string      `json:"engine"`
	StoreURI    string      `json:"store"`
	Handle      *Handle     `json:"handle,omitempty"`
	// HostBound: the engine's jobs die with the process that submitted
	// them (local), so Host must hold a live lease while the run is unfinished.
	HostBound   bool     `json:"host_bound,omitempty"`
	Host        *RunHost `json:"host,omitempty"`
	Submissions int      `json:"submissions,omitempty"` // 1 + resumes
	// PriorVCPUSeconds is the vCPU time of earlier submissions' attempts: a
	// resumed run's engine knows only its own.
	PriorVCPUSeconds float64           `json:"prior_vcpu_seconds,omitempty"`
	Progress         Progress          `json:"progress"`
	Labels           map[string]string `json:"labels,omitempty"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
	FinishedAt       *time.Time        `json:"finished_at,omitempty"`
	Result           *Result           `json:"result,omitempty"`
	Failure          *RunFailure       `json:"failure,omitempty"`
}

// Store layout of records and their indexes (beside store/layout.go's):
//
//	runs/<id>/run.json                 the record
//	runs/<id>/thumbs/frame_000123.jpg  small JPEG of each stored frame (the worker's)
//	runindex/time/<inverted-ns>-<id>   empty; keys sort newest first, so List reads one page
//	runindex/id/<id>                   empty; claims the id and answers prefix look-ups in one request
const (
	indexTimePrefix = "runindex/time/"
	indexIDPrefix   = "runindex/id/"
)

// RecordKey is where run id's record is stored.
func RecordKey(id string) string { return store.RunPrefix(id) + "run.json" }

// ThumbnailKey is the small JPEG preview the worker stores beside a frame.
func ThumbnailKey(runID string, frame int) string {
	return store.RunPrefix(runID) + "thumbs/" + store.FrameName(frame, "jpg")
}

func timeIndexKey(created time.Time, id string) string {
	return indexTimePrefix + fmt.Sprintf("%019d", math.MaxInt64-created.UnixNano()) + "-" + id
}

// idFromTimeIndex returns the run id in a time-index key.
func idFromTimeIndex(key string) string {
	rest := strings.TrimPrefix(key, indexTimePrefix)
	_, id, _ := strings.Cut(rest, "-")
	return id
}

// runIDAlphabet is Crockford's base32 in lower case: no i, l, o, u, so an
// id read aloud or retyped is not misread.
const runIDAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// RunIDLength is the length of a run id: 40 random bits.
const RunIDLength = 8

// NewRunID returns a short random id that is easy to type, e.g. "k3x9p2ad".
func NewRunID() (string, error) {
	b := make([]byte, RunIDLength)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	for i := range b {
		b[i] = runIDAlphabet[int(b[i])%len(runIDAlphabet)]
	}
	return string(b), nil
}

// validRunIDPrefix reports whether s could start a run id (so a typo is told
// apart from a run that does not exist, and no odd key reaches the store).
func validRunIDPrefix(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '-') {
			return false
		}
	}
	return true
}

// RunNotFoundError: no run has this id (or id prefix).
type RunNotFoundError struct{ ID string }

func (e *RunNotFoundError) Error() string {
	return fmt.Sprintf("no run %q in this store: list the runs to find its id", e.ID)
}

// AmbiguousRunError: the prefix matches several runs.
type AmbiguousRunError struct {
	Prefix  string
	Matches []string // some of the matching ids
}

func (e *AmbiguousRunError) Error() string {
	return fmt.Sprintf("run id prefix %q matches several runs (%s): give more of the id", e.Prefix, strings.Join(e.Matches, ", "))
}

// SchemaTooNewError: the record was written by a newer framefleet.
type SchemaTooNewError struct {
	ID     string
	Schema int // the record's
	Max    int // the newest this framefleet reads
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("run %s was recorded by a newer framefleet (record schema %d, this one reads up to %d): upgrade framefleet to read it",
		e.ID, e.Schema, e.Max)
}

// CorruptRecordError: the record is not a run record this framefleet can parse.
type CorruptRecordError struct {
	ID  string
	Key string
	Err error
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("run %s: record %s is damaged (%v): it cannot be watched or resumed; render again to make a new run", e.ID, e.Key, e.Err)
}

func (e *CorruptRecordError) Unwrap() error { return e.Err }

// decodeRecord parses a stored record, refusing newer schemas.
func decodeRecord(id string, data []byte) (*RunRecord, error) {
	var head struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, &CorruptRecordError{ID: id, Key: RecordKey(id), Err: err}
	}
	schema, err := strconv.Atoi(string(head.Schema))
	if err != nil || schema < 1 {
		return nil, &CorruptRecordError{ID: id, Key: RecordKey(id), Err: fmt.Errorf("schema %s is not a positive number", head.Schema)}
	}
	if schema > RecordSchema {
		return nil, &SchemaTooNewError{ID: id, Schema: schema, Max: RecordSchema}
	}
	var rec RunRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, &CorruptRecordError{ID: id, Key: RecordKey(id), Err: err}
	}
	if rec.ID != id || rec.State == "" {
		return nil, &CorruptRecordError{ID: id, Key: RecordKey(id), Err: fmt.Errorf("record names run %q in state %q", rec.ID, rec.State)}
	}
	return &rec, nil
}

func encodeRecord(rec *RunRecord) ([]byte, error) {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode run record %s: %w", rec.ID, err)
	}
	return b, nil
}

// changeRefusedError carries an error the change function returned: a
// decision about the record (cancelled meanwhile, lease lost), never an
// outage, so retrying loops never retry it.
type changeRefusedError struct{ err error }

func (e *changeRefusedError) Error() string { return e.err.Error() }
func (e *changeRefusedError) Unwrap() error { return e.err }

// errNoChange tells updateRecord that the change function changed nothing.
var errNoChange = errors.New("no change")

// readRecord returns the record and its version.
func readRecord(ctx context.Context, st store.Store, id string) (*RunRecord, store.Version, error) {
	data, ver, err := st.GetVersioned(ctx, RecordKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", &RunNotFoundError{ID: id}
	}
	if err != nil {
		return nil, "", fmt.Errorf("read run %s: %w", id, err)
	}
	rec, err := decodeRecord(id, data)
	return rec, ver, err
}

// updateRecord applies change to the current record and writes it back only
// if nobody wrote in between, retrying on a conflict with the fresh record:
// a watcher and a cancel never lose each other's update. change may return
// errNoChange to skip the write; it must not keep state between calls.
func updateRecord(ctx context.Context, st store.Store, id string, clk Clock, change func(*RunRecord) error) (*RunRecord, error) {
	return updateReadRecord(ctx, st, id, nil, "", clk, change)
}

// updateReadRecord is updateRecord starting from rec at version ver, as the
// caller just read them (either unknown: read first), so a caller that reads
// the record anyway does not read it twice: the first write is conditional
// on ver, and a conflict reads the fresh record as usual. rec is changed in place.
func updateReadRecord(ctx context.Context, st store.Store, id string, rec *RunRecord, ver store.Version, clk Clock, change func(*RunRecord) error) (*RunRecord, error) {
	for attempt := 0; ; attempt++ {
		if rec == nil || ver == "" {
			var err error
			if rec, ver, err = readRecord(ctx, st, id); err != nil {
				return nil, err
			}
		}
		if err := change(rec); errors.Is(err, errNoChange) {
			return rec, nil
		} else if err != nil {
			return rec, &changeRefusedError{err}
		}
		rec.UpdatedAt = clk.Now().UTC()
		data, err := encodeRecord(rec)
		if err != nil {
			return nil, err
		}
		if _, err := st.PutIfVersion(ctx, RecordKey(id), data, ver); err == nil {
			return rec, nil
		} else if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("update run %s: %w", id, err)
		}
		rec = nil
		if attempt >= 100 {
			return nil, fmt.Errorf("update run %s: 100 conflicting writers in a row: %w", id, store.ErrConflict)
		}
		// Someone else wrote: read their version and apply the change again.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-clk.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}
