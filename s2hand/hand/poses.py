"""Natural finger poses in MANO's joint frames (15 finger joints x axis-angle, radians).

Used to derive the open hand's pose basis (open_hand.py) and to animate the synthetic
dataset. Positive z flexes a finger towards the palm (limits.py explains the frames).

    from s2hand.hand.poses import sample_natural_poses, fist_pose
    poses = sample_natural_poses(1000, np.random.default_rng(0))   # (1000, 45), inside the limits
"""
from __future__ import annotations

import numpy as np

from s2hand.hand.limits import LIMITS_DEG


_FIST_DEG = {  # joint: (x, y, z) degrees
    "index": [(0, 0, 85), (0, 0, 95), (0, 0, 65)],
    "middle": [(0, 0, 88), (0, 0, 95), (0, 0, 65)],
    "ring": [(0, 0, 90), (0, 0, 95), (0, 0, 65)],
    "pinky": [(-12, 0, 90), (0, 0, 95), (0, 0, 65)],
    "thumb": [(85, -20, -20), (0, 0, 20), (0, 0, 45)],
}
_FINGER_ROWS = {"index": 0, "middle": 3, "pinky": 6, "ring": 9, "thumb": 12}


def fist_pose() -> np.ndarray:
    """A closed fist, inside limits.LIMITS_DEG. (45,) rad"""
    deg = np.zeros((15, 3))
    for finger, rows in _FIST_DEG.items():
        deg[_FINGER_ROWS[finger]: _FINGER_ROWS[finger] + 3] = rows
    return np.deg2rad(deg).reshape(45)


def sample_natural_poses(n: int, rng: np.random.Generator, grasp_prob: float = 0.15) -> np.ndarray:
    """Synthetic natural finger poses inside limits.LIMITS_DEG. (n, 45) rad

    A grasp synergy g in [0, 1] (relaxed, Beta(1.2, 3.5), or with `grasp_prob` a grasp, U(0.6, 1)) closes all
    fingers together; each finger departs from it (+-0.15), the index sometimes points; spread
    (MCP y) opens as the hand opens; the pinky MCP pronates (x) as it closes; the thumb opposes
    (CMC x) and flexes (MCP, IP z) with its own closure; per-joint noise on every component.
    Finally every component is clipped 0.25 deg inside its range.
    """
    deg = np.zeros((n, 15, 3))
    g = np.where(rng.random(n) < 1.0 - grasp_prob, rng.beta(1.2, 3.5, n), rng.uniform(0.6, 1.0, n))
    spread = rng.uniform(-0.3, 1.0, n) * (1 - g)
    spread_deg = {"index": 8.0, "middle": 0.0, "ring": -6.0, "pinky": -9.0}
    for finger in ("index", "middle", "ring", "pinky"):
        c = np.clip(g + 0.15 * rng.standard_normal(n), 0, 1)
        if finger == "index":
            pointing = rng.random(n) < 0.1
            c = np.where(pointing, 0.1 * rng.random(n), c)
        r = _FINGER_ROWS[finger]
        deg[:, r, 2] = 85 * c + 5 * rng.standard_normal(n)  # MCP flexion
        deg[:, r + 1, 2] = 95 * c + 5 * rng.standard_normal(n)  # PIP
        deg[:, r + 2, 2] = 65 * c + 5 * rng.standard_normal(n)  # DIP
        deg[:, r, 1] = spread_deg[finger] * spread + 2 * rng.standard_normal(n)
        deg[:, r, 0] = (-10 * c if finger == "pinky" else 0) + 2 * rng.standard_normal(n)
        deg[:, r + 1: r + 3, :2] += 1.5 * rng.standard_normal((n, 2, 2))
    ct = np.clip(g + 0.2 * rng.standard_normal(n), 0, 1)
    r = _FINGER_ROWS["thumb"]
    zero = np.zeros(n)
    deg[:, r] = np.stack([10 + 75 * ct, 5 - 25 * ct, -20 * ct], 1) + np.array([6, 6, 6]) * rng.standard_normal((n, 3))
    deg[:, r + 1] = np.stack([zero, zero, 20 * ct], 1) + np.array([2, 2, 4]) * rng.standard_normal((n, 3))
    deg[:, r + 2] = np.stack([zero, zero, 10 + 35 * ct], 1) + np.array([2, 2, 6]) * rng.standard_normal((n, 3))
    deg = np.clip(deg, LIMITS_DEG[..., 0] + 0.25, LIMITS_DEG[..., 1] - 0.25)
    return np.deg2rad(deg).reshape(n, 45)
