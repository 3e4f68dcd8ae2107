# Builds a small project whose scene needs files beside it. Run as:
#   blender -b -Y --factory-startup --python make_project.py -- ROOT [MODE]
# It expects ROOT/textures/left.png and ROOT/lib/tex/right.png to exist and
# saves:
#   ROOT/lib/prop.blend    a plane "Prop" textured from //tex/right.png
#   ROOT/shots/shot.blend  a plane textured from //../textures/left.png and
#                          the Prop plane linked from //../lib/prop.blend
# The camera looks straight down at both planes (left half, right half);
# each is an emission shader showing its texture, with the Standard view
# transform, so a pixel shows the texture's own colour (magenta when the
# texture is missing, the black world when the library is).
# MODE is how the shot stores its two paths: "relative" (the default, as
# above), "absolute" (ROOT/textures/left.png, ROOT/lib/prop.blend) or
# "windows" (C:\Users\artist\proj\textures\left.png and
# C:\Users\artist\proj\lib\prop.blend, as if saved on Windows).
import os
import sys

import bpy

args = sys.argv[sys.argv.index("--") + 1:]
root = args[0]
mode = args[1] if len(args) > 1 else "relative"


def textured_plane(name, image_path, x):
    bpy.ops.mesh.primitive_plane_add(size=2.0, location=(x, 0, 0))
    obj = bpy.context.object
    obj.name = name
    mat = bpy.data.materials.new(name + "Mat")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = bpy.data.images.load(image_path)
    tex.interpolation = "Closest"
    emit = nodes.new("ShaderNodeEmission")
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(tex.outputs["Color"], emit.inputs["Color"])
    mat.node_tree.links.new(emit.outputs["Emission"], out.inputs["Surface"])
    obj.data.materials.append(mat)
    return obj


# The library: one plane with its own relative texture.
bpy.ops.wm.read_factory_settings(use_empty=True)
textured_plane("Prop", os.path.join(root, "lib", "tex", "right.png"), 0)
os.makedirs(os.path.join(root, "lib"), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(root, "lib", "prop.blend"), relative_remap=True)

# The shot: its own plane on the left, the library's on the right.
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.name = "Shot"
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.filter_size = 0.01
scene.render.resolution_x = 64
scene.render.resolution_y = 32
scene.render.resolution_percentage = 100
scene.frame_start = 1
scene.frame_end = 1
scene.render.image_settings.file_format = "PNG"
scene.view_settings.view_transform = "Standard"
scene.view_settings.look = "None"
# The library's plane sits at the origin (a linked object keeps its
# library's placement), so the shot's own plane goes left of it and the
# camera looks at both: x from -3 to 1.
textured_plane("Left", os.path.join(root, "textures", "left.png"), -2.0)
with bpy.data.libraries.load(os.path.join(root, "lib", "prop.blend"), link=True, relative=(mode == "relative")) as (src, dst):
    dst.objects = ["Prop"]
for obj in dst.objects:
    scene.collection.objects.link(obj)
assert bpy.data.objects["Prop"].library is not None
bpy.ops.object.camera_add(location=(-1.0, 0, 5), rotation=(0, 0, 0))
cam = bpy.context.object
cam.data.type = "ORTHO"
cam.data.ortho_scale = 4.0
scene.camera = cam

if mode == "windows":
    bpy.data.images["left.png"].filepath = "C:\\Users\\artist\\proj\\textures\\left.png"
    bpy.data.libraries[0].filepath = "C:\\Users\\artist\\proj\\lib\\prop.blend"
os.makedirs(os.path.join(root, "shots"), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(root, "shots", "shot.blend"), relative_remap=(mode == "relative"))
