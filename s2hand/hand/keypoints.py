"""Keypoint orders and conversions. OpenPose/FreiHAND order is used everywhere in this project.

OpenPose (21): wrist, thumb 1-4, index 1-4, middle 1-4, ring 1-4, pinky 1-4 (4 = fingertip).
MANO (16 joints): wrist, index 1-3, middle 1-3, pinky 1-3, ring 1-3, thumb 1-3.
MANO21: the 16 MANO joints followed by the tips in smplx's order (thumb, index, middle, ring,
pinky). HO-3D's 21-keypoint order is exactly MANO21 (wrist; index 1,2,3; middle 4,5,6;
pinky 7,8,9; ring 10,11,12; thumb 13,14,15; tips 16 thumb .. 20 pinky).

All conversions index the keypoint axis, which is the second-to-last: x[..., idx, :].
"""
from __future__ import annotations

import numpy as np

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
OPENPOSE_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{f}{i}" for f in FINGERS for i in range(1, 5))
MANO_JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(
    f"{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in range(1, 4)
)
MANO21_NAMES: tuple[str, ...] = MANO_JOINT_NAMES + tuple(f"{f}4" for f in FINGERS)
HO3D_NAMES = MANO21_NAMES

# openpose[..., i, :] = mano21[..., MANO21_TO_OPENPOSE[i], :]
MANO21_TO_OPENPOSE = np.array([MANO21_NAMES.index(n) for n in OPENPOSE_NAMES])
OPENPOSE_TO_MANO21 = np.argsort(MANO21_TO_OPENPOSE)
HO3D_TO_OPENPOSE = MANO21_TO_OPENPOSE
OPENPOSE_TO_HO3D = OPENPOSE_TO_MANO21

# Skeleton in OpenPose order: (parent, child) for the 20 bones.
BONES: tuple[tuple[int, int], ...] = tuple(
    (0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4)
)
WRIST = 0
FINGERTIPS = (4, 8, 12, 16, 20)
MIDDLE_MCP, MIDDLE_PIP = 9, 10


def mano21_to_openpose(x: np.ndarray) -> np.ndarray:
    """(..., 21, D) MANO21/HO-3D order -> (..., 21, D) OpenPose order."""
    return x[..., MANO21_TO_OPENPOSE, :]


def openpose_to_mano21(x: np.ndarray) -> np.ndarray:
    """(..., 21, D) OpenPose order -> (..., 21, D) MANO21/HO-3D order."""
    return x[..., OPENPOSE_TO_MANO21, :]


ho3d_to_openpose = mano21_to_openpose
openpose_to_ho3d = openpose_to_mano21


def opengl_to_opencv(x: np.ndarray) -> np.ndarray:
    """HO-3D's OpenGL camera frame (y up, z backwards) <-> OpenCV's (y down, z forward): flip y and z.
    The map is its own inverse."""
    return x * np.array([1.0, -1.0, -1.0], dtype=x.dtype)


opencv_to_opengl = opengl_to_opencv
