package store

import "testing"

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
