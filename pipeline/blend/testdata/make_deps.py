"""Save one small project per dependency case, for the tracer's tests.

    blender -b -Y --factory-startup --python make_deps.py -- OUTDIR

Every case is a folder OUTDIR/<case>/ holding its scene (scene.blend, or
shots/shot.blend when the case is about paths above the blend) and the
files it needs. The Go test (trace_test.go) states what the tracer must
list for each; this script only builds the files with the real Blender, so
the .blend files are Blender's own, not hand-made.

The sound_strip case also runs ffmpeg (on PATH) to make a 3-frame movie.
Cases can be chosen by name after OUTDIR (default: all).

Paths are stored exactly as a user would have them ("//textures/a.png",
"//textures\\win.png", "C:\\Users\\..."), and every save uses
relative_remap=False so Blender keeps them as set.
"""

import os
import shutil
import struct
import subprocess
import sys
import wave
import zlib

import bpy

OUT = sys.argv[sys.argv.index("--") + 1]


def png(path, rgb=(0, 255, 0), size=4):
    """Write a size x size PNG of one colour (no PIL in Blender's Python)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def wav(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)


def fresh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    bpy.context.preferences.filepaths.save_version = 0  # no scene.blend1 backups
    return scene


def save(path, compress=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=path, relative_remap=False, compress=compress)


def image(name, stored, load_from=None, source=None):
    """An image datablock storing path `stored` (loaded from load_from when given)."""
    if load_from:
        img = bpy.data.images.load(load_from, check_existing=False)
        img.name = name
    else:
        img = bpy.data.images.new(name, 4, 4)
        img.source = "FILE"
    if source:
        img.source = source
    img.filepath_raw = stored  # as stored, without reloading
    return img


def textured_plane(scene, name, img):
    """A plane whose material samples img, linked into scene."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
    ob = bpy.data.objects.new(name, mesh)
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = img
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    mesh.materials.append(mat)
    scene.collection.objects.link(ob)
    return ob


def case_texture_subfolder(d):
    scene = fresh()
    png(f"{d}/textures/a.png")
    plane_ob = textured_plane(scene, "Plane", image("a", "//textures/a.png", f"{d}/textures/a.png"))
    # An IES light profile read from a file by the material.
    stand_in(f"{d}/ies/spot.ies", b"IESNA:LM-63-2002\n")
    ies = plane_ob.active_material.node_tree.nodes.new("ShaderNodeTexIES")
    ies.mode = "EXTERNAL"
    ies.filepath = "//ies/spot.ies"
    # Not reached from the scene: kept only by a fake user.
    png(f"{d}/textures/orphan.png")
    orphan = image("orphan", "//textures/orphan.png", f"{d}/textures/orphan.png")
    orphan.use_fake_user = True
    # A painting brush's texture: reached only through the tool settings,
    # which a render does not use.
    png(f"{d}/textures/stamp.png")
    tex = bpy.data.textures.new("Stamp", "IMAGE")
    tex.image = image("stamp", "//textures/stamp.png", f"{d}/textures/stamp.png")
    brush = bpy.data.brushes.new("Stamp", mode="TEXTURE_PAINT")
    brush.texture = tex
    scene.tool_settings.image_paint.brush = brush
    save(f"{d}/scene.blend")


def case_texture_up(d):
    scene = fresh()
    png(f"{d}/textures/left.png")
    textured_plane(scene, "Plane", image("left", "//../textures/left.png", f"{d}/textures/left.png"))
    save(f"{d}/shots/shot.blend", compress=True)  # zstd: traced and rewritten all the same


def case_image_sequence(d):
    scene = fresh()
    for i in (1, 2, 3):
        png(f"{d}/seq/frame_{i:04d}.png")
    png(f"{d}/seq/other_0001.png")  # another sequence in the same folder
    img = image("frames", "//seq/frame_0001.png", f"{d}/seq/frame_0001.png", source="SEQUENCE")
    textured_plane(scene, "Plane", img)
    save(f"{d}/scene.blend")


