"""Photometric losses of S2HAND (method.md s4; paper eq. 6, 7).

    e_pixel = pixel_loss(image, rendered, silhouette, conf)   # eq. 6, E_pixel
    e_ssim = ssim_loss(image, rendered, silhouette)           # eq. 7, E_SSIM

image I (B, 3, H, W) in [0, 1], rendered I_re (B, 3, H, W) and the soft rendered silhouette S_re
(B, 1, H, W) in [0, 1], all at the same resolution (resize the input to the render size first).
A soft silhouette weights the pixels: |S_re| = sum S_re, sum over S_re = sum S_re * (...).
"""
from __future__ import annotations

from collections.abc import Sequence

import kornia
import torch
from torch import Tensor

SSIM_WINDOW = 11  # pytorch_ssim's default window (Gaussian, sigma 1.5), which the released code used
CODE_MIN_CONF = 0.1  # released code: a sample's texture weight is 0 unless every keypoint exceeds it
_EPS = 1e-8


def pixel_loss(
    image: Tensor, rendered: Tensor, silhouette: Tensor, conf: Tensor, variant: str = "paper",
) -> Tensor:
    """E_pixel (eq. 6): conf_sum / |S_re| * sum_{(u,v) in S_re} ||I_uv - I_re_uv||_1, mean over the batch.

    ||.||_1 sums the 3 channels; |S_re| = sum of the soft silhouette, clamped to at least one
    pixel so an empty silhouette gives 0 with finite gradients.
    paper: per-sample weight conf_sum = sum of the 21 keypoint confidences (conf (B, 21)).
    code:  per-sample weight t = mean(conf) if min(conf) > 0.1 else 0 (the released code's
           texture_con), samples averaged with weights t^2 / sum t^2 (0 when every t is 0). The
           released code also averaged |I * S - I_re| over the whole image; here both variants
           share the paper's silhouette-normalised per-sample error and differ in the weights.
    """
    c = conf.reshape(conf.shape[0], -1)  # (B, 21)
    s = silhouette  # (B, 1, H, W)
    err = (s * (image - rendered).abs()).sum(dim=(1, 2, 3))  # (B,)
    per_sample = err / s.sum(dim=(1, 2, 3)).clamp(min=1.0)  # (B,)
    if variant == "paper":
        return (c.sum(-1) * per_sample).mean()
    if variant == "code":
        t = torch.where(c.min(-1).values > CODE_MIN_CONF, c.mean(-1), torch.zeros_like(c[:, 0]))  # (B,)
        w = t.pow(2)
        return (w * per_sample).sum() / w.sum().clamp(min=_EPS)
    raise ValueError(f"pixel_loss: variant must be 'paper' or 'code', got {variant!r}")


def ssim_loss(
    image: Tensor, rendered: Tensor, silhouette: Tensor,
    background: Sequence[float] | Tensor | None = None, window_size: int = SSIM_WINDOW,
) -> Tensor:
    """E_SSIM (eq. 7): 1 - SSIM(I * S_re, I_re), SSIM averaged over pixels, channels and batch
    (kornia.metrics.ssim, Gaussian window 11, sigma 1.5, 'same' padding, max_val 1).

    background: None is the paper's formula (the masked input is black outside the hand). Pass
    the renderer's background colour (e.g. (1, 1, 1), the released code's and HandRenderer's
    white) to composite the masked input over it, I * S + (1 - S) * bg, so the two images agree
    outside the hand and only the hand is compared."""
    target = image * silhouette  # (B, 3, H, W)
    if background is not None:
        bg = torch.as_tensor(background, dtype=image.dtype, device=image.device).reshape(1, -1, 1, 1)
        target = target + (1.0 - silhouette) * bg
    ssim_map = kornia.metrics.ssim(target, rendered, window_size)  # (B, 3, H, W)
    return 1.0 - ssim_map.mean()
