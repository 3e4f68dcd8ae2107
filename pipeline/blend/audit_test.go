package blend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// withEmptyScenes inserts n SC block headers with no payload before DNA1 of
// a SmallBHead8 little-endian file: how a 96 KB zstd file once made the
// reader keep 10 million blocks.
func withEmptyScenes(t testing.TB, src []byte, n int) []byte {
	t.Helper()
	l := walkTest(t, src)
	at := l.find(t, "DNA1").off
	out := bytes.Clone(src[:at])
	bh := make([]byte, 24)
	copy(bh, "SC\x00\x00")
	for i := range n {
		binary.LittleEndian.PutUint64(bh[8:], 0x7e0000000000+uint64(i)*0x10)
		out = append(out, bh...)
	}
	return append(out, src[at:]...)
}

func TestKeptBlockCaps(t *testing.T) {
	src := readCorpus(t, "10_custom_normals.blend")
	bomb := withEmptyScenes(t, src, maxScenes+1)
	for _, data := range [][]byte{bomb, zstdBytes(t, bomb), gzipBytes(t, bomb)} {
		_, err := readBoth(t, data)
		assertKind(t, err, ErrTooLarge)
		if !strings.Contains(err.Error(), "more than 4096 scene (SC) blocks") {
			t.Errorf("message %q does not give the scene cap", err)
		}
	}
	// The total of kept payloads is capped too.
	lim := defaultLimits()
	lim.maxKeptBytes = 4096
	for _, via := range []string{"ReadAt", "ReadStream"} {
		var err error
		if via == "ReadAt" {
			_, err = readAt(bytes.NewReader(src), int64(len(src)), lim)
		} else {
			_, err = readStream(bytes.NewReader(src), lim)
		}
		assertKind(t, err, ErrTooLarge)
		if !strings.Contains(err.Error(), "more than 4096 bytes") {
			t.Errorf("%s: message %q does not give the byte cap", via, err)
		}
	}
}

func TestZstdWindowCap(t *testing.T) {
	raw := readCorpus(t, "01_cs_rotate.blend")
	zw, err := zstd.NewWriter(nil, zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	big := zw.EncodeAll(raw, nil)
	zw.Close()
	// Frame header: magic, descriptor, window descriptor. Declare a 512 MiB
	// window (exponent 19: 2^(10+19)), as a crafted file would; the data
	// stays valid, a window is only an upper bound.
	if big[4]&0x20 != 0 {
		t.Fatal("encoder wrote a single-segment frame, which has no window descriptor")
	}
	big[5] = 19 << 3
	_, err = readBoth(t, big)
	assertKind(t, err, ErrTooLarge)
	msg := err.Error()
	if !strings.Contains(msg, "window larger than the 64 MiB") || strings.Contains(msg, "4294967296") || strings.Contains(msg, "uncompressed") {
		t.Errorf("message %q: want the 64 MiB window limit, not the size cap or 'save uncompressed'", msg)
	}
}

func TestRenderValuesValidated(t *testing.T) {
	src := readCorpus(t, "10_custom_normals.blend")
	_, d := walkKept(t, src)
	sc := walkTest(t, src).find(t, "SC\x00\x00")
	edit := func(set func(p []byte)) []byte {
		out := bytes.Clone(src)
		set(out[sc.off+sc.headerLen:])
		return out
	}
	intEdit := func(v int64, path ...string) []byte {
		f, ok, err := d.lookup("Scene", path...)
		if err != nil || !ok {
			t.Fatalf("no Scene.%v", path)
		}
		return edit(func(p []byte) { putInt(d, p, f, v) })
	}
	base, _, _ := d.lookup("Scene", "r", "frs_sec_base")
	floatEdit := func(v float32) []byte {
		return edit(func(p []byte) { d.order.PutUint32(p[base.offset:], math.Float32bits(v)) })
	}
	for _, tc := range []struct {
		name, field string
		data        []byte
	}{
		{"fps 0", "render.fps = 0", intEdit(0, "r", "frs_sec")},
		{"fps negative", "render.fps = -5", intEdit(-5, "r", "frs_sec")},
		{"fps_base NaN", "render.fps_base = NaN", floatEdit(float32(math.NaN()))},
		{"fps_base +Inf", "render.fps_base = +Inf", floatEdit(float32(math.Inf(1)))},
		{"fps_base 0", "render.fps_base = 0", floatEdit(0)},
		{"fps_base negative", "render.fps_base = -1", floatEdit(-1)},
		{"resolution_x 0", "render.resolution_x = 0", intEdit(0, "r", "xsch")},
		{"resolution_y negative", "render.resolution_y = -1080", intEdit(-1080, "r", "ysch")},
		{"percentage 0", "render.resolution_percentage = 0", intEdit(0, "r", "size")},
		{"frame_step negative", "frame_step -1", intEdit(-1, "r", "frame_step")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readBoth(t, tc.data)
			assertKind(t, err, ErrCorrupt)
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q does not name %q", err, tc.field)
			}
		})
	}
}

