"""Natural finger poses in MANO's joint frames (full 45-d axis-angle, radians).

A small synergy model, used to animate the synthetic dataset and to derive the open hand's
pose basis. Per sample:
  - a grasp level g in [0, 1] (Beta(0.9, 1.1)): how closed the hand is;
  - per finger f (index, middle, ring, pinky) a curl c_f = clip(g + N(0, 0.18)), giving
    MCP z = 80 c_f, PIP z = 95 c_f, DIP z = 65 c_f degrees (DIP follows PIP, as in real hands);
  - a spread s in [-0.5, 1] that fans the fingers (abduction about y, shrinking as they curl);
  - the thumb: opposition o (CMC x, 0..75), flexion c_t = clip(g + N(0, 0.2)) (MCP z, IP z);
  - small twist and jitter; everything clipped to `limits.LIMITS_DEG`.
Positive z flexes a finger towards the palm (limits.py explains the frames).

    from s2hand.hand.poses import sample_natural_poses, fist_pose, open_pose
    poses = sample_natural_poses(np.random.default_rng(0), 1000)   # (1000, 45)
"""
from __future__ import annotations

import numpy as np

from s2hand.hand.limits import LIMITS_DEG

# MANO joint rows (without wrist): index 0-2, middle 3-5, pinky 6-8, ring 9-11, thumb 12-14
_FINGER_ROWS = {"index": 0, "middle": 3, "pinky": 6, "ring": 9}
_SPREAD_DEG = {"index": 8.0, "middle": 0.0, "ring": -4.0, "pinky": -9.0}  # y at MCP per unit spread
_THUMB = 12


def _compose(g: np.ndarray, curls: np.ndarray, spread: np.ndarray, opp: np.ndarray, thumb: np.ndarray,
             jitter: np.ndarray) -> np.ndarray:
    """Build (n, 15, 3) degrees from synergy values; curls (n, 4) in index, middle, pinky, ring order."""
    n = len(g)
    a = np.zeros((n, 15, 3))
    for k, (name, row) in enumerate(_FINGER_ROWS.items()):
        c = curls[:, k]
        a[:, row, 2] = 80 * c
        a[:, row + 1, 2] = 95 * c
        a[:, row + 2, 2] = 65 * c
        a[:, row, 1] = _SPREAD_DEG[name] * spread * (1 - 0.7 * c)
    a[:, _THUMB, 0] = 75 * opp  # CMC: opposition towards the palm
    a[:, _THUMB, 1] = 10 * opp
    a[:, _THUMB + 1, 2] = 18 * thumb  # MCP flexion
    a[:, _THUMB + 2, 2] = 75 * thumb  # IP flexion
    a += jitter
    return np.clip(a, LIMITS_DEG[..., 0], LIMITS_DEG[..., 1])


def sample_natural_poses(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 45) radians, all within limits."""
    g = rng.beta(0.9, 1.1, n)
    curls = np.clip(g[:, None] + rng.normal(0, 0.18, (n, 4)), 0, 1)
    spread = rng.uniform(-0.5, 1.0, n)
    opp = np.clip(0.25 + 0.6 * g + rng.normal(0, 0.2, n), 0, 1)
    thumb = np.clip(g + rng.normal(0, 0.2, n), 0, 1)
    jitter = rng.normal(0, 1.5, (n, 15, 3))
    deg = _compose(g, curls, spread, opp, thumb, jitter)
    return np.deg2rad(deg).reshape(n, 45)


def fist_pose() -> np.ndarray:
    """(45,) a natural closed fist, thumb folded over the fingers."""
    one = np.ones(1)
    deg = _compose(one, np.ones((1, 4)), np.zeros(1), 0.8 * one, one, np.zeros((1, 15, 3)))
    return np.deg2rad(deg).reshape(45)


def open_pose() -> np.ndarray:
    """(45,) the flat open hand (fingers slightly spread)."""
    z = np.zeros(1)
    deg = _compose(z, np.zeros((1, 4)), 0.5 * np.ones(1), z, z, np.zeros((1, 15, 3)))
    return np.deg2rad(deg).reshape(45)
