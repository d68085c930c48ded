"""Which faces each pixel sees: pytorch3d's mesh rasteriser selection, vectorised in torch for the CPU.

    soft, hard = select_faces(verts_ndc, faces, image_size=64, blur_radius=9.2e-5, faces_per_pixel=8)
    # soft (B, R, R, k): the k nearest faces within the blur radius; hard (B, R, R, 1): the face
    # covering the pixel centre (what blur_radius=0, k=1 gives); ids into the B*F packed faces, -1 = none

pytorch3d's CPU rasteriser tests every face at every pixel and spends most of its time on per-face
tensor indexing in C++ (bounding boxes and areas are written one tensor element at a time): ~0.25 s
per call for 8 hands at 64 px. Here every (face, pixel) pair inside a face's bounding box (grown by
the blur radius) is enumerated at once, the pairs are tested exactly as pytorch3d tests them, and
the k nearest per pixel are kept by sorting. With faces a few pixels across that is ~10^5 pairs
for a batch: a few milliseconds. A batch whose faces are huge (a hand against the camera) would
need too many pairs; then `select_faces` returns None and the caller falls back to pytorch3d.

The tests, in pytorch3d's order and float32 arithmetic (rasterize_meshes_cpu.cpp,
geometry_utils.h): a face is skipped if its 2D area is within 1e-8 of zero or any vertex has
depth < 1e-8; a pixel centre (pytorch3d NDC: +x left, +y up) must lie in the face's box grown by
sqrt(blur_radius); barycentrics are perspective-corrected when asked and clipped to the triangle
for the depth when blur_radius > 0; a pixel whose depth is negative is skipped; outside the
triangle the squared distance to it must be below blur_radius. The k kept are those of smallest
depth, ties to the lower face id, nearest first. Results match pytorch3d's up to float rounding on
exact boundaries and depth ties (tests/test_render.py compares them).
"""
from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-8  # pytorch3d's kEpsilon
MAX_PAIRS = 1 << 24  # (face, pixel) candidates per call before falling back (~1 GB of temporaries)


def pixel_ndc(index: Tensor, size: int) -> Tensor:
    """pytorch3d's pixel-centre NDC for row / column `index` of an image `size` px wide (flipped axes)."""
    return -1.0 + (2.0 * (size - 1 - index).to(torch.float32) + 1.0) / size