def case_udim(d):
    scene = fresh()
    for tile in (1001, 1002):
        png(f"{d}/tex/wood.{tile}.png")
    png(f"{d}/tex/wood.preview.png")
    img = bpy.data.images.new("wood", 4, 4, tiled=True)
    img.tiles.new(tile_number=1002)
    img.source = "TILED"
    img.filepath = "//tex/wood.<UDIM>.png"
    textured_plane(scene, "Plane", img)
    save(f"{d}/scene.blend")


def make_prop(path, texture_stored, texture_file, rgb=(0, 0, 255), name="Prop"):
    scene = fresh()
    png(texture_file, rgb)
    textured_plane(scene, name, image(name + "Tex", texture_stored, texture_file))
    save(path)


def link_object(lib_path, name, scene, stored):
    with bpy.data.libraries.load(lib_path, link=True) as (_, data_to):
        data_to.objects = [name]
    for ob in data_to.objects:
        scene.collection.objects.link(ob)
    for lib in bpy.data.libraries:
        if os.path.samefile(bpy.path.abspath(lib.filepath), lib_path):
            lib.filepath = stored


def case_library(d):
    make_prop(f"{d}/lib/prop.blend", "//tex/right.png", f"{d}/lib/tex/right.png")
    scene = fresh()
    png(f"{d}/textures/left.png", (0, 255, 0))
    textured_plane(scene, "Left", image("left", "//../textures/left.png", f"{d}/textures/left.png"))
    save(f"{d}/shots/shot.blend")
    link_object(f"{d}/lib/prop.blend", "Prop", scene, "//../lib/prop.blend")
    save(f"{d}/shots/shot.blend")


def case_library_two_paths(d):
    # a.blend is linked by the scene as //lib/a.blend and by lib/b.blend as //a.blend.
    make_prop(f"{d}/lib/a.blend", "//tex/a.png", f"{d}/lib/tex/a.png", name="A")
    scene = fresh()
    png(f"{d}/lib/tex/b.png")
    textured_plane(scene, "B", image("BTex", "//tex/b.png", f"{d}/lib/tex/b.png"))
    save(f"{d}/lib/b.blend")
    link_object(f"{d}/lib/a.blend", "A", scene, "//a.blend")
    bpy.data.objects["B"].parent = bpy.data.objects["A"]  # so B needs A
    save(f"{d}/lib/b.blend")
    scene = fresh()
    save(f"{d}/scene.blend")
    link_object(f"{d}/lib/b.blend", "B", scene, "//lib/b.blend")
    link_object(f"{d}/lib/a.blend", "A", scene, "//lib/a.blend")
    save(f"{d}/scene.blend")


def case_font(d):
    scene = fresh()
    src = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    os.makedirs(f"{d}/fonts", exist_ok=True)
    shutil.copy(src, f"{d}/fonts/title.ttf")
    font = bpy.data.fonts.load(f"{d}/fonts/title.ttf")
    font.filepath = "//fonts/title.ttf"
    curve = bpy.data.curves.new("Title", "FONT")
    curve.body = "framefleet"
    curve.font = font  # bold/italic stay Blender's <builtin> font
    scene.collection.objects.link(bpy.data.objects.new("Title", curve))
    save(f"{d}/scene.blend")


def case_sound_strip(d):
    scene = fresh()
    wav(f"{d}/audio/beep.wav")
    for i in (1, 2):
        png(f"{d}/strips/card_{i:04d}.png")
    ed = scene.sequence_editor_create()
    snd = ed.sequences.new_sound("beep", f"{d}/audio/beep.wav", 1, 1)
    snd.sound.filepath = "//audio/beep.wav"
    cards = ed.sequences.new_image("cards", f"{d}/strips/card_0001.png", 2, 1)
    cards.elements.append("card_0002.png")
    cards.directory = "//strips/"
    # A movie strip: a 3-frame clip made by ffmpeg (Blender only reads movies).
    os.makedirs(f"{d}/movies", exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=16x16:rate=24", "-frames:v", "3",
                    "-pix_fmt", "yuv420p", f"{d}/movies/clip.mp4"], check=True)
    clip = ed.sequences.new_movie("clip", f"{d}/movies/clip.mp4", 3, 1)
    clip.filepath = "//movies/clip.mp4"
    save(f"{d}/scene.blend")


