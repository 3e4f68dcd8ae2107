package blend

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// blockFile is a whole .blend indexed for pointer chasing: every block
// header, the struct catalogue and a map from stored address to block.
// Payloads are read on demand, so blocks the tracer never looks at (mesh
// arrays, the bulk of big files) cost only their 24-byte header.
type blockFile struct {
	hdr         *header
	r           io.ReaderAt // the uncompressed bytes
	size        int64
	compression string // none | gzip | zstd
	// mem is the whole uncompressed file when it is held in memory
	// (compressed files, and plain ones up to wholeFileLimit): payloads are
	// then slices of it, with no read and no copy.
	mem   []byte
	file  io.ReaderAt // the plain file mem was read from, for release
	cache *fileCache
	heads []bhead
	byOld map[uint64]int32 // stored address → index in heads
	dna   *sdna
}

// wholeFileLimit is the largest plain .blend read into memory at once;
// larger ones are read block by block, so that a multi-GB file of mesh and
// cache data costs only the blocks the tracer looks into.
const wholeFileLimit = 64 << 20

// isIDCode reports whether c is a 2-character ID code ("OB\0\0", "IM\0\0").
func isIDCode(c [4]byte) bool { return c[0] != 0 && c[1] != 0 && c[2] == 0 && c[3] == 0 }

// openBlockFile reads the block headers and the catalogue of the .blend at
// path. Compressed files are decompressed into memory (capped as the
// settings reader caps them); plain files are read in place.
func openBlockFile(path string, cache *fileCache) (*blockFile, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, openError(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		// Libraries are followed by path: never block on a FIFO or read a device.
		f.Close()
		what := "is not a regular file (a device, pipe or socket)"
		if st.IsDir() {
			what = "is a directory"
		}
		return nil, nil, newError(ErrNotBlend, -1, "%s %s", path, what)
	}
	bf, err := newBlockFile(f, st.Size(), defaultLimits(), cache)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if bf.compression != "none" {
		f.Close() // decompressed into memory
		return bf, nopCloser{}, nil
	}
	return bf, f, nil
}

// fileCache is what the files of one trace share: parsed catalogues (a
// scene and its libraries saved by one Blender carry byte-identical DNA1
// blocks; offsets in a shared catalogue's errors are those of the first
// file that had it), and the memory of the last file released, which the
// next file is read into. nil disables both.
type fileCache struct {
	dnas  map[string]*sdna
	spare []byte
	// wholeFile is the largest plain file read into memory (wholeFileLimit;
	// tests lower it to exercise the block-by-block reads).
	wholeFile int64
}

func newFileCache() *fileCache {
	return &fileCache{dnas: map[string]*sdna{}, wholeFile: wholeFileLimit}
}

// inMemory reports whether a plain file of size bytes is read whole.
func (c *fileCache) inMemory(size int64) bool {
	if c == nil {
		return size <= wholeFileLimit
	}
	return size <= c.wholeFile
}

// buffer returns n bytes to read a file into, reusing the spare memory.
func (c *fileCache) dna(key string) (*sdna, bool) {
	if c == nil {
		return nil, false
	}
	d, ok := c.dnas[key]
	return d, ok
}

func (c *fileCache) buffer(n int64) []byte {
	if c != nil && int64(cap(c.spare)) >= n {
		b := c.spare[:n]
		c.spare = nil
		return b
	}
	return make([]byte, n)
}

