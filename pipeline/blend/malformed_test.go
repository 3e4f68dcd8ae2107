package blend

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func gzipBytes(t testing.TB, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdBytes compresses p as one plain zstd stream, with no seek table.
func zstdBytes(t testing.TB, p []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(p, nil)
}

func TestMalformed(t *testing.T) {
	v279 := readCorpus(t, "01_cs_rotate.blend")
	v500 := readCorpus(t, "27_apply_modifier_with_shapekeys.blend")
	zstdFile := readCorpus(t, "37_lamp_Cycles.blend")
	l279 := walkTest(t, v279)

	withHeader := func(src []byte, hdrLen int, h string) []byte {
		return append([]byte(h), src[hdrLen:]...)
	}
	setLen := func(src []byte, code string, n int64) []byte {
		out := bytes.Clone(src)
		l := walkTest(t, out)
		l.setLen(out, l.find(t, code), n)
		return out
	}
	// A DATA block in the middle, far from the end, to skip over.
	middle := l279.blocks[len(l279.blocks)/2]

	for _, tc := range []struct {
		name   string
		data   []byte
		kind   error
		detail string // must appear in the message
	}{
		{"empty", nil, ErrEmpty, ""},
		{"not a blend", []byte("hello, this is a text file\n"), ErrNotBlend, "BLENDER"},
		{"png file", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), ErrNotBlend, ""},
		{"git lfs pointer", []byte("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"),
			ErrGitLFSPointer, "git lfs pull"},
		{"only magic", []byte("BLENDER"), ErrTruncated, "header"},
		{"half magic", []byte("BLEN"), ErrTruncated, ""},
		{"inside legacy header", v279[:10], ErrTruncated, "header"},
		{"inside 17-byte header", v500[:14], ErrTruncated, "header"},
		{"header only", v279[:12], ErrTruncated, "ENDB"},
		{"future header", withHeader(v500, 17, "BLENDER18-02v0600"), ErrUnsupportedFormat, "BLENDER18-02v0600"},
		{"future format version", withHeader(v500, 17, "BLENDER17-02v0600"), ErrUnsupportedFormat, "file-format version 02, saved by Blender 6.0"},
		{"BLENDER plus garbage", append([]byte("BLENDER\x01\xfe\x00garbage"), make([]byte, 64)...), ErrCorrupt, ""},
		{"bad endianness byte", withHeader(v279, 12, "BLENDER-x279"), ErrCorrupt, ""},
		{"non-digit version", withHeader(v279, 12, "BLENDER-v2x9"), ErrCorrupt, ""},
		{"negative len", setLen(v279, middle.code, -5), ErrCorrupt, "negative"},
		{"negative len 17-byte header", setLen(v500, "DNA1", -1), ErrCorrupt, "negative"},
		{"len past EOF", setLen(v279, middle.code, int64(len(v279))), ErrTruncated, "payload"},
		{"huge len skipped block", setLen(v279, middle.code, 0x7fffffff), ErrTruncated, ""},
		{"huge len kept block", setLen(v279, "DNA1", 0x7fffffff), ErrTruncated, "DNA1"},
		{"huge int64 len", setLen(v500, "DNA1", 1<<62), ErrTruncated, "DNA1"},
		{"huge int64 len SC", setLen(v500, "SC\x00\x00", 1<<62), ErrTruncated, ""},
		{"missing DNA1", without(v279, l279.find(t, "DNA1")), ErrCorrupt, "DNA1"},
		{"gzip of text", gzipBytes(t, []byte("just some text, not a blend file at all")), ErrNotBlend, "gzip"},
		{"zstd of text", zstdBytes(t, []byte("just some text, not a blend file at all")), ErrNotBlend, "zstd"},
		{"gzip of nothing", gzipBytes(t, nil), ErrNotBlend, ""},
		{"gzip truncated", gzipBytes(t, v279)[:5000], ErrTruncated, ""},
		{"gzip header only", gzipBytes(t, v279)[:5], ErrTruncated, ""},
		{"zstd truncated", zstdFile[:len(zstdFile)/2], ErrTruncated, ""},
		{"zstd magic only", zstdFile[:4], ErrTruncated, ""},
		{"zstd corrupt", scramble(zstdFile, 200, 4000), ErrCorrupt, ""},
		{"gzip corrupt", scramble(gzipBytes(t, v279), 200, 4000), ErrCorrupt, ""},
		{"gzip of a truncated blend", gzipBytes(t, v279[:len(v279)/2]), ErrTruncated, ""},
		{"no scene", noScenes(t, v279), ErrNoScene, ""},
		{"SC block SDNA index out of range", setSDNA(t, v279, 24, 16, 0x7fff), ErrCorrupt, "SDNA index"},
		{"SC block SDNA index of another struct", setSDNA(t, v500, 32, 4, 0), ErrCorrupt, "not Scene"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readBoth(t, tc.data)
			assertKind(t, err, tc.kind)
			_, errStream := ReadStream(bytes.NewReader(tc.data))
			for _, err := range []error{err, errStream} {
				if !strings.Contains(err.Error(), tc.detail) {
					t.Errorf("message %q does not mention %q", err, tc.detail)
				}
			}
		})
	}
}

