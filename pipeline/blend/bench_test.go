package blend

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
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

// openHugeBlend makes the sparse 1 GiB file and opens it behind a counting
// reader; it also returns its size and the real file's bytes it was grown from.
func openHugeBlend(tb testing.TB) (*countingReaderAt, int64, []byte) {
	tb.Helper()
	skipIfNoRoomForHuge(tb)
	path, src := makeHugeBlend(tb, tb.TempDir())
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if st.Size() < hugePayload {
		tb.Fatalf("file is %d bytes", st.Size())
	}
	return &countingReaderAt{r: f}, st.Size(), src
}

// TestHugeUncompressedReadsLittle: inspecting a 1 GiB uncompressed file
// must read less than 1% of it.
func TestHugeUncompressedReadsLittle(t *testing.T) {
	cr, size, src := openHugeBlend(t)
	got, err := ReadAt(cr, size)
	if err != nil {
		t.Fatal(err)
	}
	want := mustRead(t, src)
	if !infoEqual(*got, *want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	read := cr.bytes.Load()
	t.Logf("read %d of %d bytes (%.3f%%) in %d ReadAt calls", read, size, 100*float64(read)/float64(size), cr.calls.Load())
	if read >= size/100 {
		t.Errorf("read %d bytes of %d, want < 1%%", read, size)
	}
}

func BenchmarkReadAtHugeUncompressed(b *testing.B) {
	cr, size, _ := openHugeBlend(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadAt(cr, size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cr.bytes.Load())/float64(b.N), "bytes-read/op")
	b.ReportMetric(float64(size), "file-bytes")
}

// sparseFile is an io.ReaderAt over data pieces at given offsets with zeros
// (holes) everywhere else: a 1 GiB .blend without 1 GiB of memory or disk.
type sparseFile struct {
	pieces []sparsePiece // ascending, non-overlapping
	size   int64
}

type sparsePiece struct {
	off  int64
	data []byte
}

func (f *sparseFile) write(p []byte) {
	f.pieces = append(f.pieces, sparsePiece{off: f.size, data: p})
	f.size += int64(len(p))
}

func (f *sparseFile) hole(n int64) { f.size += n }

func (f *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.size-off))
	p = p[:n]
	clear(p)
	i := sort.Search(len(f.pieces), func(i int) bool {
		pc := f.pieces[i]
		return pc.off+int64(len(pc.data)) > off
	})
	for ; i < len(f.pieces) && f.pieces[i].off < off+int64(n); i++ {
		pc := f.pieces[i]
		lo := max(off, pc.off)
		hi := min(off+int64(n), pc.off+int64(len(pc.data)))
		copy(p[lo-off:hi-off], pc.data[lo-pc.off:hi-pc.off])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// scaledBlend is a real uncompressed .blend (SmallBHead8 or BHead4) grown
// to about target bytes with the same blocks in the same order: every DATA
// payload of at least minScaled bytes is scaled by one common factor, the
// added bytes being a hole. It is how a big production file looks: the
// same structure as a small one, with far bigger mesh and image arrays.
func scaledBlend(t testing.TB, src []byte, target int64, minScaled int) (*sparseFile, int) {
	t.Helper()
	l := walkTest(t, src)
	var scalable, fixed int64
	for _, b := range l.blocks {
		if b.code == "DATA" && b.payload >= minScaled {
			scalable += int64(b.payload)
		}
	}
	fixed = int64(len(src)) - scalable
	if scalable == 0 {
		t.Fatal("no DATA payload to scale")
	}
	factor := float64(target-fixed) / float64(scalable)
	f := &sparseFile{}
	f.write(src[:l.headerLen])
	scaled := 0
	for _, b := range l.blocks {
		if b.code != "DATA" || b.payload < minScaled {
			f.write(src[b.off:min(b.end(), len(src))])
			continue
		}
		n := min(int64(float64(b.payload)*factor), 1<<31-1)
		hdr := bytes.Clone(src[b.off : b.off+b.headerLen])
		l.setLen(hdr, testBlock{lenOff: b.lenOff - b.off, lenSize: b.lenSize}, n)
		f.write(hdr)
		f.write(src[b.off+b.headerLen : b.end()])
		f.hole(n - int64(b.payload))
		scaled++
	}
	if rest := l.blocks[len(l.blocks)-1].end(); rest < len(src) {
		f.write(src[rest:])
	}
	return f, scaled
}

// manyBlocksBlend inserts count DATA blocks of size bytes (holes) before
// DNA1: the audit's case of many mid-size blocks, each larger than the
// read window.
func manyBlocksBlend(t testing.TB, src []byte, count int, size int64) *sparseFile {
	t.Helper()
	l := walkTest(t, src)
	if l.headerLen != 12 || l.ptrSize != 8 || l.order != binary.LittleEndian {
		t.Fatal("need a SmallBHead8 little-endian file")
	}
	at := l.find(t, "DNA1").off
	f := &sparseFile{}
	f.write(src[:at])
	for i := range count {
		bh := make([]byte, 24)
		copy(bh, "DATA")
		binary.LittleEndian.PutUint32(bh[4:], uint32(size))
		binary.LittleEndian.PutUint64(bh[8:], 0x7f0000000000+uint64(i)*0x100)
		binary.LittleEndian.PutUint32(bh[20:], 1)
		f.write(bh)
		f.hole(size)
	}
	f.write(src[at:])
	return f
}

// TestBigFilesReadLittle: inspecting ~1 GiB uncompressed files shaped like
// real ones must read less than 1% of them, and bytes read must follow the
// number of block headers, not the read window.
func TestBigFilesReadLittle(t *testing.T) {
	pottery, err := os.ReadFile(filepath.Join(testenv.Shared(t), "scenes", "pottery.blend"))
	if err != nil {
		t.Fatal(err)
	}
	normals := readCorpus(t, "10_custom_normals.blend")
	scaled, n := scaledBlend(t, pottery, 1<<30, 1024)
	t.Logf("pottery scaled: %d DATA payloads scaled, %d blocks", n, len(walkTest(t, pottery).blocks))
	for _, tc := range []struct {
		name   string
		file   *sparseFile
		src    []byte
		blocks int
	}{
		{"pottery with DATA payloads scaled to 1 GiB", scaled, pottery, len(walkTest(t, pottery).blocks)},
		{"20,000 DATA blocks of 50 KB", manyBlocksBlend(t, normals, 20000, 50_000), normals, 20000 + len(walkTest(t, normals).blocks)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.file.size < 1<<30*9/10 {
				t.Fatalf("file is only %d bytes", tc.file.size)
			}
			cr := &countingReaderAt{r: tc.file}
			got, err := ReadAt(cr, tc.file.size)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustRead(t, tc.src); !infoEqual(*got, *want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
			read := cr.bytes.Load()
			t.Logf("read %d of %d bytes (%.3f%%, %.0f bytes per block) in %d ReadAt calls",
				read, tc.file.size, 100*float64(read)/float64(tc.file.size), float64(read)/float64(tc.blocks), cr.calls.Load())
			if read >= tc.file.size/100 {
				t.Errorf("read %d bytes of %d, want < 1%%", read, tc.file.size)
			}
		})
	}
}

func BenchmarkReadAtScaledPottery(b *testing.B) {
	pottery, err := os.ReadFile(filepath.Join(testenv.Shared(b), "scenes", "pottery.blend"))
	if err != nil {
		b.Fatal(err)
	}
	f, _ := scaledBlend(b, pottery, 1<<30, 1024)
	cr := &countingReaderAt{r: f}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadAt(cr, f.size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cr.bytes.Load())/float64(b.N), "bytes-read/op")
	b.ReportMetric(float64(cr.calls.Load())/float64(b.N), "reads/op")
	b.ReportMetric(float64(f.size), "file-bytes")
}