func newBlockFile(r io.ReaderAt, size int64, lim limits, cache *fileCache) (*blockFile, error) {
	if size <= 0 {
		return nil, newError(ErrEmpty, -1, "no data")
	}
	head := make([]byte, min(size, 32))
	n, err := r.ReadAt(head, 0)
	if n < len(head) && err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading .blend header: %w", err)
	}
	kind, err := sniff(head[:n])
	if err != nil {
		return nil, err
	}
	bf := &blockFile{r: r, size: size, compression: kind, cache: cache}
	switch {
	case kind != "none":
		data, err := decompressAll(io.NewSectionReader(r, 0, size), kind, lim)
		if err != nil {
			return nil, err
		}
		bf.r, bf.size, bf.mem = bytes.NewReader(data), int64(len(data)), data
	case cache.inMemory(size):
		// One read instead of one per block: a scene of a few MB has
		// thousands of blocks the tracer looks into.
		data := cache.buffer(size)
		n, err := r.ReadAt(data, 0)
		if int64(n) < size && err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading .blend: %w", err)
		}
		data = data[:n]
		bf.file = r
		bf.r, bf.size, bf.mem = bytes.NewReader(data), int64(n), data
	}
	if err := bf.index(cache); err != nil {
		var fe *FormatError
		if kind != "none" && errors.As(err, &fe) {
			fe.Decompressed = true
		}
		return nil, err
	}
	return bf, nil
}

// decompressAll inflates a gzip or zstd .blend, capped at lim.maxDecompressed.
func decompressAll(r io.Reader, kind string, lim limits) ([]byte, error) {
	var data io.Reader
	switch kind {
	case "gzip":
		zr, err := gzip.NewReader(bufio.NewReader(r))
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, newError(ErrTruncated, -1, "gzip stream ends inside its header")
			}
			return nil, newError(ErrCorrupt, -1, "gzip data does not decode: %v", err)
		}
		defer zr.Close()
		data = zr
	case "zstd":
		zr, err := zstd.NewReader(bufio.NewReader(r), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(lim.maxDecompressed)), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, newError(ErrCorrupt, -1, "zstd data does not decode: %v", err)
		}
		defer zr.Close()
		data = zr
	default:
		return nil, fmt.Errorf("decompressAll: unknown compression %q", kind)
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, &cappedReader{r: data, left: lim.maxDecompressed, kind: kind, limit: lim.maxDecompressed})
	if err != nil {
		var fe *FormatError
		switch {
		case errors.As(err, &fe):
			return nil, err
		case errors.Is(err, io.ErrUnexpectedEOF):
			// Keep what arrived: the block walk reports where it ends.
		case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrFrameSizeExceeded):
			return nil, newError(ErrTooLarge, -1, "%s data: %v", kind, err)
		default:
			return nil, newError(ErrCorrupt, -1, "%s data does not decode: %v", kind, err)
		}
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("BLENDER")) {
		p := buf.Bytes()[:min(buf.Len(), 12)]
		return nil, newError(ErrNotBlend, 0, "%s data decompresses to %s, not a .blend (BLENDER...)", kind, quoted(p))
	}
	return buf.Bytes(), nil
}

// index walks every block header and parses DNA1.
func (bf *blockFile) index(cache *fileCache) error {
	var c cursor = newAtCursor(bf.r, bf.size)
	if bf.mem != nil {
		c = &memCursor{mem: bf.mem}
	}
	h, err := parseHeader(c)
	if err != nil {
		return err
	}
	bf.hdr = h
	size := h.bheadSize()
	var dna1 *bhead
	for {
		off := c.offset()
		p, err := c.read(size)
		if err != nil {
			return err
		}
		if len(p) < size {
			if len(p) >= 4 && string(p[:4]) == "ENDB" {
				break
			}
			if len(p) == 0 {
				return newError(ErrTruncated, off, "file ends after block #%d without the ENDB end marker", len(bf.heads))
			}
			return newError(ErrTruncated, off, "file ends inside the header of block #%d (%d of %d bytes present)", len(bf.heads), len(p), size)
		}
		b := decodeBHead(h, p, off)
		if isCode(b.code, "ENDB") {
			break
		}
		if b.length < 0 {
			return newError(ErrCorrupt, off, "block #%d %q has negative length %d", len(bf.heads), b.name(), b.length)
		}
		if err := c.skip(b.length, b); err != nil {
			return err
		}
		if bf.heads == nil {
			// About one block per 400 bytes in real files: one allocation
			// instead of a dozen doublings.
			bf.heads = make([]bhead, 0, min(bf.size/400+16, 1<<20))
		}
		bf.heads = append(bf.heads, b)
		if isCode(b.code, "DNA1") && dna1 == nil {
			dna1 = &bf.heads[len(bf.heads)-1]
		}
	}
	if dna1 == nil {
		return newError(ErrCorrupt, -1, "no DNA1 block (struct catalogue) before ENDB, after %d blocks", len(bf.heads))
	}
	payload, err := bf.payload(*dna1)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%d/%v/", h.ptrSize, h.order) + string(payload)
	if d, ok := cache.dna(key); ok {
		bf.dna = d
	} else {
		if bf.dna, err = parseSDNA(payload, h.order, h.ptrSize, dna1.offset+int64(size)); err != nil {
			return err
		}
		if cache != nil {
			cache.dnas[key] = bf.dna
		}
	}
	bf.byOld = make(map[uint64]int32, len(bf.heads))
	for i, b := range bf.heads {
		if b.old == 0 || isCode(b.code, "DNA1") || isCode(b.code, "REND") || isCode(b.code, "TEST") {
			continue
		}
		if _, dup := bf.byOld[b.old]; !dup {
			bf.byOld[b.old] = int32(i)
		}
	}
	return nil
}

