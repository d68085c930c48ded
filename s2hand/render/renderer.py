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
- tile_size (default 16, CPU only): pytorch3d has no coarse-to-fine binning on CPU (bin_size
  must be 0 there, its naive rasteriser tests every face at every pixel), so `rasterize_tiled`
  bins by hand: each 16 x 16 block is rasterised as its own small mesh. Same faces per pixel
  (up to the order of exact depth ties). On CUDA pytorch3d's own binning (bin_size None) is used.

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
    valid = pix_to_face >= 0
    tri = gather_rows(face_verts, pix_to_face)  # (B, R, R, k, 3, 3)
    centres = 1.0 - (2.0 * torch.arange(R, device=tri.device, dtype=tri.dtype) + 1.0) / R
    px = centres[None, None, :, None].expand(pix_to_face.shape)  # column j -> x
    py = centres[None, :, None, None].expand(pix_to_face.shape)  # row i -> y
    a, b, c = tri[..., 0, :2], tri[..., 1, :2], tri[..., 2, :2]  # (B, R, R, k, 2)
    p = torch.stack([px, py], dim=-1)

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
    z = tri[..., 2]  # (B, R, R, k, 3)
    w = w.clamp(min=0.0)  # clip to the triangle first: the denominators below stay positive
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    if perspective:  # screen-space barycentrics -> camera-space ones (1/z interpolates linearly)
        w = w / z.clamp(min=1e-6)
        w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    zbuf = (w * z).sum(-1)
    return Fragments(
        pix_to_face=pix_to_face,
        zbuf=torch.where(valid, zbuf, torch.full_like(zbuf, -1.0)),
        bary_coords=torch.where(valid[..., None], w, torch.full_like(w, -1.0)),
        dists=torch.where(valid, dist, torch.full_like(dist, -1.0)),
    )


@torch.no_grad()
def rasterize_tiled(
    verts_ndc: Tensor,
    faces: Tensor,
    image_size: int,
    blur_radius: float,
    faces_per_pixel: int,
    tile: int,
    perspective: bool,
) -> Tensor:
    """pix_to_face (B, R, R, k) of pytorch3d's rasteriser, computed tile by tile (no grad).

    pytorch3d has no coarse-to-fine binning on CPU: its naive rasteriser tests every face at
    every pixel. Here each tile x tile block becomes its own small mesh (the faces whose box,
    grown by the blur radius, meets the block; vertices mapped to the block's NDC) and all blocks
    go through one rasterize_meshes call. Same faces, same order as the global call.
    verts_ndc (B, V, 3) NDC xy + depth; faces (F, 3); returns ids into the B*F packed faces.
    """
    B, V, _ = verts_ndc.shape
    F, R, T = faces.shape[0], image_size, tile
    n = -(-R // T)  # tiles per side
    uv = (1.0 - verts_ndc[..., :2]) * (R / 2.0)  # (B, V, 2) render px
    fuv = uv[:, faces]  # (B, F, 3, 2)
    margin = math.sqrt(blur_radius) * R / 2.0 + 1.0  # px
    lo, hi = fuv.amin(dim=2) - margin, fuv.amax(dim=2) + margin  # (B, F, 2)
    front = verts_ndc[:, faces, 2].amax(dim=2) > 0  # (B, F) faces wholly behind the camera never show
    edges = torch.arange(n, device=uv.device, dtype=uv.dtype) * T  # tile starts, px
    ox = (hi[..., None, 0] >= edges) & (lo[..., None, 0] <= edges + T)  # (B, F, n) overlaps column tile
    oy = (hi[..., None, 1] >= edges) & (lo[..., None, 1] <= edges + T)  # (B, F, n) overlaps row tile
    hit = (oy[:, :, :, None] & ox[:, :, None, :] & front[:, :, None, None]).flatten(2).transpose(1, 2)  # (B, n*n, F)
    hit = hit.reshape(B * n * n, F)
    counts = hit.sum(dim=1)
    out = torch.full((B * n * n, T, T, faces_per_pixel), -1, dtype=torch.long, device=uv.device)
    busy = torch.nonzero(counts > 0).squeeze(1)  # tiles with faces
    if busy.numel() > 0:
        hit = hit[busy]
        fmax = int(counts.max())
        order = torch.argsort((~hit).to(torch.int8), dim=1, stable=True)[:, :fmax]  # hit faces first
        ok = torch.gather(hit, 1, order)  # (N, fmax)
        tile_faces = torch.where(ok[..., None], faces[order], torch.full_like(faces[order], -1))
        b = busy // (n * n)
        ty, tx = (busy % (n * n)) // n, busy % n
        shift = torch.stack([tx, ty], dim=-1).to(uv.dtype)[:, None, :] * T  # (N, 1, 2)
        local = 1.0 - 2.0 * (uv[b] - shift) / T  # (N, V, 2) tile NDC
        meshes = Meshes(verts=torch.cat([local, verts_ndc[b, :, 2:]], dim=-1), faces=tile_faces)
        p2f, _, _, _ = rasterize_meshes(
            meshes,
            image_size=T,
            blur_radius=blur_radius * (R / T) ** 2,
            faces_per_pixel=faces_per_pixel,
            bin_size=0,
            perspective_correct=perspective,
            clip_barycentric_coords=blur_radius > 0,
        )
        to_global = (order + (b * F)[:, None])[ok]  # packed tile face -> packed global face
        out[busy] = torch.where(p2f >= 0, to_global[p2f.clamp(min=0)], p2f)
    out = out.reshape(B, n, n, T, T, faces_per_pixel).permute(0, 1, 3, 2, 4, 5)
    return out.reshape(B, n * T, n * T, faces_per_pixel)[:, :R, :R].contiguous()


class HandRenderer(torch.nn.Module):
    """Soft-rasterising renderer of a fixed-topology mesh with per-face colours and an 11-d light.

    faces (F, 3) long; render_size R: output side in px; input_size: side (px) of the image K is
    given for; orthographic: u = fx * X + cx instead of fx * X / Z + cx; blur_sigma, gamma:
    pytorch3d BlendParams; faces_per_pixel: soft slots k; znear, zfar (metres): the depth range
    softmax_rgb_blend normalises by (must bracket the mesh); background: RGB in [0, 1];
    bin_size: pytorch3d's, for the untiled path (None = its choice: 0 on CPU); front_face_pass,
    grad_mode, tile_size: see the module docstring.
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
        tile_size: int | None = 16,
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
        self.tile_size = tile_size

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
        meshes = Meshes(verts=verts_ndc if track else verts_ndc.detach(), faces=faces)

        def raster(blur: float, k: int) -> Fragments:
            if not track and self.tile_size and not verts.is_cuda:
                p2f = rasterize_tiled(verts_ndc.detach(), self.faces, self.render_size, blur, k, self.tile_size,
                                      not self.orthographic)
                return Fragments(pix_to_face=p2f, zbuf=None, bary_coords=None, dists=None)
            with torch.set_grad_enabled(track and torch.is_grad_enabled()):
                p2f, zbuf, bary, dists = rasterize_meshes(
                    meshes,
                    image_size=self.render_size,
                    blur_radius=blur,
                    faces_per_pixel=k,
                    bin_size=self.bin_size,
                    perspective_correct=not self.orthographic,
                    clip_barycentric_coords=blur > 0,
                )
            return Fragments(pix_to_face=p2f, zbuf=zbuf, bary_coords=bary, dists=dists)

        frags = raster(self.blur_radius, self.faces_per_pixel)
        if self.front_face_pass and self.blur_radius > 0:
            hard = raster(0.0, 1)
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
