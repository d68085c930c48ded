"""Statistical regularisation of S2HAND (method.md s4; paper eq. 9 and section 3.2.4).

    e_beta = shape_loss(beta)                    # E_beta
    e_c = texture_loss(face_colors)              # E_C
    e_s = scale_loss(joints3d)                   # E_s
    e_j = joint_angle_loss(hand_pose)            # E_J
    e_regu = regularization_loss(w, beta=..., face_colors=..., joints3d=..., hand_pose=...)  # eq. 9
"""
from __future__ import annotations

import torch
from torch import Tensor

from s2hand.config import LossWeights
from s2hand.hand.keypoints import MIDDLE_MCP, MIDDLE_PIP
from s2hand.hand.limits import AXIS_WEIGHTS, LIMITS_RAD

MEAN_MIDDLE_BONE_M = 0.0282  # released code: length of the middle finger's MCP-PIP bone (metres)


def shape_loss(beta: Tensor, variant: str = "paper") -> Tensor:
    """E_beta: beta (B, 10) towards the mean shape 0.
    paper: ||beta - 0||_2 per sample, mean over the batch (gradient 0, not NaN, at beta = 0).
    code:  mean of beta^2 (the released code's mse_loss against zeros)."""
    if variant == "paper":
        return torch.linalg.vector_norm(beta, dim=-1).mean()
    if variant == "code":
        return beta.pow(2).mean()
    raise ValueError(f"shape_loss: variant must be 'paper' or 'code', got {variant!r}")


def texture_loss(face_colors: Tensor) -> Tensor:
    """E_C: face_colors (B, F, 3). Per sample and channel, colours outside mean +- 2 std (over the
    sample's F faces, population std) are penalised by their L1 distance to the mean; mean over
    faces, channels and batch (the released code's outlier rule, without its confidence weights)."""
    mean = face_colors.mean(dim=1, keepdim=True)  # (B, 1, 3)
    std = face_colors.std(dim=1, keepdim=True, correction=0)  # (B, 1, 3)
    outlier = (face_colors > mean + 2 * std) | (face_colors < mean - 2 * std)  # (B, F, 3)
    dist = (face_colors - mean).abs()
    return torch.where(outlier, dist, torch.zeros_like(dist)).mean()


def scale_loss(joints3d: Tensor, target: float = MEAN_MIDDLE_BONE_M) -> Tensor:
    """E_s: joints3d (B, 21, 3) metres, OpenPose order. L1 between the middle MCP-PIP bone length
    (keypoints 9-10) and 0.0282 m, mean over the batch (released code)."""
    bone = torch.linalg.vector_norm(joints3d[:, MIDDLE_MCP] - joints3d[:, MIDDLE_PIP], dim=-1)  # (B,)
    return (bone - target).abs().mean()


def joint_angle_loss(hand_pose: Tensor) -> Tensor:
    """E_J: hand_pose (B, 45) full local axis-angle of the 15 finger joints in MANO joint order
    (index, middle, pinky, ring, thumb; 3 each). Hinge (linear) outside LIMITS_RAD (15, 3, 2) per
    component, weighted by AXIS_WEIGHTS (1, 1, 2) for (x, y, z), mean over (B, 15, 3) as the
    released code's tsa_pose_loss. Zero inside the limits."""
    a = hand_pose.reshape(hand_pose.shape[0], 15, 3)  # (B, 15, 3)
    lim = torch.as_tensor(LIMITS_RAD, dtype=a.dtype, device=a.device)  # (15, 3, 2)
    w = torch.as_tensor(AXIS_WEIGHTS, dtype=a.dtype, device=a.device)  # (3,)
    excess = (lim[..., 0] - a).clamp(min=0) + (a - lim[..., 1]).clamp(min=0)  # (B, 15, 3)
    return (excess * w).mean()


def regularization_loss(
    w: LossWeights, *, beta: Tensor | None = None, face_colors: Tensor | None = None,
    joints3d: Tensor | None = None, hand_pose: Tensor | None = None,
) -> Tensor:
    """E_regu (eq. 9) = E_beta + wC E_C + ws E_s + wJ E_J with wC, ws, wJ = w.tex, w.scale, w.joint.
    Inputs left as None are skipped (e.g. no texture head); shapes as in the single losses."""
    parts = [
        (beta, 1.0, shape_loss),
        (face_colors, w.tex, texture_loss),
        (joints3d, w.scale, scale_loss),
        (hand_pose, w.joint, joint_angle_loss),
    ]
    given = [(x, k, f) for x, k, f in parts if x is not None]
    if not given:
        raise ValueError("regularization_loss: no inputs given")
    return sum(k * f(x) for x, k, f in given)