// release drops the in-memory copy of a plain file, which is then read
// block by block again. A trace keeps every library it opened (a later
// datablock may ask for more of it), so it releases each one after use
// rather than hold a large project's files in memory at once.
func (bf *blockFile) release() {
	if bf.file != nil && bf.mem != nil {
		// Nothing keeps a slice of mem: extractors copy what they keep.
		if bf.cache != nil && cap(bf.mem) > cap(bf.cache.spare) {
			bf.cache.spare = bf.mem
		}
		bf.r, bf.mem = bf.file, nil
	}
}

// payloadStart is the file offset of b's payload.
func (bf *blockFile) payloadStart(b bhead) int64 { return b.offset + int64(bf.hdr.bheadSize()) }

// payload returns b's payload. With the file in memory it is a slice of
// it: callers must not modify it.
func (bf *blockFile) payload(b bhead) ([]byte, error) {
	if bf.mem != nil {
		start := bf.payloadStart(b)
		if start < 0 || start > int64(len(bf.mem)) || b.length > int64(len(bf.mem))-start {
			return nil, truncatedPayload(b, max(0, int64(len(bf.mem))-start))
		}
		return bf.mem[start : start+b.length : start+b.length], nil
	}
	if b.length > maxKeptBlock {
		return nil, tooLargeBlock(b, b.length)
	}
	out := make([]byte, b.length)
	got, err := bf.r.ReadAt(out, bf.payloadStart(b))
	if int64(got) < b.length {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading .blend at offset %d: %w", bf.payloadStart(b), err)
		}
		return nil, truncatedPayload(b, int64(got))
	}
	return out, nil
}

// structName is the catalogue name of b's struct type, "" when the index
// is out of range.
func (bf *blockFile) structName(b bhead) string {
	if b.sdna < 0 || b.sdna >= int64(len(bf.dna.structs)) {
		return ""
	}
	return bf.dna.types[bf.dna.structs[b.sdna].typ]
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// memCursor walks a file held in memory without copying it.
type memCursor struct {
	mem []byte
	off int64
}

func (c *memCursor) offset() int64    { return c.off }
func (c *memCursor) remaining() int64 { return int64(len(c.mem)) - c.off }

func (c *memCursor) read(n int) ([]byte, error) {
	end := min(c.off+int64(n), int64(len(c.mem)))
	p := c.mem[c.off:end:end]
	c.off = end
	return p, nil
}

func (c *memCursor) skip(n int64, b bhead) error {
	if n > c.remaining() {
		return truncatedPayload(b, c.remaining())
	}
	c.off += n
	return nil
}

func (c *memCursor) payload(n int64, b bhead) ([]byte, error) {
	if n > c.remaining() {
		return nil, truncatedPayload(b, c.remaining())
	}
	p := c.mem[c.off : c.off+n : c.off+n]
	c.off += n
	return p, nil
}
