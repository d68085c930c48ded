"""Fast non-differentiable renderer for making data (numpy + OpenCV): the painter's algorithm.

    out = render_mesh(verts, faces, lit_colors, K, image_size=128, background=bg)
    out.image (H, W, 3) uint8 RGB, out.mask (H, W) bool, out.face_index (H, W) int32 (-1 = none),
    out.depth (H, W) float32 (camera Z of the visible face's centroid, 0 = none)

Same camera and pixel-centre convention as `camera.project` / `HandRenderer` (pixel (i, j)
covers [j, j+1) x [i, i+1); OpenCV camera axes; K in pixels of image_size; optional orthographic
u = fx * X + cx). Colours are the already-lit per-face colours (`lighting.lit_face_colors`), RGB.

How: project, drop faces with a vertex at Z <= znear (perspective), optionally cull back faces
(off by default: the hand mesh is open at the wrist, so both sides are drawn, as HandRenderer
does), sort far-to-near by mean Z, and fill each triangle's face id with cv2.fillConvexPoly on a
canvas `supersample` times larger, at sub-pixel precision (cv2's fixed-point `shift`; cv2 puts
pixel centres at integers, so canvas x = u * s - 0.5). Colours are looked up by face id and
area-averaged down to image_size (anti-aliasing); the mask is coverage > 1/2.

Accuracy: cv2's fill is conservative (it draws each triangle's outline too), so each triangle is
dilated by about half a canvas pixel, i.e. about 0.5 / supersample output pixels, against the exact
edge. Measured against HandRenderer (silhouette > 0.5) on a hand-like mesh of 2,720 faces:
IoU 0.974 at 64 px and 0.981 at 128 px with supersample 2 (0.995 / 0.998 with 3), mean colour
difference < 0.01 inside the shared mask. Odd supersample puts a sub-sample on each pixel
centre, which face_index uses. Intersecting or cyclically overlapping faces can be mis-ordered
(mean-depth sort).

Throughput: one cv2 call per face, about 1-2 us each plus numpy set-up; see
`python -m s2hand.render.bench`. `render_many` is a plain loop; parallelise over frames with
worker processes (e.g. DataLoader workers) if needed.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

_SHIFT = 8  # fractional bits of the fixed-point vertex coordinates handed to cv2
_MAX_COORD = 1e6  # canvas px; keeps shifted coordinates inside int32


class Painting(NamedTuple):
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) bool, coverage >= 1/2
    face_index: np.ndarray  # (H, W) int32 visible face at the pixel centre's nearest sub-sample, -1 = none
    depth: np.ndarray  # (H, W) float32 mean camera Z of that face, 0 = none


def project_np(verts: np.ndarray, K: np.ndarray, orthographic: bool = False) -> np.ndarray:
    """(V, 3) camera coords, (3, 3) K -> (V, 2) pixel coords (u, v); numpy twin of camera.project."""
    xy = verts[:, :2] if orthographic else verts[:, :2] / np.maximum(verts[:, 2:3], 1e-6)
    u = K[0, 0] * xy[:, 0] + K[0, 1] * xy[:, 1] + K[0, 2]
    v = K[1, 1] * xy[:, 1] + K[1, 2]
    return np.stack([u, v], axis=-1)


def rasterize_face_index(
    verts: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    canvas_size: int,
    scale: float = 1.0,
    orthographic: bool = False,
    cull_backfaces: bool = False,
    znear: float = 1e-3,
) -> np.ndarray:
    """Painter's-algorithm face-id map (canvas_size, canvas_size) int32, -1 = background.

    K is in pixels of an image `canvas_size / scale` px wide (the canvas is that image scaled by
    `scale`)."""
    verts = np.asarray(verts, np.float64)
    faces = np.asarray(faces, np.int64)
    tri3 = verts[faces]  # (F, 3, 3)
    keep = np.ones(len(faces), bool)
    if not orthographic:
        keep &= tri3[:, :, 2].min(axis=1) > znear
    if cull_backfaces:
        n = np.cross(tri3[:, 1] - tri3[:, 0], tri3[:, 2] - tri3[:, 0])  # outward for CCW winding
        view = np.array([0.0, 0.0, 1.0]) if orthographic else tri3[:, 0]  # camera -> face
        keep &= (n * view).sum(-1) < 0
    uv = project_np(verts, K, orthographic) * scale - 0.5  # (V, 2) cv2 canvas coords
    tri = uv[faces]  # (F, 3, 2)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    keep &= (hi > -1).all(axis=1) & (lo < canvas_size).all(axis=1)
    idx = np.nonzero(keep)[0]
    idx = idx[np.argsort(-tri3[idx, :, 2].mean(axis=1), kind="stable")]  # far to near
    pts = np.round(np.clip(tri, -_MAX_COORD, _MAX_COORD) * (1 << _SHIFT)).astype(np.int32)
    canvas = np.full((canvas_size, canvas_size), -1, np.int32)
    fill = cv2.fillConvexPoly
    for f in idx.tolist():
        fill(canvas, pts[f], f, cv2.LINE_8, _SHIFT)
    return canvas


def render_mesh(
    verts: np.ndarray,
    faces: np.ndarray,
    face_colors: np.ndarray,
    K: np.ndarray,
    image_size: int,
    background: np.ndarray | None = None,
    supersample: int = 2,
    orthographic: bool = False,
    cull_backfaces: bool = False,
    znear: float = 1e-3,
) -> Painting:
    """verts (V, 3) camera coords (m); faces (F, 3); face_colors (F, 3) lit RGB in [0, 1];
    K (3, 3) in pixels of image_size; background (H, W, 3) uint8 RGB (or anything broadcastable,
    e.g. a (3,) colour); None = white, as HandRenderer's default."""
    S, s = int(image_size), int(supersample)
    canvas = rasterize_face_index(verts, faces, K, S * s, s, orthographic, cull_backfaces, znear)
    covered = (canvas >= 0).astype(np.float32)
    colors = np.concatenate([np.asarray(face_colors, np.float32).reshape(-1, 3), np.zeros((1, 3), np.float32)])
    fg = colors[canvas]  # (S*s, S*s, 3); id -1 picks the appended zero row
    if s > 1:  # area average = exact s x s box mean for an integer factor
        fg = cv2.resize(fg, (S, S), interpolation=cv2.INTER_AREA)
        coverage = cv2.resize(covered, (S, S), interpolation=cv2.INTER_AREA)
    else:
        coverage = covered
    if background is None:
        bg = np.float32(1.0)
    else:
        bg = np.broadcast_to(np.asarray(background), (S, S, 3)).astype(np.float32) / 255.0
    image = fg + (1.0 - coverage)[..., None] * bg
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    mask = coverage > 0.5

    # face id at the sub-sample nearest the pixel centre (exactly the centre for odd s); where that
    # one is empty but the pixel is in the mask, the first covered sub-sample's
    c = s // 2
    face_index = canvas[c::s, c::s].copy()
    for a in range(s):
        for b in range(s):
            hole = (face_index < 0) & mask
            if not hole.any():
                break
            face_index[hole] = canvas[a::s, b::s][hole]
    face_index[~mask] = -1
    face_z = np.asarray(verts, np.float32)[np.asarray(faces)][:, :, 2].mean(axis=1)
    depth = np.where(face_index >= 0, face_z[face_index], 0.0).astype(np.float32)
    return Painting(image, mask, face_index, depth)


def render_many(
    verts: np.ndarray,
    faces: np.ndarray,
    face_colors: np.ndarray,
    K: np.ndarray,
    image_size: int,
    backgrounds: np.ndarray | None = None,
    **kwargs,
) -> Painting:
    """Batched render_mesh over N frames: verts (N, V, 3), face_colors (N, F, 3), K (N, 3, 3),
    backgrounds (N, H, W, 3) uint8 or None -> Painting with a leading N axis."""
    outs = [
        render_mesh(verts[i], faces, face_colors[i], K[i], image_size,
                    None if backgrounds is None else backgrounds[i], **kwargs)
        for i in range(len(verts))
    ]
    return Painting(*(np.stack(parts) for parts in zip(*outs)))
