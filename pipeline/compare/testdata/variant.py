# Saves a variant of a scene made by container/testdata/make_scene.py: a grey
# sky and a glowing cube, so a one-sample render is clearly visible, and the
# camera moved sideways by dx. Run as:
#   blender -b -Y --factory-startup --python variant.py -- in.blend out.blend 1.5
import sys

import bpy

src, dst, dx = sys.argv[sys.argv.index("--") + 1:][:3]
bpy.ops.wm.open_mainfile(filepath=src)
scene = bpy.context.scene

world = bpy.data.worlds.new("Sky")
world.use_nodes = True
world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.25, 0.3, 0.4, 1.0)
scene.world = world

mat = bpy.data.materials.new("Glow")
mat.use_nodes = True
nodes = mat.node_tree.nodes
nodes.remove(nodes["Principled BSDF"])
glow = nodes.new("ShaderNodeEmission")
glow.inputs["Color"].default_value = (1.0, 0.5, 0.1, 1.0)
glow.inputs["Strength"].default_value = 3.0
mat.node_tree.links.new(glow.outputs["Emission"], nodes["Material Output"].inputs["Surface"])
for obj in scene.objects:
    if obj.type == "MESH":
        obj.data.materials.clear()
        obj.data.materials.append(mat)

scene.camera.location.x += float(dx)
bpy.ops.wm.save_as_mainfile(filepath=dst, compress=True)
