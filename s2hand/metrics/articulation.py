"""Does the predicted articulation follow the image? A PA-MPJPE can drop while every frame gets
the same half-open hand; these numbers tell a fist predicted as a fist from a constant hand.

    s_pred, s_gt = straightness(pred_joints), straightness(gt_joints)   # (N,) each
    a = articulation_agreement(s_pred, s_gt, groups=seq)
    a["r"], a["r_lo"], a["r_hi"]          # correlation over frames, 95 % sequence-bootstrap interval
    a["gap_ratio"]                        # predicted closed-to-open gap / the ground truth's

Straightness of a finger is |tip - MCP| / (its three bone lengths): 1 when straight, about 0.4
in a fist. A frame's value is the mean over index, middle, ring and pinky (the thumb's changes
little between an open hand and a fist). Scale-free, so it needs no alignment. The "closed"
frames are the quarter of frames with the lowest ground-truth straightness, the "open" ones the
quarter with the highest; gap_ratio = (pred open - pred closed) / (gt open - gt closed) is 1 when
the predictions open and close as much as the hands do and 0 for a constant hand.
"""
from __future__ import annotations

import numpy as np

from .compare import _group_ids

# OpenPose order (s2hand.hand.keypoints): MCP, PIP, DIP, tip of index, middle, ring, pinky
FINGER_CHAINS = np.array([[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]])


def straightness(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) joints in OpenPose order -> (...) mean over the four fingers of
    |tip - MCP| / (|PIP - MCP| + |DIP - PIP| + |tip - DIP|), in (0, 1]."""
    j = np.asarray(joints, np.float64)
    if j.shape[-2:] != (21, 3):
        raise ValueError(f"joints must be (..., 21, 3), got {j.shape}")
    chain = j[..., FINGER_CHAINS, :]  # (..., 4, 4, 3)
    bones = np.linalg.norm(np.diff(chain, axis=-2), axis=-1).sum(-1)  # (..., 4)
    direct = np.linalg.norm(chain[..., 3, :] - chain[..., 0, :], axis=-1)  # (..., 4)
    if not (bones > 0).all():
        raise ValueError("a finger has zero length")
    return (direct / bones).mean(-1)


def _summary(pred: np.ndarray, gt: np.ndarray, quantile: float) -> tuple[float, float, dict]:
    """-> (Pearson r, gap_ratio, {"closed"/"open": {"gt", "pred"} means}) of one (resampled) set."""
    lo, hi = np.quantile(gt, [quantile, 1 - quantile])
    closed, opened = gt <= lo, gt >= hi
    parts = {"closed": {"gt": float(gt[closed].mean()), "pred": float(pred[closed].mean())},
             "open": {"gt": float(gt[opened].mean()), "pred": float(pred[opened].mean())}}
    gt_gap = parts["open"]["gt"] - parts["closed"]["gt"]
    gap = (parts["open"]["pred"] - parts["closed"]["pred"]) / gt_gap if gt_gap > 0 else float("nan")
    r = float(np.corrcoef(pred, gt)[0, 1]) if pred.std() > 1e-9 and gt.std() > 1e-9 else 0.0  # a constant hand: 0
    return r, float(gap), parts


def articulation_agreement(pred: np.ndarray, gt: np.ndarray, groups: np.ndarray, quantile: float = 0.25,
                           level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Straightness of predictions pred (N,) against the ground truth's gt (N,) on the same frames,
    groups (N,) their sequence ids (negative: a still image, its own group) -> {"r", "gap_ratio", "closed", "open" (module docstring),
    "r_lo", "r_hi", "gap_lo", "gap_hi": `level` intervals from a bootstrap over whole groups,
    "frames", "groups"}; None where a number is undefined."""
    pred, gt, groups = np.asarray(pred, np.float64), np.asarray(gt, np.float64), np.asarray(groups)
    if pred.shape != gt.shape or pred.ndim != 1 or groups.shape != pred.shape or len(pred) < 8:
        raise ValueError(f"pred {pred.shape}, gt {gt.shape} and groups {groups.shape} must be equal (N >= 8,)")
    groups = _group_ids(groups, len(groups))  # still images (id < 0): one group each
    r, gap, parts = _summary(pred, gt, quantile)
    ids = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in ids]
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_resamples):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        stats.append(_summary(pred[idx], gt[idx], quantile)[:2])
    s = np.asarray(stats)  # (n_resamples, 2)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    (r_lo, r_hi), (g_lo, g_hi) = np.nanquantile(s[:, 0], q), np.nanquantile(s[:, 1], q)
    num = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731  (JSON has no NaN)
    return {"r": num(r), "r_lo": num(r_lo), "r_hi": num(r_hi), "gap_ratio": num(gap), "gap_lo": num(g_lo),
            "gap_hi": num(g_hi), **parts, "frames": int(len(pred)), "groups": int(len(ids))}
