"""Temporal losses of S2HAND(V) (method.md s5; paper eq. 12-23) and the two baselines it beats.

    e_quat = quaternion_loss(poses)                     # eq. 17-20, E_quat
    e_tmp = temporal_loss(poses)                        # baseline: pull neighbouring poses together
    e_smooth = smooth_loss(poses, threshold=0.1)        # baseline: penalise change above a threshold
    e_ts = texture_shape_loss(face_colors, light, betas, canonical_normals)   # eq. 21-22, E_T&S
    e = video_temporal_loss("quaternion", poses)        # dispatcher for the motion term

poses (S, n, 16, 3): axis-angle of the 15 finger joints and the global rotation (Concatenate[theta,
R], eq. 18) for S sequences of n frames in time order; (S, n, 48) is accepted too.
"""
from __future__ import annotations

import roma
import torch
from torch import Tensor

from s2hand.render.lighting import shade_faces


def _poses(poses: Tensor) -> Tensor:
    """(S, n, 16, 3) or (S, n, 48) -> (S, n, J, 3)."""
    if poses.dim() == 3:
        poses = poses.reshape(*poses.shape[:2], -1, 3)
    if poses.dim() != 4 or poses.shape[-1] != 3 or poses.shape[1] < 2:
        raise ValueError(f"poses must be (sequences, frames >= 2, joints, 3), got {tuple(poses.shape)}")
    return poses


def rotvec_to_quaternion(rotvec: Tensor) -> Tensor:
    """Eq. 12: (..., 3) axis-angle -> (..., 4) unit quaternion (w, x, y, z) =
    (cos(a/2), sin(a/2) u); roma's sinc form, finite gradient at a = 0."""
    xyzw = roma.rotvec_to_unitquat(rotvec)
    return torch.cat([xyzw[..., 3:], xyzw[..., :3]], dim=-1)


def rotation_angle(q0: Tensor, q1: Tensor) -> Tensor:
    """Psi (eq. 19-20): the rotation angle gamma in [0, pi] between unit quaternions (..., 4)
    (w, x, y, z), so that cos(gamma/2) = |q0 . q1| (q and -q are the same rotation).

    Computed from the relative quaternion r = q1 q0^-1 (Hamilton product; r_w = q0 . q1) as
    gamma = 2 atan2(|r_xyz|, |r_w|), which is exact and has finite gradients everywhere, also at
    gamma = 0 where 2 acos(|q0 . q1|) has an infinite one (and float32 acos loses ~1e-3 rad)."""
    w0, v0 = q0[..., :1], q0[..., 1:]
    w1, v1 = q1[..., :1], q1[..., 1:]
    r_w = (q0 * q1).sum(-1)  # (...)
    r_v = w0 * v1 - w1 * v0 - torch.cross(v1, v0, dim=-1)  # (..., 3)
    return 2.0 * torch.atan2(torch.linalg.vector_norm(r_v, dim=-1), r_w.abs())


def quaternion_loss(poses: Tensor) -> Tensor:
    """E_quat (eq. 17): | sum_{i=1}^{n-1} Psi(H_i, H_{i+1}) - Psi(H_1, H_n) | per sequence and
    joint, averaged over the 16 joints and the S sequences. poses (S, n, 16, 3) axis-angle.

    Zero exactly when each joint turns about one fixed axis with a monotonic angle (total < pi),
    at any speed; positive when the axis changes (path longer than the geodesic)."""
    q = rotvec_to_quaternion(_poses(poses))  # (S, n, J, 4)
    path = rotation_angle(q[:, :-1], q[:, 1:]).sum(dim=1)  # (S, J)
    direct = rotation_angle(q[:, 0], q[:, -1])  # (S, J)
    return (path - direct).abs().mean()


def temporal_loss(poses: Tensor) -> Tensor:
    """Baseline temporal loss (paper Table 4/5): mean squared difference of consecutive
    axis-angle poses, mean over (S, n-1, J, 3)."""
    p = _poses(poses)
    return (p[:, 1:] - p[:, :-1]).pow(2).mean()


def smooth_loss(poses: Tensor, threshold: float) -> Tensor:
    """Baseline smooth loss (paper Table 4/5): per joint, the change d = ||p_{i+1} - p_i|| of the
    axis-angle between neighbouring frames is penalised only above threshold (rad):
    mean over (S, n-1, J) of max(0, d - threshold)^2."""
    p = _poses(poses)
    d = torch.linalg.vector_norm(p[:, 1:] - p[:, :-1], dim=-1)  # (S, n-1, J)
    return (d - threshold).clamp(min=0).pow(2).mean()


def texture_shape_loss(
    face_colors: Tensor, light: Tensor, betas: Tensor, canonical_normals: Tensor,
) -> Tensor:
    """E_T&S (eq. 21-22): face_colors C (S, n, F, 3) (the colours the renderer gets, e.g.
    tanh(texture) as in the released code), light L (S, n, 11), betas (S, n, 10), canonical_normals
    (F, 3) unit face normals of MANO's zero pose (mean shape), in the light's frame.

    C^L_i = (l_a c_a + max(0, n_d . n_f) l_d c_d) C_i (shade_faces), then per sequence
    sum_i ||C^L_i - mean_i C^L|| + sum_i ||beta_i - mean_i beta|| with ||.|| the L2 norm over all
    F*3 (resp. 10) values of a frame; mean over the S sequences. Zero for identical frames (the norm
    has a zero, not NaN, gradient there)."""
    S, n, F, _ = face_colors.shape
    lit = shade_faces(canonical_normals, face_colors.reshape(S * n, F, 3), light.reshape(S * n, -1))
    lit = lit.reshape(S, n, F * 3)  # (S, n, F*3)
    tex = torch.linalg.vector_norm(lit - lit.mean(dim=1, keepdim=True), dim=-1).sum(dim=1)  # (S,)
    shp = torch.linalg.vector_norm(betas - betas.mean(dim=1, keepdim=True), dim=-1).sum(dim=1)  # (S,)
    return (tex + shp).mean()


def video_temporal_loss(kind: str, poses: Tensor, **kw) -> Tensor:
    """The motion term of S2HAND(V) by name: 'quaternion' (E_quat), 'temporal', 'smooth'
    (needs threshold=...) or 'none' (a zero that keeps the graph's device and dtype)."""
    if kind == "quaternion":
        return quaternion_loss(poses, **kw)
    if kind == "temporal":
        return temporal_loss(poses, **kw)
    if kind == "smooth":
        return smooth_loss(poses, **kw)
    if kind == "none":
        return poses.new_zeros(())
    raise ValueError(f"video_temporal_loss: kind must be quaternion, temporal, smooth or none, got {kind!r}")
