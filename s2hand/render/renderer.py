"""Differentiable renderer: S_re, I_re = Render(M, C, L) (method.md s3), on pytorch3d's soft rasterizer.

    renderer = HandRenderer(faces, render_size=64, input_size=224)
    out = renderer(verts, face_colors, light, K)   # out.image (B, 3, 64, 64), out.silhouette (B, 1, 64, 64)

Camera: the vertices are projected here with `camera.project` (OpenCV convention, K in pixels of
`input_size`, rescaled to `render_size`) and handed to pytorch3d's rasterizer directly in its NDC
(+X left, +Y up): x_ndc = 1 - 2u / R, y_ndc = 1 - 2v / R, z = camera depth Z. This is what
MeshRasterizer does with a PerspectiveCameras(in_ndc=False) and an R that flips x and y, without
building camera objects each step, and the orthographic variant comes for free. pytorch3d's pixel
centres sit at u = j + 0.5, the convention of `camera.py`, so `project()` lands where this draws.

Blending (pytorch3d's soft rasterizer): each pixel keeps the `faces_per_pixel` nearest faces within
blur_radius = log(1/1e-4 - 1) * sigma (squared NDC distance, so a face's influence falls to 1e-4
at the edge of the blur); silhouette = 1 - prod_k (1 - sigmoid(-dist_k / sigma)); colour =
softmax_rgb_blend over depth (gamma) of the per-face lit colours. The colour is then composited
over the background with the silhouette (image = a * rgb + (1 - a) * bg), so edges fade smoothly
and gradients reach the vertices through the silhouette and the blend weights.

Both sides of every face are drawn (the hand mesh is open at the wrist); a back face gets only
the ambient term since its normal points away from any light in front of it.

bin_size=0 (pytorch3d's naive rasterizer) is the default: on CPU pytorch3d picks it anyway, and
`python -m s2hand.render.bench` compares it with coarse-to-fine binning.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from pytorch3d.renderer.blending import BlendParams, softmax_rgb_blend
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.structures import Meshes
from torch import Tensor

from .camera import pixels_to_ndc, project, scale_intrinsics
from .lighting import lit_face_colors


class RenderOutput(NamedTuple):
    image: Tensor  # (B, 3, R, R) colour composited over the background, in [0, 1] for colours in [0, 1]
    silhouette: Tensor  # (B, 1, R, R) soft, in [0, 1]
    pix_to_face: Tensor  # (B, R, R) nearest face index into faces (per mesh), -1 = background; no gradient


class HandRenderer(torch.nn.Module):
    """Soft-rasterising renderer of a fixed-topology mesh with per-face colours and an 11-d light.

    faces (F, 3) long; render_size R: output side in px; input_size: side (px) of the image K is
    given for; orthographic: u = fx * X + cx instead of fx * X / Z + cx; blur_sigma, gamma:
    pytorch3d BlendParams; znear, zfar (metres): the depth range softmax_rgb_blend normalises by
    (must bracket the mesh); background: RGB in [0, 1].
    """

    def __init__(
        self,
        faces: Tensor,
        render_size: int,
        input_size: int,
        orthographic: bool = False,
        blur_sigma: float = 1e-4,
        faces_per_pixel: int = 4,
        background: Sequence[float] = (1.0, 1.0, 1.0),
        gamma: float = 1e-4,
        znear: float = 0.05,
        zfar: float = 5.0,
        bin_size: int | None = 0,
    ):
        super().__init__()
        self.register_buffer("faces", torch.as_tensor(faces, dtype=torch.long), persistent=False)
        self.register_buffer("background", torch.tensor(background, dtype=torch.float32), persistent=False)
        self.render_size, self.input_size = int(render_size), int(input_size)
        self.orthographic = orthographic
        self.faces_per_pixel = faces_per_pixel
        self.blur_radius = math.log(1.0 / 1e-4 - 1.0) * blur_sigma if blur_sigma > 0 else 0.0
        self.blend = BlendParams(sigma=blur_sigma, gamma=gamma, background_color=tuple(background))
        self.znear, self.zfar = znear, zfar
        self.bin_size = bin_size

    def to_ndc(self, verts: Tensor, K: Tensor) -> Tensor:
        """(B, V, 3) camera coords, (B, 3, 3) K of input_size -> (B, V, 3) pytorch3d NDC xy + depth z."""
        K_r = scale_intrinsics(K.to(verts.dtype), self.input_size, self.render_size)
        uv = project(verts, K_r, self.orthographic)  # (B, V, 2) px of the render
        return torch.cat([pixels_to_ndc(uv, self.render_size), verts[..., 2:3]], dim=-1)

    def rasterize(self, verts: Tensor, K: Tensor) -> Fragments:
        B = verts.shape[0]
        meshes = Meshes(verts=self.to_ndc(verts, K), faces=self.faces.expand(B, -1, -1))
        pix_to_face, zbuf, bary, dists = rasterize_meshes(
            meshes,
            image_size=self.render_size,
            blur_radius=self.blur_radius,
            faces_per_pixel=self.faces_per_pixel,
            bin_size=self.bin_size,
            perspective_correct=not self.orthographic,
            clip_barycentric_coords=self.blur_radius > 0,
        )
        return Fragments(pix_to_face=pix_to_face, zbuf=zbuf, bary_coords=bary, dists=dists)

    def forward(self, verts: Tensor, face_colors: Tensor, light: Tensor | None, K: Tensor) -> RenderOutput:
        """verts (B, V, 3) camera coords (m); face_colors (B, F, 3) texture C; light (B, 11), or None
        when face_colors are already lit; K (B, 3, 3) in pixels of input_size."""
        B, F = verts.shape[0], self.faces.shape[0]
        frags = self.rasterize(verts, K)
        lit = face_colors if light is None else lit_face_colors(verts, self.faces, face_colors, light)
        packed = frags.pix_to_face  # (B, R, R, k) index into the B*F packed faces, -1 = none
        colors = lit.reshape(B * F, 3)[packed.clamp(min=0)]  # (B, R, R, k, 3)
        rgba = softmax_rgb_blend(colors, frags, self.blend, znear=self.znear, zfar=self.zfar)  # (B, R, R, 4)
        alpha = rgba[..., 3:]
        image = alpha * rgba[..., :3] + (1.0 - alpha) * self.background.to(rgba.dtype)
        first = packed[..., 0]
        offset = torch.arange(B, device=first.device)[:, None, None] * F
        pix_to_face = torch.where(first >= 0, first - offset, first)
        return RenderOutput(image.permute(0, 3, 1, 2), alpha.permute(0, 3, 1, 2), pix_to_face)
