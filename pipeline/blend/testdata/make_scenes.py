"""Save .blend files with known render settings and record Blender's own answers.

Run with the real Blender, in the background, from a factory state:

    blender -b -Y --factory-startup --python make_scenes.py -- OUTDIR

For every case it builds the scenes, saves OUTDIR/<case>.blend, opens that file
again and writes what Blender's Python API then reports (active scene, every
scene, frame range, fps, resolution, engine, output format) into
OUTDIR/expected.json, keyed by file name, with the same keys as the reader's
JSON. The Go test pipeline/blend/blender_test.go compares the pure-Go reader to
these answers.

Why the window matters: Blender stores the active scene in FileGlobal.curscene,
which write_global() takes from the window manager's active window, so the
active scene is chosen with window.scene. In background mode (-b) the factory
startup file still has one window (it is just never shown), so this works.
"""

import json
import os
import sys

import bpy

# A 60-byte UTF-8 name with CJK and an emoji: under Blender's 63-byte limit
# (MAX_ID_NAME 66 minus the 2-byte ID code and the NUL).
LONG_UNICODE_NAME = "Szene 日本語のシーン 🎬 Ünïcödé naming test!!!!"


def window():
    wm = bpy.context.window_manager
    if bpy.context.window is not None:
        return bpy.context.window
    if len(wm.windows) > 0:
        return wm.windows[0]
    raise SystemExit("make_scenes.py: no window in the window manager, so the active scene cannot be chosen")


