"""Smoothness and consistency of video predictions (S2HAND(V), method.md s9).

    acceleration(joints, fps=30)              # ACC, mm/s^2 (mm/frame^2 when fps is None), root-relative
    acceleration(joints, root=None)           # ... of the camera-space joints (placement included)
    acceleration_error(pred, gt, fps=30)      # ACC-ERR
    texture_sd(lit_textures), shape_sd(betas) # one sequence each
    sequence_mean(shape_sd, betas, seq_ids)   # averaged over the sequences of a set

ACC follows the human-mesh video convention (HMMR, VIBE): second finite difference
x[t-1] - 2 x[t] + x[t+1] per joint, its Euclidean norm, the mean over joints and frames, of the
joints relative to the root joint (VIBE's evaluation subtracts the pelvis before it; here the
wrist, joint 0), so that ACC measures the hand's motion, not the camera head's placement jitter.
root=None keeps the camera-space joints (reported beside it as acc_cam_*). Those
codes leave it per frame^2 while labelling tables mm/s^2; pass fps to get true mm/s^2
(multiplied by fps^2). The paper's magnitudes (ACC about 2 on HO-3D) look like mm/frame^2.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _second_difference(joints: np.ndarray, root: int | None = 0) -> np.ndarray:
    """(T, J, 3) -> (T-2, J, 3) x[t-1] - 2 x[t] + x[t+1] of the joints relative to joint `root`
    (None: as given)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[0] < 3:
        raise ValueError(f"acceleration needs joints of shape (T>=3, J, D), got {joints.shape}")
    if root is not None:
        joints = joints - joints[:, root:root + 1]
    return joints[:-2] - 2 * joints[1:-1] + joints[2:]


def _to_mm_per_time2(value_m_per_frame2: np.ndarray, fps: float | None) -> np.ndarray:
    return value_m_per_frame2 * 1000.0 * (1.0 if fps is None else float(fps) ** 2)


def acceleration(joints: np.ndarray, fps: float | None = None, root: int | None = 0) -> float:
    """ACC: joints (T, 21, 3) metres, frames in time order -> mean acceleration norm, mm/s^2
    (mm/frame^2 when fps is None), of the joints relative to joint `root` (None: camera space)."""
    acc = np.linalg.norm(_second_difference(joints, root), axis=-1)          # (T-2, J)
    return float(_to_mm_per_time2(acc, fps).mean())


def acceleration_error(pred: np.ndarray, gt: np.ndarray, fps: float | None = None,
                       root: int | None = 0) -> float:
    """ACC-ERR: pred, gt (T, 21, 3) metres -> mean norm of (pred acceleration - gt acceleration),
    mm/s^2 (mm/frame^2 when fps is None), both relative to joint `root` (None: camera space)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ")
    err = np.linalg.norm(_second_difference(pred, root) - _second_difference(gt, root), axis=-1)   # (T-2, J)
    return float(_to_mm_per_time2(err, fps).mean())


def _per_dimension_sd(x: np.ndarray) -> float:
    """(T, ...) -> mean over all non-frame dimensions of the population SD over frames."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"expected (T, ...) with T >= 1, got {x.shape}")
    return float(x.reshape(x.shape[0], -1).std(axis=0).mean())


def texture_sd(textures: np.ndarray) -> float:
    """Texture S.D.: lit textures (T, F, 3) of one sequence -> mean over the F*3 dimensions of the
    standard deviation over the T frames (population SD, ddof 0)."""
    return _per_dimension_sd(textures)


def shape_sd(betas: np.ndarray) -> float:
    """Shape S.D.: MANO shapes (T, 10) of one sequence -> mean over the 10 dimensions of the
    standard deviation over the T frames (population SD, ddof 0)."""
    return _per_dimension_sd(betas)


def sequence_mean(metric: Callable[..., float], *arrays: np.ndarray, seq_ids: np.ndarray,
                  min_frames: int = 2, **kwargs) -> float:
    """Mean over sequences of `metric(*arrays_of_one_sequence, **kwargs)`, each sequence weighted
    equally. arrays: (N, ...) each, frames of a sequence in time order; seq_ids: (N,) sequence of
    each frame (a sequence's frames need not be contiguous; their order is kept). Sequences with
    fewer than min_frames frames are skipped (ACC needs 3)."""
    seq_ids = np.asarray(seq_ids)
    if any(len(a) != len(seq_ids) for a in arrays):
        raise ValueError(f"arrays of lengths {[len(a) for a in arrays]} vs {len(seq_ids)} seq ids")
    values = []
    for sid in dict.fromkeys(seq_ids.tolist()):                       # first-seen order
        idx = np.flatnonzero(seq_ids == sid)
        if len(idx) >= min_frames:
            values.append(metric(*(np.asarray(a)[idx] for a in arrays), **kwargs))
    if not values:
        raise ValueError(f"no sequence has at least {min_frames} frames")
    return float(np.mean(values))


def frame_accelerations(joints: np.ndarray, seq_ids: np.ndarray, root: int | None = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ACC for paired comparisons: joints (N, 21, 3) metres, seq_ids (N,) as
    sequence_mean takes them -> (values (M,) mm/frame^2, the joints' mean acceleration norm at each
    inner frame of every sequence with >= 3 frames, relative to joint `root` (None: camera space);
    seq (M,) the sequence of each value)."""
    seq_ids = np.asarray(seq_ids)
    values, seqs = [], []
    for sid in dict.fromkeys(seq_ids.tolist()):
        idx = np.flatnonzero(seq_ids == sid)
        if len(idx) >= 3:
            acc = np.linalg.norm(_second_difference(np.asarray(joints)[idx], root), axis=-1).mean(-1)  # (T-2,)
            values.append(_to_mm_per_time2(acc, None))
            seqs.append(np.full(len(acc), sid))
    if not values:
        raise ValueError("no sequence has at least 3 frames")
    return np.concatenate(values), np.concatenate(seqs)


def sequence_acceleration(joints: np.ndarray, seq_ids: np.ndarray, fps: float | None = None,
                          root: int | None = 0) -> float:
    """ACC over a set: joints (N, 21, 3), seq_ids (N,) -> mean over sequences (>= 3 frames)."""
    return sequence_mean(acceleration, joints, seq_ids=seq_ids, min_frames=3, fps=fps, root=root)


def sequence_acceleration_error(pred: np.ndarray, gt: np.ndarray, seq_ids: np.ndarray,
                                fps: float | None = None, root: int | None = 0) -> float:
    """ACC-ERR over a set: pred, gt (N, 21, 3), seq_ids (N,) -> mean over sequences (>= 3 frames)."""
    return sequence_mean(acceleration_error, pred, gt, seq_ids=seq_ids, min_frames=3, fps=fps, root=root)


def sequence_texture_sd(textures: np.ndarray, seq_ids: np.ndarray) -> float:
    """Texture S.D. over a set: textures (N, F, 3), seq_ids (N,) -> mean over sequences (>= 2 frames)."""
    return sequence_mean(texture_sd, textures, seq_ids=seq_ids)


def sequence_shape_sd(betas: np.ndarray, seq_ids: np.ndarray) -> float:
    """Shape S.D. over a set: betas (N, 10), seq_ids (N,) -> mean over sequences (>= 2 frames)."""
    return sequence_mean(shape_sd, betas, seq_ids=seq_ids)