func TestHeaderMessages(t *testing.T) {
	v500 := readCorpus(t, "27_apply_modifier_with_shapekeys.blend")
	v279 := readCorpus(t, "01_cs_rotate.blend")
	for _, tc := range []struct {
		header string
		src    []byte
		hdrLen int
		kind   error
		want   string
	}{
		{"BLENDER17-02v0600", v500, 17, ErrUnsupportedFormat,
			"file-format version 02, saved by Blender 6.0 (header BLENDER17-02v0600): this framefleet reads"},
		{"BLENDER18-01v0600", v500, 17, ErrUnsupportedFormat, "18-byte header, file-format version 01, saved by Blender 6.0"},
		{"BLENDERv304\x00", v279, 12, ErrCorrupt, `"BLENDERv304\x00"`},
		{"BLENDER_X304", v279, 12, ErrCorrupt, `endianness byte "X"`},
	} {
		data := append([]byte(tc.header), tc.src[tc.hdrLen:]...)
		_, err := readBoth(t, data)
		assertKind(t, err, tc.kind)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: message %q lacks %q", tc.header, err, tc.want)
		}
	}
}

// TestMessagesQuoteOnce: raw bytes and block codes appear quoted once
// ("SC", "hello\n"), never escaped twice ("SC\\0\\0", "hello\\x0a").
func TestMessagesQuoteOnce(t *testing.T) {
	src := readCorpus(t, "10_custom_normals.blend")
	l := walkTest(t, src)
	neg := bytes.Clone(src)
	l.setLen(neg, l.find(t, "SC\x00\x00"), -1)
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{neg, `"SC" has negative length`},
		{[]byte("hello\nworld, not a blend"), `"hello\nworld`},
		{zstdBytes(t, []byte("hi\x00\x01 not a blend")), `"hi\x00\x01`},
	} {
		_, err := ReadStream(bytes.NewReader(tc.data))
		if err == nil {
			t.Fatal("no error")
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, `\\`) {
			t.Errorf("message %q: want %q, escaped once", msg, tc.want)
		}
	}
}

func TestDecompressedOffset(t *testing.T) {
	src := readCorpus(t, "10_custom_normals.blend")
	l := walkTest(t, src)
	neg := bytes.Clone(src)
	l.setLen(neg, l.find(t, "SC\x00\x00"), -1)
	_, err := ReadAt(bytes.NewReader(neg), int64(len(neg)))
	if err == nil || !strings.Contains(err.Error(), "(at byte offset") {
		t.Errorf("uncompressed: %v", err)
	}
	z := zstdBytes(t, neg)
	_, err = ReadAt(bytes.NewReader(z), int64(len(z)))
	if err == nil || !strings.Contains(err.Error(), "(at decompressed byte offset") {
		t.Errorf("zstd: %v, want a decompressed byte offset", err)
	}
}

func TestFormatErrorZeroValue(t *testing.T) {
	for _, e := range []*FormatError{{}, {Offset: -1, Detail: "x"}} {
		if msg := e.Error(); msg == "" {
			t.Errorf("%#v: empty message", e)
		}
	}
}

func TestPermissionDeniedHasFix(t *testing.T) {
	err := openError(&fs.PathError{Op: "open", Path: "x.blend", Err: fs.ErrPermission})
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "check the file's permissions") {
		t.Errorf("got %v", err)
	}
	if os.Geteuid() == 0 {
		t.Skip("root reads any file: the real open cannot fail")
	}
	p := filepath.Join(t.TempDir(), "locked.blend")
	if err := os.WriteFile(p, readCorpus(t, "01_cs_rotate.blend"), 0); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(p)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "check the file's permissions") {
		t.Errorf("got %v", err)
	}
}

// TestReadFileOfPipe: a pipe reports size 0; ReadFile must stream it, not
// call it an empty file.
func TestReadFileOfPipe(t *testing.T) {
	data := readCorpus(t, "01_cs_rotate.blend")
	want := mustRead(t, data)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := filepath.Join("/proc/self/fd", strconv.Itoa(int(r.Fd())))
	if _, err := os.Stat(p); err != nil {
		w.Close()
		t.Skipf("no %s: %v", p, err)
	}
	go func() {
		w.Write(data)
		w.Close()
	}()
	got, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got.File = ""
	if !infoEqual(*got, *want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
