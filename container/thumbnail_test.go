package container

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/framefleet/framefleet/pipeline"
	"github.com/framefleet/framefleet/pipeline/plan"
)

func writePNG(t *testing.T, w, h int) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{R: uint8(x * 255 / w), G: uint8(y * 255 / h), B: uint8((x ^ y) & 0xff), A: 0xff})
		}
	}
	path := filepath.Join(t.TempDir(), "frame_000001.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestThumbnailIsASmallJPEG(t *testing.T) {
	tests := []struct {
		w, h         int
		wantW, wantH int
	}{
		{1920, 1080, 320, 180},
		{1000, 3000, 320, 960},
		{64, 36, 64, 36}, // never enlarged
		{321, 1, 320, 1},
	}
	for _, tc := range tests {
		data, err := Thumbnail(writePNG(t, tc.w, tc.h), ThumbnailWidth)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%dx%d: not a JPEG: %v", tc.w, tc.h, err)
		}
		if b := img.Bounds(); b.Dx() != tc.wantW || b.Dy() != tc.wantH {
			t.Errorf("%dx%d: thumbnail %dx%d, want %dx%d", tc.w, tc.h, b.Dx(), b.Dy(), tc.wantW, tc.wantH)
		}
	}
	if _, err := Thumbnail(filepath.Join(t.TempDir(), "missing.png"), ThumbnailWidth); err == nil {
		t.Error("a missing file made a thumbnail")
	}
	notImage := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(notImage, []byte("not a png"), 0o644)
	if _, err := Thumbnail(notImage, ThumbnailWidth); err == nil {
		t.Error("a damaged file made a thumbnail")
	}
}

// A real render at 960x540: each stored frame gets a JPEG thumbnail beside
// it, at most ThumbnailWidth wide and a few KB, fit for a chat message.
func TestRenderChunkStoresSmallThumbnails(t *testing.T) {
	blend := makeScene(t, map[string]any{"start": 1, "end": 2, "width": 960, "height": 540, "samples": 2})
	r := newRun(t, blend, plan.Plan{Frames: []int{1, 2}, ChunkSize: 2, Width: 960, Height: 540,
		Render: plan.RenderSettings{ImageFormat: "PNG"}})
	if _, err := r.worker.RenderChunk(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	for _, f := range []int{1, 2} {
		data, err := os.ReadFile(r.store.Path(pipeline.ThumbnailKey(r.plan.RunID, f)))
		if err != nil {
			t.Fatalf("frame %d has no thumbnail: %v", f, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("frame %d thumbnail is not a JPEG: %v", f, err)
		}
		if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 180 {
			t.Errorf("frame %d thumbnail is %dx%d, want 320x180", f, b.Dx(), b.Dy())
		}
		if len(data) > 16<<10 {
			t.Errorf("frame %d thumbnail is %d bytes, want a few KB (at most 16 KiB)", f, len(data))
		}
		t.Logf("frame %d thumbnail: %d bytes", f, len(data))
	}
}
