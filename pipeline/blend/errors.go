package blend

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of format errors. A *FormatError's Kind is one of these, so callers
// branch with errors.Is(err, blend.ErrTruncated) and friends.
var (
	ErrEmpty         = errors.New("empty file")
	ErrNotBlend      = errors.New("not a .blend file")
	ErrGitLFSPointer = errors.New("Git LFS pointer instead of a .blend")
	ErrTruncated     = errors.New("truncated .blend file")
	ErrCorrupt       = errors.New("corrupt .blend file")
	// ErrUnsupportedFormat is only for headers that follow the 17-byte
	// scheme ("BLENDER" + 2-digit header size + "-" + 2-digit format
	// version) with a size or format version this reader does not know:
	// those are newer files. Anything else after "BLENDER" (BLENDERv304,
	// BLENDER_X304) matches no Blender's header and is ErrCorrupt.
	ErrUnsupportedFormat = errors.New("unsupported (newer) .blend format")
	ErrNoScene           = errors.New("no scene in .blend file")
	ErrTooLarge          = errors.New(".blend data too large")
)

// FormatError says what is wrong with the input, where, and how to fix it.
type FormatError struct {
	Kind   error // one of the Err* sentinels above
	Offset int64 // byte offset in the (decompressed) file; negative when not applicable
	// Decompressed says Offset counts bytes of the decompressed data of a
	// gzip or zstd file, not of the file on disk.
	Decompressed bool
	Detail       string // what exactly was found
	Fix          string // what the user should do
}

func (e *FormatError) Error() string {
	var b strings.Builder
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("bad .blend file")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	switch {
	case e.Offset >= 0 && e.Decompressed:
		fmt.Fprintf(&b, " (at decompressed byte offset %d)", e.Offset)
	case e.Offset >= 0:
		fmt.Fprintf(&b, " (at byte offset %d)", e.Offset)
	}
	if e.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Kind }

// fixFor is the default fix for each kind; a FormatError may carry a more
// specific one.
func fixFor(kind error) string {
	switch kind {
	case ErrEmpty:
		return "the file has 0 bytes: copy or download it again, or re-save it from Blender"
	case ErrNotBlend:
		return "pass a .blend file saved by Blender (File > Save)"
	case ErrGitLFSPointer:
		return "run `git lfs pull` (or `git lfs fetch && git lfs checkout`) in the repository to fetch the real .blend, then retry"
	case ErrTruncated:
		return "the file is incomplete (interrupted save, copy or upload): copy it again or re-save it from Blender"
	case ErrCorrupt:
		return "re-save the file from Blender (File > Save As); if Blender cannot open it either, restore it from a backup"
	case ErrUnsupportedFormat:
		return "this file was saved by a newer Blender than this framefleet understands: upgrade framefleet, or save it from that Blender in a format older versions read"
	case ErrNoScene:
		return "open the file in Blender, make sure it has a scene, and save it again"
	case ErrTooLarge:
		return "save the .blend uncompressed (uncheck File > Save > Compress) or reduce its size"
	}
	return ""
}

// newError builds a FormatError with the kind's default fix.
func newError(kind error, off int64, format string, args ...any) *FormatError {
	return &FormatError{Kind: kind, Offset: off, Detail: fmt.Sprintf(format, args...), Fix: fixFor(kind)}
}
