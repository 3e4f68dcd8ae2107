package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLayoutKeys(t *testing.T) {
	tests := []struct{ got, want string }{
		{BlendKey("ab12"), "blends/ab12.blend"},
		{PlanKey("r1"), "runs/r1/plan.json"},
		{FrameKey("r1", 123, "PNG"), "runs/r1/frames/frame_000123.png"},
		{FrameKey("r1", -5, "png"), "runs/r1/frames/frame_-00005.png"},
		{SegmentKey("r1", 3), "runs/r1/segments/chunk_00003.mp4"},
		{ChunkReportKey("r1", 3), "runs/r1/chunks/chunk_00003.json"},
		{VideoKey("r1", "Scene"), "runs/r1/Scene.mp4"},
		{VideoKey("r1", "a/b:c"), "runs/r1/a_b_c.mp4"},
		{VideoKey("r1", "🎬 シーン"), "runs/r1/🎬 シーン.mp4"},
		{VideoKey("r1", ".."), "runs/r1/scene.mp4"},
		{ManifestKey("r1"), "runs/r1/manifest.json"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
		if err := checkKey(tt.got); err != nil {
			t.Errorf("layout key %q is rejected by the store: %v", tt.got, err)
		}
	}
}

func TestIsIntermediate(t *testing.T) {
	for key, want := range map[string]bool{
		FrameKey("r", 1, "png"): true,
		SegmentKey("r", 0):      true,
		VideoKey("r", "frames"): false,
		ManifestKey("r"):        false,
		BlendKey("abc"):         false,
		"runs/r/frames/x/y.png": false,
		"blends/frames/x.blend": false,
	} {
		if got := IsIntermediate(key); got != want {
			t.Errorf("IsIntermediate(%q) = %v, want %v", key, got, want)
		}
	}
}

// Renders are shared with other people: stored files must be readable by them.
func TestFileStoreObjectsAreReadable(t *testing.T) {
	st, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := st.Put(ctx, "runs/r/a.mp4", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "copy.mp4")
	if err := st.GetFile(ctx, "runs/r/a.mp4", out); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st.Path("runs/r/a.mp4"), out} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o044 != 0o044 {
			t.Errorf("%s has mode %v, want group and others to read it", p, fi.Mode().Perm())
		}
	}
}
