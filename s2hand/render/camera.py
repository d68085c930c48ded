"""Pinhole (and orthographic) cameras in OpenCV's convention. Pure torch, differentiable.

Conventions every renderer in `s2hand.render` follows:
- Camera coordinates: x right, y down, z forward, metres.
- K (B, 3, 3) is in pixels of a square image of `image_size` px.
- Continuous pixel coordinates: pixel (i, j) (row i, column j) covers [j, j+1) x [i, i+1), so
  its centre is at (u, v) = (j + 0.5, i + 0.5); the image spans [0, S] x [0, S].
  With this convention resizing an image by a factor r maps u -> r * u exactly, so
  `scale_intrinsics` is a plain multiplication of the first two rows of K.
- Perspective: u = fx * X / Z + cx, v = fy * Y / Z + cy.
- Orthographic (paper Table 8, in-the-wild video without intrinsics): u = fx * X + cx,
  v = fy * Y + cy (fx in px per metre; Z is ignored).
"""
from __future__ import annotations

import torch
from torch import Tensor


def project(points: Tensor, K: Tensor, orthographic: bool = False, eps: float = 1e-6) -> Tensor:
    """(B, N, 3) camera-space points, (B, 3, 3) intrinsics -> (B, N, 2) pixel coordinates (u, v).

    Perspective divides by Z clamped to >= eps (points behind the camera stay finite).
    """
    xy = points[..., :2]  # (B, N, 2)
    if not orthographic:
        xy = xy / points[..., 2:3].clamp(min=eps)
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=-1)[:, None, :]  # (B, 1, 2)
    c = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=-1)[:, None, :]  # (B, 1, 2)
    skew = K[:, 0, 1][:, None]  # (B, 1); zero for every camera in this project
    uv = xy * f + c
    return torch.stack([uv[..., 0] + skew * xy[..., 1], uv[..., 1]], dim=-1)


def scale_intrinsics(K: Tensor, from_size: float, to_size: float) -> Tensor:
    """K in pixels of a `from_size` image -> K in pixels of the same view resized to `to_size`.

    Works on (3, 3) or (B, 3, 3); exact under the pixel-centre convention above.
    """
    r = to_size / from_size
    S = torch.tensor([r, r, 1.0], dtype=K.dtype, device=K.device)
    return K * S[:, None]  # scales rows 0 and 1


def crop_intrinsics(K: Tensor, x0: Tensor, y0: Tensor, crop_size: Tensor, out_size: float) -> Tensor:
    """K of a full image -> K of the square crop [x0, x0+crop_size) x [y0, y0+crop_size)
    (continuous pixel coordinates of the full image) resized to `out_size` px.

    K (B, 3, 3); x0, y0, crop_size (B,) tensors or floats.
    """
    B = K.shape[0]
    as_t = lambda x: torch.as_tensor(x, dtype=K.dtype, device=K.device).expand(B)  # noqa: E731
    x0, y0, crop_size = as_t(x0), as_t(y0), as_t(crop_size)
    K = K.clone()
    K[:, 0, 2] = K[:, 0, 2] - x0
    K[:, 1, 2] = K[:, 1, 2] - y0
    r = out_size / crop_size  # (B,)
    return K * torch.stack([r, r, torch.ones_like(r)], dim=-1)[:, :, None]


def pixels_to_ndc(uv: Tensor, image_size: int) -> Tensor:
    """(..., 2) pixel coordinates -> (..., 2) pytorch3d NDC (+X left, +Y up, [-1, 1] on the image).

    pytorch3d puts the centre of pixel (i, j) at NDC (1 - (2j+1)/S, 1 - (2i+1)/S), which is
    u = j + 0.5 here: the same pixel-centre convention, with both axes flipped.
    """
    return 1.0 - 2.0 * uv / image_size
