"""S2HAND / S2HAND(V) losses (method.md s4-5), one file per family:

    keypoints2d   E_loc, E_ori, E_2d, E_cons     (eq. 3, 4, 10, 11)
    photometric   E_pixel, E_SSIM                (eq. 6, 7)
    regularizers  E_beta, E_C, E_s, E_J, E_regu  (eq. 9)
    temporal      E_quat, E_T&S and baselines    (eq. 17-22)
    supervised    E_sup3d: the ground-truth 3D upper bound of the ablations (not in the paper)
    total         the weighted sums              (eq. 1, 2, 5, 8, 23)

Tests: .venv/bin/python -m pytest -q tests/test_losses.py
"""
from .keypoints2d import (
    REFERENCE_SIZE,
    SMOOTH_L1_BETA,
    bone_orientation_loss,
    branch2d_loss,
    consistency_loss,
    location_loss,
    smooth_l1_distance,
)
from .photometric import pixel_loss, ssim_loss
from .regularizers import (
    joint_angle_loss,
    regularization_loss,
    scale_loss,
    shape_loss,
    texture_loss,
)
from .temporal import (
    quaternion_loss,
    rotation_angle,
    rotvec_to_quaternion,
    smooth_loss,
    temporal_loss,
    texture_shape_loss,
    video_temporal_loss,
)
from .pseudo import pseudo_label_loss
from .supervised import supervised_3d_loss
from .total import S2HAND_TERMS, VIDEO_TERMS, s2hand_loss, video_loss

__all__ = [
    "pseudo_label_loss",
    "REFERENCE_SIZE", "SMOOTH_L1_BETA", "S2HAND_TERMS", "VIDEO_TERMS",
    "location_loss", "bone_orientation_loss", "branch2d_loss", "consistency_loss", "smooth_l1_distance",
    "pixel_loss", "ssim_loss",
    "shape_loss", "texture_loss", "scale_loss", "joint_angle_loss", "regularization_loss",
    "quaternion_loss", "rotation_angle", "rotvec_to_quaternion", "temporal_loss", "smooth_loss",
    "texture_shape_loss", "video_temporal_loss",
    "s2hand_loss", "video_loss", "supervised_3d_loss",
]
