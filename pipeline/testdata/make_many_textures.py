# Saves a scene whose one plane's material reads COUNT image files
# //textures/tex_000.png ... (which need not exist yet). Run as:
#   blender -b -Y --factory-startup --python make_many_textures.py -- OUT.blend COUNT
import sys

import bpy

out, count = sys.argv[sys.argv.index("--") + 1:][:2]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.frame_start = scene.frame_end = 1
bpy.ops.mesh.primitive_plane_add()
mat = bpy.data.materials.new("Many")
mat.use_nodes = True
for i in range(int(count)):
    img = bpy.data.images.new("tex_%03d" % i, 4, 4)
    img.source = "FILE"
    img.filepath = "//textures/tex_%03d.png" % i
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = img
bpy.context.object.data.materials.append(mat)
bpy.ops.object.camera_add(location=(0, 0, 5))
scene.camera = bpy.context.object
bpy.ops.wm.save_as_mainfile(filepath=out)
