package container

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/pipeline/plan"
)

func TestParseSaved(t *testing.T) {
	tests := []struct {
		line, path string
		ok         bool
	}{
		{"Saved: '/w/frames/frame_000005.png'", "/w/frames/frame_000005.png", true},
		{"render | Saved: '/w/frames/frame_-000003.png'", "/w/frames/frame_-000003.png", true},
		{"  Saved: '/dir with space/it''s/frame_000001.jpg'  ", "/dir with space/it''s/frame_000001.jpg", true},
		{"Fra:5 Mem:12.00M (Peak 12.00M) | Time:00:00.10 | Sample 1/1", "", false},
		{" Time: 00:00.16 (Saving: 00:00.11)", "", false},
		{"Info: Saved \"a.blend\"", "", false},
	}
	for _, tt := range tests {
		path, ok := ParseSaved(tt.line)
		if path != tt.path || ok != tt.ok {
			t.Errorf("ParseSaved(%q) = %q, %v; want %q, %v", tt.line, path, ok, tt.path, tt.ok)
		}
	}
}

func TestFrameFromPath(t *testing.T) {
	tests := []struct {
		path  string
		frame int
		ok    bool
	}{
		{"/w/frames/frame_000005.png", 5, true},
		{"/w/frames/frame_1234567.png", 1234567, true},
		{"/w/frames/frame_-000003.png", -3, true}, // Blender's name for frame -3
		{"/w/frames/frame_-00003.png", -3, true},  // the store's
		{"/w/frames/other_000003.png", 0, false},
		{"/w/frames/frame_.png", 0, false},
	}
	for _, tt := range tests {
		f, ok := FrameFromPath(tt.path)
		if f != tt.frame || ok != tt.ok {
			t.Errorf("FrameFromPath(%q) = %d, %v; want %d, %v", tt.path, f, ok, tt.frame, tt.ok)
		}
	}
}

func TestFrameArg(t *testing.T) {
	tests := []struct {
		frames []int
		want   string
	}{
		{[]int{7}, "7"},
		{[]int{1, 2, 3, 4}, "1..4"},
		{[]int{5, 8, 11}, "5,8,11"},
		{[]int{1, 3, 4, 5, 9, 10}, "1,3..5,9..10"},
		{[]int{-3, -2, 0, 1}, "+-3..+-2,+0..+1"},
	}
	for _, tt := range tests {
		if got := FrameArg(tt.frames); got != tt.want {
			t.Errorf("FrameArg(%v) = %q, want %q", tt.frames, got, tt.want)
		}
	}
}

func TestBlenderArgs(t *testing.T) {
	job := RenderJob{Blend: "/w/scene.blend", Scene: "Shot 1", Frames: []int{5, 8, 9, 10}, OutDir: "/w/frames",
		Format: "PNG", Threads: 2, Render: plan.RenderSettings{ResolutionPercentage: 50, Samples: 4}}
	got := BlenderArgs(job)
	want := []string{"-b", "-Y", "/w/scene.blend", "--scene", "Shot 1",
		"--python-exit-code", "1", "--python-expr", OverrideScript(job),
		"-o", "/w/frames/frame_######", "-F", "PNG", "-x", "1", "-t", "2", "-f", "5,8..10"}
	if !slices.Equal(got, want) {
		t.Errorf("BlenderArgs =\n%q\nwant\n%q", got, want)
	}
	// The active scene of the file is used when the plan names none.
	job.Scene = ""
	if got := BlenderArgs(job); slices.Contains(got, "--scene") || got[0] != "-b" || got[1] != "-Y" {
		t.Errorf("without a scene: %q", got)
	}
}