// scramble flips bits in data[from:to], keeping the length.
func scramble(data []byte, from, to int) []byte {
	out := bytes.Clone(data)
	for i := from; i < to && i < len(out); i++ {
		out[i] ^= 0x5a
	}
	return out
}

// setSDNA sets the SDNAnr of the first SC block; at is its offset in a
// block header of bheadSize bytes.
func setSDNA(t testing.TB, src []byte, bheadSize, at int, v uint32) []byte {
	out := bytes.Clone(src)
	b := walkTest(t, out).find(t, "SC\x00\x00")
	if b.headerLen != bheadSize {
		t.Fatalf("block header is %d bytes, want %d", b.headerLen, bheadSize)
	}
	binary.LittleEndian.PutUint32(out[b.off+at:], v)
	return out
}

// noScenes renames every SC block so no scene remains.
func noScenes(t testing.TB, src []byte) []byte {
	out := bytes.Clone(src)
	for _, b := range walkTest(t, out).blocks {
		if b.code == "SC\x00\x00" {
			copy(out[b.off:], "XX")
		}
	}
	return out
}

// TestTruncatedEverywhere cuts real files at every block boundary, inside
// every block header and inside every payload: each cut must be reported as
// truncated, except a cut right after the ENDB code, which Blender accepts.
func TestTruncatedEverywhere(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream int // also ReadStream every n-th block (it re-reads the whole prefix)
	}{
		{"BlenderDefault_248.blend", 1},                // BHead4, little-endian
		{"yxa_1.blend", 1},                             // BHead4, big-endian
		{"BlenderDefault_262.blend", 4},                // SmallBHead8
		{"27_apply_modifier_with_shapekeys.blend", 25}, // LargeBHead8
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := readCorpus(t, tc.name)
			l := walkTest(t, data)
			whole, err := ReadAt(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			check := func(cut int, stream bool, what string) {
				t.Helper()
				p := data[:cut]
				_, err := ReadAt(bytes.NewReader(p), int64(cut))
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("cut at %d (%s): ReadAt error %v, want ErrTruncated", cut, what, err)
				}
				if stream {
					_, err := ReadStream(bytes.NewReader(p))
					if !errors.Is(err, ErrTruncated) {
						t.Fatalf("cut at %d (%s): ReadStream error %v, want ErrTruncated", cut, what, err)
					}
				}
			}
			for i, b := range l.blocks[:len(l.blocks)-1] {
				stream := i%tc.stream == 0
				check(b.off, stream, "block boundary")
				check(b.off+b.headerLen/2, stream, "inside block header")
				if b.payload > 1 {
					check(b.off+b.headerLen+b.payload/2, stream, "inside payload")
				}
			}
			endb := l.blocks[len(l.blocks)-1]
			check(endb.off, true, "before ENDB")
			check(endb.off+3, true, "inside ENDB code")
			for _, cut := range []int{endb.off + 4, endb.off + 5, len(data)} {
				got, err := readBoth(t, data[:cut])
				if err != nil {
					t.Fatalf("cut at %d after the ENDB code: %v", cut, err)
				}
				if got.Scene != whole.Scene || got.FrameEnd != whole.FrameEnd {
					t.Fatalf("cut at %d: %+v, want %+v", cut, got, whole)
				}
			}
		})
	}
}

// TestHugeLengthDoesNotAllocate: a block claiming far more bytes than the
// input holds must not make the reader allocate that much.
func TestHugeLengthDoesNotAllocate(t *testing.T) {
	src := readCorpus(t, "27_apply_modifier_with_shapekeys.blend")
	for _, code := range []string{"DNA1", "SC\x00\x00", "GLOB", "TEST", "REND"} {
		data := bytes.Clone(src)
		l := walkTest(t, data)
		l.setLen(data, l.find(t, code), 1<<40)
		for _, via := range []string{"ReadAt", "ReadStream"} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var err error
			if via == "ReadAt" {
				_, err = ReadAt(bytes.NewReader(data), int64(len(data)))
			} else {
				_, err = ReadStream(bytes.NewReader(data))
			}
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s %s len 2^40: %v, want ErrTruncated", via, code, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("%s %s len 2^40: allocated %d bytes", via, code, alloc)
			}
		}
	}
}

