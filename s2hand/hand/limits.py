"""Feasible joint-angle ranges (method.md s4, E_J), in MANO's joint frames.

The released S2HAND code hinges each of the 15 finger joints' local axis-angle components
(x, y, z) to a range in degrees, with axis weights (1, 1, 2). MANO's joint frames are all
aligned with its canonical frame (right hand: fingers along -x, palm facing -y, thumb towards
+z), where positive z-rotation flexes a finger towards the palm. The open hand of this project
is oriented the same way (docs/hand_model.md), so the same table applies to it.

Rows follow MANO's joint order without the wrist: index 1-3, middle 1-3, pinky 1-3,
ring 1-3, thumb 1-3 (s2hand.hand.keypoints.MANO_JOINT_NAMES[1:]).
"""
from __future__ import annotations

import numpy as np

_MCP = [[-5, 5], [-10, 10], [-10, 100]]
_PIP = [[-5, 5], [-5, 5], [-10, 100]]  # also DIP
_PINKY_MCP = [[-20, 5], [-10, 20], [-10, 100]]
_THUMB_CMC = [[0, 90], [-22.5, 33.75], [-22.5, 22.5]]
_THUMB_MCP = [[-5, 5], [-5, 5], [-22.5, 22.5]]
_THUMB_IP = [[-5, 5], [-5, 5], [-20, 100]]

# (15, 3, 2): joint, axis (x, y, z), (low, high) in degrees
LIMITS_DEG = np.array(
    [_MCP, _PIP, _PIP,  # index
     _MCP, _PIP, _PIP,  # middle
     _PINKY_MCP, _PIP, _PIP,  # pinky
     _MCP, _PIP, _PIP,  # ring
     _THUMB_CMC, _THUMB_MCP, _THUMB_IP],  # thumb
    dtype=np.float64,
)
LIMITS_RAD = np.deg2rad(LIMITS_DEG)
AXIS_WEIGHTS = np.array([1.0, 1.0, 2.0])


def violation_deg(hand_pose: np.ndarray) -> np.ndarray:
    """(..., 45) full finger axis-angle pose (rad) -> (..., 15, 3) degrees outside the range (>= 0)."""
    a = np.rad2deg(np.asarray(hand_pose, dtype=np.float64).reshape(*np.shape(hand_pose)[:-1], 15, 3))
    return np.maximum(LIMITS_DEG[..., 0] - a, 0) + np.maximum(a - LIMITS_DEG[..., 1], 0)


def within_limits(hand_pose: np.ndarray, tol_deg: float = 1e-6) -> np.ndarray:
    """(..., 45) -> (...) bool: every component of every joint inside its range."""
    return (violation_deg(hand_pose) <= tol_deg).all(axis=(-1, -2))
