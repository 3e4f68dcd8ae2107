package container

import (
	"context"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/plan"
	"github.com/framefleet/framefleet/pipeline/store"
)

// A scene blob whose content is not what the run recorded (replaced after
// upload, or damaged) fails the chunk permanently, naming the file, before
// Blender runs: a retry would fetch the same bytes.
func TestRenderChunkRefusesASceneThatDoesNotMatchItsHash(t *testing.T) {
	scene := makeScene(t, map[string]any{"start": 1, "end": 2, "width": 64, "height": 36})
	r := newRun(t, scene, plan.Plan{Frames: []int{1, 2}, ChunkSize: 2, Render: plan.RenderSettings{Threads: 1}})
	planted := makeScene(t, map[string]any{"start": 1, "end": 2, "width": 80, "height": 36})
	if err := r.store.PutFile(context.Background(), r.plan.Blend.Key, planted); err != nil {
		t.Fatal(err)
	}
	_, err := r.worker.RenderChunk(context.Background(), 0)
	if err == nil {
		t.Fatal("the chunk rendered a scene that does not match its recorded hash")
	}
	if code := exitCode(err); code != ExitPermanent {
		t.Errorf("exit code %d, want %d (permanent): %v", code, ExitPermanent, err)
	}
	for _, want := range []string{r.plan.Blend.Key, r.plan.Blend.SHA256, "SHA-256"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if len(r.blender.calls) != 0 {
		t.Errorf("Blender ran %d times on the unverified scene", len(r.blender.calls))
	}
	if keys := r.storedFrameKeys(t); len(keys) != 0 {
		t.Errorf("frames stored from the unverified scene: %v", keys)
	}
}

func TestExpectedBlendSHA256(t *testing.T) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct {
		blend plan.Blend
		want  string
	}{
		{plan.Blend{Key: store.BlendKey(sha), SHA256: strings.Repeat("a", 64)}, strings.Repeat("a", 64)},
		{plan.Blend{Key: store.BlendKey(sha)}, sha}, // the content-addressed key names it
		{plan.Blend{Key: store.BlendKey("cli")}, ""},
		{plan.Blend{Key: "elsewhere/" + sha + ".blend"}, ""},
	}
	for _, tt := range tests {
		if got := expectedBlendSHA256(tt.blend); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.blend, got, tt.want)
		}
	}
}
