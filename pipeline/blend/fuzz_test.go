package blend

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

// FuzzRead: on any input the reader returns an Info or an error of one of
// the documented kinds, and never panics.
func FuzzRead(f *testing.F) {
	// The real corpus, when present; fuzzing still runs without it.
	dir := filepath.Join(testenv.RepoRoot(), "..", "shared", "blendfiles")
	if paths, err := filepath.Glob(filepath.Join(dir, "*.blend")); err == nil {
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	for _, seed := range [][]byte{
		nil,
		[]byte("BLENDER"),
		[]byte("BLENDER-v279ENDB"),
		[]byte("BLENDER_V260\x00\x00SC\x00\x00\x00\x10"),
		[]byte("BLENDER17-01v0500ENDB"),
		[]byte("BLENDER18-02v0600"),
		[]byte("version https://git-lfs.github.com/spec/v1\n"),
		{0x1f, 0x8b, 0x08, 0x00},
		{0x28, 0xb5, 0x2f, 0xfd, 0x00},
		{0x50, 0x2a, 0x4d, 0x18, 0x00, 0x00, 0x00, 0x00},
		gzipBytes(f, []byte("BLENDER-v279REND\x48\x00\x00\x00")),
		zstdBytes(f, []byte("BLENDER-v279ENDB")),
	} {
		f.Add(seed)
	}
	// A small cap keeps each run fast; the code path is the one ReadStream uses.
	lim := limits{maxDecompressed: 64 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := readAt(bytes.NewReader(data), int64(len(data)), lim)
		checkOutcome(t, "ReadAt", info, err)
		info, err = readStream(bytes.NewReader(data), lim)
		checkOutcome(t, "ReadStream", info, err)
	})
}

func checkOutcome(t *testing.T, via string, info *Info, err error) {
	t.Helper()
	if err != nil {
		if info != nil {
			t.Fatalf("%s returned both an Info and the error %v", via, err)
		}
		var fe *FormatError
		if !errors.As(err, &fe) || !slices.ContainsFunc(sentinels(), func(k error) bool { return errors.Is(err, k) }) {
			t.Fatalf("%s error %v is not one of the documented kinds", via, err)
		}
		return
	}
	if info == nil {
		t.Fatalf("%s returned neither an Info nor an error", via)
	}
	if !slices.Contains(info.Scenes, info.Scene) || info.FrameStep < 1 {
		t.Fatalf("%s returned an inconsistent Info %+v", via, info)
	}
	if th := info.Thumbnail; th != nil && len(th.RGBA) != th.Width*th.Height*4 {
		t.Fatalf("%s thumbnail %dx%d has %d bytes", via, th.Width, th.Height, len(th.RGBA))
	}
}
