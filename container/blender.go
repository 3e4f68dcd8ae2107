package container

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/framefleet/framefleet/pipeline/plan"
)

// Blender runs Blender with an argument list (never through a shell) and
// hands every line it prints to onLine.
type Blender interface {
	Run(ctx context.Context, args []string, onLine func(line string)) error
}

// ExecBlender runs the Blender executable at Path.
type ExecBlender struct {
	Path string
}

// Run implements Blender.
func (b ExecBlender) Run(ctx context.Context, args []string, onLine func(string)) error {
	path := b.Path
	if path == "" {
		path = "blender"
	}
	if err := runLines(command(ctx, path, args...), onLine); err != nil {
		return fmt.Errorf("blender: %w", err)
	}
	return nil
}

// RenderJob is one Blender invocation: some frames of one scene.
type RenderJob struct {
	Blend  string // local .blend path
	Scene  string // scene name; "" keeps the file's active scene
	Frames []int  // sorted frames to render
	// OutDir receives frame_######.<ext> files.
	OutDir string
	// Format is Blender's image format for the frames ("PNG", "JPEG", ...).
	Format  string
	Threads int // 0 = all cores
	Render  plan.RenderSettings
	// CyclesDevice is "" (the scene's own device setting, CPU on Debian's
	// Blender), or GPU, CUDA, OPTIX, HIP, ONEAPI, METAL to render Cycles on
	// this machine's GPUs (the job definition sets FRAMEFLEET_CYCLES_DEVICE).
	CyclesDevice string
}

// framePattern is the output name; Blender replaces the #s with the frame
// number (zero-padded, with a leading '-' for negative frames).
const framePattern = "frame_######"

// BlenderArgs is the exact argument list for a RenderJob. Blender processes
// arguments left to right, so the file comes first, the overrides run once it
// is loaded, and output, format and threads are set before -f renders.
func BlenderArgs(j RenderJob) []string {
	args := []string{
		"-b", "-Y", j.Blend,
	}
	if j.Scene != "" {
		args = append(args, "--scene", j.Scene)
	}
	args = append(args,
		"--python-exit-code", "1",
		"--python-expr", OverrideScript(j),
		"-o", filepath.Join(j.OutDir, framePattern),
		"-F", j.Format,
		"-x", "1",
		"-t", strconv.Itoa(j.Threads),
		"-f", FrameArg(j.Frames),
	)
	return args
}

