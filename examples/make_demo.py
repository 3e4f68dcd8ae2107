# Builds examples/demo.blend, framefleet's bundled example scene: a few
# coloured shapes that move and spin over a floor, 48 frames at 24 fps,
# rendered with Cycles on the CPU at 320x180 and 8 samples.
#
#   blender -b -Y --factory-startup --python examples/make_demo.py -- examples/demo.blend
#
# Released under CC0 1.0 (public domain), like the .blend it makes.
import math
import os
import sys

import bpy

out = os.path.abspath(sys.argv[sys.argv.index("--") + 1] if "--" in sys.argv else "demo.blend")

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.name = "Demo"

# Output: small, fast, PNG frames (framefleet makes the video).
r = scene.render
r.engine = "CYCLES"
r.resolution_x, r.resolution_y, r.resolution_percentage = 320, 180, 100
r.fps, r.fps_base = 24, 1.0
r.image_settings.file_format = "PNG"
r.image_settings.color_mode = "RGB"
scene.frame_start, scene.frame_end, scene.frame_step = 1, 48, 1
c = scene.cycles
c.device = "CPU"
c.samples = 8
c.use_adaptive_sampling = False
c.use_denoising = False  # Debian's Blender has no OpenImageDenoise
c.max_bounces = 4
c.diffuse_bounces = 2
c.glossy_bounces = 2
c.transmission_bounces = 2
c.transparent_max_bounces = 2
scene.view_settings.view_transform = "Standard"

world = bpy.data.worlds.new("Sky")
world.use_nodes = True
world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.55, 0.7, 0.95, 1)
world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
scene.world = world


def material(name, rgb, roughness=0.4, metallic=0.0):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    bsdf = m.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return m


def keyframes(obj, path, values):
    for frame, value in values:
        setattr(obj, path, value)
        obj.keyframe_insert(path, frame=frame)
    for fc in obj.animation_data.action.fcurves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR" if path == "rotation_euler" else "BEZIER"


bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
floor = bpy.context.object
floor.name = "Floor"
floor.data.materials.append(material("Floor", (0.8, 0.8, 0.78), roughness=0.8))

bpy.ops.mesh.primitive_cube_add(size=1.2, location=(-2.5, 0, 0.6))
cube = bpy.context.object
cube.name = "Cube"
cube.data.materials.append(material("Red", (0.85, 0.1, 0.08)))
keyframes(cube, "rotation_euler", [(1, (0, 0, 0)), (48, (0, 0, math.pi))])
keyframes(cube, "location", [(1, (-2.5, 0, 0.6)), (24, (-2.5, 0, 1.6)), (48, (-2.5, 0, 0.6))])

bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, location=(0, -1, 0.7), segments=32, ring_count=16)
sphere = bpy.context.object
sphere.name = "Sphere"
bpy.ops.object.shade_smooth()
sphere.data.materials.append(material("Blue", (0.1, 0.3, 0.9), roughness=0.2))
keyframes(sphere, "location", [(1, (-0.8, -1, 0.7)), (24, (0.8, -1.4, 0.7)), (48, (-0.8, -1, 0.7))])

bpy.ops.mesh.primitive_torus_add(major_radius=0.7, minor_radius=0.25, location=(2.5, 0, 1.0))
torus = bpy.context.object
torus.name = "Torus"
bpy.ops.object.shade_smooth()
torus.data.materials.append(material("Gold", (0.95, 0.7, 0.2), roughness=0.3, metallic=1.0))
keyframes(torus, "rotation_euler", [(1, (math.radians(60), 0, 0)), (48, (math.radians(60), 0, 2 * math.pi))])

bpy.ops.mesh.primitive_cone_add(radius1=0.6, depth=1.2, location=(0, 1.8, 0.6))
cone = bpy.context.object
cone.name = "Cone"
cone.data.materials.append(material("Green", (0.15, 0.7, 0.25)))
keyframes(cone, "rotation_euler", [(1, (0, 0, 0)), (48, (0, 0, -math.pi))])

bpy.ops.object.camera_add(location=(0, -9, 4.2))
cam = bpy.context.object
cam.name = "Camera"
cam.rotation_euler = (math.radians(67), 0, 0)
cam.data.lens = 32
scene.camera = cam

bpy.ops.object.light_add(type="SUN", location=(3, -3, 6))
sun = bpy.context.object
sun.name = "Sun"
sun.data.energy = 3.0
sun.rotation_euler = (math.radians(40), math.radians(20), math.radians(30))

bpy.ops.wm.save_as_mainfile(filepath=out, compress=True)
