// Package plan turns a scene's frames into array-job chunks. A worker recomputes
// its chunk from the stored plan and its array index alone, so everything here
// is a pure function of the Plan value.
package plan

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Schema is bumped whenever a stored plan.json changes meaning. Schema 2
// added Inputs: a worker that does not know it would render the scene
// without its textures and libraries, so it refuses the plan instead.
const Schema = 2

// MinSchema is the oldest plan a worker still renders (schema 1: the scene
// file alone, without an input manifest).
const MinSchema = 1

// MaxArraySize is AWS Batch's limit on array children; plans never exceed it.
const MaxArraySize = 10000

// Plan is everything a worker needs; it is stored as runs/<run-id>/plan.json.
type Plan struct {
	Schema    int       `json:"schema"`
	RunID     string    `json:"run_id"`
	CreatedAt time.Time `json:"created_at"`
	Blend     Blend     `json:"blend"`
	Scene     string    `json:"scene"`
	// Frames are sorted, unique frame numbers to render.
	Frames    []int     `json:"frames"`
	ChunkSize int       `json:"chunk_size"`
	FrameRate FrameRate `json:"frame_rate"`
	// Width and Height are the output pixel size after the resolution percentage.
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Engine string `json:"engine"`
	// Blender is the version the workers run (e.g. "3.4.1"): part of what a
	// render is, so a different Blender does not reuse a cached result.
	Blender string         `json:"blender,omitempty"`
	Render  RenderSettings `json:"render"`
	Stitch  StitchMode     `json:"stitch"`
	// Inputs names the run's input manifest: every file the scene needs,
	// laid out as a workspace the worker opens the scene in. Nil in
	// schema 1 plans, which render Blend alone.
	Inputs *Inputs `json:"inputs,omitempty"`
}

// Inputs points a worker at the run's input manifest.
type Inputs struct {
	// Key is the manifest's store key (runs/<id>/inputs.json).
	Key string `json:"key"`
	// Digest is the manifest's digest (pipeline.InputManifest.Digest):
	// the worker checks it, and it is part of the cache key.
	Digest string `json:"digest"`
	// Scene is the scene's path in the workspace.
	Scene string `json:"scene"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// Blend identifies the stored scene file.
type Blend struct {
	Key     string `json:"key"` // store key, blends/<sha256>.blend
	SHA256  string `json:"sha256"`
	Name    string `json:"name"` // original file name, for humans
	Size    int64  `json:"size"`
	Version string `json:"version"` // Blender version that saved it, e.g. "3.4"
}

// RenderSettings are preview-quality overrides applied before rendering,
// never written back into the .blend.
type RenderSettings struct {
	ResolutionPercentage int `json:"resolution_percentage,omitempty"` // 0 keeps the scene's
	Samples              int `json:"samples,omitempty"`               // 0 keeps the scene's
	Threads              int `json:"threads,omitempty"`               // Blender -t per worker; 0 = all
	// ImageFormat is what frames are saved as: "PNG" unless the scene's own
	// still format is kept (video formats always become PNG).
	ImageFormat string `json:"image_format"`
}

// StitchMode chooses how the final video is made.
type StitchMode string

const (
	// StitchConcat joins per-chunk segments without re-encoding.
	StitchConcat StitchMode = "concat"
	// StitchEncode encodes all frames in one pass.
	StitchEncode StitchMode = "encode"
)

// ParseStitchMode validates a --stitch value.
func ParseStitchMode(s string) (StitchMode, error) {
	switch StitchMode(s) {
	case StitchConcat, StitchEncode:
		return StitchMode(s), nil
	case "":
		return StitchConcat, nil
	}
	return "", fmt.Errorf("unknown stitch mode %q: use %q or %q", s, StitchConcat, StitchEncode)
}

// FrameRate is an exact rational rate, e.g. 30000/1001.
type FrameRate struct {
	Num int `json:"num"`
	Den int `json:"den"`
}

// FrameRateFromScene converts Blender's fps / fps_base into an exact rational.
// fps_base is a float32 in the file (1.001 is stored as 1.00100005), so it is
// rounded to thousandths, which is how Blender's presets define it.
func FrameRateFromScene(fps int, fpsBase float64) (FrameRate, error) {
	if fps <= 0 || fpsBase <= 0 || math.IsNaN(fpsBase) || math.IsInf(fpsBase, 0) {
		return FrameRate{}, fmt.Errorf("scene frame rate %d/%g is not positive: set Output Properties > Frame Rate in Blender", fps, fpsBase)
	}
	den := int(math.Round(fpsBase * 1000))
	if den <= 0 {
		return FrameRate{}, fmt.Errorf("scene fps_base %g is too small", fpsBase)
	}
	r := FrameRate{Num: fps * 1000, Den: den}
	g := gcd(r.Num, r.Den)
	return FrameRate{Num: r.Num / g, Den: r.Den / g}, nil
}

// String formats the rate as FFmpeg expects it, e.g. "30000/1001" or "24".
func (r FrameRate) String() string {
	if r.Den == 1 {
		return fmt.Sprint(r.Num)
	}
	return fmt.Sprintf("%d/%d", r.Num, r.Den)
}

// Float is the rate in frames per second.
func (r FrameRate) Float() float64 { return float64(r.Num) / float64(r.Den) }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// NumChunks is the array size.
func (p *Plan) NumChunks() int {
	if p.ChunkSize <= 0 {
		return 0
	}
	return (len(p.Frames) + p.ChunkSize - 1) / p.ChunkSize
}

// ErrChunkOutOfRange is returned for an array index the plan does not have.
var ErrChunkOutOfRange = errors.New("array index out of range")

// Chunk returns the frames of array child i.
func (p *Plan) Chunk(i int) ([]int, error) {
	n := p.NumChunks()
	if i < 0 || i >= n {
		return nil, fmt.Errorf("chunk %d of a plan with %d chunks: %w", i, n, ErrChunkOutOfRange)
	}
	lo := i * p.ChunkSize
	hi := min(lo+p.ChunkSize, len(p.Frames))
	return p.Frames[lo:hi], nil
}

// Validate checks a plan read from a store before a worker trusts it.
func (p *Plan) Validate() error {
	switch {
	case p.Schema < MinSchema || p.Schema > Schema:
		return fmt.Errorf("plan schema %d, this framefleet understands %d to %d: use the same framefleet version for submit and worker", p.Schema, MinSchema, Schema)
	case p.Inputs != nil && (p.Inputs.Key == "" || p.Inputs.Scene == "" || p.Inputs.Digest == ""):
		return errors.New("plan names an input manifest without its key, digest or scene")
	case p.RunID == "":
		return errors.New("plan has no run_id")
	case p.Blend.Key == "":
		return errors.New("plan has no blend key")
	case len(p.Frames) == 0:
		return errors.New("plan has no frames")
	case p.ChunkSize <= 0:
		return fmt.Errorf("plan chunk size %d is not positive", p.ChunkSize)
	case p.NumChunks() > MaxArraySize:
		return fmt.Errorf("plan has %d chunks, more than the %d AWS Batch allows", p.NumChunks(), MaxArraySize)
	case p.FrameRate.Num <= 0 || p.FrameRate.Den <= 0:
		return fmt.Errorf("plan frame rate %v is not positive", p.FrameRate)
	}
	for i := 1; i < len(p.Frames); i++ {
		if p.Frames[i] <= p.Frames[i-1] {
			return fmt.Errorf("plan frames are not sorted and unique at position %d", i)
		}
	}
	return nil
}
