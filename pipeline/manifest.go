package pipeline

import "time"

// ChunkReport is the stored format both the worker (writer) and Run
// (reader) use. It is what one array child writes to store.ChunkReportKey: which
// frames it owned, which it rendered and which an earlier attempt had already
// stored, and how long each step took.
type ChunkReport struct {
	Index int `json:"index"`
	// Attempt is AWS_BATCH_JOB_ATTEMPT (1-based; 0 when not run by Batch).
	Attempt int `json:"attempt"`
	// Frames are the chunk's planned frames, in order.
	Frames []int `json:"frames"`
	// Rendered are the frames this attempt rendered; Skipped were already stored.
	Rendered      []int     `json:"rendered"`
	Skipped       []int     `json:"skipped"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	RenderSeconds float64   `json:"render_seconds"`
	EncodeSeconds float64   `json:"encode_seconds"`
	// Warnings are notes the user should see, e.g. denoising turned off.
	Warnings []string `json:"warnings,omitempty"`
	// Error is set when the attempt failed; ExitCode is the worker's exit status.
	Error    string `json:"error,omitempty"`
	ExitCode int    `json:"exit_code"`
}

// Manifest is the run's result, stored at store.ManifestKey by the stitch job.
// Keys are store keys (turn them into links with Store.Link).
type Manifest struct {
	RunID string `json:"run_id"`
	Scene string `json:"scene"`
	// VideoKey, PreviewKey and ThumbnailKey are store keys; the result
	// (framefleet render --json) carries links under the same names.
	VideoKey     string `json:"video"`
	PreviewKey   string `json:"preview"`
	ThumbnailKey string `json:"thumbnail"`
	// Frames are the store keys of every frame, in frame order.
	Frames     []string `json:"frames"`
	FrameCount int      `json:"frame_count"`
	// FPS is the exact rate as FFmpeg writes it ("30000/1001"); FPSFloat is the same in frames per second.
	FPS             string  `json:"frame_rate"`
	FPSFloat        float64 `json:"fps"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Width and Height are the video's pixel size (padded to even numbers).
	Width  int `json:"width"`
	Height int `json:"height"`
	// Stitch is how the video was made: "concat" or "encode".
	Stitch        string  `json:"stitch"`
	StitchSeconds float64 `json:"stitch_seconds"`
	// Chunks are the reports of every chunk, by index (a chunk whose report is
	// missing, e.g. one stitched from an earlier run's frames, is left out).
	Chunks    []ChunkReport `json:"chunks"`
	CreatedAt time.Time     `json:"created_at"`
	// Cost, added by Run from the engine's attempts once the stitch succeeded.
	VCPUSeconds float64   `json:"vcpu_seconds"`
	CostUSD     float64   `json:"cost_usd"`
	Attempts    []Attempt `json:"attempts,omitempty"`
}
