package plan

import (
	"errors"
	"slices"
	"testing"
)

func TestParseFrames(t *testing.T) {
	tests := []struct {
		spec string
		want []int
	}{
		{"1-5", []int{1, 2, 3, 4, 5}},
		{"1..5", []int{1, 2, 3, 4, 5}},
		{"1-10x3", []int{1, 4, 7, 10}},
		{"1-11x5", []int{1, 6, 11}},
		{"1-12x5", []int{1, 6, 11}},
		{"3,7,12-14", []int{3, 7, 12, 13, 14}},
		{"7,3,3,1-3", []int{1, 2, 3, 7}},
		{"-5..-3", []int{-5, -4, -3}},
		{"-2-1", []int{-2, -1, 0, 1}},
		{"-3", []int{-3}},
		{" 4 , 2 ", []int{2, 4}},
		{"0", []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseFrames(tt.spec)
			if err != nil {
				t.Fatalf("ParseFrames(%q): %v", tt.spec, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ParseFrames(%q) = %v, want %v", tt.spec, got, tt.want)
			}
		})
	}
}

func TestParseFramesErrors(t *testing.T) {
	for _, spec := range []string{"", "a", "1-", "5-1", "1-10x0", "1-10x-2", "1x2", "1,,2", "1-2-3", "0-2000000", "1048575", "-1048575..0"} {
		t.Run(spec, func(t *testing.T) {
			_, err := ParseFrames(spec)
			if !errors.Is(err, ErrInvalidFrames) {
				t.Fatalf("ParseFrames(%q) error = %v, want ErrInvalidFrames", spec, err)
			}
		})
	}
}

func TestFormatRoundTrip(t *testing.T) {
	for _, spec := range []string{"1-100", "1-100x5", "3,7,12-20", "-5-5", "1,2", "5-20003x7"} {
		frames, err := ParseFrames(spec)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseFrames(Format(frames))
		if err != nil {
			t.Fatalf("Format(%q) = %q does not parse: %v", spec, Format(frames), err)
		}
		if !slices.Equal(frames, back) {
			t.Fatalf("round trip of %q via %q changed frames", spec, Format(frames))
		}
	}
}

