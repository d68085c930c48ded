"""Differentiable renderer: S_re, I_re = Render(M, C, L) (method.md s3), on pytorch3d's soft rasteriser.

    renderer = HandRenderer(faces, render_size=64, input_size=224)
    out = renderer(verts, face_colors, light, K)   # out.image (B, 3, 64, 64), out.silhouette (B, 1, 64, 64)

Camera: the vertices are projected here with `camera.project` (OpenCV convention, K in pixels of
`input_size`, rescaled to `render_size`) and handed to pytorch3d's rasteriser directly in its NDC
(+X left, +Y up): x_ndc = 1 - 2u / R, y_ndc = 1 - 2v / R, z = camera depth Z. This is what
MeshRasterizer does with PerspectiveCameras(in_ndc=False) and an R that flips x and y, without
building camera objects each step; the orthographic variant comes for free. pytorch3d's pixel
centres sit at u = j + 0.5, the convention of `camera.py`, so `project()` lands where this draws.

Blending (pytorch3d's soft rasteriser): each pixel keeps the `faces_per_pixel` (k) nearest faces
in depth within blur_radius = log(1/1e-4 - 1) * sigma (a squared NDC distance: a face's influence
falls to 1e-4 at the edge of the blur); silhouette = 1 - prod_k (1 - sigmoid(-dist_k / sigma));
colour rgb = pytorch3d's softmax_rgb_blend over depth (gamma) of the per-face lit colours. The image
is rgb composited over the background with a coverage that is 1 where a face covers the pixel
centre and the soft silhouette elsewhere: interior colours are exact, the outer edge fades over
the blur band and gives the image its geometric gradient there.

sigma and k: the soft silhouette is only ~1 inside the mesh when faces are large against the
blur and the k slots hold enough of the faces near the pixel. On a hand-sized mesh (about 2,700
faces filling the crop; sigma is in NDC, so this holds at any render size) the share of interior
pixels with silhouette < 0.9 is about 85 % for sigma 1e-4, k 4; 30 % for 1e-4, k 8; 10 % for 1e-5,
k 4; 1 % for 1e-5, k 8 (the defaults; blur radius ~0.3 px at 64 px, 1.1 px at 224 px).

Three departures from using pytorch3d plainly, each switchable:
- front_face_pass (default on): the k slots hold the k nearest faces *in depth* within the blur
  radius, so nearer neighbouring faces that do not cover the pixel can crowd out the one that
  does, and the silhouette gets holes (IoU with the hard silhouette 0.1-0.8 on a dense sphere and
  ~0.8 on the hand-like mesh, sigma 1e-4, k 4). A second, hard pass (blur 0, k = 1) adds the
  front face covering the pixel centre as slot 0 (k + 1 slots); it is also `pix_to_face`.
- grad_mode "torch" (default): pytorch3d only picks the faces (no grad); the signed distances,
  depths and barycentrics are recomputed here in torch (`soft_fragments`, same values), and
  autograd differentiates those. pytorch3d's CPU backward is several times slower.
  "pytorch3d" uses pytorch3d's own backward.
- face_selection "auto" (default) and "torch": which faces each pixel sees is decided by
  `raster.select_faces` (pytorch3d's tests, vectorised in torch; both passes from one enumeration
  of face-pixel pairs: 12 ms for 8 hands at 64 px against ~700 ms for pytorch3d's CPU rasteriser,
  which tests every face at every pixel), on any device; past its pair budget it falls back to
  pytorch3d. "pytorch3d" uses pytorch3d's rasteriser (coarse-to-fine on CUDA). Same faces per
  pixel up to float rounding on the blur boundary and exact depth ties (tests/test_render.py on
  the CPU, tests/test_gpu.py on CUDA). On an H200 (batch 64, 224 px input, bf16) the torch
  selection was the faster there too: the pretrain_3d step (render 64) at 1,269 against 715
  images/s, at render 224 597 against 333 (docs/training.md). With grad_mode "pytorch3d",
  pytorch3d rasterises.

Both sides of every face are drawn (the hand mesh is open at the wrist); a back face gets only
the ambient term since its normal points away from any light in front of it.
`python -m s2hand.render.bench` times it.
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
from .raster import select_faces


class RenderOutput(NamedTuple):
    image: Tensor  # (B, 3, R, R) colour composited over the background, in [0, 1] for colours in [0, 1]
    silhouette: Tensor  # (B, 1, R, R) soft, in [0, 1]
    pix_to_face: Tensor  # (B, R, R) face (index into faces) covering the pixel centre, -1 = none; no gradient
    # (without front_face_pass: the nearest face in depth within the blur radius)


def gather_rows(src: Tensor, index: Tensor) -> Tensor:
    """src[index] for a long `index` of any shape with -1 = none: (N, *rest) -> (*index.shape, *rest).

    The rows of empty slots (-1) are arbitrary; callers mask them. Written as index_select, whose
    backward is index_add_ (atomic adds on CUDA), not advanced indexing, whose backward sorts the
    indices and accumulates each run of one index serially: with every empty pixel slot pointing at
    row 0 that single run was ~95 % of a CUDA training step (batch 64). Empty slots are spread over
    all rows for the same reason (their gradient is zero: the callers mask them with torch.where)."""
    flat = index.reshape(-1)
    spread = torch.arange(flat.numel(), device=flat.device) % src.shape[0]
    flat = torch.where(flat >= 0, flat, spread)
    return src.index_select(0, flat).reshape(*index.shape, *src.shape[1:])


def soft_fragments(face_verts: Tensor, pix_to_face: Tensor, image_size: int, perspective: bool) -> Fragments:
    """Differentiable pytorch3d-style fragments for given faces at each pixel.

    face_verts (B*F, 3, 3) packed, NDC x, y and depth z; pix_to_face (B, R, R, k) packed face ids
    (-1 = none). Returns dists (signed squared NDC distance from the pixel centre to the triangle,
    negative inside), zbuf (depth at the pixel, barycentrics clipped to the triangle, perspective-
    correct when asked) and those barycentrics, as pytorch3d's rasteriser computes them (it clips
    after the perspective correction, here before: same inside the triangle); only the autograd
    graph is ours (pytorch3d's CPU backward is slow).
    """
    R = image_size
    B, _, _, k = pix_to_face.shape
    flat = pix_to_face.reshape(-1)
    slot = torch.nonzero(flat >= 0).squeeze(1)  # (n,) the filled slots only (most are empty)
    tri = face_verts.index_select(0, flat.index_select(0, slot))  # (n, 3, 3)
    centres = 1.0 - (2.0 * torch.arange(R, device=tri.device, dtype=tri.dtype) + 1.0) / R
    pixel = torch.div(slot, k, rounding_mode="floor")
    p = torch.stack([centres[pixel % R], centres[torch.div(pixel, R, rounding_mode="floor") % R]], dim=-1)  # (n, 2)
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]  # (n, 2)

    def edge(u: Tensor, v: Tensor) -> Tensor:  # twice the signed area of (u, v, p)
        return (v[..., 0] - u[..., 0]) * (p[..., 1] - u[..., 1]) - (v[..., 1] - u[..., 1]) * (p[..., 0] - u[..., 0])

    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    w = torch.stack([edge(b, c), edge(c, a), edge(a, b)], dim=-1) / area[..., None]  # barycentrics
    inside = (w > 0).all(dim=-1)

    def seg_dist2(u: Tensor, v: Tensor) -> Tensor:
        d = v - u
        t = (((p - u) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
        return ((p - u - t[..., None] * d) ** 2).sum(-1)

    dist = torch.minimum(torch.minimum(seg_dist2(a, b), seg_dist2(b, c)), seg_dist2(c, a))
    dist = torch.where(inside, -dist, dist)
    z = tri[..., 2]  # (n, 3)
    w = w.clamp(min=0.0)  # clip to the triangle first: the denominators below stay positive
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    if perspective:  # screen-space barycentrics -> camera-space ones (1/z interpolates linearly)
        w = w / z.clamp(min=1e-6)
        w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    zbuf = (w * z).sum(-1)

    def scatter(values: Tensor) -> Tensor:  # (n, *rest) -> (B, R, R, k, *rest), -1 in empty slots
        full = values.new_full((flat.numel(), *values.shape[1:]), -1.0)
        return full.index_copy(0, slot, values).reshape(B, R, R, k, *values.shape[1:])

    return Fragments(pix_to_face=pix_to_face, zbuf=scatter(zbuf), bary_coords=scatter(w), dists=scatter(dist))


class HandRenderer(torch.nn.Module):
    """Soft-rasterising renderer of a fixed-topology mesh with per-face colours and an 11-d light.

    faces (F, 3) long; render_size R: output side in px; input_size: side (px) of the image K is
    given for; orthographic: u = fx * X + cx instead of fx * X / Z + cx; blur_sigma, gamma:
    pytorch3d BlendParams; faces_per_pixel: soft slots k; znear, zfar (metres): the depth range
    softmax_rgb_blend normalises by (must bracket the mesh); background: RGB in [0, 1];
    bin_size: pytorch3d's (None = its choice: 0 on CPU); front_face_pass, grad_mode,
    face_selection: see the module docstring.
    """

    def __init__(
        self,
        faces: Tensor,
        render_size: int,
        input_size: int,
        orthographic: bool = False,
        blur_sigma: float = 1e-5,
        faces_per_pixel: int = 8,
        background: Sequence[float] = (1.0, 1.0, 1.0),
        gamma: float = 1e-4,
        znear: float = 0.05,
        zfar: float = 5.0,
        bin_size: int | None = None,
        front_face_pass: bool = True,
        grad_mode: str = "torch",
        face_selection: str = "auto",
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
        self.front_face_pass = front_face_pass
        assert grad_mode in ("torch", "pytorch3d"), grad_mode
        self.grad_mode = grad_mode
        assert face_selection in ("auto", "torch", "pytorch3d"), face_selection
        self.face_selection = face_selection

    def to_ndc(self, verts: Tensor, K: Tensor) -> Tensor:
        """(B, V, 3) camera coords, (B, 3, 3) K of input_size -> (B, V, 3) pytorch3d NDC xy + depth z."""
        K_r = scale_intrinsics(K.to(verts.dtype), self.input_size, self.render_size)
        uv = project(verts, K_r, self.orthographic)  # (B, V, 2) px of the render
        return torch.cat([pixels_to_ndc(uv, self.render_size), verts[..., 2:3]], dim=-1)

    def rasterize(self, verts: Tensor, K: Tensor) -> Fragments:
        """Soft fragments (B, R, R, k) of the k nearest faces within the blur radius; with
        front_face_pass, a hard (blur 0) pass's front face is prepended (k + 1 slots) and removed
        from the soft slots if already there. With grad_mode "torch" pytorch3d only picks the faces
        (no grad) and dists / zbuf are recomputed here, differentiably."""
        B = verts.shape[0]
        verts_ndc = self.to_ndc(verts, K)  # (B, V, 3)
        faces = self.faces.expand(B, -1, -1)
        track = self.grad_mode == "pytorch3d"

        def raster(blur: float, k: int) -> Fragments:
            with torch.set_grad_enabled(track and torch.is_grad_enabled()):
                p2f, zbuf, bary, dists = rasterize_meshes(
                    Meshes(verts=verts_ndc if track else verts_ndc.detach(), faces=faces),
                    image_size=self.render_size,
                    blur_radius=blur,
                    faces_per_pixel=k,
                    bin_size=self.bin_size,
                    perspective_correct=not self.orthographic,
                    clip_barycentric_coords=blur > 0,
                )
            return Fragments(pix_to_face=p2f, zbuf=zbuf, bary_coords=bary, dists=dists)

        two_pass = self.front_face_pass and self.blur_radius > 0
        picked = None
        if not track and self.face_selection in ("auto", "torch"):
            picked = select_faces(verts_ndc, self.faces, self.render_size, self.blur_radius, self.faces_per_pixel,
                                  perspective=not self.orthographic)  # None: too many face-pixel pairs
        if picked is not None:
            frags, hard = (Fragments(pix_to_face=p2f, zbuf=None, bary_coords=None, dists=None) for p2f in picked)
            hard = hard if two_pass else None
        else:
            frags = raster(self.blur_radius, self.faces_per_pixel)
            hard = raster(0.0, 1) if two_pass else None
        if hard is not None:
            dup = (frags.pix_to_face == hard.pix_to_face) & (hard.pix_to_face >= 0)  # (B, R, R, k)
            p2f = torch.cat([hard.pix_to_face, frags.pix_to_face.masked_fill(dup, -1)], dim=3)
            if not track:
                frags = Fragments(pix_to_face=p2f, zbuf=None, bary_coords=None, dists=None)
            else:
                frags = Fragments(
                    pix_to_face=p2f,
                    zbuf=torch.cat([hard.zbuf, frags.zbuf], dim=3),
                    bary_coords=torch.cat([hard.bary_coords, frags.bary_coords], dim=3),
                    dists=torch.cat([hard.dists, frags.dists], dim=3),
                )
        if track:
            return frags
        face_verts = gather_rows(verts_ndc.reshape(-1, 3), faces + self._vert_offsets(verts)).reshape(-1, 3, 3)
        return soft_fragments(face_verts, frags.pix_to_face, self.render_size, not self.orthographic)

    def _vert_offsets(self, verts: Tensor) -> Tensor:
        B, V = verts.shape[:2]
        return (torch.arange(B, device=verts.device) * V)[:, None, None]  # (B, 1, 1)

    def forward(self, verts: Tensor, face_colors: Tensor, light: Tensor | None, K: Tensor) -> RenderOutput:
        """verts (B, V, 3) camera coords (m); face_colors (B, F, 3) texture C; light (B, 11), or None
        when face_colors are already lit; K (B, 3, 3) in pixels of input_size."""
        B, F = verts.shape[0], self.faces.shape[0]
        frags = self.rasterize(verts, K)
        lit = face_colors if light is None else lit_face_colors(verts, self.faces, face_colors, light)
        packed = frags.pix_to_face  # (B, R, R, k) index into the B*F packed faces, -1 = none
        colors = gather_rows(lit.reshape(B * F, 3), packed)  # (B, R, R, k, 3); empty slots masked by the blend
        rgba = softmax_rgb_blend(colors, frags, self.blend, znear=self.znear, zfar=self.zfar)  # (B, R, R, 4)
        alpha = rgba[..., 3:]  # (B, R, R, 1) soft silhouette
        if self.front_face_pass and self.blur_radius > 0:  # slot 0 = the face covering the pixel centre
            cover = torch.where(packed[..., :1] >= 0, torch.ones_like(alpha), alpha)
        else:
            cover = alpha
        image = cover * rgba[..., :3] + (1.0 - cover) * self.background.to(rgba.dtype)
        first = packed[..., 0]
        offset = torch.arange(B, device=first.device)[:, None, None] * F
        pix_to_face = torch.where(first >= 0, first - offset, first)
        return RenderOutput(image.permute(0, 3, 1, 2), alpha.permute(0, 3, 1, 2), pix_to_face)
