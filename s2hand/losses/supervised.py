"""The fully supervised 3D loss of the upper-bound ablation (`train.supervision: full3d`).

    e = supervised_3d_loss(pred_joints, pred_verts, gt_joints, gt_verts)   # scalar, metres

Not part of S2HAND: the paper argues that self-supervision comes close to fully supervised
methods (Tables 1, 2). The ablations train the same network on the same frames with this term in
place of the self-supervised keypoint and photometric terms (E_loc, E_ori, E_pixel, E_SSIM), so
the ablation tables show how close the self-supervised model comes to its own upper bound.

E_sup3d = 1/k sum_i ||(J_i - J_r) - (J_gt_i - J_gt_r)||_2 + 1/V sum_v ||(M_v - J_r) - (M_gt_v - J_gt_r)||_2
          + ||J_r - J_gt_r||_2,
averaged over the batch, with r the middle-finger MCP (keypoint 9, the point the network's
translation places: s2hand.model.system): the mean per-joint and per-vertex Euclidean distances
relative to that root (articulation, global rotation, shape and scale), plus the root's own
distance in camera coordinates (placement; metres, no alignment). Split this way, a placement
error of centimetres does not bend the articulation to absorb it: measured on the embedded
default, the same loss on camera-space joints and vertices alone left the network measurably
worse than the mean pose at the default budget (docs/training.md). The plain L2 distance (not its
square) keeps the gradient size independent of how far off a prediction is, like E_loc's robust
distance. The distance is computed as sqrt(d^2 + eps^2) - eps, so it is exactly 0 for a perfect
prediction and its gradient stays finite there.

Tests: .venv/bin/python -m pytest -q tests/test_ablations.py -k supervised
"""
from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6  # metres: smooths the distance's kink at 0 (1 micrometre)
ROOT = 9  # middle-finger MCP, OpenPose order


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
    Returns a scalar: root-relative mean joint and vertex distances + the root's distance (metres)."""
    if joints.shape != gt_joints.shape or joints.ndim != 3 or joints.shape[1] <= ROOT:
        raise ValueError(f"expected (B, 21, 3) joints, got {tuple(joints.shape)} and {tuple(gt_joints.shape)}")
    r, r_gt = joints[:, ROOT:ROOT + 1], gt_joints[:, ROOT:ROOT + 1].to(joints)  # (B, 1, 3)
    return (_mean_distance(joints - r, gt_joints - r_gt) + _mean_distance(verts - r, gt_verts.to(verts) - r_gt)
            + _mean_distance(r, r_gt))
