"""Distillation of per-frame keypoint fits (`train.pseudo_labels`; not in the paper).

    e = pseudo_label_loss(pose_pca, shape, target_pose, target_shape, mask, shape_weight=0.1)

The pseudo_labels stage fits the hand to each kept training frame's detected keypoints alone
(s2hand.evaluate.keypoint_fit: the same E_loc, E_ori and regulariser energy the network is
trained on, with a free code per frame and no network). This term pulls the network's finger
pose PCA coefficients (B, P) and shape (B, 10) towards that frame's fitted code:

    E_pseudo = 1/P sum_p (theta_p - theta_fit_p)^2 + shape_weight 1/10 sum (beta - beta_fit)^2,

averaged over the frames that have a fit (mask). Why: a network trained with the keypoint energy
alone, on two CPU cores, ends at its initial guess (docs/training.md), while the per-frame
optimum of that very energy lies far below the mean pose on the same frames. The fit solves the
per-frame problem once; the network then only has to learn a regression from the image to a
code. The labels still come only from the detector: no ground truth enters.

Tests: .venv/bin/python -m pytest -q tests/test_losses.py -k pseudo
"""
from __future__ import annotations

import torch
from torch import Tensor


def pseudo_label_loss(pose_pca: Tensor, shape: Tensor, target_pose: Tensor, target_shape: Tensor,
                      mask: Tensor, shape_weight: float = 0.1) -> Tensor:
    """() mean over the masked frames (module docstring); pose_pca, target_pose (B, P); shape,
    target_shape (B, 10); mask (B,) bool or 0/1. 0 (with a gradient path) when no frame has a fit."""
    if pose_pca.shape != target_pose.shape:
        raise ValueError(f"pose {tuple(pose_pca.shape)} and its target {tuple(target_pose.shape)} differ in shape "
                         "(hand.num_pca_comps changed since the pseudo_labels stage ran?)")
    if shape.shape != target_shape.shape:
        raise ValueError(f"shape {tuple(shape.shape)} and its target {tuple(target_shape.shape)} differ in shape")
    m = mask.to(pose_pca.dtype)  # (B,)
    # unfitted frames may carry NaN targets: zeroed here, so that no NaN reaches the gradient
    tp, ts = torch.nan_to_num(target_pose.to(pose_pca)), torch.nan_to_num(target_shape.to(shape))
    per_frame = (pose_pca - tp).pow(2).mean(-1) + shape_weight * (shape - ts).pow(2).mean(-1)  # (B,)
    return (per_frame * m).sum() / m.sum().clamp(min=1.0)