def fresh():
    """Start each case from Blender's factory startup file."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    return bpy.context.scene


def configure(scene, *, start=1, end=250, step=1, fps=24, fps_base=1.0,
              res=(1920, 1080), pct=100, engine="CYCLES", fmt="PNG"):
    r = scene.render
    scene.frame_start = start
    scene.frame_end = end
    scene.frame_step = step
    r.fps = fps
    r.fps_base = fps_base
    r.resolution_x, r.resolution_y = res
    r.resolution_percentage = pct
    r.engine = engine
    r.image_settings.file_format = fmt
    return scene


def activate(scene):
    window().scene = scene


# Each case returns the name of the scene that must be active after saving.
def case_two_scenes():
    first = configure(fresh(), end=100, res=(1920, 1080), engine="CYCLES", fmt="PNG")
    first.name = "Aaa First"
    second = configure(bpy.data.scenes.new("Bbb Second"), start=5, end=48, fps=25,
                       res=(640, 360), pct=50, engine="BLENDER_WORKBENCH", fmt="JPEG")
    activate(second)
    return second.name


def case_three_scenes():
    a = configure(fresh(), end=10, res=(800, 600), engine="CYCLES", fmt="PNG")
    a.name = "Alpha"
    b = configure(bpy.data.scenes.new("Bravo"), start=101, end=180, step=2, fps=50,
                  res=(1024, 576), pct=75, engine="BLENDER_EEVEE", fmt="OPEN_EXR")
    c = configure(bpy.data.scenes.new("Charlie"), start=-20, end=20, fps=12,
                  res=(320, 240), engine="BLENDER_WORKBENCH", fmt="JPEG")
    activate(b)
    return b.name


def case_three_scenes_last_active():
    a = configure(fresh(), end=30, engine="CYCLES")
    a.name = "Scene"
    configure(bpy.data.scenes.new("Scene.001"), end=40, engine="BLENDER_EEVEE")
    c = configure(bpy.data.scenes.new("Zulu"), start=3, end=33, fps=60,
                  res=(1280, 720), engine="BLENDER_WORKBENCH", fmt="FFMPEG")
    activate(c)
    return c.name


def case_ntsc():
    s = configure(fresh(), end=300, fps=30, fps_base=1.001, engine="CYCLES", fmt="PNG")
    return s.name


def case_odd_percentage():
    s = configure(fresh(), res=(1279, 721), pct=37, engine="CYCLES", fmt="JPEG")
    return s.name


def case_eevee_exr():
    return configure(fresh(), engine="BLENDER_EEVEE", fmt="OPEN_EXR").name


def case_workbench_ffmpeg():
    return configure(fresh(), fps=60, engine="BLENDER_WORKBENCH", fmt="FFMPEG").name


def case_long_range():
    return configure(fresh(), start=1, end=20000, step=7, engine="CYCLES", fmt="PNG").name


def case_step_0():
    # Blender (3.4 at least) accepts and saves frame_step 0, then renders
    # only the first frame.
    s = configure(fresh(), start=5, end=40, step=0, engine="CYCLES", fmt="PNG")
    if s.frame_step != 0:
        raise SystemExit("make_scenes.py: this Blender stored frame_step %d for 0" % s.frame_step)
    return s.name


def case_unicode_name():
    s = configure(fresh(), end=12, engine="CYCLES", fmt="PNG")
    s.name = LONG_UNICODE_NAME
    if s.name != LONG_UNICODE_NAME:
        raise SystemExit("make_scenes.py: Blender shortened the scene name to %r" % s.name)
    return s.name


# name: (builder, save compressed)
CASES = {
    "two_scenes": (case_two_scenes, False),
    "two_scenes_zstd": (case_two_scenes, True),
    "three_scenes": (case_three_scenes, False),
    "three_scenes_zstd": (case_three_scenes, True),
    "three_scenes_last_active": (case_three_scenes_last_active, False),
    "ntsc_29_97": (case_ntsc, False),
    "ntsc_29_97_zstd": (case_ntsc, True),
    "percent_37": (case_odd_percentage, False),
    "eevee_exr": (case_eevee_exr, False),
    "workbench_ffmpeg_zstd": (case_workbench_ffmpeg, True),
    "range_20000_step_7": (case_long_range, False),
    "step_0": (case_step_0, False),
    "unicode_name": (case_unicode_name, False),
    "unicode_name_zstd": (case_unicode_name, True),
}


def sniff_compression(path):
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.startswith(b"BLENDER"[:4]):
        return "none"
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"\x28\xb5\x2f\xfd":
        return "zstd"
    raise SystemExit("make_scenes.py: %s starts with unknown bytes %r" % (path, magic))


def answers(path):
    """Open the saved file and ask Blender what it contains."""
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=True)
    scene = window().scene
    r = scene.render
    v = bpy.data.version
    return {
        "version": "%d.%d" % (v[0], v[1]),
        "compression": sniff_compression(path),
        "scene": scene.name,
        "scenes": [s.name for s in bpy.data.scenes],
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "fps": r.fps,
        "fps_base": r.fps_base,
        "resolution_x": r.resolution_x,
        "resolution_y": r.resolution_y,
        "resolution_percentage": r.resolution_percentage,
        "engine": r.engine,
        "file_format": r.image_settings.file_format,
        # Blender renders start, start+step, ... up to end; with step 0
        # only start (range() would raise on a 0 step).
        "frame_count": (len(range(scene.frame_start, scene.frame_end + 1, scene.frame_step))
                        if scene.frame_step > 0 else int(scene.frame_end >= scene.frame_start)),
    }


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        raise SystemExit("usage: blender -b -Y --factory-startup --python make_scenes.py -- OUTDIR")
    outdir = os.path.abspath(argv[0])
    os.makedirs(outdir, exist_ok=True)

    expected = {}
    for name, (build, compress) in CASES.items():
        want_active = build()
        path = os.path.join(outdir, name + ".blend")
        bpy.ops.wm.save_as_mainfile(filepath=path, compress=compress, check_existing=False)
        got = answers(path)
        if got["scene"] != want_active:
            raise SystemExit("make_scenes.py: %s: Blender reopened the file with scene %r active, want %r"
                             % (name, got["scene"], want_active))
        expected[os.path.basename(path)] = got

    with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print("make_scenes.py: wrote %d files to %s" % (len(expected), outdir))


main()