def _edge(px: Tensor, py: Tensor, ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
    """pytorch3d's EdgeFunctionForward(p, a, b)."""
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def _seg_dist2(px: Tensor, py: Tensor, ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
    """pytorch3d's PointLineDistanceForward: squared distance from p to the segment a-b."""
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy
    t = ((px - ax) * dx + (py - ay) * dy) / torch.where(l2 <= EPS, torch.ones_like(l2), l2)
    t = t.clamp(0.0, 1.0)
    qx, qy = px - (ax + t * dx), py - (ay + t * dy)
    deg_x, deg_y = px - bx, py - by
    return torch.where(l2 <= EPS, deg_x * deg_x + deg_y * deg_y, qx * qx + qy * qy)


def _pixel_range(lo: Tensor, hi: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Index range [first, last] of pixels whose NDC centre may lie in [lo, hi] (pixel centre
    1 - (2i + 1) / size), with 1e-3 px of slack for rounding (the exact test follows), clipped to
    the image; last < first when none."""
    first = torch.ceil((size * (1.0 - hi) - 1.0) / 2.0 - 1e-3)
    last = torch.floor((size * (1.0 - lo) - 1.0) / 2.0 + 1e-3)
    return first.clamp(0, size).long(), last.clamp(-1, size - 1).long()


@torch.no_grad()
def select_faces(verts_ndc: Tensor, faces: Tensor, image_size: int, blur_radius: float, faces_per_pixel: int,
                 perspective: bool = True, max_pairs: int | None = None) -> tuple[Tensor, Tensor] | None:
    """verts_ndc (B, V, 3) pytorch3d NDC x, y and depth z; faces (F, 3) long.
    -> (soft (B, R, R, k), hard (B, R, R, 1)) packed face ids (b * F + f), -1 = none; None when the
    faces would need more than `max_pairs` (default MAX_PAIRS) (face, pixel) candidates."""
    B, F, R, k = verts_ndc.shape[0], faces.shape[0], image_size, faces_per_pixel
    dev = verts_ndc.device
    fv = verts_ndc.float()[:, faces].reshape(B * F, 3, 3)  # packed (BF, 3 verts, xyz)
    fv = fv.transpose(1, 2).contiguous()  # (BF, xyz, 3 verts)
    x, y, z = fv[:, 0], fv[:, 1], fv[:, 2]  # (BF, 3) each
    area = _edge(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
    grow = blur_radius ** 0.5
    xlo, xhi = x.amin(1) - grow, x.amax(1) + grow
    ylo, yhi = y.amin(1) - grow, y.amax(1) + grow
    usable = (area.abs() > EPS) & (z.amin(1) >= EPS)
    c0, c1 = _pixel_range(xlo, xhi, R)  # columns
    r0, r1 = _pixel_range(ylo, yhi, R)  # rows
    nc, nr = (c1 - c0 + 1).clamp(min=0), (r1 - r0 + 1).clamp(min=0)
    count = torch.where(usable, nc * nr, torch.zeros_like(nc))
    total = int(count.sum())
    if total > (MAX_PAIRS if max_pairs is None else max_pairs):
        return None
    soft = torch.full((B * R * R, k), -1, dtype=torch.long, device=dev)
    hard = torch.full((B * R * R, 1), -1, dtype=torch.long, device=dev)
    if total == 0:
        return soft.view(B, R, R, k), hard.view(B, R, R, 1)

    # every (face, pixel) pair in the grown boxes, in face order
    f = torch.repeat_interleave(torch.arange(B * F, device=dev), count, output_size=total)  # (P,); size known: no sync
    t = torch.arange(total, device=dev) - (torch.cumsum(count, 0) - count)[f]
    col = c0[f] + t % nc[f]
    row = r0[f] + torch.div(t, nc[f], rounding_mode="floor")
    px, py = pixel_ndc(col, R), pixel_ndc(row, R)
    box = torch.stack([xlo, xhi, ylo, yhi], 1).index_select(0, f)  # (P, 4)
    keep = torch.nonzero((px >= box[:, 0]) & (px <= box[:, 1]) & (py >= box[:, 2]) & (py <= box[:, 3])).squeeze(1)
    f, col, row, px, py = (a.index_select(0, keep) for a in (f, col, row, px, py))

    # pytorch3d's per-pixel tests
    x0, x1, x2, y0, y1, y2, z0, z1, z2 = fv.reshape(-1, 9).index_select(0, f).T.contiguous().unbind(0)  # each (P,)
    denom = _edge(x2, y2, x0, y0, x1, y1) + EPS
    w0 = _edge(px, py, x1, y1, x2, y2) / denom
    w1 = _edge(px, py, x2, y2, x0, y0) / denom
    w2 = _edge(px, py, x0, y0, x1, y1) / denom
    if perspective:
        t0, t1, t2 = w0 * z1 * z2, w1 * z0 * z2, w2 * z0 * z1
        s = t0 + t1 + t2
        w0, w1, w2 = t0 / s, t1 / s, t2 / s
    inside = (w0 > 0) & (w1 > 0) & (w2 > 0)
    if blur_radius > 0:  # clip_barycentric_coords
        c = torch.stack([w0, w1, w2]).clamp(min=0.0)
        c = c / c.sum(0).clamp(min=1e-5)
        depth = c[0] * z0 + c[1] * z1 + c[2] * z2
    else:
        depth = w0 * z0 + w1 * z1 + w2 * z2
    dist = torch.minimum(torch.minimum(_seg_dist2(px, py, x0, y0, x1, y1), _seg_dist2(px, py, x1, y1, x2, y2)),
                         _seg_dist2(px, py, x2, y2, x0, y0))
    ok = torch.nonzero((depth >= 0) & (inside | (dist < blur_radius))).squeeze(1)
    f, col, row, depth, inside = (a.index_select(0, ok) for a in (f, col, row, depth, inside))
    if f.numel() == 0:
        return soft.view(B, R, R, k), hard.view(B, R, R, 1)

    # per pixel, nearest first; ties keep face order (pairs were made in face order, sorts are stable)
    pix = (torch.div(f, F, rounding_mode="floor") * R + row) * R + col
    order = torch.sort(depth, stable=True).indices
    order = order[torch.sort(pix[order], stable=True).indices]
    pix, f, inside = pix[order], f[order], inside[order]
    n = torch.bincount(pix, minlength=B * R * R)
    rank = torch.arange(pix.numel(), device=dev) - (torch.cumsum(n, 0) - n)[pix]
    top = rank < k
    soft[pix[top], rank[top]] = f[top]
    # the front face: the first pair with the pixel centre inside the triangle
    pin, fin = pix[inside], f[inside]
    first = torch.ones_like(pin, dtype=torch.bool)
    first[1:] = pin[1:] != pin[:-1]
    hard[pin[first], 0] = fin[first]
    return soft.view(B, R, R, k), hard.view(B, R, R, 1)
