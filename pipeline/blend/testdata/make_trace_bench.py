"""Build the tracing benchmark's project: 1,000 image references and three
levels of linked libraries.

    blender -b -Y --factory-startup --python make_trace_bench.py -- OUTDIR

OUTDIR/scene.blend links object L1 from lib/l1.blend, which links L2 from
lib/deeper/l2.blend, which links L3 from lib/deeper/deepest/l3.blend. Each
file's own material samples its share of the 1,000 textures
(textures/tNNNN.png, 4x4 PNGs), with paths relative to that file. Used by
BenchmarkTrace (pipeline/blend) and bench/trace.sh.
"""

import os
import struct
import sys
import zlib

import bpy

OUT = sys.argv[sys.argv.index("--") + 1]
TOTAL = 1000
# Images per file: the scene and the three libraries.
SHARE = {"scene": 400, "l1": 200, "l2": 200, "l3": 200}
assert sum(SHARE.values()) == TOTAL


def png_bytes(rgb):
    raw = b"".join(b"\x00" + bytes(rgb) * 4 for _ in range(4))

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def fresh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    return bpy.context.scene


def textured_object(scene, name, first, count, blend_dir):
    """An object whose material has `count` image nodes, textures first..first+count-1."""
    tex_dir = os.path.join(OUT, "textures")
    os.makedirs(tex_dir, exist_ok=True)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
    ob = bpy.data.objects.new(name, mesh)
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    for i in range(first, first + count):
        path = os.path.join(tex_dir, f"t{i:04d}.png")
        with open(path, "wb") as f:
            f.write(png_bytes((i % 256, (i * 7) % 256, (i * 13) % 256)))
        img = bpy.data.images.new(f"t{i:04d}", 4, 4)
        img.source = "FILE"
        img.filepath_raw = "//" + os.path.relpath(path, blend_dir)
        node = mat.node_tree.nodes.new("ShaderNodeTexImage")
        node.image = img
    mesh.materials.append(mat)
    scene.collection.objects.link(ob)
    return ob


def link(scene, lib_path, name, child):
    with bpy.data.libraries.load(lib_path, link=True, relative=True) as (_, data_to):
        data_to.objects = [name]
    for ob in data_to.objects:
        scene.collection.objects.link(ob)
        child.parent = ob  # the file's own object uses the linked one


files = [  # (share key, object, path, linked library path or None, linked object)
    ("l3", "L3", "lib/deeper/deepest/l3.blend", None, None),
    ("l2", "L2", "lib/deeper/l2.blend", "lib/deeper/deepest/l3.blend", "L3"),
    ("l1", "L1", "lib/l1.blend", "lib/deeper/l2.blend", "L2"),
    ("scene", "Shot", "scene.blend", "lib/l1.blend", "L1"),
]
first = 0
for key, name, rel, lib, lib_object in files:
    scene = fresh()
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=path)  # so that links are stored relative
    ob = textured_object(scene, name, first, SHARE[key], os.path.dirname(path))
    first += SHARE[key]
    if lib:
        link(scene, os.path.join(OUT, lib), lib_object, ob)
    bpy.ops.wm.save_as_mainfile(filepath=path, relative_remap=False)
print("made", OUT, "with", first, "images")
