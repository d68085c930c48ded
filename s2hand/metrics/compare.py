"""Is one method better than another on the same frames? A paired difference with a confidence
interval that respects sequences.

    err_a = per_frame_pa_mpjpe(pred_a, gt)          # (S,) metres
    err_b = per_frame_pa_mpjpe(pred_b, gt)
    c = paired_comparison(err_a, err_b, groups=seq)  # seq (S,) sequence ids, -1 for still images
    c["diff"], c["lo"], c["hi"]                     # mean(a - b) and its 95 % interval
    c["better"]                                     # True when the whole interval is below 0
    verdict(c, paper_lower=True)                    # "held", "reversed" or "not measurable"

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

from .freihand import AUC_THRESHOLDS_M, point_errors, procrustes_align

MIN_GROUPS = 8  # fewer groups (sequences): no interval, no verdict (module docstring)
VERDICTS = ("held", "reversed", "not measurable")


def per_frame_pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(S, K, 3), (S, K, 3) metres -> (S,) mean joint error of each frame after its own Procrustes
    alignment (the per-frame terms whose mean is evaluate_freihand's pa_mpjpe_cm / 100)."""
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


def verdict(comparison: dict | None, paper_lower: bool) -> str:
    """One word for a paired comparison of a - b (paired_comparison's dict, or one with the same
    "lo"/"hi" keys): "held" when the whole interval lies on the side the paper reports (below 0
    when `paper_lower`: the paper says a is lower), "reversed" when it lies wholly on the other
    side, "not measurable" otherwise (the interval holds 0, or there is none: too few groups,
    no per-frame values)."""
    if not comparison or comparison.get("lo") is None or comparison.get("hi") is None:
        return "not measurable"
    lo, hi = float(comparison["lo"]), float(comparison["hi"])
    below, above = hi < 0, lo > 0
    if below or above:
        return "held" if below == paper_lower else "reversed"
    return "not measurable"


def per_frame_pck_auc(errors: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS_M) -> np.ndarray:
    """errors (S, K) metres -> (S,) the AUC of each frame's own PCK curve. AUC is linear in the
    curve, so the mean over frames is freihand.auc(pck_curve(errors)) (the split's AUC)."""
    errors = np.asarray(errors, np.float64)
    thresholds = np.asarray(thresholds, np.float64)
    pck = np.stack([(errors <= t).mean(axis=1) for t in thresholds], axis=1)  # (S, T)
    return np.trapezoid(pck, thresholds, axis=1) / np.trapezoid(np.ones_like(thresholds), thresholds)


def per_frame_accuracy(pred_xyz: np.ndarray, gt_xyz: np.ndarray, pred_verts: np.ndarray | None = None,
                       gt_verts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-frame terms of evaluate_freihand's Procrustes-aligned numbers, for paired comparisons:
    joints (S, 21, 3) -> "pa_mpjpe_cm", "auc_j" (S,) each; with MANO vertices (S, V, 3) of equal V
    also "pa_mpvpe_cm", "auc_v". The mean over frames of each is the split's number."""
    pred_xyz, gt_xyz = np.asarray(pred_xyz, np.float64), np.asarray(gt_xyz, np.float64)
    err_j = point_errors(np.stack([procrustes_align(p, g) for p, g in zip(pred_xyz, gt_xyz)]), gt_xyz)  # (S, 21)
    out = {"pa_mpjpe_cm": 100 * err_j.mean(axis=1), "auc_j": per_frame_pck_auc(err_j)}
    if pred_verts is not None and gt_verts is not None and np.shape(pred_verts)[1:] == np.shape(gt_verts)[1:]:
        gt_v = np.asarray(gt_verts, np.float64)
        err_v = point_errors(np.stack([procrustes_align(p, g) for p, g in zip(np.asarray(pred_verts, np.float64), gt_v)]),
                             gt_v)  # (S, V)
        out["pa_mpvpe_cm"], out["auc_v"] = 100 * err_v.mean(axis=1), per_frame_pck_auc(err_v)
    return out
