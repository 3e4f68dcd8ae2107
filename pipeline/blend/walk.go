package blend

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxKeptBlock bounds a payload the reader keeps in memory (REND, TEST, GLOB,
// SC, DNA1). Real ones are a few KB to a few hundred KB; the cap keeps a
// corrupt length from turning into a huge allocation.
const maxKeptBlock = 64 << 20

// header is the decoded file header.
type header struct {
	size    int // 12 or 17 bytes
	ptrSize int // 4 or 8
	order   binary.ByteOrder
	version int // 279, 304, 500, 502...
	large   bool
}

func (h *header) bheadSize() int {
	switch {
	case h.large:
		return 32
	case h.ptrSize == 8:
		return 24
	default:
		return 20
	}
}

// bhead is one decoded block header.
type bhead struct {
	code   [4]byte // normalised: 2-char ID codes are "XY\0\0" in both byte orders
	sdna   int64
	old    uint64
	length int64
	nr     int64
	offset int64 // offset of the block header in the (decompressed) file
}

// name is the block code for messages, without the NUL padding of 2-char
// codes ("SC", not "SC\x00\x00").
func (b bhead) name() string { return strings.TrimRight(string(b.code[:]), "\x00") }

// quoted renders raw bytes for an error message: quoted once, with control
// characters and invalid UTF-8 escaped Go-style.
func quoted(p []byte) string { return strconv.Quote(string(p)) }

func isDigits(p []byte) bool {
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(p) > 0
}

func atoiDigits(p []byte) int {
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

// parseHeader decodes the legacy 12-byte or the 17-byte (5.x) header.
func parseHeader(c cursor) (*header, error) {
	p, err := c.read(12)
	if err != nil {
		return nil, err
	}
	if len(p) < 12 {
		if len(p) == 0 {
			return nil, newError(ErrEmpty, -1, "no data")
		}
		return nil, newError(ErrTruncated, int64(len(p)), "file ends inside the %d-byte file header (%d bytes present)", 12, len(p))
	}
	if string(p[:7]) != "BLENDER" {
		return nil, newError(ErrNotBlend, 0, "data starts with %s, not BLENDER", quoted(p))
	}
	switch p[7] {
	case '_', '-':
		h := &header{size: 12, ptrSize: 4, order: binary.LittleEndian}
		if p[7] == '-' {
			h.ptrSize = 8
		}
		switch p[8] {
		case 'v':
		case 'V':
			h.order = binary.BigEndian
		default:
			return nil, newError(ErrCorrupt, 8, "header %s has endianness byte %s, want v or V", quoted(p), quoted(p[8:9]))
		}
		if !isDigits(p[9:12]) {
			return nil, newError(ErrCorrupt, 9, "header %s has no 3-digit version", quoted(p))
		}
		h.version = atoiDigits(p[9:12])
		return h, nil
	}
	if !isDigits(p[7:9]) {
		return nil, newError(ErrCorrupt, 7, "header %s starts with BLENDER but is neither the legacy 12-byte nor the 17-byte header", quoted(p))
	}
	hdrSize := atoiDigits(p[7:9])
	full := bytes.Clone(p) // the next read may reuse p's memory
	rest, err := c.read(5)
	if err != nil {
		return nil, err
	}
	full = append(full, rest...)
	if hdrSize != 17 {
		// The header-size and format-version fields exist so that later
		// formats can change them: this is a newer format, not garbage.
		return nil, unsupportedHeader(full, hdrSize)
	}
	if len(rest) < 5 {
		return nil, newError(ErrTruncated, int64(len(full)), "file ends inside the 17-byte file header %s", quoted(full))
	}
	if full[9] == '-' && isDigits(full[10:12]) && string(full[10:12]) != "01" {
		return nil, unsupportedHeader(full, hdrSize)
	}
	if string(full[9:12]) != "-01" || full[12] != 'v' || !isDigits(full[13:17]) {
		return nil, newError(ErrCorrupt, 9, "header %s: want -01v and a 4-digit version after BLENDER17", quoted(full))
	}
	return &header{size: 17, ptrSize: 8, order: binary.LittleEndian, version: atoiDigits(full[13:17]), large: true}, nil
}

// unsupportedHeader explains a header of the 17-byte scheme with a header
// size or file-format version this reader does not know, decoding what it
// can: "BLENDER17-02v0600" is format 02 saved by Blender 6.0.
func unsupportedHeader(found []byte, hdrSize int) error {
	var what string
	if len(found) >= 17 && found[9] == '-' && isDigits(found[10:12]) && found[12] == 'v' && isDigits(found[13:17]) {
		v := atoiDigits(found[13:17])
		what = fmt.Sprintf("file-format version %s, saved by Blender %d.%d (header %s)", found[10:12], v/100, v%100, found[:17])
		if hdrSize != 17 {
			what = fmt.Sprintf("%d-byte header, %s", hdrSize, what)
		}
	} else {
		what = fmt.Sprintf("a %d-byte header %s", hdrSize, quoted(found))
	}
	return &FormatError{Kind: ErrUnsupportedFormat, Offset: 0,
		Detail: what + ": this framefleet reads the 12-byte header and the 17-byte header with file-format versions up to 01",
		Fix:    "upgrade framefleet to a release that reads this format, or save the file from a Blender whose format this framefleet reads"}
}

// decodeBHead decodes a complete block header of h.bheadSize() bytes.
func decodeBHead(h *header, p []byte, off int64) bhead {
	var b bhead
	copy(b.code[:], p[:4])
	// 2-char ID codes are a 16-bit value: "\0\0SC" in big-endian files.
	if b.code[0] == 0 && b.code[1] == 0 && b.code[2] != 0 {
		b.code = [4]byte{b.code[2], b.code[3], 0, 0}
	}
	o := h.order
	b.offset = off
	switch {
	case h.large:
		b.sdna = int64(int32(o.Uint32(p[4:])))
		b.old = o.Uint64(p[8:])
		b.length = int64(o.Uint64(p[16:]))
		b.nr = int64(o.Uint64(p[24:]))
	case h.ptrSize == 8:
		b.length = int64(int32(o.Uint32(p[4:])))
		b.old = o.Uint64(p[8:])
		b.sdna = int64(int32(o.Uint32(p[16:])))
		b.nr = int64(int32(o.Uint32(p[20:])))
	default:
		b.length = int64(int32(o.Uint32(p[4:])))
		b.old = uint64(o.Uint32(p[8:]))
		b.sdna = int64(int32(o.Uint32(p[12:])))
		b.nr = int64(int32(o.Uint32(p[16:])))
	}
	return b
}

// cursor is a forward-only view of the decompressed file.
type cursor interface {
	// read returns up to n bytes at the current offset and advances past
	// them; fewer than n only at end of data. The slice is valid until the
	// next call. err is set only for failures other than end of data.
	read(n int) ([]byte, error)
	// skip advances n bytes without reading them.
	skip(n int64, b bhead) error
	// payload returns the next n bytes as a new slice.
	payload(n int64, b bhead) ([]byte, error)
	offset() int64
	// remaining is the number of bytes left, or -1 when unknown (streams).
	remaining() int64
}

// block is a kept block: header plus payload.
type block struct {
	bhead
	data []byte
}

// blocks is what the walk keeps: only what the scene settings need.
type blocks struct {
	hdr    *header
	rend   *block
	test   *block
	glob   *block
	dna1   *block
	scenes []*block
	count  int   // blocks walked
	kept   int64 // payload bytes kept in memory
}

func isCode(c [4]byte, s string) bool { return string(c[:]) == s }

// walk reads block headers up to ENDB, keeping only the payloads needed.
func walk(c cursor, lim limits) (*blocks, error) {
	h, err := parseHeader(c)
	if err != nil {
		return nil, err
	}
	bs := &blocks{hdr: h}
	size := h.bheadSize()
	for {
		off := c.offset()
		p, err := c.read(size)
		if err != nil {
			return nil, err
		}
		if len(p) < size {
			// Old files may end right after the ENDB code.
			if len(p) >= 4 && string(p[:4]) == "ENDB" {
				return bs, nil
			}
			if len(p) == 0 {
				return nil, newError(ErrTruncated, off, "file ends after block #%d without the ENDB end marker", bs.count)
			}
			return nil, newError(ErrTruncated, off, "file ends inside the header of block #%d (%d of %d bytes present)", bs.count, len(p), size)
		}
		b := decodeBHead(h, p, off)
		if isCode(b.code, "ENDB") {
			return bs, nil
		}
		if b.length < 0 {
			return nil, newError(ErrCorrupt, off, "block #%d %q has negative length %d", bs.count, b.name(), b.length)
		}
		if rem := c.remaining(); rem >= 0 && b.length > rem {
			return nil, newError(ErrTruncated, off, "block #%d %q needs %d payload bytes but only %d remain", bs.count, b.name(), b.length, rem)
		}
		var keep **block
		switch {
		case isCode(b.code, "REND"):
			keep = &bs.rend
		case isCode(b.code, "TEST"):
			keep = &bs.test
		case isCode(b.code, "GLOB"):
			keep = &bs.glob
		case isCode(b.code, "DNA1"):
			keep = &bs.dna1
		}
		switch {
		case keep != nil && *keep == nil, isCode(b.code, "SC\x00\x00"):
			if err := bs.checkKeep(b, lim); err != nil {
				return nil, err
			}
			data, err := c.payload(b.length, b)
			if err != nil {
				return nil, err
			}
			bs.kept += int64(len(data))
			kb := &block{bhead: b, data: data}
			if keep != nil {
				*keep = kb
			} else {
				bs.scenes = append(bs.scenes, kb)
			}
		default:
			if err := c.skip(b.length, b); err != nil {
				return nil, err
			}
		}
		bs.count++
	}
}

// checkKeep enforces the caps on what the walk keeps before keeping b: a
// crafted file of millions of (empty) SC blocks must not exhaust memory.
// REND, TEST, GLOB and DNA1 are kept once each, so only scenes accumulate.
func (bs *blocks) checkKeep(b bhead, lim limits) error {
	if isCode(b.code, "SC\x00\x00") && len(bs.scenes) >= lim.maxScenes {
		return &FormatError{Kind: ErrTooLarge, Offset: b.offset,
			Detail: fmt.Sprintf("more than %d scene (SC) blocks; real files have a handful", lim.maxScenes),
			Fix:    "the file is corrupt or was not written by Blender: re-save it from Blender, or restore it from a backup"}
	}
	if n := min(b.length, maxKeptBlock); bs.kept+n > lim.maxKeptBytes {
		return &FormatError{Kind: ErrTooLarge, Offset: b.offset,
			Detail: fmt.Sprintf("the scene and settings blocks add up to more than %d bytes (%d kept before block %q of %d bytes); real files need well under 1 MiB", lim.maxKeptBytes, bs.kept, b.name(), b.length),
			Fix:    "the file is corrupt or was not written by Blender: re-save it from Blender, or restore it from a backup"}
	}
	return nil
}

func tooLargeBlock(b bhead, n int64) error {
	return newError(ErrTooLarge, b.offset, "block %q claims %d payload bytes, more than the %d this reader keeps in memory", b.name(), n, maxKeptBlock)
}

func truncatedPayload(b bhead, got int64) error {
	return newError(ErrTruncated, b.offset, "file ends inside the payload of block %q (%d of %d bytes present)", b.name(), got, b.length)
}

// atCursor reads an io.ReaderAt through a small window, so walking block
// headers touches only the headers and the small payloads between them.
//
// Bytes read must follow the number of block headers, not the window size:
// after a skip that jumps past the window (a payload of more than
// sparseSkip bytes), the cursor reads exactly what is asked for (the next
// header, bhead-sized) until it sees a run of denseRun small blocks again;
// only then does it go back to whole windows, which keep the syscall count
// low on the long runs of small blocks typical files are made of.
type atCursor struct {
	r      io.ReaderAt
	size   int64
	off    int64
	buf    []byte
	bufOff int64
	sparse bool // read exactly what is asked for, no window
	small  int  // consecutive small skips while sparse
}

const (
	atWindow   = 16 << 10
	sparseSkip = 4 << 10 // a larger skipped payload switches to exact reads
	denseRun   = 4       // this many small blocks in a row switch back
)

func newAtCursor(r io.ReaderAt, size int64) *atCursor {
	return &atCursor{r: r, size: size, buf: make([]byte, 0, atWindow)}
}

func (c *atCursor) offset() int64    { return c.off }
func (c *atCursor) remaining() int64 { return c.size - c.off }

// fill loads want bytes (a whole window unless sparse) at the current offset.
func (c *atCursor) fill(want int) error {
	n := int64(want)
	if !c.sparse {
		n = int64(max(want, atWindow))
	}
	n = min(n, c.size-c.off)
	if n < 0 {
		n = 0
	}
	if int64(cap(c.buf)) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	got, err := c.r.ReadAt(c.buf, c.off)
	c.buf = c.buf[:got]
	c.bufOff = c.off
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading .blend at offset %d: %w", c.off, err)
	}
	return nil
}

func (c *atCursor) read(n int) ([]byte, error) {
	start := c.off - c.bufOff
	if c.off < c.bufOff || start+int64(n) > int64(len(c.buf)) {
		if err := c.fill(n); err != nil {
			return nil, err
		}
		start = 0
	}
	end := min(start+int64(n), int64(len(c.buf)))
	p := c.buf[start:end]
	c.off += int64(len(p))
	return p, nil
}

func (c *atCursor) skip(n int64, b bhead) error {
	if n > c.size-c.off {
		return truncatedPayload(b, c.size-c.off)
	}
	c.off += n
	c.track(n)
	return nil
}

// track switches between window and exact reads by the payload sizes seen.
func (c *atCursor) track(n int64) {
	switch {
	case n > sparseSkip:
		c.sparse, c.small = true, 0
	case c.sparse:
		c.small++
		if c.small >= denseRun {
			c.sparse, c.small = false, 0
		}
	}
}

func (c *atCursor) payload(n int64, b bhead) ([]byte, error) {
	if n > c.size-c.off {
		return nil, truncatedPayload(b, c.size-c.off)
	}
	if n > maxKeptBlock {
		return nil, tooLargeBlock(b, n)
	}
	c.track(n)
	if n <= atWindow {
		p, err := c.read(int(n))
		if err != nil {
			return nil, err
		}
		if int64(len(p)) < n {
			return nil, truncatedPayload(b, int64(len(p)))
		}
		return bytes.Clone(p), nil
	}
	out := make([]byte, n)
	got, err := c.r.ReadAt(out, c.off)
	if int64(got) < n {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading .blend at offset %d: %w", c.off, err)
		}
		return nil, truncatedPayload(b, int64(got))
	}
	c.off += n
	return out, nil
}

