"""Pseudo labels: per-frame fits of the hand to the detected keypoints (`train.pseudo_labels`).

    codes = fit_codes(layer, kp.peaks[rows], ...)    # s2hand.evaluate.keypoint_fit (pipeline/pseudo_labels.py)
    save_pseudo_labels(path, table.image[rows], codes)
    targets = load_pseudo_labels(path, table, num_pose)   # HandFrames(..., targets=targets)
    targets, source = propagate_labels(targets, table.seq, table.frame, table.cut, radius=2)

The fit (the pseudo_labels stage) is s2hand.evaluate.keypoint_fit.fit_codes on each kept
training frame (the training stages' filters), with the loss weights and keypoint convention
training uses; only the detections are read. This module only stores and reads the result (the
training loop imports it, and needs nothing of s2hand.evaluate). The file stores, per fitted
frame, its image name (the key: frames are matched by name, so a reordered or extended table
still finds its labels), the finger pose PCA coefficients (N, P) and the shape (N, 10).
s2hand/losses/pseudo.py says what training does with them.

`propagate_labels` (`train.pseudo_labels.propagate`; not in the paper) lends a fitted frame's code
to the unfitted frames of the same shot at most `radius` frames away (the nearest fitted one;
ties go to the earlier frame). The training filter drops most closed hands, whose detections
jitter between neighbours, so the kept frames are biased towards open hands, and the network
never sees the hard views; a hand's articulation changes little over a few frames, so a
neighbour's fit is a label for that frame too, while its own detection stays unused
(docs/training.md). No ground truth enters.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from s2hand.data.sampler import shot_ids
from s2hand.data.table import FrameTable
from s2hand.io import save_npz


def save_pseudo_labels(path: str | Path, images: np.ndarray, codes: dict[str, np.ndarray]) -> None:
    """images (N,) names; codes["pose"] (N, P), codes["shape"] (N, 10)."""
    save_npz(path, image=np.asarray(images).astype(str), pose=codes["pose"].astype(np.float32),
             shape=codes["shape"].astype(np.float32))


def load_pseudo_labels(path: str | Path, table: FrameTable, num_pose: int) -> dict[str, np.ndarray]:
    """Per table row: "pseudo_pose" (N, P), "pseudo_shape" (N, 10) (0 where a frame has no fit),
    "pseudo_mask" (N,) bool. Raises when the file's components differ from num_pose, or when no
    row of the table has a fit."""
    z = np.load(path, allow_pickle=False)
    pose, shape, names = z["pose"], z["shape"], z["image"]
    if pose.shape[1] != num_pose:
        raise ValueError(f"{path}: {pose.shape[1]} pose components, the network has {num_pose} "
                         "(rerun the pseudo_labels stage after changing hand.num_pca_comps)")
    where = {str(n): i for i, n in enumerate(names)}
    idx = np.array([where.get(str(n), -1) for n in table.image], dtype=np.int64)
    mask = idx >= 0
    if not mask.any():
        raise ValueError(f"{path}: none of the {len(table)} frames has a pseudo label (another dataset?)")
    out_pose = np.zeros((len(table), pose.shape[1]), np.float32)
    out_shape = np.zeros((len(table), shape.shape[1]), np.float32)
    out_pose[mask], out_shape[mask] = pose[idx[mask]], shape[idx[mask]]
    return {"pseudo_pose": out_pose, "pseudo_shape": out_shape, "pseudo_mask": mask}


def propagate_labels(targets: dict[str, np.ndarray], seq: np.ndarray, frame: np.ndarray, cut: np.ndarray | None,
                     radius: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(targets with each unfitted frame's code taken from the nearest fitted frame of its shot at
    most `radius` frames away, source (N,): the row whose fit a frame now carries, its own row for
    fitted frames, -1 for frames still without one). targets as load_pseudo_labels returns them;
    seq, frame, cut (N,) as in FrameTable; still images (seq < 0) have no neighbours."""
    if radius < 0:
        raise ValueError(f"propagate_labels: radius must be >= 0, got {radius}")
    mask = np.asarray(targets["pseudo_mask"], bool)
    seq, frame = np.asarray(seq, np.int64), np.asarray(frame, np.int64)
    source = np.where(mask, np.arange(len(mask)), -1)
    if radius == 0 or mask.all():
        return dict(targets), source
    shot = shot_ids(seq, frame, cut)
    row = {(int(s), int(f)): i for i, (s, f) in enumerate(zip(seq, frame))}
    offsets = sorted(range(-radius, radius + 1), key=lambda d: (abs(d), d))[1:]  # -1, 1, -2, 2, ...
    for i in np.flatnonzero(~mask & (seq >= 0)):
        for d in offsets:
            j = row.get((int(seq[i]), int(frame[i]) + d))
            if j is not None and mask[j] and shot[j] == shot[i]:
                source[i] = j
                break
    lent = source >= 0
    out = {k: v.copy() for k, v in targets.items()}
    for k in ("pseudo_pose", "pseudo_shape"):
        if k in out:
            out[k][lent] = targets[k][source[lent]]
    out["pseudo_mask"] = lent
    return out, source
