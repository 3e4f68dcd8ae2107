// Package blend reads a scene's render settings straight from a .blend file,
// without Blender: plain, gzip or zstd; 4- or 8-byte pointers; little or big
// endian; the 12-byte header and the 17-byte header of Blender 5.x.
package blend

// Info is what framefleet needs to know about a .blend. JSON names are
// Blender's own Python names (bpy.types.RenderSettings and friends).
type Info struct {
	File        string `json:"file"`
	Version     string `json:"version"`     // "3.4", "2.79", "5.0"
	Compression string `json:"compression"` // none | gzip | zstd

	Scene  string   `json:"scene"`  // the active scene
	Scenes []string `json:"scenes"` // every scene, in file order

	FrameStart int     `json:"frame_start"`
	FrameEnd   int     `json:"frame_end"`
	FrameStep  int     `json:"frame_step"`
	FPS        int     `json:"fps"`
	FPSBase    float64 `json:"fps_base"`

	ResolutionX          int `json:"resolution_x"`
	ResolutionY          int `json:"resolution_y"`
	ResolutionPercentage int `json:"resolution_percentage"`

	// Engine is the stored engine string (e.g. BLENDER_EEVEE_NEXT); empty
	// before 2.5, which stores none.
	Engine     string `json:"engine,omitempty"`
	FileFormat string `json:"file_format"` // PNG, JPEG, OPEN_EXR, FFMPEG, UNKNOWN(n)
	FrameCount int    `json:"frame_count"`

	// VersionNumber is the header's number: 304 for 3.4, 500 for 5.0.
	VersionNumber int `json:"-"`
	// Thumbnail is the embedded preview, or nil when the file has none.
	Thumbnail *Thumbnail `json:"-"`
}

// Thumbnail is the TEST block's image, rows already top-down.
type Thumbnail struct {
	Width, Height int
	RGBA          []byte // Width*Height*4 bytes
}
