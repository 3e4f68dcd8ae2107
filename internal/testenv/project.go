package testenv

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// Colours of the textured project's textures.
var (
	Green   = color.RGBA{0, 255, 0, 255}
	Blue    = color.RGBA{0, 0, 255, 255}
	Red     = color.RGBA{255, 0, 0, 255}
	Magenta = color.RGBA{255, 0, 255, 255}
)

// Project is a small project made by Blender whose scene needs files beside it:
//
//	textures/left.png    pure green, used by the shot's own plane (//../textures/left.png)
//	lib/prop.blend       a plane linked into the shot (//../lib/prop.blend)
//	lib/tex/right.png    pure blue, the library's own texture (//tex/right.png)
//	shots/shot.blend     the scene: the green plane on the left half of the
//	                     frame, the linked blue plane on the right half
//
// One 64x32 frame (frame 1), rendered with Cycles in a second.
type Project struct {
	Root  string
	Scene string // Root/shots/shot.blend
}

// MakeProject builds the textured project in root (created if needed).
func MakeProject(t testing.TB, root string) Project {
	t.Helper()
	return MakeProjectStoring(t, root, "relative")
}

// MakeProjectStoring builds the textured project with the shot's two paths
// (its texture, its library) stored as mode says: "relative" (//../...),
// "absolute" (root/...) or "windows" (C:\Users\artist\proj\...).
func MakeProjectStoring(t testing.TB, root, mode string) Project {
	t.Helper()
	for _, d := range []string{"textures", "lib/tex", "shots"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	WritePNG(t, filepath.Join(root, "textures", "left.png"), Green)
	WritePNG(t, filepath.Join(root, "lib", "tex", "right.png"), Blue)
	BlenderScript(t, filepath.Join(RepoRoot(), "internal", "testenv", "testdata", "make_project.py"), root, mode)
	return Project{Root: root, Scene: filepath.Join(root, "shots", "shot.blend")}
}

// WritePNG writes a 4x4 image of one colour.
func WritePNG(t testing.TB, path string, c color.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for y := range 4 {
		for x := range 4 {
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// HalvesOf reads a rendered frame of the project and returns the colours
// at the middle of its left and right halves.
func HalvesOf(t testing.TB, frame []byte) (left, right color.RGBA) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(frame))
	if err != nil {
		t.Fatalf("decode frame: %v", err)
	}
	b := img.Bounds()
	at := func(x, y int) color.RGBA {
		r, g, bl, a := img.At(x, y).RGBA()
		return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}
	}
	mid := b.Min.Y + b.Dy()/2
	return at(b.Min.X+b.Dx()/4, mid), at(b.Min.X+3*b.Dx()/4, mid)
}

// Near reports whether two colours differ by at most 8 per channel
// (Cycles with one sample is exact for flat emission, but not to the bit
// after the PNG round trip of every Blender build).
func Near(a, b color.RGBA) bool {
	d := func(x, y uint8) bool { return max(x, y)-min(x, y) <= 8 }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}
