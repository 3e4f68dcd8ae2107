# Builds a tiny test scene and saves it. Run as:
#   blender -b -Y --factory-startup --python make_scene.py -- out.blend '{"start": 5, ...}'
# Options (all optional): name, start, end, step, fps, fps_base, width, height,
# samples, denoise (bool), format ("PNG", "FFMPEG", ...), texture (an image
# path for the cube's colour, e.g. one that does not exist).
import json
import sys

import bpy

argv = sys.argv[sys.argv.index("--") + 1:]
out = argv[0]
opt = json.loads(argv[1]) if len(argv) > 1 else {}

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.name = opt.get("name", "Scene")
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = opt.get("samples", 1)
scene.cycles.use_denoising = bool(opt.get("denoise", False))
scene.render.resolution_x = opt.get("width", 64)
scene.render.resolution_y = opt.get("height", 36)
scene.render.resolution_percentage = 100
scene.frame_start = opt.get("start", 1)
scene.frame_end = opt.get("end", 4)
scene.frame_step = opt.get("step", 1)
scene.render.fps = opt.get("fps", 24)
scene.render.fps_base = opt.get("fps_base", 1.0)
scene.render.image_settings.file_format = opt.get("format", "PNG")

bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0, 0, 0))
cube = bpy.context.object
cube.location.x = -1.5
cube.keyframe_insert("location", frame=scene.frame_start)
cube.location.x = 1.5
cube.keyframe_insert("location", frame=scene.frame_end)

if opt.get("texture"):
    mat = bpy.data.materials.new("Textured")
    mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    img = bpy.data.images.new("missing", 4, 4)
    img.source = "FILE"
    img.filepath = opt["texture"]
    tex.image = img
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    cube.data.materials.append(mat)

bpy.ops.object.camera_add(location=(0, -6, 0), rotation=(1.5708, 0, 0))
scene.camera = bpy.context.object
bpy.ops.object.light_add(type="SUN", location=(0, -3, 3))

bpy.ops.wm.save_as_mainfile(filepath=out, compress=True)
