"""The fully supervised 3D loss of the upper-bound ablation (`train.supervision: full3d`).

    e = supervised_3d_loss(pred_joints, pred_verts, gt_joints, gt_verts)   # scalar, metres

Not part of S2HAND: the paper argues that self-supervision comes close to fully supervised
methods (Tables 1, 2). The ablations train the same network on the same frames with this term in
place of the self-supervised keypoint and photometric terms (E_loc, E_ori, E_pixel, E_SSIM), so
the ablation tables show how close the self-supervised model comes to its own upper bound.

E_sup3d = 1/k sum_i ||J_i - J_gt_i||_2 + 1/V sum_v ||M_v - M_gt_v||_2, averaged over the batch:
the mean per-joint and per-vertex Euclidean distances in camera coordinates (metres, no alignment:
scale and translation are learnt too). The plain L2 distance (not its square) keeps the gradient
size independent of how far off a prediction is, like E_loc's robust distance. The distance is
computed as sqrt(d^2 + eps^2) - eps, so it is exactly 0 for a perfect prediction and its gradient
stays finite there.

Tests: .venv/bin/python -m pytest -q tests/test_ablations.py -k supervised
"""
from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6  # metres: smooths the distance's kink at 0 (1 micrometre)


def _mean_distance(pred: Tensor, gt: Tensor) -> Tensor:
    """(B, P, 3), (B, P, 3) -> () mean over batch and points of the smoothed Euclidean distance."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected (B, P, 3) points, got {tuple(pred.shape)}")
    sq = (pred - gt.to(pred)).pow(2).sum(-1)  # (B, P)
    return (torch.sqrt(sq + EPS**2) - EPS).mean()


def supervised_3d_loss(joints: Tensor, verts: Tensor, gt_joints: Tensor, gt_verts: Tensor) -> Tensor:
    """E_sup3d (module docstring).

    joints (B, 21, 3), verts (B, V, 3): predicted, camera space, metres;
    gt_joints (B, 21, 3), gt_verts (B, V, 3): ground truth in the same frame and order.
    Returns a scalar: mean joint distance + mean vertex distance (metres)."""
    return _mean_distance(joints, gt_joints) + _mean_distance(verts, gt_verts)