func TestOverrideScript(t *testing.T) {
	script := OverrideScript(RenderJob{Scene: `it's "odd"\`, Frames: []int{-1, 0},
		Render: plan.RenderSettings{ResolutionPercentage: 25, Samples: 3}})
	// The settings travel as one JSON document inside a Python string literal.
	line := strings.SplitN(strings.SplitN(script, "json.loads(", 2)[1], ")\n", 2)[0]
	var lit string
	if err := json.Unmarshal([]byte(line), &lit); err != nil {
		t.Fatalf("settings literal %s: %v", line, err)
	}
	var o map[string]any
	if err := json.Unmarshal([]byte(lit), &o); err != nil {
		t.Fatal(err)
	}
	if o["scene"] != `it's "odd"\` || o["percentage"] != 25.0 || o["samples"] != 3.0 || o["negative"] != true {
		t.Errorf("settings %v", o)
	}
	for _, want := range []string{"use_placeholder = False", "use_overwrite = True", "s.cycles.samples", "taa_render_samples", "use_denoising = False", warnPrefix} {
		if !strings.Contains(script, want) {
			t.Errorf("override script lacks %q", want)
		}
	}
	if strings.Contains(script, "save") {
		t.Error("override script saves the file")
	}
}

func TestEncodeArgs(t *testing.T) {
	got := EncodeArgs("/w/seq/%08d.png", plan.FrameRate{Num: 30000, Den: 1001}, "/w/out.mp4")
	want := []string{"-framerate", "30000/1001", "-start_number", "0", "-i", "/w/seq/%08d.png",
		"-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2,format=yuv420p",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high", "-pix_fmt", "yuv420p",
		"-g", "48", "-bf", "2", "-r", "30000/1001", "-video_track_timescale", "30000", "-movie_timescale", "30000",
		"-an", "-movflags", "+faststart", "-f", "mp4", "/w/out.mp4"}
	if !slices.Equal(got, want) {
		t.Errorf("EncodeArgs =\n%q\nwant\n%q", got, want)
	}
}

func TestConcatArgs(t *testing.T) {
	got := ConcatArgs("/w/list.txt", plan.FrameRate{Num: 24, Den: 1}, "/w/v.mp4")
	want := []string{"-f", "concat", "-safe", "0", "-i", "/w/list.txt", "-c", "copy",
		"-bsf:v", "setts=pts=round(PTS/417)*417:dts=round(DTS/417)*417", "-an", "-movflags", "+faststart", "-f", "mp4", "/w/v.mp4"}
	if !slices.Equal(got, want) {
		t.Errorf("ConcatArgs =\n%q\nwant\n%q", got, want)
	}
}

func TestTimescale(t *testing.T) {
	for _, tt := range []struct {
		rate plan.FrameRate
		want int
	}{
		{plan.FrameRate{Num: 24, Den: 1}, 10008},
		{plan.FrameRate{Num: 30000, Den: 1001}, 30000},
		{plan.FrameRate{Num: 25, Den: 1}, 10000},
		{plan.FrameRate{Num: 24000, Den: 1001}, 24000},
	} {
		if got := Timescale(tt.rate); got != tt.want {
			t.Errorf("Timescale(%v) = %d, want %d", tt.rate, got, tt.want)
		}
	}
}

func TestFrameFormat(t *testing.T) {
	for in, want := range map[string][2]string{
		"": {"PNG", "png"}, "PNG": {"PNG", "png"}, "FFMPEG": {"PNG", "png"}, "AVI_JPEG": {"PNG", "png"},
		"OPEN_EXR": {"PNG", "png"}, "JPEG": {"JPEG", "jpg"},
	} {
		if f, e := FrameFormat(in); f != want[0] || e != want[1] {
			t.Errorf("FrameFormat(%q) = %s, %s; want %v", in, f, e, want)
		}
	}
}

func TestSameRate(t *testing.T) {
	for _, tt := range []struct {
		probed string
		rate   plan.FrameRate
		want   bool
	}{
		{"24/1", plan.FrameRate{Num: 24, Den: 1}, true},
		{"24", plan.FrameRate{Num: 24, Den: 1}, true},
		{"30000/1001", plan.FrameRate{Num: 30000, Den: 1001}, true},
		{"60000/2002", plan.FrameRate{Num: 30000, Den: 1001}, true},
		{"30/1", plan.FrameRate{Num: 30000, Den: 1001}, false},
		{"179/6", plan.FrameRate{Num: 30000, Den: 1001}, false},
		{"0/0", plan.FrameRate{Num: 24, Den: 1}, false},
	} {
		if got := sameRate(tt.probed, tt.rate); got != tt.want {
			t.Errorf("sameRate(%q, %v) = %v", tt.probed, tt.rate, got)
		}
	}
}

func TestPreviewFrames(t *testing.T) {
	seq := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	tests := []struct {
		name      string
		frames    []int
		rate      plan.FrameRate
		wantCount int
		wantFirst []int
		wantFPS   float64
	}{
		{"short at 24 fps plays in real time at 8 fps", seq(48), plan.FrameRate{Num: 24, Den: 1}, 16, []int{1, 4, 7}, 8},
		{"slow rate keeps every frame", seq(20), plan.FrameRate{Num: 6, Den: 1}, 20, []int{1, 2, 3}, 6},
		{"long animation becomes a time-lapse of at most 40 frames", seq(6000), plan.FrameRate{Num: 30000, Den: 1001}, 40, []int{1, 151, 301}, 9.99},
		{"one frame", []int{7}, plan.FrameRate{Num: 24, Den: 1}, 1, []int{7}, 8},
	}
	for _, tt := range tests {
		got, fps := PreviewFrames(tt.frames, tt.rate)
		if len(got) != tt.wantCount || !slices.Equal(got[:len(tt.wantFirst)], tt.wantFirst) || fps != tt.wantFPS {
			t.Errorf("%s: %d frames starting %v at %v fps; want %d starting %v at %v", tt.name, len(got), got[:min(3, len(got))], fps, tt.wantCount, tt.wantFirst, tt.wantFPS)
		}
	}
}

func TestBlenderWarning(t *testing.T) {
	tests := []struct {
		line, want string
		ok         bool
	}{
		{"WARNING: framefleet: denoising is off", "denoising is off", true},
		{"Warning: Unable to open image '/tex/wood.png'", "blender: Warning: Unable to open image '/tex/wood.png'", true},
		{"render | Warning: Unable to open image '/x.png'", "blender: Warning: Unable to open image '/x.png'", true},
		{"Fra:1 Mem:10M | Rendering 1 / 4 samples", "", false},
		{"Saved: '/w/frame_000001.png'", "", false},
	}
	for _, tt := range tests {
		got, ok := blenderWarning(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("blenderWarning(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}
