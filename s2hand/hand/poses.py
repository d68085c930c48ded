"""Natural finger poses in MANO's joint frames (15 finger joints x axis-angle, radians).

Used to derive the open hand's pose basis (open_hand.py) and to animate the synthetic
dataset. Positive z flexes a finger towards the palm (limits.py explains the frames).

    from s2hand.hand.poses import sample_natural_poses, fist_pose
    poses = sample_natural_poses(1000, np.random.default_rng(0))   # (1000, 45), inside the limits
    mixed = sample_natural_poses(1000, rng, gesture_prob=0.5)       # half of them GESTURES
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


# Hand gestures as curls (0 extended .. 1 closed) of index, middle, ring, pinky and the thumb's
# closure (0 out to the side .. 1 opposed and flexed), the shapes that gesture videos are full of.
GESTURES: dict[str, tuple[float, float, float, float, float]] = {
    "point": (0.0, 1.0, 1.0, 1.0, 0.8),
    "peace": (0.0, 0.0, 1.0, 1.0, 0.8),
    "three": (0.0, 0.0, 0.0, 1.0, 0.8),
    "four": (0.0, 0.0, 0.0, 0.0, 1.0),
    "thumbs_up": (1.0, 1.0, 1.0, 1.0, 0.0),
    "l_shape": (0.0, 1.0, 1.0, 1.0, 0.0),
    "horns": (0.0, 1.0, 1.0, 0.0, 0.8),
    "call_me": (1.0, 1.0, 1.0, 0.0, 0.0),
    "ok": (0.6, 0.0, 0.0, 0.0, 0.7),
    "pinch": (0.45, 0.3, 0.3, 0.3, 0.55),
    "fist": (1.0, 1.0, 1.0, 1.0, 1.0),
    "open": (0.0, 0.0, 0.0, 0.0, 0.0),
}
_CURL_FINGERS = ("index", "middle", "ring", "pinky")


def _finger_angles(deg: np.ndarray, finger: str, c: np.ndarray, spread: np.ndarray,
                   rng: np.random.Generator) -> None:
    """Write one finger's three joints into deg (n, 15, 3) from its curl c (n,) and the hand's
    spread (n,), with per-joint noise."""
    n = len(c)
    spread_deg = {"index": 8.0, "middle": 0.0, "ring": -6.0, "pinky": -9.0}
    r = _FINGER_ROWS[finger]
    deg[:, r, 2] = 85 * c + 5 * rng.standard_normal(n)  # MCP flexion
    deg[:, r + 1, 2] = 95 * c + 5 * rng.standard_normal(n)  # PIP
    deg[:, r + 2, 2] = 65 * c + 5 * rng.standard_normal(n)  # DIP
    deg[:, r, 1] = spread_deg[finger] * spread + 2 * rng.standard_normal(n)
    deg[:, r, 0] = (-10 * c if finger == "pinky" else 0) + 2 * rng.standard_normal(n)
    deg[:, r + 1: r + 3, :2] += 1.5 * rng.standard_normal((n, 2, 2))


def _thumb_angles(deg: np.ndarray, ct: np.ndarray, rng: np.random.Generator) -> None:
    """Write the thumb's three joints into deg (n, 15, 3) from its closure ct (n,)."""
    n, zero, r = len(ct), np.zeros(len(ct)), _FINGER_ROWS["thumb"]
    deg[:, r] = np.stack([10 + 75 * ct, 5 - 25 * ct, -20 * ct], 1) + np.array([6, 6, 6]) * rng.standard_normal((n, 3))
    deg[:, r + 1] = np.stack([zero, zero, 20 * ct], 1) + np.array([2, 2, 4]) * rng.standard_normal((n, 3))
    deg[:, r + 2] = np.stack([zero, zero, 10 + 35 * ct], 1) + np.array([2, 2, 6]) * rng.standard_normal((n, 3))


def sample_natural_poses(n: int, rng: np.random.Generator, grasp_prob: float = 0.15,
                         gesture_prob: float = 0.0) -> np.ndarray:
    """Synthetic natural finger poses inside limits.LIMITS_DEG. (n, 45) rad

    A grasp synergy g in [0, 1] (relaxed, Beta(1.2, 3.5), or with `grasp_prob` a grasp, U(0.6, 1)) closes all
    fingers together; each finger departs from it (+-0.15), the index sometimes points; spread
    (MCP y) opens as the hand opens; the pinky MCP pronates (x) as it closes; the thumb opposes
    (CMC x) and flexes (MCP, IP z) with its own closure; per-joint noise on every component.
    With `gesture_prob` a pose is instead one of GESTURES (uniformly), each finger's curl jittered
    by +-0.08 and the extended fingers spread U(0.2, 1), so fingers move independently of each
    other. Finally every component is clipped 0.25 deg inside its range. gesture_prob=0 draws
    exactly what it drew before gestures existed.
    """
    deg = np.zeros((n, 15, 3))
    g = np.where(rng.random(n) < 1.0 - grasp_prob, rng.beta(1.2, 3.5, n), rng.uniform(0.6, 1.0, n))
    spread = rng.uniform(-0.3, 1.0, n) * (1 - g)
    for finger in _CURL_FINGERS:
        c = np.clip(g + 0.15 * rng.standard_normal(n), 0, 1)
        if finger == "index":
            pointing = rng.random(n) < 0.1
            c = np.where(pointing, 0.1 * rng.random(n), c)
        _finger_angles(deg, finger, c, spread, rng)
    ct = np.clip(g + 0.2 * rng.standard_normal(n), 0, 1)
    _thumb_angles(deg, ct, rng)
    if gesture_prob > 0:
        rows = np.flatnonzero(rng.random(n) < gesture_prob)
        table = np.array(list(GESTURES.values()))  # (G, 5)
        curls = np.clip(table[rng.integers(0, len(table), len(rows))] + 0.08 * rng.standard_normal((len(rows), 5)),
                        0, 1)
        sub = np.zeros((len(rows), 15, 3))
        g_spread = rng.uniform(0.2, 1.0, len(rows))
        for i, finger in enumerate(_CURL_FINGERS):
            _finger_angles(sub, finger, curls[:, i], g_spread * (1 - curls[:, i]), rng)
        _thumb_angles(sub, curls[:, 4], rng)
        deg[rows] = sub
    deg = np.clip(deg, LIMITS_DEG[..., 0] + 0.25, LIMITS_DEG[..., 1] - 0.25)
    return np.deg2rad(deg).reshape(n, 45)
