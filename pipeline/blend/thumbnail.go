package blend

import (
	"errors"
	"image"
	"image/png"
	"io"
)

// maxThumbSide bounds the thumbnail's sides; Blender writes 128 or less.
const maxThumbSide = 4096

// decodeThumbnail decodes the TEST block: int32 width, int32 height, then
// RGBA8 rows bottom-to-top. A malformed preview is dropped (nil) rather than
// failing the whole read: the scene settings do not depend on it.
func decodeThumbnail(b *block, h *header) *Thumbnail {
	if b == nil || len(b.data) < 8 {
		return nil
	}
	w := int64(int32(h.order.Uint32(b.data[0:])))
	ht := int64(int32(h.order.Uint32(b.data[4:])))
	if w <= 0 || ht <= 0 || w > maxThumbSide || ht > maxThumbSide || int64(len(b.data))-8 != w*ht*4 {
		return nil
	}
	stride := int(w) * 4
	px := b.data[8:]
	out := make([]byte, len(px))
	for y := 0; y < int(ht); y++ {
		src := (int(ht) - 1 - y) * stride
		copy(out[y*stride:(y+1)*stride], px[src:src+stride])
	}
	return &Thumbnail{Width: int(w), Height: int(ht), RGBA: out}
}

// PNG writes the thumbnail as a PNG image.
func (t *Thumbnail) PNG(w io.Writer) error {
	if t == nil || t.Width <= 0 || t.Height <= 0 || len(t.RGBA) != t.Width*t.Height*4 {
		return errors.New("blend: thumbnail has no pixels or a size that does not match them")
	}
	img := &image.NRGBA{Pix: t.RGBA, Stride: t.Width * 4, Rect: image.Rect(0, 0, t.Width, t.Height)}
	return png.Encode(w, img)
}