def case_alembic(d):
    """A Mesh Sequence Cache modifier reading an Alembic file.

    Blender is built without Alembic on some systems (Debian's 3.4 package:
    bpy.app.build_options.alembic is False), so the file is exported when
    the build can, and otherwise is a stand-in with Alembic's Ogawa magic:
    the tracer only needs the CacheFile datablock and a file at its path.
    """
    scene = fresh()
    mesh = bpy.data.meshes.new("Tri")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    ob = bpy.data.objects.new("Tri", mesh)
    scene.collection.objects.link(ob)
    os.makedirs(f"{d}/cache", exist_ok=True)
    if bpy.app.build_options.alembic:
        bpy.ops.wm.alembic_export(filepath=f"{d}/cache/anim.abc", start=1, end=2)
    else:
        with open(f"{d}/cache/anim.abc", "wb") as f:
            f.write(b"Ogawa\xff\x00\x01" + bytes(64))
    bpy.ops.cachefile.open(filepath=f"{d}/cache/anim.abc")
    cf = bpy.data.cache_files[-1]
    cf.filepath = "//cache/anim.abc"
    mod = ob.modifiers.new("Cache", "MESH_SEQUENCE_CACHE")
    mod.cache_file = cf
    save(f"{d}/scene.blend")


def case_baked_cache(d):
    scene = fresh()
    mesh = bpy.data.meshes.new("Emitter")
    mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
    ob = bpy.data.objects.new("Emitter", mesh)
    scene.collection.objects.link(ob)
    ob.modifiers.new("Sparks", "PARTICLE_SYSTEM")
    psys = ob.particle_systems[0]
    psys.settings.count = 10
    psys.settings.frame_start, psys.settings.frame_end = 1, 2
    cache = psys.point_cache
    cache.frame_start, cache.frame_end = 1, 3
    save(f"{d}/scene.blend")  # a disk cache needs a saved file
    cache.use_disk_cache = True
    with bpy.context.temp_override(scene=scene, point_cache=cache):
        bpy.ops.ptcache.bake(bake=True)
    save(f"{d}/scene.blend")


def case_absolute(d):
    scene = fresh()
    png(f"{d}/elsewhere/abs.png")
    textured_plane(scene, "Here", image("here", f"{d}/elsewhere/abs.png", f"{d}/elsewhere/abs.png"))
    textured_plane(scene, "Gone", image("gone", "/nonexistent/framefleet/gone.png"))
    save(f"{d}/scene.blend")


def case_packed(d):
    scene = fresh()
    png(f"{d}/textures/packed.png")
    img = bpy.data.images.load(f"{d}/textures/packed.png")
    img.name = "packed"
    img.pack()
    img.filepath_raw = "//textures/packed.png"
    textured_plane(scene, "Plane", img)
    save(f"{d}/scene.blend")
    os.remove(f"{d}/textures/packed.png")  # the packed copy is all the scene needs


def case_windows(d):
    scene = fresh()
    png(f"{d}/textures/win.png")
    textured_plane(scene, "Win", image("win", "//textures\\win.png", f"{d}/textures/win.png"))
    textured_plane(scene, "Drive", image("drive", "C:\\Users\\artist\\tex\\wood.png"))
    save(f"{d}/scene.blend")


def plane(scene, name):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
    ob = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(ob)
    return ob