func TestZstdVariants(t *testing.T) {
	blender := readCorpus(t, "37_lamp_Cycles.blend")
	raw := decompress(t, blender)
	want, err := ReadAt(bytes.NewReader(blender), int64(len(blender)))
	if err != nil {
		t.Fatal(err)
	}
	// Blender's own file ends with the seek-table skippable frame.
	if tail := blender[len(blender)-4:]; binary.LittleEndian.Uint32(tail) != 0x8F92EAB1 {
		t.Fatalf("37_lamp_Cycles.blend does not end with the seek-table magic: % x", tail)
	}
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'f', 'f', 'l', 't'}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"plain zstd, no seek table", zstdBytes(t, raw)},
		{"skippable frame first", append(bytes.Clone(skippable), blender...)},
		{"skippable frame before plain zstd", append(bytes.Clone(skippable), zstdBytes(t, raw)...)},
		{"gzip of a 5.x file", gzipBytes(t, raw)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBoth(t, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			th := got.Thumbnail
			if th == nil {
				t.Error("thumbnail lost")
			}
			if g, w := *got, *want; !infoEqual(g, w) {
				t.Errorf("got %+v, want %+v", g, w)
			}
		})
	}
}

// infoEqual compares everything but compression and the thumbnail.
func infoEqual(a, b Info) bool {
	a.Thumbnail, b.Thumbnail = nil, nil
	a.Compression, b.Compression = "", ""
	return reflect.DeepEqual(a, b)
}

