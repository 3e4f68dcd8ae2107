package blend

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// LFSPointer is a Git LFS pointer file: what a checkout without `lfs: true`
// holds in place of a large file (git-lfs docs/spec.md).
type LFSPointer struct {
	OID  string // SHA-256 of the content, hex
	Size int64
}

// LFSPointerMaxSize bounds what is read to tell a pointer: the spec says
// pointers "should be small (less than 200 bytes)".
const LFSPointerMaxSize = 1024

// ParseLFSPointer reads a pointer file's text; ok is false for anything
// else, e.g. a real .blend (which starts with BLENDER or a compression magic).
func ParseLFSPointer(data []byte) (p LFSPointer, ok bool) {
	if len(data) > LFSPointerMaxSize || !bytes.HasPrefix(data, []byte("version https://git-lfs.github.com/spec/v1\n")) {
		return LFSPointer{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	size := int64(-1)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "oid":
			hex, found := strings.CutPrefix(v, "sha256:")
			if found && len(hex) == 64 && strings.Trim(hex, "0123456789abcdef") == "" {
				p.OID = hex
			}
		case "size":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				size = n
			}
		}
	}
	if p.OID == "" || size < 0 {
		return LFSPointer{}, false
	}
	p.Size = size
	return p, true
}
