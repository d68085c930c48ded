"""2D keypoint metrics (method.md s9): MPJPE in pixels and the fraction of frames whose largest
joint error is within a distance.

    mpjpe_2d(pred, gt, mask)                                   # pixels
    t = np.linspace(0, 30, 31); frames_within_distance(pred, gt, t, mask)   # (31,) in [0, 1]
"""
from __future__ import annotations

import numpy as np


def _errors_and_mask(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must be equal (N, K, 2)")
    err = np.linalg.norm(pred - gt, axis=-1)                                   # (N, K)
    mask = np.ones(err.shape, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != err.shape:
        raise ValueError(f"mask {mask.shape} must be (N, K) = {err.shape}")
    return err, mask


def mpjpe_2d(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """pred, gt (N, K, 2) pixels; mask (N, K) bool, True = counted -> mean joint error in pixels
    over the counted joints (NaN when none is counted)."""
    err, mask = _errors_and_mask(pred, gt, mask)
    return float(err[mask].mean()) if mask.any() else float("nan")


def frames_within_distance(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray,
                           mask: np.ndarray | None = None) -> np.ndarray:
    """pred, gt (N, K, 2) pixels; thresholds (T,) pixels; mask (N, K) -> (T,): fraction of frames
    whose maximum error over counted joints is <= t. Frames with no counted joint are left out."""
    err, mask = _errors_and_mask(pred, gt, mask)
    keep = mask.any(axis=1)                                                    # (N,)
    if not keep.any():
        return np.full(len(np.asarray(thresholds)), np.nan)
    max_err = np.where(mask, err, -np.inf).max(axis=1)[keep]                   # (N',)
    return (max_err[None, :] <= np.asarray(thresholds, np.float64)[:, None]).mean(axis=1)