// FrameArg writes frames for Blender's -f: "1,4,7..12". Blender reads a
// leading '-' as "relative to the end frame", so when the list holds negative
// frames every item is written relative to the start frame ("+-3"), which the
// override script sets to 0 (see OverrideScript).
func FrameArg(frames []int) string {
	relative := len(frames) > 0 && frames[0] < 0
	item := func(f int) string {
		if relative {
			return "+" + strconv.Itoa(f)
		}
		return strconv.Itoa(f)
	}
	var parts []string
	for i := 0; i < len(frames); {
		j := i
		for j+1 < len(frames) && frames[j+1] == frames[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, item(frames[i])+".."+item(frames[j]))
		} else {
			parts = append(parts, item(frames[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// warnPrefix marks the override script's warnings in Blender's log so the
// worker can relay them.
const warnPrefix = "WARNING: framefleet: "

// overrideTemplate is applied in memory after the file loads; it never saves.
// %s is a JSON object of settings.
const overrideTemplate = `
import json, sys
import bpy
o = json.loads(%s)
s = bpy.context.scene
if o["scene"] and s.name != o["scene"]:
    names = ", ".join(repr(x.name) for x in bpy.data.scenes)
    sys.exit("Error: framefleet: scene %%r is not in this file (its scenes: %%s)" %% (o["scene"], names))
r = s.render
if o["negative"]:
    # -f lists negative frames relative to the start frame, so fix it at 0.
    s.frame_start = 0
if o["percentage"]:
    r.resolution_percentage = o["percentage"]
# Render every frame we were given (they are all missing), and never leave
# placeholder files that would look like finished frames.
r.use_placeholder = False
r.use_overwrite = True
if r.engine == "CYCLES":
    if o["samples"]:
        s.cycles.samples = o["samples"]
    try:
        import _cycles
        oidn = bool(_cycles.with_openimagedenoise)
    except Exception:
        oidn = bool(getattr(bpy.app.build_options, "openimagedenoise", False))
    if s.cycles.use_denoising and not oidn:
        s.cycles.use_denoising = False
        for vl in s.view_layers:
            vl.cycles.use_denoising = False
        print("WARNING: framefleet: this Blender has no OpenImageDenoise, so Cycles denoising is turned off; frames will be noisier than in the scene's own renders", flush=True)
    if o["device"]:
        # A GPU job: use every GPU of the first backend this Blender has, or fail
        # loudly rather than render slowly on the CPU of a GPU instance.
        prefs = bpy.context.preferences.addons["cycles"].preferences
        kinds = [o["device"]] if o["device"] != "GPU" else ["OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"]
        chosen = None
        for kind in kinds:
            try:
                prefs.compute_device_type = kind
            except TypeError:
                continue
            prefs.get_devices()
            gpus = [d for d in prefs.devices if d.type == kind]
            if gpus:
                for d in prefs.devices:
                    d.use = d.type == kind
                chosen = kind
                break
        if chosen is None:
            sys.exit("Error: framefleet: FRAMEFLEET_CYCLES_DEVICE=%%s but this Blender finds no such GPU: use an official Blender build (BLENDER_SOURCE=official) on a GPU instance with NVIDIA drivers" %% o["device"])
        s.cycles.device = "GPU"
        print("framefleet: Cycles renders on %%s" %% chosen, flush=True)
elif r.engine in ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"):
    if o["samples"]:
        s.eevee.taa_render_samples = o["samples"]
# Blender renders a missing image as magenta without a word; say so.
import os
for img in bpy.data.images:
    if img.source == "FILE" and img.users and img.filepath and not img.packed_file and not img.library:
        if not os.path.exists(bpy.path.abspath(img.filepath)):
            print("WARNING: framefleet: image %%r is missing (%%s) and renders as magenta: the file was not found when the render was submitted (it is in the run's missing inputs); put it at that path in the project and render again" %% (img.name, img.filepath), flush=True)
for lib in bpy.data.libraries:
    if not os.path.exists(bpy.path.abspath(lib.filepath)):
        print("WARNING: framefleet: linked library %%s is missing: its objects are not rendered" %% lib.filepath, flush=True)
`

// OverrideScript is the --python-expr that applies the plan's render
// settings to the loaded scene.
func OverrideScript(j RenderJob) string {
	settings, _ := json.Marshal(map[string]any{
		"scene":      j.Scene,
		"percentage": j.Render.ResolutionPercentage,
		"samples":    j.Render.Samples,
		"negative":   len(j.Frames) > 0 && j.Frames[0] < 0,
		"device":     strings.ToUpper(j.CyclesDevice),
	})
	// The settings go in as one JSON document inside a Python string
	// literal, so no scene name can break out of the script.
	return strings.TrimSpace(fmt.Sprintf(overrideTemplate, pyString(string(settings))))
}

// pyString quotes s as a Python string literal.
func pyString(s string) string {
	b, _ := json.Marshal(s) // JSON strings are valid Python literals
	return string(b)
}

// savedLine matches Blender's "Saved: '<path>'" (Blender 5 prefixes log
// lines with "render | ").
var savedLine = regexp.MustCompile(`^(?:\S+\s*\|\s*)?Saved: '(.*)'`)

// ParseSaved returns the path of a "Saved:" line.
func ParseSaved(line string) (path string, ok bool) {
	m := savedLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return "", false
	}
	return m[1], true
}

var frameFile = regexp.MustCompile(`^frame_(-?\d+)\.([A-Za-z0-9]+)$`)

// FrameFromPath reads the frame number from a file Blender saved as frame_######.ext.
func FrameFromPath(path string) (frame int, ok bool) {
	m := frameFile.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, false
	}
	return n, true
}

// isBlenderError picks the lines that explain a failure.
func isBlenderError(line string) bool {
	return strings.Contains(line, "Error") || strings.Contains(line, "error:") ||
		strings.HasPrefix(strings.TrimSpace(line), "Traceback") || strings.Contains(line, "Can't find scene") ||
		strings.Contains(line, "Unable to open")
}
