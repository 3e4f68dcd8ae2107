package blend

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
	"github.com/klauspost/compress/zstd"
)

// sentinels are every error kind the reader may report.
func sentinels() []error {
	return []error{ErrEmpty, ErrNotBlend, ErrGitLFSPointer, ErrTruncated, ErrCorrupt,
		ErrUnsupportedFormat, ErrNoScene, ErrTooLarge}
}

func corpusDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(testenv.Shared(t), "blendfiles")
}

func readCorpus(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decompress returns the raw .blend bytes of a possibly compressed file.
func decompress(t testing.TB, data []byte) []byte {
	t.Helper()
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		out, err := zr.DecodeAll(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return data
}

// testBlock is one block as the test's own minimal walker sees it.
type testBlock struct {
	code      string // raw 4 bytes, not normalised
	off       int    // offset of the block header
	headerLen int
	lenOff    int // offset of the len field
	lenSize   int // 4 or 8
	payload   int // payload length
}

func (b testBlock) end() int { return b.off + b.headerLen + b.payload }

type testLayout struct {
	headerLen int
	order     binary.ByteOrder
	ptrSize   int
	blocks    []testBlock // up to and including ENDB
}

// walkTest indexes an uncompressed .blend independently of the reader, so
// tests can cut and splice real files at block boundaries.
func walkTest(t testing.TB, data []byte) testLayout {
	t.Helper()
	l := testLayout{headerLen: 12, order: binary.LittleEndian, ptrSize: 4}
	bh, lenOff, lenSize := 20, 4, 4
	switch {
	case string(data[7:9]) == "17":
		l.headerLen, l.ptrSize = 17, 8
		bh, lenOff, lenSize = 32, 16, 8
	case data[7] == '-':
		l.ptrSize = 8
		bh = 24
	}
	if data[8] == 'V' {
		l.order = binary.BigEndian
	}
	off := l.headerLen
	for {
		if off+4 > len(data) {
			t.Fatalf("test walker ran off the end at %d", off)
		}
		b := testBlock{code: string(data[off : off+4]), off: off, headerLen: bh, lenOff: off + lenOff, lenSize: lenSize}
		if b.code == "ENDB" {
			l.blocks = append(l.blocks, b)
			return l
		}
		if lenSize == 8 {
			b.payload = int(l.order.Uint64(data[b.lenOff:]))
		} else {
			b.payload = int(int32(l.order.Uint32(data[b.lenOff:])))
		}
		l.blocks = append(l.blocks, b)
		off = b.end()
	}
}

// find returns the first block whose code (2-char codes either way round) is code.
func (l testLayout) find(t testing.TB, code string) testBlock {
	t.Helper()
	for _, b := range l.blocks {
		if b.code == code || (len(code) == 4 && code[2:] == "\x00\x00" && b.code == "\x00\x00"+code[:2]) {
			return b
		}
	}
	t.Fatalf("no %q block", code)
	return testBlock{}
}

func (l testLayout) setLen(data []byte, b testBlock, n int64) {
	if b.lenSize == 8 {
		l.order.PutUint64(data[b.lenOff:], uint64(n))
	} else {
		l.order.PutUint32(data[b.lenOff:], uint32(int32(n)))
	}
}

// without returns a copy of data with block b removed.
func without(data []byte, b testBlock) []byte {
	out := append([]byte(nil), data[:b.off]...)
	return append(out, data[b.end():]...)
}

// assertKind fails unless err wraps kind (and is a *FormatError).
func assertKind(t testing.TB, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want kind %v", err, kind)
	}
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Fix == "" {
		t.Fatalf("error %v is not a *FormatError with a fix", err)
	}
}

// readBoth reads data through ReadAt and ReadStream and requires them to agree
// on success or on the error kind.
func readBoth(t testing.TB, data []byte) (*Info, error) {
	t.Helper()
	a, errA := ReadAt(bytes.NewReader(data), int64(len(data)))
	s, errS := ReadStream(bytes.NewReader(data))
	if (errA == nil) != (errS == nil) {
		t.Fatalf("ReadAt error %v, ReadStream error %v", errA, errS)
	}
	if errA != nil {
		for _, k := range sentinels() {
			if errors.Is(errA, k) != errors.Is(errS, k) {
				t.Fatalf("ReadAt error %v and ReadStream error %v differ in kind", errA, errS)
			}
		}
		return nil, errA
	}
	if a.Scene != s.Scene || a.FrameStart != s.FrameStart || a.FrameEnd != s.FrameEnd {
		t.Fatalf("ReadAt %+v and ReadStream %+v differ", a, s)
	}
	return a, nil
}