func TestDecompressedSizeCap(t *testing.T) {
	raw := decompress(t, readCorpus(t, "37_lamp_Cycles.blend"))
	capped := func(n int) limits {
		lim := defaultLimits()
		lim.maxDecompressed = int64(n)
		return lim
	}
	for _, data := range [][]byte{zstdBytes(t, raw), gzipBytes(t, raw)} {
		_, err := readStream(bytes.NewReader(data), capped(len(raw)/2))
		assertKind(t, err, ErrTooLarge)
		// Exactly enough is fine.
		if _, err := readStream(bytes.NewReader(data), capped(len(raw))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSceneSelection builds a two-scene file from a real one: a copy of the
// scene block, renamed "Other" with other frames, is inserted before the
// real scene. GLOB.curscene must pick the real one, and the fallbacks must
// behave as documented when GLOB is missing or points nowhere.
func TestSceneSelection(t *testing.T) {
	for _, name := range []string{"01_cs_rotate.blend", "yxa_1.blend", "28_sk_no_reset.blend", "BlenderDefault_248.blend"} {
		t.Run(name, func(t *testing.T) {
			src := readCorpus(t, name)
			_, d := walkKept(t, src)
			l := walkTest(t, src)
			sc := l.find(t, "SC\x00\x00")
			glob := l.find(t, "GLOB")
			rend := l.find(t, "REND")

			// The copy: same block, other name, other start frame, other address.
			other := bytes.Clone(src[sc.off:sc.end()])
			payload := other[sc.headerLen:]
			nameF, _, _ := d.lookup("Scene", "id", "name")
			copy(payload[nameF.offset+2:], "Other\x00")
			sfra, _, _ := d.lookup("Scene", "r", "sfra")
			putInt(d, payload, sfra, 77)
			oldOff := 8 // old sits at offset 8 in all three BHead layouts
			if l.ptrSize == 4 {
				l.order.PutUint32(other[oldOff:], l.order.Uint32(other[oldOff:])+0x100)
			} else {
				l.order.PutUint64(other[oldOff:], l.order.Uint64(other[oldOff:])+0x100)
			}
			two := append(append(bytes.Clone(src[:sc.off]), other...), src[sc.off:]...)
			realStart := mustRead(t, src).FrameStart

			curscene, ok, _ := d.lookup("FileGlobal", "curscene")
			if !ok {
				t.Fatal("no FileGlobal.curscene")
			}
			pointNowhere := bytes.Clone(two)
			gp := pointNowhere[glob.off+glob.headerLen:]
			if l.ptrSize == 4 {
				l.order.PutUint32(gp[curscene.offset:], 0xdeadbee0)
			} else {
				l.order.PutUint64(gp[curscene.offset:], 0xdeadbeefdeadbee0)
			}
			noGlob := without(two, glob)          // GLOB precedes SC: offsets hold
			noGlobNoRend := without(noGlob, rend) // REND precedes GLOB

			for _, tc := range []struct {
				name       string
				data       []byte
				scene      string
				frameStart int
			}{
				{"curscene", two, "Scene", realStart},
				{"curscene points nowhere: REND name", pointNowhere, "Scene", realStart},
				{"no GLOB: REND name", noGlob, "Scene", realStart},
				{"no GLOB, no REND: first scene", noGlobNoRend, "Other", 77},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got, err := readBoth(t, tc.data)
					if err != nil {
						t.Fatal(err)
					}
					if got.Scene != tc.scene || got.FrameStart != tc.frameStart {
						t.Errorf("scene %q from %d, want %q from %d", got.Scene, got.FrameStart, tc.scene, tc.frameStart)
					}
					if strings.Join(got.Scenes, ",") != "Other,Scene" {
						t.Errorf("scenes %q, want Other,Scene", got.Scenes)
					}
				})
			}
		})
	}
}

func mustRead(t testing.TB, data []byte) *Info {
	t.Helper()
	info, err := ReadAt(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// putInt writes v into an integer member of the type SDNA says it has.
func putInt(d *sdna, p []byte, f field, v int64) {
	q := p[f.offset:]
	switch d.types[f.typ] {
	case "short":
		d.order.PutUint16(q, uint16(v))
	case "int":
		d.order.PutUint32(q, uint32(v))
	default:
		panic("putInt: unexpected type " + d.types[f.typ])
	}
}

func TestUnknownImtypeAndStep(t *testing.T) {
	src := readCorpus(t, "10_custom_normals.blend")
	_, d := walkKept(t, src)
	l := walkTest(t, src)
	sc := l.find(t, "SC\x00\x00")
	imtype, _, _ := d.lookup("Scene", "r", "im_format", "imtype")
	step, _, _ := d.lookup("Scene", "r", "frame_step")
	edit := func(f field, v byte) []byte {
		out := bytes.Clone(src)
		p := out[sc.off+sc.headerLen:]
		if f.size == 1 {
			p[f.offset] = v
		} else {
			putInt(d, p, f, int64(v))
		}
		return out
	}
	got := mustRead(t, edit(imtype, 99))
	if got.FileFormat != "UNKNOWN(99)" {
		t.Errorf("imtype 99 → %q, want UNKNOWN(99)", got.FileFormat)
	}
	if got := mustRead(t, edit(imtype, 24)); got.FileFormat != "FFMPEG" {
		t.Errorf("imtype 24 → %q, want FFMPEG", got.FileFormat)
	}
	got = mustRead(t, edit(step, 7))
	if got.FrameStep != 7 || got.FrameCount != (got.FrameEnd-got.FrameStart)/7+1 {
		t.Errorf("step 7: step %d count %d", got.FrameStep, got.FrameCount)
	}
	// Blender 3.4 saves frame_step 0 and then renders the first frame only.
	got, err := readBoth(t, edit(step, 0))
	if err != nil {
		t.Fatalf("step 0: %v", err)
	}
	if got.FrameStep != 0 || got.FrameCount != 1 {
		t.Errorf("step 0: step %d count %d, want 0 and 1", got.FrameStep, got.FrameCount)
	}
}

func TestCorruptSDNA(t *testing.T) {
	src := readCorpus(t, "01_cs_rotate.blend")
	l := walkTest(t, src)
	dna := l.find(t, "DNA1")
	start := dna.off + dna.headerLen
	edit := func(f func(p []byte)) []byte {
		out := bytes.Clone(src)
		f(out[start:dna.end()])
		return out
	}
	nameCountAt := 8
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"bad SDNA tag", edit(func(p []byte) { copy(p, "XDNA") })},
		{"name count too big", edit(func(p []byte) { l.order.PutUint32(p[nameCountAt:], 1<<30) })},
		{"negative name count", edit(func(p []byte) { l.order.PutUint32(p[nameCountAt:], 0xffffffff) })},
		{"struct type out of range", edit(func(p []byte) {
			i := bytes.Index(p, []byte("STRC"))
			l.order.PutUint16(p[i+8:], 0xfff0)
		})},
		{"field name out of range", edit(func(p []byte) {
			i := bytes.Index(p, []byte("STRC"))
			l.order.PutUint16(p[i+14:], 0xfff0)
		})},
		{"struct count too big", edit(func(p []byte) {
			i := bytes.Index(p, []byte("STRC"))
			l.order.PutUint32(p[i+4:], 1<<29)
		})},
		{"DNA1 cut short", func() []byte {
			out := bytes.Clone(src)
			l.setLen(out, dna, 100)
			// Keep the walk intact: what followed becomes an ENDB.
			return append(out[:start+100], "ENDB"...)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readBoth(t, tc.data)
			assertKind(t, err, ErrCorrupt)
		})
	}
}
