package blend

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

func BenchmarkReadFile(b *testing.B) {
	path := filepath.Join(testenv.Shared(b), "scenes", "pottery.blend")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadStream is the same file through the streaming path (an S3
// body, stdin), which has to pass every byte.
func BenchmarkReadStream(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testenv.Shared(b), "scenes", "pottery.blend"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ReadStream(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFileZstd reads Blender's own multi-frame zstd output.
func BenchmarkReadFileZstd(b *testing.B) {
	path := filepath.Join(corpusDir(b), "37_lamp_Cycles.blend")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

// countingReaderAt counts the bytes actually read through it.
type countingReaderAt struct {
	r     io.ReaderAt
	bytes atomic.Int64
	calls atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.bytes.Add(int64(n))
	c.calls.Add(1)
	return n, err
}

const hugePayload = 1 << 30

// makeHugeBlend writes a real uncompressed .blend with one extra DATA block
// of 1 GiB inserted after GLOB. The payload is a hole (seek past it), so the
// file costs no disk time or space on filesystems with sparse files.
func makeHugeBlend(t testing.TB, dir string) (path string, src []byte) {
	t.Helper()
	src = readCorpus(t, "10_custom_normals.blend") // 8-byte pointers, little-endian
	l := walkTest(t, src)
	at := l.find(t, "GLOB").end()
	bh := make([]byte, 24) // SmallBHead8: code, int32 len, uint64 old, int32 SDNAnr, int32 nr
	copy(bh, "DATA")
	binary.LittleEndian.PutUint32(bh[4:], hugePayload)
	binary.LittleEndian.PutUint64(bh[8:], 0x7f00deadbeef)
	binary.LittleEndian.PutUint32(bh[20:], 1)
	path = filepath.Join(dir, "huge.blend")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(src[:at]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bh); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(hugePayload, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(src[at:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, src
}

// skipIfNoRoomForHuge skips under -short only when the temp filesystem
// could not hold the file should it not be sparse.
func skipIfNoRoomForHuge(t testing.TB) {
	t.Helper()
	if free, ok := freeBytes(os.TempDir()); ok && free < 2*hugePayload && testing.Short() {
		t.Skipf("-short and only %d bytes free in %s", free, os.TempDir())
	}
}

// TestHugeUncompressedReadsLittle: inspecting a 1 GiB uncompressed file
// must read less than 1% of it.
func TestHugeUncompressedReadsLittle(t *testing.T) {
	skipIfNoRoomForHuge(t)
	path, src := makeHugeBlend(t, t.TempDir())
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < hugePayload {
		t.Fatalf("file is %d bytes", st.Size())
	}
	cr := &countingReaderAt{r: f}
	got, err := ReadAt(cr, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	want := mustRead(t, src)
	if !infoEqual(*got, *want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	read := cr.bytes.Load()
	t.Logf("read %d of %d bytes (%.3f%%) in %d ReadAt calls", read, st.Size(), 100*float64(read)/float64(st.Size()), cr.calls.Load())
	if read >= st.Size()/100 {
		t.Errorf("read %d bytes of %d, want < 1%%", read, st.Size())
	}
}

func BenchmarkReadAtHugeUncompressed(b *testing.B) {
	skipIfNoRoomForHuge(b)
	path, _ := makeHugeBlend(b, b.TempDir())
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	cr := &countingReaderAt{r: f}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadAt(cr, st.Size()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cr.bytes.Load())/float64(b.N), "bytes-read/op")
	b.ReportMetric(float64(st.Size()), "file-bytes")
}