func TestSceneFrames(t *testing.T) {
	got, err := SceneFrames(5, 20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{5, 8, 11, 14, 17, 20}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	big, err := SceneFrames(1, 20000, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(big) != (20000-1)/7+1 || big[len(big)-1] > 20000 {
		t.Fatalf("20,000-frame range with step 7: %d frames ending %d", len(big), big[len(big)-1])
	}
	one, err := SceneFrames(7, 20, 0)
	if err != nil || !slices.Equal(one, []int{7}) {
		t.Fatalf("step 0 (Blender renders the start frame only): %v, %v", one, err)
	}
	for _, bad := range [][3]int{{1, 10, -1}, {10, 1, 1}, {0, MaxFrames + 5, 1}, {1, MaxFrame + 1, 1}} {
		if _, err := SceneFrames(bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalidFrames) {
			t.Errorf("SceneFrames%v error = %v, want ErrInvalidFrames", bad, err)
		}
	}
}

// Every frame lands in exactly one chunk, in order, and no chunk runs past
// the last frame (the workshop's last child rendered past the end).
func TestChunksCoverFramesExactlyOnce(t *testing.T) {
	tests := []struct {
		name               string
		start, end, step   int
		chunk              int
		wantChunks, lastSz int
	}{
		{"workshop 199 by 10", 1, 199, 1, 10, 20, 9},
		{"start 5 step 3", 5, 50, 3, 4, 4, 4},
		{"one chunk", 1, 3, 1, 10, 1, 3},
		{"negative start", -10, 10, 1, 7, 3, 7},
		{"chunk of one", 0, 4, 2, 1, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frames, err := SceneFrames(tt.start, tt.end, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			p := &Plan{Frames: frames, ChunkSize: tt.chunk}
			if p.NumChunks() != tt.wantChunks {
				t.Fatalf("NumChunks = %d, want %d", p.NumChunks(), tt.wantChunks)
			}
			var all []int
			for i := range p.NumChunks() {
				c, err := p.Chunk(i)
				if err != nil {
					t.Fatal(err)
				}
				if len(c) == 0 || len(c) > tt.chunk {
					t.Fatalf("chunk %d has %d frames", i, len(c))
				}
				if i == p.NumChunks()-1 && len(c) != tt.lastSz {
					t.Fatalf("last chunk has %d frames, want %d", len(c), tt.lastSz)
				}
				all = append(all, c...)
			}
			if !slices.Equal(all, frames) {
				t.Fatalf("chunks cover %v, want %v", all, frames)
			}
			if _, err := p.Chunk(p.NumChunks()); !errors.Is(err, ErrChunkOutOfRange) {
				t.Fatalf("chunk past the end: %v", err)
			}
			if _, err := p.Chunk(-1); !errors.Is(err, ErrChunkOutOfRange) {
				t.Fatalf("chunk -1: %v", err)
			}
		})
	}
}

func TestAutoChunkSize(t *testing.T) {
	tests := []struct {
		n, parallel int
		wantChunks  int
	}{
		{199, 2, 4}, // 100 per worker → 2 rounds of ≤50 each
		{48, 2, 2},  // one chunk per worker
		{3, 8, 3},   // never an empty chunk
		{1, 1, 1},
		{100000, 1000, 2000},
		{1000000, 100000, 10000}, // capped at the Batch array limit
	}
	for _, tt := range tests {
		size := AutoChunkSize(tt.n, tt.parallel)
		chunks := (tt.n + size - 1) / size
		if chunks != tt.wantChunks {
			t.Errorf("AutoChunkSize(%d, %d) = %d → %d chunks, want %d", tt.n, tt.parallel, size, chunks, tt.wantChunks)
		}
		if size > MaxAutoChunk && chunks < MaxArraySize {
			t.Errorf("AutoChunkSize(%d, %d) = %d exceeds MaxAutoChunk", tt.n, tt.parallel, size)
		}
	}
}

func TestFitChunkSize(t *testing.T) {
	if got := FitChunkSize(50000, 1); (50000+got-1)/got > MaxArraySize {
		t.Fatalf("FitChunkSize(50000, 1) = %d leaves more than %d chunks", got, MaxArraySize)
	}
	if got := FitChunkSize(100, 7); got != 7 {
		t.Fatalf("FitChunkSize kept %d, want 7", got)
	}
}

func TestFrameRateFromScene(t *testing.T) {
	tests := []struct {
		fps  int
		base float64
		want string
	}{
		{24, 1, "24"},
		{30, 1.00100004673, "30000/1001"}, // float32 1.001 as stored
		{60, 1.001, "60000/1001"},
		{25, 1, "25"},
		{50, 2, "25"},
	}
	for _, tt := range tests {
		r, err := FrameRateFromScene(tt.fps, tt.base)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != tt.want {
			t.Errorf("FrameRateFromScene(%d, %v) = %s, want %s", tt.fps, tt.base, r, tt.want)
		}
	}
	if _, err := FrameRateFromScene(0, 1); err == nil {
		t.Error("fps 0 accepted")
	}
}

func TestValidate(t *testing.T) {
	good := Plan{Schema: Schema, RunID: "r", Blend: Blend{Key: "blends/x.blend"}, Frames: []int{1, 2}, ChunkSize: 1, FrameRate: FrameRate{24, 1}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(p *Plan){
		func(p *Plan) { p.Schema = 99 },
		func(p *Plan) { p.RunID = "" },
		func(p *Plan) { p.Frames = nil },
		func(p *Plan) { p.Frames = []int{2, 1} },
		func(p *Plan) { p.ChunkSize = 0 },
		func(p *Plan) { p.FrameRate = FrameRate{} },
	}
	for i, mutate := range bad {
		p := good
		p.Frames = slices.Clone(good.Frames)
		mutate(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("case %d: invalid plan accepted", i)
		}
	}
}
