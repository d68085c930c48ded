"""2D keypoint branch (method.md s1, training only): stacked hourglass + integral pose regression.

    net = StackedHourglass()                                   # released size: 2 stacks, 256 feats
    net = StackedHourglass(num_feats=64, num_modules=1)        # a CPU-sized one
    heatmaps, kp2d = net(images)    # images (B, 3, H, W) in [0, 1], H and W multiples of 4
    # heatmaps: list of (B, 21, H/4, W/4), one per stack; kp2d: list of (B, 21, 2) in pixels

Network: Newell et al.'s stacked hourglass as the released S2HAND code has it (Liuhao Ge's
Net_HM_HG): stem conv 7x7/2 -> residual -> max-pool 2 -> 2 residuals (stride 4), then per stack an
hourglass of `depth` levels, `num_modules` residuals after it, a 1x1 conv+BN+ReLU and a 1x1 conv
to 21 heatmaps; intermediate stacks feed their features and heatmaps back. Input = image - 0.5
(released). The hourglass upsamples to the size of its skip connection (nearest), so any H, W
that are multiples of 4 with H/4, W/4 >= 2**depth work (224 px: 56 -> 28 -> 14 -> 7 -> 3): no
padding to 256 as the released code did for 224 px crops.

Integral regression (Sun et al., "Integral human pose regression"): p = softmax(beta * heatmap)
over all heatmap cells, keypoint = sum p * cell centre. Pixel convention of this project: input
pixel (i, j) (row, column) has its centre at (x, y) = (j + 0.5, i + 0.5); heatmap cell (i, j)
covers input pixels [s_x j, s_x (j+1)) x [s_y i, s_y (i+1)) with s = input size / heatmap size,
so its centre is (s_x (j + 0.5), s_y (i + 0.5)). The softmax and the sum run in float32 (or the
heatmap's dtype if wider) so bf16 autocast keeps sub-pixel precision. The released code instead
upsamples the 64x64 maps bilinearly to 256x256 and sums integer pixel indices (beta = 1).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def integral_keypoints(heatmaps: Tensor, image_size: Sequence[int], beta: float = 1.0) -> Tensor:
    """(B, K, h, w) heatmaps, image_size (H, W) -> (B, K, 2) expected (x, y) in input pixels."""
    B, K, h, w = heatmaps.shape
    H, W = image_size
    dtype = torch.promote_types(heatmaps.dtype, torch.float32)
    prob = torch.softmax(beta * heatmaps.reshape(B, K, h * w).to(dtype), dim=-1).view(B, K, h, w)
    xs = (torch.arange(w, device=heatmaps.device, dtype=dtype) + 0.5) * (W / w)  # (w,)
    ys = (torch.arange(h, device=heatmaps.device, dtype=dtype) + 0.5) * (H / h)  # (h,)
    x = (prob.sum(dim=2) * xs).sum(dim=-1)  # (B, K) marginal over rows, then expectation
    y = (prob.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1 (c/2), BN-ReLU-3x3 (c/2), BN-ReLU-1x1 (c) + skip."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        mid = c_out // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, c_out, 1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


def _residuals(c: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[Residual(c, c) for _ in range(n)])


class Hourglass(nn.Module):
    """One hourglass of `depth` levels: skip branch at full size + pooled branch recursing."""

    def __init__(self, depth: int, num_modules: int, c: int):
        super().__init__()
        self.up1 = _residuals(c, num_modules)
        self.low1 = _residuals(c, num_modules)
        self.low2 = Hourglass(depth - 1, num_modules, c) if depth > 1 else _residuals(c, num_modules)
        self.low3 = _residuals(c, num_modules)

    def forward(self, x: Tensor) -> Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return up1 + F.interpolate(low, size=up1.shape[-2:], mode="nearest")


class HourglassOutput(NamedTuple):
    heatmaps: list[Tensor]  # per stack (B, K, H/4, W/4)
    keypoints: list[Tensor]  # per stack (B, K, 2), input pixels


class StackedHourglass(nn.Module):
    """images (B, 3, H, W) in [0, 1] -> HourglassOutput (module docstring)."""

    def __init__(self, num_joints: int = 21, num_stacks: int = 2, num_modules: int = 2,
                 num_feats: int = 256, depth: int = 4, beta: float = 1.0):
        super().__init__()
        self.beta = beta
        self.depth = depth
        self.min_heatmap_size = 2 ** depth
        c = num_feats
        self.stem = nn.Sequential(
            nn.Conv2d(3, c // 4, 7, stride=2, padding=3), nn.BatchNorm2d(c // 4), nn.ReLU(inplace=True),
            Residual(c // 4, c // 2), nn.MaxPool2d(2), Residual(c // 2, c // 2), Residual(c // 2, c))
        self.hourglass = nn.ModuleList(Hourglass(depth, num_modules, c) for _ in range(num_stacks))
        self.post = nn.ModuleList(
            nn.Sequential(_residuals(c, num_modules), nn.Conv2d(c, c, 1), nn.BatchNorm2d(c),
                          nn.ReLU(inplace=True)) for _ in range(num_stacks))
        self.to_heatmap = nn.ModuleList(nn.Conv2d(c, num_joints, 1) for _ in range(num_stacks))
        self.feat_back = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(num_stacks - 1))
        self.heatmap_back = nn.ModuleList(nn.Conv2d(num_joints, c, 1) for _ in range(num_stacks - 1))

    def forward(self, images: Tensor) -> HourglassOutput:
        H, W = images.shape[-2:]
        if H % 4 or W % 4:
            raise ValueError(f"image size must be a multiple of 4, got {H}x{W}")
        if min(H, W) // 4 < self.min_heatmap_size:
            raise ValueError(f"{H}x{W} images give heatmaps smaller than the hourglass's "
                             f"{self.depth} poolings allow: need H/4 and W/4 at least "
                             f"{self.min_heatmap_size}")
        x = self.stem(images - 0.5)  # (B, c, H/4, W/4)
        heatmaps, keypoints = [], []
        for i, hg in enumerate(self.hourglass):
            feat = self.post[i](hg(x))
            hm = self.to_heatmap[i](feat)  # (B, K, H/4, W/4)
            heatmaps.append(hm)
            keypoints.append(integral_keypoints(hm, (H, W), self.beta))
            if i < len(self.hourglass) - 1:
                x = x + self.feat_back[i](feat) + self.heatmap_back[i](hm)
        return HourglassOutput(heatmaps, keypoints)
