"""Cameras, lighting and renderers (method.md s2-3).

- camera.py: OpenCV-convention projection (perspective / orthographic), intrinsics resizing/cropping.
- lighting.py: the 11-d light code -> lit per-face colours (face normals: s2hand.hand.mesh).
- renderer.py: HandRenderer, differentiable (pytorch3d soft rasteriser) -> image, silhouette.
- painter.py: render_mesh, fast non-differentiable numpy + OpenCV renderer for making data.
- bench.py: `python -m s2hand.render.bench` timings.

Pixel (i, j) covers [j, j+1) x [i, i+1): its centre is at u = j + 0.5, v = i + 0.5, everywhere.
"""
from .camera import crop_intrinsics, pixels_to_ndc, project, scale_intrinsics
from .lighting import Light, lit_face_colors, shade_faces, split_light
from .painter import Painting, project_np, rasterize_face_index, render_many, render_mesh
from .renderer import HandRenderer, RenderOutput

__all__ = [
    "project", "scale_intrinsics", "crop_intrinsics", "pixels_to_ndc",
    "Light", "split_light", "shade_faces", "lit_face_colors",
    "HandRenderer", "RenderOutput",
    "Painting", "render_mesh", "render_many", "rasterize_face_index", "project_np",
]