def stand_in(path, data=b"framefleet test stand-in\n"):
    """A file only its path matters for (the tracer never parses it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def case_volume_sequence(d):
    scene = fresh()
    for i in (1, 2):
        stand_in(f"{d}/vdb/smoke_{i:04d}.vdb")
    vol = bpy.data.volumes.new("Smoke")
    vol.filepath = "//vdb/smoke_0001.vdb"
    vol.is_sequence = True
    scene.collection.objects.link(bpy.data.objects.new("Smoke", vol))
    save(f"{d}/scene.blend")


def case_movieclip(d):
    scene = fresh()
    for i in (1, 2):
        png(f"{d}/plates/plate_{i:04d}.png")
    save(f"{d}/scene.blend")  # so that the relative path below loads
    clip = bpy.data.movieclips.load(f"{d}/plates/plate_0001.png")
    clip.name = "plate"
    clip.filepath = "//plates/plate_0001.png"
    assert clip.source == "SEQUENCE", clip.source
    scene.active_clip = clip
    save(f"{d}/scene.blend")


def case_mesh_cache(d):
    scene = fresh()
    stand_in(f"{d}/cache/wave.pc2")
    ob = plane(scene, "Wave")
    mod = ob.modifiers.new("Wave", "MESH_CACHE")
    mod.cache_format = "PC2"
    mod.filepath = "//cache/wave.pc2"
    # Not in any scene, kept by a fake user: not a dependency.
    stand_in(f"{d}/cache/unused.mdd")
    unused = bpy.data.objects.new("Unused", bpy.data.meshes.new("Unused"))
    unused.modifiers.new("Unused", "MESH_CACHE").filepath = "//cache/unused.mdd"
    unused.use_fake_user = True
    save(f"{d}/scene.blend")


def case_ocean(d):
    """An ocean baked to //ocean/. In background mode the bake's end step,
    which sets the modifier's "cached" flag, never runs, so the saved
    modifier does not read the bake; the Go test sets the flag itself."""
    scene = fresh()
    ob = plane(scene, "Sea")
    mod = ob.modifiers.new("Ocean", "OCEAN")
    mod.resolution = 4
    mod.frame_start, mod.frame_end = 1, 2
    mod.filepath = "//ocean/"
    save(f"{d}/scene.blend")
    with bpy.context.temp_override(object=ob, active_object=ob):
        bpy.ops.object.ocean_bake(modifier="Ocean")
    save(f"{d}/scene.blend")


def case_multires(d):
    scene = fresh()
    ob = plane(scene, "Sculpt")
    bpy.context.view_layer.objects.active = ob
    mod = ob.modifiers.new("Multires", "MULTIRES")
    with bpy.context.temp_override(object=ob, active_object=ob):
        bpy.ops.object.multires_subdivide(modifier="Multires", mode="CATMULL_CLARK")
    save(f"{d}/scene.blend")
    os.makedirs(f"{d}/sculpt", exist_ok=True)
    with bpy.context.temp_override(object=ob, active_object=ob):
        bpy.ops.object.multires_external_save(filepath=f"{d}/sculpt/detail.btx", relative_path=True, modifier="Multires")
    save(f"{d}/scene.blend")


def case_fluid(d):
    scene = fresh()
    scene.frame_end = 2
    mesh = bpy.data.meshes.new("Domain")  # a domain needs volume: a cube
    v = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    mesh.from_pydata(v, [], [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    dom = bpy.data.objects.new("Domain", mesh)
    scene.collection.objects.link(dom)
    mod = dom.modifiers.new("Fluid", "FLUID")
    mod.fluid_type = "DOMAIN"
    ds = mod.domain_settings
    ds.resolution_max = 6
    ds.cache_frame_start, ds.cache_frame_end = 1, 2
    ds.cache_type = "ALL"
    ds.cache_directory = "//fluid_cache/"
    save(f"{d}/scene.blend")
    with bpy.context.temp_override(object=dom, active_object=dom, scene=scene):
        bpy.ops.fluid.bake_all()
    save(f"{d}/scene.blend")


CASES = {name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}

only = sys.argv[sys.argv.index("--") + 2:]
for name, fn in CASES.items():
    if only and name not in only:
        continue
    fn(os.path.join(OUT, name))
print("made", ", ".join(CASES))
