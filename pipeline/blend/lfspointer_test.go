package blend_test

import (
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/blend"
)

func TestParseLFSPointer(t *testing.T) {
	oid := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		data string
		ok   bool
		size int64
	}{
		{"pointer", "version https://git-lfs.github.com/spec/v1\noid sha256:" + oid + "\nsize 12345\n", true, 12345},
		{"unknown keys kept apart", "version https://git-lfs.github.com/spec/v1\next-0-foo sha256:" + oid + "\noid sha256:" + oid + "\nsize 7\n", true, 7},
		{"a blend", "BLENDER-v304REND", false, 0},
		{"no size", "version https://git-lfs.github.com/spec/v1\noid sha256:" + oid + "\n", false, 0},
		{"short oid", "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n", false, 0},
		{"other version", "version https://hawser.github.com/spec/v1\noid sha256:" + oid + "\nsize 1\n", false, 0},
		{"too long to be a pointer", "version https://git-lfs.github.com/spec/v1\noid sha256:" + oid + "\nsize 1\n" + strings.Repeat("x", 2000), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := blend.ParseLFSPointer([]byte(tc.data))
			if ok != tc.ok || (ok && (p.OID != oid || p.Size != tc.size)) {
				t.Errorf("got %+v, %v; want ok=%v size %d", p, ok, tc.ok, tc.size)
			}
		})
	}
}
