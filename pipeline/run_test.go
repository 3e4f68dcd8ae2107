package pipeline

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/plan"
)

func sceneInfo() *blend.Info {
	return &blend.Info{
		Version: "3.4", Scene: "Shot", FrameStart: 5, FrameEnd: 20, FrameStep: 3, FPS: 30, FPSBase: 1.001,
		ResolutionX: 1920, ResolutionY: 1080, ResolutionPercentage: 50, Engine: "CYCLES",
	}
}

func TestNewPlan(t *testing.T) {
	tests := []struct {
		name       string
		req        Request
		frames     []int
		chunk      int
		w, h       int
		rate       string
		errHas     string
		renderPct  int
		renderSmpl int
	}{
		{name: "scene range and step, auto chunks for 2 workers", req: Request{Parallelism: 2},
			frames: []int{5, 8, 11, 14, 17, 20}, chunk: 3, w: 960, h: 540, rate: "30000/1001"},
		{name: "explicit frames and chunk", req: Request{Frames: "1-3,10", Chunk: 3, Parallelism: 4},
			frames: []int{1, 2, 3, 10}, chunk: 3, w: 960, h: 540, rate: "30000/1001"},
		{name: "preview overrides", req: Request{ResolutionPercentage: 10, Samples: 4, Parallelism: 1},
			frames: []int{5, 8, 11, 14, 17, 20}, chunk: 6, w: 192, h: 108, rate: "30000/1001", renderPct: 10, renderSmpl: 4},
		{name: "bad frames", req: Request{Frames: "5-1"}, errHas: "invalid frame list"},
		{name: "bad stitch", req: Request{Stitch: "zip"}, errHas: "render.stitch zip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newPlan(sceneInfo(), withDefaults(tc.req), plan.Blend{Key: "blends/x.blend", SHA256: "x"})
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Frames, tc.frames) || p.ChunkSize != tc.chunk || p.Width != tc.w || p.Height != tc.h || p.FrameRate.String() != tc.rate {
				t.Errorf("plan frames %v chunk %d size %dx%d rate %s; want %v %d %dx%d %s",
					p.Frames, p.ChunkSize, p.Width, p.Height, p.FrameRate, tc.frames, tc.chunk, tc.w, tc.h, tc.rate)
			}
			if p.Render.ResolutionPercentage != tc.renderPct || p.Render.Samples != tc.renderSmpl || p.Scene != "Shot" || p.Stitch != plan.StitchConcat {
				t.Errorf("plan render %+v scene %q stitch %q", p.Render, p.Scene, p.Stitch)
			}
			p.RunID = "r"
			if err := p.Validate(); err != nil {
				t.Errorf("plan does not validate: %v", err)
			}
		})
	}
}

func TestNewPlanTinyResolution(t *testing.T) {
	info := sceneInfo()
	info.ResolutionX, info.ResolutionY = 64, 36
	_, err := newPlan(info, withDefaults(Request{ResolutionPercentage: 1}), plan.Blend{})
	if err == nil || !strings.Contains(err.Error(), "raise the resolution percentage") {
		t.Errorf("err = %v, want a hint to raise the resolution", err)
	}
}

func TestCacheKey(t *testing.T) {
	base, err := newPlan(sceneInfo(), withDefaults(Request{}), plan.Blend{SHA256: "aaa"})
	if err != nil {
		t.Fatal(err)
	}
	key := cacheKey(base)
	same := []func(*plan.Plan){
		func(p *plan.Plan) { p.ChunkSize = 1 },
		func(p *plan.Plan) { p.Render.Threads = 8 },
		func(p *plan.Plan) { p.RunID = "other"; p.CreatedAt = time.Now() },
	}
	for i, f := range same {
		p := base
		p.Frames = slices.Clone(base.Frames)
		f(&p)
		if cacheKey(p) != key {
			t.Errorf("change %d (how, not what, is rendered) changed the cache key", i)
		}
	}
	differ := []func(*plan.Plan){
		func(p *plan.Plan) { p.Blend.SHA256 = "bbb" },
		func(p *plan.Plan) { p.Scene = "Other" },
		func(p *plan.Plan) { p.Frames = p.Frames[1:] },
		func(p *plan.Plan) { p.Render.Samples = 3 },
		func(p *plan.Plan) { p.Render.ResolutionPercentage = 10 },
		func(p *plan.Plan) { p.Stitch = plan.StitchEncode },
		func(p *plan.Plan) { p.Blender = "4.2.3" },
		func(p *plan.Plan) { p.Inputs = &plan.Inputs{Digest: "changed texture"} },
	}
	for i, f := range differ {
		p := base
		p.Frames = slices.Clone(base.Frames)
		f(&p)
		if cacheKey(p) == key {
			t.Errorf("change %d did not change the cache key", i)
		}
	}
}

func TestNewer(t *testing.T) {
	tests := []struct {
		file, blender string
		want          bool
	}{
		{"3.4", "3.4.1", false},
		{"3.0", "3.4.1", false},
		{"3.5", "3.4.1", true},
		{"4.2", "3.4.1", true},
		{"2.79", "3.4.1", false},
		{"3.10", "3.9.0", true},
		{"5.0", "5.0.0", false},
	}
	for _, tc := range tests {
		if got := newer(tc.file, tc.blender); got != tc.want {
			t.Errorf("newer(%q, %q) = %v, want %v", tc.file, tc.blender, got, tc.want)
		}
	}
}

func TestBlenderTooOldErrorSaysHowToFixIt(t *testing.T) {
	err := error(&BlenderTooOldError{File: "4.2", Blender: "3.4.1", Path: "shot.blend"})
	for _, s := range []string{"shot.blend", "4.2", "3.4.1", "Blender 4.2 or newer", "blender setting", "build arg"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not mention %q", err, s)
		}
	}
	var target *BlenderTooOldError
	if !errors.As(err, &target) {
		t.Error("not an *BlenderTooOldError")
	}
}

func TestNewRunID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewRunID()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{8}$`).MatchString(id) {
			t.Fatalf("run id %q is not 8 characters of lower-case Crockford base32", id)
		}
		if seen[id] {
			t.Fatalf("run id %q repeated within 1000", id)
		}
		seen[id] = true
	}
}

func TestRunFailedErrorListsFailures(t *testing.T) {
	one := 1
	err := &RunFailedError{RunID: "r1", Failures: []ChildFailure{
		{Index: 3, Attempts: 1, Reason: "exit code 1: Error: missing texture", ExitCode: &one, LogStream: "/tmp/x.err"},
		{Index: 7, Attempts: 3, Reason: "Host local (pid 9) terminated."},
	}, StitchReason: "Dependent job failed"}
	for _, s := range []string{"run r1 failed", "chunk 3 failed after 1 attempt(s): exit code 1: Error: missing texture", "/tmp/x.err", "chunk 7", "stitch: Dependent job failed"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not mention %q", err, s)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"24": 24, "30000/1001": 30000.0 / 1001, "x": 0, "1/0": 0} {
		if got := RateValue(in); got != want {
			t.Errorf("RateValue(%q) = %v, want %v", in, got, want)
		}
	}
}
