package blend

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

// TestCorpus reads every real file in ../shared/blendfiles through ReadFile
// and ReadStream and compares every field with expected.json.
func TestCorpus(t *testing.T) {
	dir := corpusDir(t)
	expected := testenv.CorpusExpected(t)
	names := make([]string, 0, len(expected))
	for name := range expected {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatal("expected.json lists no files")
	}
	for _, name := range names {
		want := expected[name]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			fromFile, err := ReadFile(path)
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			if fromFile.File != name {
				t.Errorf("File = %q, want %q", fromFile.File, name)
			}
			compareExpected(t, "ReadFile", fromFile, want)

			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fromStream, err := ReadStream(f)
			if err != nil {
				t.Fatalf("ReadStream: %v", err)
			}
			compareExpected(t, "ReadStream", fromStream, want)

			checkThumbnail(t, decompress(t, readCorpus(t, name)), fromFile.Thumbnail)
			checkThumbnail(t, decompress(t, readCorpus(t, name)), fromStream.Thumbnail)
		})
	}
}

// compareExpected requires the JSON form of got to hold exactly the keys and
// values of want ("file" aside, which expected.json does not list).
func compareExpected(t *testing.T, via string, got *Info, want map[string]any) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var have map[string]any
	if err := json.Unmarshal(b, &have); err != nil {
		t.Fatal(err)
	}
	delete(have, "file")
	for k, w := range want {
		h, ok := have[k]
		if !ok {
			t.Errorf("%s: %s missing, want %v", via, k, w)
			continue
		}
		if k == "fps_base" {
			if math.Abs(h.(float64)-w.(float64)) > 1e-4 {
				t.Errorf("%s: fps_base = %v, want %v", via, h, w)
			}
			continue
		}
		hj, _ := json.Marshal(h)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(hj, wj) {
			t.Errorf("%s: %s = %s, want %s", via, k, hj, wj)
		}
	}
	for k, h := range have {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected field %s = %v", via, k, h)
		}
	}
}

// checkThumbnail requires a thumbnail exactly when the file has a TEST block,
// with rows flipped top-down, and a PNG that decodes to the same size.
func checkThumbnail(t *testing.T, raw []byte, th *Thumbnail) {
	t.Helper()
	l := walkTest(t, raw)
	var test *testBlock
	for i := range l.blocks {
		if l.blocks[i].code == "TEST" {
			test = &l.blocks[i]
			break
		}
	}
	if test == nil {
		if th != nil {
			t.Fatalf("thumbnail %dx%d but the file has no TEST block", th.Width, th.Height)
		}
		return
	}
	if th == nil {
		t.Fatal("the file has a TEST block but no thumbnail was decoded")
	}
	p := raw[test.off+test.headerLen : test.end()]
	w, h := int(l.order.Uint32(p)), int(l.order.Uint32(p[4:]))
	if th.Width != w || th.Height != h || len(th.RGBA) != w*h*4 {
		t.Fatalf("thumbnail %dx%d (%d bytes), TEST says %dx%d", th.Width, th.Height, len(th.RGBA), w, h)
	}
	stride := w * 4
	lastStored := p[8+(h-1)*stride : 8+h*stride]
	if !bytes.Equal(th.RGBA[:stride], lastStored) {
		t.Error("thumbnail row 0 is not the last stored row: rows not flipped top-down")
	}
	var buf bytes.Buffer
	if err := th.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("PNG is %v, want %dx%d", b, w, h)
	}
}

// TestActiveSceneFromGLOB checks that real files resolve the active scene
// through GLOB.curscene, not a fallback.
func TestActiveSceneFromGLOB(t *testing.T) {
	for _, name := range []string{"BlenderDefault_248.blend", "yxa_1.blend", "BlenderDefault_262.blend",
		"28_sk_no_reset.blend", "37_lamp_Cycles.blend", "BlenderDefault_250_Compressed.blend"} {
		t.Run(name, func(t *testing.T) {
			bs, d := walkKept(t, decompress(t, readCorpus(t, name)))
			if _, how := activeScene(bs, d, make([]string, len(bs.scenes))); how != "curscene" {
				t.Fatalf("active scene found by %s, want curscene", how)
			}
		})
	}
}

func walkKept(t testing.TB, raw []byte) (*blocks, *sdna) {
	t.Helper()
	bs, err := walk(newAtCursor(bytes.NewReader(raw), int64(len(raw))), defaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseSDNA(bs.dna1.data, bs.hdr.order, bs.hdr.ptrSize, bs.dna1.offset)
	if err != nil {
		t.Fatal(err)
	}
	return bs, d
}

func TestThumbnailPNGRejectsBadSize(t *testing.T) {
	for _, th := range []*Thumbnail{nil, {}, {Width: 2, Height: 2, RGBA: make([]byte, 15)}} {
		if err := th.PNG(&bytes.Buffer{}); err == nil {
			t.Errorf("PNG(%+v) succeeded", th)
		}
	}
}

func TestVersionString(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string
		number int
	}{
		{"BLENDER-v304", "3.4", 304},
		{"BLENDER_v279", "2.79", 279},
		{"BLENDER_V260", "2.60", 260},
		{"BLENDER17-01v0502", "5.2", 502},
		{"BLENDER17-01v0500", "5.0", 500},
	} {
		h, err := parseHeader(newAtCursor(bytes.NewReader([]byte(tc.header)), int64(len(tc.header))))
		if err != nil {
			t.Fatalf("%s: %v", tc.header, err)
		}
		if got := versionString(h); got != tc.want || h.version != tc.number {
			t.Errorf("%s: version %q (%d), want %q (%d)", tc.header, got, h.version, tc.want, tc.number)
		}
	}
}
