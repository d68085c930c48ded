"""The mean-pose baseline: what "measurably better" is measured against.

    b = mean_pose_baseline(layer, train_table, val_table)          # its validation metrics
    preds = mean_pose_predictions(layer, train_table, table)       # joints, verts
    c = baseline_comparison(joints, preds["joints"], table)        # paired, with a bootstrap interval

One fixed hand for every frame, the mean training ground-truth finger pose (45 axis-angle numbers
averaged) and mean shape, posed by the hand layer and placed with its middle MCP at the frame's
ground-truth middle MCP. After Procrustes alignment only its articulation and shape matter, so
this is the best constant prediction of its kind; it uses training ground truth the
self-supervised model never sees, so it is a conservative bar. "init_*" numbers (the untrained
network, hands_mean pose) are logged too.
"""
from __future__ import annotations

import numpy as np
import torch

from s2hand.data.table import FrameTable
from s2hand.hand.layer import HandLayer
from s2hand.metrics.compare import paired_comparison, per_frame_pa_mpjpe

from .scores import validation_metrics
from .system import CENTRE_JOINT


def has_mean_pose_baseline(train: FrameTable, table: FrameTable) -> bool:
    """Whether the baseline can be built and scored: training poses and the split's 3D ground truth."""
    return train.pose is not None and table.joints3d is not None


@torch.no_grad()
def mean_pose_predictions(layer: HandLayer, train: FrameTable, table: FrameTable) -> dict[str, np.ndarray]:
    """The constant mean-pose, mean-shape hand (module docstring), no global rotation, with its
    middle MCP on each frame's ground-truth middle MCP. -> joints (N, 21, 3), verts (N, V, 3)."""
    if not has_mean_pose_baseline(train, table):
        raise ValueError("the mean-pose baseline needs the training poses and the split's 3D ground truth")
    dev = layer.hand_mean.device  # run where the layer lives: Module.to() would move the caller's layer
    pose45 = torch.as_tensor(train.pose[:, 3:].mean(0), dtype=torch.float32, device=dev)[None]  # (1, 45)
    beta = torch.as_tensor(train.shape.mean(0) if train.shape is not None else np.zeros(10), dtype=torch.float32,
                           device=dev)[None]
    with torch.no_grad():
        hand = layer(torch.zeros(1, 3, device=dev), pose45, beta, pca=False)
    joints, verts = hand.joints.cpu().numpy(), hand.verts.cpu().numpy()
    centre = joints[:, CENTRE_JOINT:CENTRE_JOINT + 1]  # (1, 1, 3)
    root = table.joints3d[:, CENTRE_JOINT:CENTRE_JOINT + 1]  # (N, 1, 3)
    return {"joints": joints - centre + root, "verts": verts - centre + root}


def mean_pose_baseline(layer: HandLayer, train: FrameTable, val: FrameTable) -> dict[str, float]:
    """Metrics of the constant mean-pose, mean-shape hand (module docstring) on `val`."""
    if not has_mean_pose_baseline(train, val):
        return {}
    return baseline_metrics(mean_pose_predictions(layer, train, val), val)


def baseline_metrics(preds: dict[str, np.ndarray], val: FrameTable) -> dict[str, float]:
    """validation_metrics of mean_pose_predictions' output, without the 2D ones (it has no projection)."""
    return {k: v for k, v in validation_metrics(preds, val).items() if not k.endswith("px")}


def baseline_comparison(joints: np.ndarray, baseline_joints: np.ndarray, table: FrameTable,
                        level: float = 0.95) -> dict[str, float | int | bool | None]:
    """Per-frame PA-MPJPE of joints (N, 21, 3) minus the baseline's on the same frames, with its
    `level` interval from a bootstrap over whole sequences (s2hand.metrics.compare), in cm:
    {"diff_cm", "lo_cm", "hi_cm", "better", "worse", "frames", "groups", "frames_better"}."""
    c = paired_comparison(per_frame_pa_mpjpe(joints, table.joints3d), per_frame_pa_mpjpe(baseline_joints, table.joints3d),
                          table.seq, level)
    cm = {f"{k}_cm": (None if c[k] is None else 100 * float(c[k])) for k in ("diff", "lo", "hi")}
    return {**cm, **{k: c[k] for k in ("better", "worse", "frames", "groups", "frames_better")}}