// streamCursor reads a stream once, front to back.
type streamCursor struct {
	r       *bufio.Reader
	off     int64
	scratch []byte
	// classify turns a read error that is not end of data into the error
	// to report (I/O error, corrupt compressed data, size cap).
	classify func(error) error
}

func (c *streamCursor) offset() int64    { return c.off }
func (c *streamCursor) remaining() int64 { return -1 }

func (c *streamCursor) read(n int) ([]byte, error) {
	if cap(c.scratch) < n {
		c.scratch = make([]byte, n)
	}
	p := c.scratch[:n]
	got, err := io.ReadFull(c.r, p)
	c.off += int64(got)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, c.classify(err)
	}
	return p[:got], nil
}

func (c *streamCursor) skip(n int64, b bhead) error {
	var done int64
	for done < n {
		step := int(min(n-done, 1<<30))
		got, err := c.r.Discard(step)
		done += int64(got)
		c.off += int64(got)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return truncatedPayload(b, done)
			}
			return c.classify(err)
		}
	}
	return nil
}

func (c *streamCursor) payload(n int64, b bhead) ([]byte, error) {
	// The buffer grows only as bytes actually arrive, so a lying length
	// costs at most the data really present (capped at maxKeptBlock).
	var buf bytes.Buffer
	got, err := io.Copy(&buf, io.LimitReader(c.r, min(n, maxKeptBlock)))
	c.off += got
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, c.classify(err)
	}
	if got < min(n, maxKeptBlock) {
		return nil, truncatedPayload(b, got)
	}
	if n > maxKeptBlock {
		return nil, tooLargeBlock(b, n)
	}
	return buf.Bytes(), nil
}
