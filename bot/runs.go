package bot

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/framefleet/framefleet/pipeline"
)

// Runs is what the bot needs from the durable-runs pipeline (pipeline.Runs
// through pipeline/fleet; see fleet.go). Every method may be called from any
// goroutine.
type Runs interface {
	// EngineName is "local" (runs queue on this host) or "batch".
	EngineName() string
	// Submit starts a run and returns once it is submitted; an identical
	// unfinished or finished run is returned instead (joined).
	Submit(ctx context.Context, s Submission) (Run, error)
	// Rendering returns the unfinished run a Submit of s would join, if any
	// (such a request does not wait in the local queue).
	Rendering(ctx context.Context, s Submission) (Run, bool)
	// Watch follows a run until it is final (resuming an interrupted local
	// run), calling obs with each change; it returns the final snapshot.
	Watch(ctx context.Context, id string, obs func(Update)) (Run, error)
	// Cancel stops a run; cancelling a final run is not an error.
	Cancel(ctx context.Context, id, reason string) (Run, error)
	// Get returns a run by ID or unique prefix (ErrRunNotFound when none).
	Get(ctx context.Context, id string) (Run, error)
	// List returns the newest runs carrying every label given, at most
	// limit, without what only the store knows (FailedFrames, VideoSize,
	// PreviewKey): Get a run for those.
	List(ctx context.Context, labels map[string]string, limit int) ([]Run, error)
	// Open reads a stored object (the video, the preview, a thumbnail).
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	// Link is a URL a person can open for a stored object.
	Link(ctx context.Context, key string) (string, error)
}

// Markers are small objects with conditional writes, kept in the runs'
// store: the bot's own durable state (pending requests, posted finals).
type Markers interface {
	// GetMarker returns ErrNoMarker when key is absent.
	GetMarker(ctx context.Context, key string) (data []byte, version string, err error)
	// PutMarker creates key when match is "", else replaces it only if its
	// version is still match; otherwise an error wrapping ErrMarkerConflict.
	PutMarker(ctx context.Context, key string, data []byte, match string) (string, error)
	DeleteMarker(ctx context.Context, key string) error
	ListMarkers(ctx context.Context, prefix string) ([]string, error)
}

// Errors the Runs and Markers implementations wrap.
var (
	ErrRunNotFound    = errors.New("run not found")
	ErrNoMarker       = errors.New("marker not found")
	ErrMarkerConflict = errors.New("marker changed by another writer")
)

// Submission is one render to start.
type Submission struct {
	BlendPath  string // the fetched .blend on this host
	Root       string // the project root its fetched files are laid out from
	SourceName string // as the user named it, e.g. "owner/repo/shot.blend@main"
	Frames     string
	Chunk      int
	Resolution int
	Samples    int
	Labels     map[string]string
}

// Run is a snapshot of a run, reduced to what the bot shows.
type Run struct {
	ID          string
	State       pipeline.RunState
	Final       bool
	Scene       string
	SourceName  string
	Frames      string // the frame list rendered, e.g. "1-100x2"
	FramesDone  int
	FramesTotal int
	ChunksTotal int
	LatestFrame int
	// ThumbnailKey is the newest frame's small JPEG in the store (when the
	// workers make one), FrameKey the frame itself.
	ThumbnailKey string
	FrameKey     string
	Width        int
	Height       int
	FrameRate    string
	Engine       string
	Labels       map[string]string
	CreatedAt    time.Time
	FinishedAt   time.Time
	// VideoKey, VideoSize and PreviewKey are set when the run succeeded.
	VideoKey   string
	VideoSize  int64
	PreviewKey string
	// Failure is why the run failed or was cancelled; FailedChunk and
	// FailedFrames say where (-1 and "" when unknown).
	Failure      string
	FailedChunk  int
	FailedFrames string
	CostUSD      float64
}

// UpdateKind names what changed.
type UpdateKind string

const (
	UpdateSubmitted   UpdateKind = "submitted"
	UpdateProgress    UpdateKind = "progress"
	UpdateFirstFrame  UpdateKind = "first_frame"
	UpdateChunkFailed UpdateKind = "chunk_failed"
	UpdateRetried     UpdateKind = "chunk_retried"
	UpdateStitching   UpdateKind = "stitching"
	UpdateResumed     UpdateKind = "resumed"
	UpdateStalled     UpdateKind = "stalled"
)

// Update is one change Watch reports.
type Update struct {
	Kind    UpdateKind
	Run     Run
	Message string
}
