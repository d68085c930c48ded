"""Scores of a model's predictions on a split: validation metrics, video consistency and the
per-frame numbers that runs are compared with.

    preds = predict(system, dataset, batch_size=32, device="cpu")   # s2hand.model.predict
    m = validation_metrics(preds, dataset.table)    # pa_mpjpe_cm, pa_mpvpe_cm, auc_j, ... 2D errors
    v = video_metrics(preds, dataset.table, n=3, interval=3)        # ACC, E_quat, texture and shape SD
    f = frame_values(preds, dataset.table)          # per-frame terms (seq, frame, pa_mpjpe_cm, ...)

3D metrics are s2hand.metrics.freihand's (Procrustes-aligned "pa_*" and unaligned), from the 3D
branch; 2D metrics are mean keypoint distances in input pixels against the ground-truth 2D
keypoints: "proj_mpjpe_px" for the projected 3D joints, "hg_mpjpe_px" for the 2D branch. The
evaluate stage (s2hand.evaluate.run) reports the same quantities under the same names (its 2D
errors in the dataset's image pixels).
The mean-pose baseline's predictions are s2hand.model.baseline's.
"""
from __future__ import annotations

import numpy as np
import torch

from s2hand.data.sampler import sequence_windows
from s2hand.data.table import FrameTable
from s2hand.losses.temporal import quaternion_loss
from s2hand.metrics.compare import per_frame_accuracy
from s2hand.metrics.freihand import evaluate_freihand
from s2hand.metrics.pose2d import mpjpe_2d
from s2hand.metrics.video import frame_accelerations, sequence_acceleration, sequence_shape_sd, sequence_texture_sd


def validation_metrics(preds: dict[str, np.ndarray], table: FrameTable, joints2d: np.ndarray | None = None
                       ) -> dict[str, float]:
    """Metrics of `predict`'s output against the split's ground truth. joints2d (N, 21, 2): ground
    truth in input pixels (default: the table's, which are in image pixels)."""
    m: dict[str, float] = {}
    gt2d = table.joints2d if joints2d is None else joints2d
    if "joints" in preds and table.joints3d is not None:
        gt_verts = table.verts if table.verts is not None else table.joints3d
        pred_verts = preds["verts"] if table.verts is not None else preds["joints"]
        e = evaluate_freihand(table.joints3d, gt_verts, preds["joints"], pred_verts)
        m["pa_mpjpe_cm"], m["auc_j"] = e["pa_mpjpe_cm"], e["auc_j"]
        m["mpjpe_cm_unaligned"] = e["mpjpe_cm_unaligned"]
        if table.verts is not None:
            m["pa_mpvpe_cm"], m["auc_v"] = e["pa_mpvpe_cm"], e["auc_v"]
            m["f5"], m["f15"] = e["f5"], e["f15"]
            m["mpvpe_cm_unaligned"] = e["mpvpe_cm_unaligned"]
    if gt2d is not None:
        if "j_pro" in preds:
            m["proj_mpjpe_px"] = mpjpe_2d(preds["j_pro"], gt2d)
        if "hg" in preds:
            m["hg_mpjpe_px"] = mpjpe_2d(preds["hg"], gt2d)
    return m


def time_runs(table: FrameTable) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the video frames in time order (still images, seq -1, left out) and a run id per row:
    a new run starts at a new sequence, a cut or a gap in the frame numbers. -> (order (M,), run (M,))"""
    seq, frame = np.asarray(table.seq), np.asarray(table.frame)
    keep = np.flatnonzero(seq >= 0)
    order = keep[np.lexsort((frame[keep], seq[keep]))]
    cut = np.zeros(len(seq), bool) if table.cut is None else np.asarray(table.cut, bool)
    s, f, c = seq[order], frame[order], cut[order]
    new = np.ones(len(order), bool)
    new[1:] = (s[1:] != s[:-1]) | (f[1:] != f[:-1] + 1) | c[1:]
    return order, np.cumsum(new) - 1


def video_metrics(preds: dict[str, np.ndarray], table: FrameTable, n: int = 3, interval: int = 3
                  ) -> dict[str, float]:
    """Consistency of `predict(..., video=True)`'s output over the sequences of `table` (S2HAND(V),
    method.md s5, s9): acc_mm_frame2 (ACC of the predicted 3D joints over time_runs: runs split at cuts and gaps),
    quat_loss (E_quat averaged over every window of n frames `interval` apart), texture_sd and
    shape_sd (per sequence, averaged over sequences). Still images (seq -1) are left out."""
    seq, frame = np.asarray(table.seq), np.asarray(table.frame)
    keep = np.flatnonzero(seq >= 0)
    order = keep[np.lexsort((frame[keep], seq[keep]))]
    if len(order) == 0:
        return {}
    m: dict[str, float] = {}
    ids = seq[order]
    run_order, run = time_runs(table)
    if np.bincount(run).max() >= 3:
        m["acc_mm_frame2"] = sequence_acceleration(preds["joints"][run_order], run)
    windows = sequence_windows(seq[order], frame[order], n, interval, None if table.cut is None else table.cut[order])
    if len(windows):
        poses = torch.as_tensor(preds["pose"][order][windows], dtype=torch.float64)  # (W, n, 48)
        m["quat_loss"] = float(quaternion_loss(poses))
    m["texture_sd"] = sequence_texture_sd(preds["lit"][order], ids)
    m["shape_sd"] = sequence_shape_sd(preds["shape"][order], ids)
    return m


FRAME_COLUMNS = ("seq", "frame", "pa_mpjpe_cm", "pa_mpvpe_cm", "auc_j", "auc_v", "acc_mm_frame2")


def frame_values(preds: dict[str, np.ndarray], table: FrameTable) -> dict[str, np.ndarray]:
    """Per-frame numbers of `predict`'s output on `table`, for paired comparisons between runs on
    the same split (s2hand.metrics.compare): "seq", "frame" (N,) identify the frame; the
    accuracy terms of per_frame_accuracy; "acc_mm_frame2": the joints' acceleration norm at
    each inner frame of a time run (NaN elsewhere; averaged within runs, then over runs, it is
    video_metrics' ACC). {} without
    3D predictions or 3D ground truth."""
    if "joints" not in preds or table.joints3d is None:
        return {}
    out: dict[str, np.ndarray] = {"seq": np.asarray(table.seq, np.int64), "frame": np.asarray(table.frame, np.int64)}
    out.update(per_frame_accuracy(preds["joints"], table.joints3d, preds.get("verts"), table.verts))
    acc = np.full(len(table.seq), np.nan)
    order, run = time_runs(table)
    for r in np.unique(run):
        idx = order[run == r]
        if len(idx) >= 3:
            acc[idx[1:-1]] = frame_accelerations(preds["joints"][idx], np.zeros(len(idx)))[0]
    out["acc_mm_frame2"] = acc
    return out