// BenchmarkReadAtManyBlocks: 20,000 DATA blocks of 50 KB (1 GB), each
// larger than the read window: bytes read must follow the headers.
func BenchmarkReadAtManyBlocks(b *testing.B) {
	f := manyBlocksBlend(b, readCorpus(b, "10_custom_normals.blend"), 20000, 50_000)
	cr := &countingReaderAt{r: f}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadAt(cr, f.size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cr.bytes.Load())/float64(b.N), "bytes-read/op")
	b.ReportMetric(float64(cr.calls.Load())/float64(b.N), "reads/op")
	b.ReportMetric(float64(f.size), "file-bytes")
}

// traceBench holds the project testdata/make_trace_bench.py builds once per
// benchmark process: 1,000 image references, three levels of libraries.
var traceBench struct {
	once sync.Once
	dir  string
	err  error
}

// BenchmarkTrace traces that project: the scene, its three libraries and
// 1,000 textures (each one stat'ed). docs/BENCHMARKS.md compares it with
// the time Blender takes to open the same scene (bench/trace.sh).
func BenchmarkTrace(b *testing.B) {
	blender := testenv.Blender(b)
	traceBench.once.Do(func() {
		traceBench.dir, traceBench.err = os.MkdirTemp("", "framefleet-trace-bench-")
		if traceBench.err != nil {
			return
		}
		script, _ := filepath.Abs(filepath.Join("testdata", "make_trace_bench.py"))
		out, err := exec.Command(blender, "-b", "-Y", "--factory-startup", "--python-exit-code", "1", "--python", script, "--", traceBench.dir).CombinedOutput()
		if err != nil {
			traceBench.err = fmt.Errorf("make_trace_bench.py: %v\n%s", err, out)
		}
	})
	if traceBench.err != nil {
		b.Fatal(traceBench.err)
	}
	scene := filepath.Join(traceBench.dir, "scene.blend")
	b.ReportAllocs()
	for b.Loop() {
		deps, err := Trace(context.Background(), scene)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(deps.Dependencies); n != 1003 {
			b.Fatalf("%d dependencies, want 1,000 images and 3 libraries", n)
		}
	}
}
