"""Is one method better than another on the same frames? A paired difference with a confidence
interval that respects sequences.

    err_a = per_frame_pa_mpjpe(pred_a, gt)          # (S,) metres
    err_b = per_frame_pa_mpjpe(pred_b, gt)
    c = paired_comparison(err_a, err_b, groups=seq)  # seq (S,) sequence ids, -1 for still images
    c["diff"], c["lo"], c["hi"]                     # mean(a - b) and its 95 % interval
    c["better"]                                     # True when the whole interval is below 0

Frames of one video are strongly correlated (a network that gets one frame of a sequence wrong
gets its neighbours wrong too), so resampling frames would give far too narrow an interval. The
interval here is a percentile bootstrap over whole groups (a cluster bootstrap): the statistic is
sum(a - b) / frames over the resampled groups, computed by scipy.stats.bootstrap on the per-group
sums and counts. Frames whose group id is negative (still images) are each their own group. With
few groups the interval is honest but wide: 6 validation sequences cannot show a 1 % difference.
Below MIN_GROUPS groups there is no interval and no verdict: G groups allow only C(2G-1, G)
distinct resamples (3 for 2 groups, 462 for 6) and a percentile interval from so few clusters is
too narrow, so it would call noise a difference.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from .freihand import point_errors, procrustes_align

MIN_GROUPS = 8  # fewer groups (sequences): no interval, no verdict (module docstring)


def per_frame_pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(S, K, 3), (S, K, 3) metres -> (S,) mean joint error of each frame after its own Procrustes
    alignment (the per-frame terms whose mean is evaluate_freihand's mpjpe_cm / 100)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must be equal (S, K, 3)")
    aligned = np.stack([procrustes_align(p, g) for p, g in zip(pred, gt)])
    return point_errors(aligned, gt).mean(axis=1)


def _group_ids(groups: np.ndarray | None, n: int) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups).astype(np.int64)
    if g.shape != (n,):
        raise ValueError(f"groups must have one id per frame ({n}), got shape {g.shape}")
    out = g.copy()
    lone = g < 0
    out[lone] = g.max(initial=0) + 1 + np.arange(int(lone.sum()))  # still images: one group each
    return out


def paired_comparison(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None, level: float = 0.95,
                      n_resamples: int = 4000, seed: int = 0) -> dict[str, float | int | bool | None]:
    """Per-frame errors a (S,) and b (S,) of two methods on the same frames -> {"diff": mean(a - b),
    "lo", "hi": the `level` interval (module docstring), "better": hi < 0 (a measurably lower),
    "worse": lo > 0, "frames", "groups", "frames_better": share of frames with a < b}. With fewer
    than MIN_GROUPS groups lo and hi are None and neither better nor worse holds. Non-finite
    errors raise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"a {a.shape} and b {b.shape} must be equal (S,), S > 0")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-frame errors must be finite")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = a - b
    _, gid = np.unique(_group_ids(groups, len(d)), return_inverse=True)
    sums = np.bincount(gid, weights=d)
    counts = np.bincount(gid).astype(np.float64)
    diff = float(d.mean())
    if len(sums) < MIN_GROUPS:
        return {"diff": diff, "lo": None, "hi": None, "better": False, "worse": False, "frames": int(len(d)),
                "groups": int(len(sums)), "frames_better": float(np.mean(d < 0))}
    res = stats.bootstrap((sums, counts), lambda s, c, axis=-1: s.sum(axis) / c.sum(axis), paired=True,
                          vectorized=True, confidence_level=level, n_resamples=n_resamples,
                          method="percentile", rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {"diff": diff, "lo": lo, "hi": hi, "better": bool(hi < 0), "worse": bool(lo > 0),
            "frames": int(len(d)), "groups": int(len(sums)), "frames_better": float(np.mean(d < 0))}
