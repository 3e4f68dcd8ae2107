package blend

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// maxDecompressed caps what a compressed .blend may expand to (zip-bomb
// guard). Real compressed .blend files rarely exceed a few hundred MB.
const maxDecompressed = 4 << 30

// Caps on what the walk keeps in memory: every SC block is kept (to list
// the scenes), so without them a small zstd file of millions of empty SC
// headers could take gigabytes.
const (
	maxScenes    = 4096
	maxKeptBytes = 128 << 20
)

// maxZstdWindow bounds the zstd window (the decoder's history buffer).
// Blender writes ~128 KiB windows; the format allows up to 3.75 TiB, which a
// crafted file could use to make the decoder allocate gigabytes.
const maxZstdWindow = 64 << 20

// limits are the reader's size caps; tests shrink them.
type limits struct {
	maxDecompressed int64
	maxScenes       int
	maxKeptBytes    int64
}

func defaultLimits() limits {
	return limits{maxDecompressed: maxDecompressed, maxScenes: maxScenes, maxKeptBytes: maxKeptBytes}
}

// ReadFile reads the scene settings of the .blend at path. Info.File is the
// path's base name. Uncompressed regular files are read by seeking from
// block header to block header; compressed ones, and pipes, devices and
// other files whose size is not known up front (/dev/stdin, <(cat f)), are
// read as a stream.
func ReadFile(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, openError(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: %w", path, newError(ErrNotBlend, -1, "%s is a directory", path))
	}
	var info *Info
	if st.Mode().IsRegular() {
		info, err = ReadAt(f, st.Size())
	} else {
		info, err = ReadStream(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	info.File = filepath.Base(path)
	return info, nil
}

// openError adds the fix to an open error that has an obvious one.
func openError(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w; fix: check the file's permissions (this user must be able to read it)", err)
	}
	return err
}

// ReadAt reads the scene settings from r, which holds size bytes. For
// uncompressed input only block headers and the few payloads needed (REND,
// TEST, GLOB, SC, DNA1) are read.
func ReadAt(r io.ReaderAt, size int64) (*Info, error) {
	return readAt(r, size, defaultLimits())
}

func readAt(r io.ReaderAt, size int64, lim limits) (*Info, error) {
	if size <= 0 {
		return nil, newError(ErrEmpty, -1, "no data")
	}
	head := make([]byte, min(size, 32))
	n, err := r.ReadAt(head, 0)
	if n < len(head) {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading .blend header: %w", err)
		}
		head = head[:n]
	}
	kind, err := sniff(head)
	if err != nil {
		return nil, err
	}
	if kind == "none" {
		bs, err := walk(newAtCursor(r, size), lim)
		if err != nil {
			return nil, err
		}
		return extract(bs, kind)
	}
	return readStream(io.NewSectionReader(r, 0, size), lim)
}

// ReadStream reads the scene settings from any stream, decompressing gzip or
// zstd on the fly and discarding blocks that are not needed as they pass.
func ReadStream(r io.Reader) (*Info, error) {
	return readStream(r, defaultLimits())
}

func readStream(r io.Reader, lim limits) (*Info, error) {
	src := &sourceReader{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	head, _ := br.Peek(32)
	if len(head) < 32 && src.err != nil {
		return nil, fmt.Errorf("reading .blend: %w", src.err)
	}
	kind, err := sniff(head)
	if err != nil {
		return nil, err
	}
	classify := func(err error) error {
		var fe *FormatError
		if errors.As(err, &fe) {
			return err
		}
		if src.err != nil {
			return fmt.Errorf("reading .blend: %w", src.err)
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return &FormatError{Kind: ErrTooLarge, Offset: -1,
				Detail: fmt.Sprintf("the zstd data asks for a decompression window larger than the %d MiB this reader allows (Blender writes windows of about 128 KiB)", maxZstdWindow>>20),
				Fix:    "this file was not compressed by Blender: open it in Blender and save it again (File > Save), with or without Compress"}
		}
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrFrameSizeExceeded) {
			return newError(ErrTooLarge, -1, "%s data: %v (limit %d bytes)", kind, err, lim.maxDecompressed)
		}
		return newError(ErrCorrupt, -1, "%s data does not decode: %v", kind, err)
	}
	var data io.Reader
	switch kind {
	case "none":
		data = br
	case "gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, newError(ErrTruncated, -1, "gzip stream ends inside its header")
			}
			return nil, classify(err)
		}
		defer zr.Close()
		data = zr
	case "zstd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(lim.maxDecompressed)), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, classify(err)
		}
		defer zr.Close()
		data = zr
	}
	if kind != "none" {
		data = &cappedReader{r: data, left: lim.maxDecompressed, kind: kind, limit: lim.maxDecompressed}
	}
	inner := bufio.NewReaderSize(data, 64<<10)
	if kind != "none" {
		p, err := inner.Peek(7)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, classify(err)
		}
		if !bytes.Equal(p, []byte("BLENDER")) {
			if bytes.HasPrefix([]byte("BLENDER"), p) && errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, newError(ErrTruncated, int64(len(p)), "the %s stream ends before the .blend header is complete", kind)
			}
			return nil, newError(ErrNotBlend, 0, "%s data decompresses to %s, not a .blend (BLENDER...)", kind, quoted(p))
		}
	}
	bs, err := walk(&streamCursor{r: inner, classify: classify}, lim)
	if err == nil {
		var info *Info
		info, err = extract(bs, kind)
		if err == nil {
			return info, nil
		}
	}
	var fe *FormatError
	if kind != "none" && errors.As(err, &fe) {
		fe.Decompressed = true
	}
	return nil, err
}

// sourceReader remembers the underlying reader's own error, to tell I/O
// failures apart from corrupt compressed data.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// cappedReader fails with ErrTooLarge once more than limit bytes came out.
type cappedReader struct {
	r     io.Reader
	left  int64
	limit int64
	kind  string
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Probe: only an error if there is really more data.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, newError(ErrTooLarge, c.limit, "%s data expands to more than %d bytes", c.kind, c.limit)
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// sniff tells the compression from the first bytes.
func sniff(p []byte) (string, error) {
	switch {
	case len(p) == 0:
		return "", newError(ErrEmpty, -1, "no data")
	case bytes.HasPrefix(p, []byte("BLENDER")):
		return "none", nil
	case len(p) < 7 && bytes.HasPrefix([]byte("BLENDER"), p):
		return "", newError(ErrTruncated, int64(len(p)), "file ends inside the BLENDER magic (%d bytes)", len(p))
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		return "gzip", nil
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", nil
	case len(p) >= 4 && binary.LittleEndian.Uint32(p)>>4 == 0x184D2A5:
		return "zstd", nil // starts with a skippable frame
	case bytes.HasPrefix(p, []byte("version https://git-lfs")):
		return "", &FormatError{Kind: ErrGitLFSPointer, Offset: -1,
			Detail: "this is the small text pointer Git LFS leaves when the real file was not fetched, not the .blend",
			Fix:    fixFor(ErrGitLFSPointer)}
	}
	return "", newError(ErrNotBlend, 0, "data starts with %s; a .blend starts with BLENDER (or is gzip/zstd compressed)", quoted(p[:min(len(p), 12)]))
}
