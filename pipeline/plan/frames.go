package plan

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxFrames bounds a frame list so a typo like 1-999999999 fails fast
// instead of allocating gigabytes.
const MaxFrames = 1_000_000

// ErrInvalidFrames is wrapped by every frame-spec parsing error.
var ErrInvalidFrames = errors.New("invalid frame list")

// Blender's frame limits (MINAFRAME and MAXFRAME): Blender clamps anything
// outside them and would save a different frame than the one planned.
const (
	MinFrame = -1048574
	MaxFrame = 1048574
)

func checkFrameLimits(start, end int) error {
	if start < MinFrame || end > MaxFrame {
		return fmt.Errorf("frames %d-%d: %w: Blender renders frames %d to %d only", start, end, ErrInvalidFrames, MinFrame, MaxFrame)
	}
	return nil
}

// SceneFrames lists start..end every step, like Blender's own animation
// render. Step 0, which Blender saves when asked, renders the start frame only.
func SceneFrames(start, end, step int) ([]int, error) {
	if step < 0 {
		return nil, fmt.Errorf("frame step %d: %w: the step must be at least 1", step, ErrInvalidFrames)
	}
	if end < start {
		return nil, fmt.Errorf("frame range %d-%d ends before it starts: %w", start, end, ErrInvalidFrames)
	}
	if err := checkFrameLimits(start, end); err != nil {
		return nil, err
	}
	if step == 0 {
		return []int{start}, nil
	}
	n := (end-start)/step + 1
	if n > MaxFrames {
		return nil, fmt.Errorf("%d frames is more than %d: %w", n, MaxFrames, ErrInvalidFrames)
	}
	out := make([]int, 0, n)
	for f := start; f <= end; f += step {
		out = append(out, f)
	}
	return out, nil
}

// ParseFrames reads Blender's frame notation extended with steps:
// "1-100", "1..100", "1-100x5", "3,7,12-20", "-5..5". The result is sorted and unique.
func ParseFrames(spec string) ([]int, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("empty frame list: %w: give frames like 1-100, 1-100x5 or 3,7,12-20", ErrInvalidFrames)
	}
	var out []int
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		start, end, step, err := parseRange(part)
		if err != nil {
			return nil, fmt.Errorf("frames %q: %w: item %q: %v (examples: 1-100, 1-100x5, 3,7,12-20)", spec, ErrInvalidFrames, part, err)
		}
		if err := checkFrameLimits(start, end); err != nil {
			return nil, err
		}
		if n := (end-start)/step + 1; len(out)+n > MaxFrames {
			return nil, fmt.Errorf("frames %q: %w: more than %d frames", spec, ErrInvalidFrames, MaxFrames)
		}
		for f := start; f <= end; f += step {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func parseRange(s string) (start, end, step int, err error) {
	if s == "" {
		return 0, 0, 0, errors.New("empty item")
	}
	step = 1
	if i := strings.LastIndexByte(s, 'x'); i >= 0 {
		step, err = strconv.Atoi(s[i+1:])
		if err != nil || step < 1 {
			return 0, 0, 0, fmt.Errorf("step %q is not a whole number of at least 1", s[i+1:])
		}
		s = s[:i]
	}
	lo, hi, isRange := splitRange(s)
	start, err = strconv.Atoi(lo)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%q is not a frame number", lo)
	}
	end = start
	if isRange {
		end, err = strconv.Atoi(hi)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%q is not a frame number", hi)
		}
	} else if step != 1 {
		return 0, 0, 0, errors.New("a step needs a range")
	}
	if end < start {
		return 0, 0, 0, fmt.Errorf("range ends (%d) before it starts (%d)", end, start)
	}
	return start, end, step, nil
}

// splitRange splits "a-b" or "a..b" where a and b may be negative.
func splitRange(s string) (lo, hi string, ok bool) {
	if i := strings.Index(s, ".."); i >= 0 {
		return s[:i], s[i+2:], true
	}
	// Skip a leading sign; the next '-' separates the range.
	if i := strings.IndexByte(s[min(1, len(s)):], '-'); i >= 0 {
		i++
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// Format writes frames back in compact range notation ("1-10x3,20").
func Format(frames []int) string {
	var b strings.Builder
	for i := 0; i < len(frames); {
		j := i + 1
		if j < len(frames) {
			step := frames[j] - frames[i]
			for j+1 < len(frames) && frames[j+1]-frames[j] == step {
				j++
			}
			if j-i >= 2 {
				if b.Len() > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%d-%d", frames[i], frames[j])
				if step != 1 {
					fmt.Fprintf(&b, "x%d", step)
				}
				i = j + 1
				continue
			}
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", frames[i])
		i++
	}
	return b.String()
}
