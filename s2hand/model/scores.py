"""Validation of a training stage and the mean-pose baseline.

    preds = predict(system, dataset, batch_size=32, device="cpu")   # numpy, whole split
    m = validation_metrics(preds, dataset.table)    # pa_mpjpe_cm, pa_mpvpe_cm, auc_j, ... 2D errors
    b = mean_pose_baseline(layer, train_table, val_table)
    f = frame_values(preds, dataset.table)          # per-frame terms (seq, frame, pa_mpjpe_cm, ...)

3D metrics are s2hand.metrics.freihand's (Procrustes-aligned "pa_*" and unaligned), from the 3D
branch; 2D metrics are mean keypoint distances in input pixels against the ground-truth 2D
keypoints: "proj_mpjpe_px" for the projected 3D joints, "hg_mpjpe_px" for the 2D branch.

Baseline (what "measurably better" is measured against): one fixed hand for every frame, the
mean training ground-truth finger pose (45 axis-angle numbers averaged) and mean shape, posed by
the hand layer and placed with its middle MCP at the frame's ground-truth middle MCP. After
Procrustes alignment only its articulation and shape matter, so this is the best constant
prediction of its kind; it uses training ground truth the self-supervised model never sees, so it
is a conservative bar. "init_*" numbers (the untrained network, hands_mean pose) are logged too.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from s2hand.data.sampler import sequence_windows
from s2hand.data.table import FrameTable
from s2hand.hand.layer import HandLayer
from s2hand.losses.temporal import quaternion_loss
from s2hand.metrics.compare import paired_comparison, per_frame_accuracy, per_frame_pa_mpjpe
from s2hand.metrics.freihand import evaluate_freihand
from s2hand.metrics.video import frame_accelerations, sequence_acceleration, sequence_shape_sd, sequence_texture_sd
from s2hand.render.lighting import shade_faces

from .system import CENTRE_JOINT, S2HandSystem


@torch.no_grad()
def predict(system: S2HandSystem, dataset, batch_size: int, device: torch.device | str,
            branch: str = "all", num_workers: int = 0, video: bool = False) -> dict[str, np.ndarray]:
    """Run the network over a whole (unaugmented) dataset in eval mode -> numpy arrays:
    joints (N, 21, 3), verts (N, V, 3), j_pro (N, 21, 2) [3D branch], hg (N, 21, 2) [2D branch];
    with video also pose (N, 48), shape (N, 10) and lit (N, F, 3) (texture lit with the canonical
    face normals, as E_T&S sees it) for video_metrics."""
    modes = [(m, m.training) for m in system.modules()]  # restored module by module (frozen BatchNorm stays so)
    system.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    acc: dict[str, list] = {}
    try:
        for batch in loader:
            images = batch["image"].to(device)
            K = batch["K"].to(device)
            if system.autocast_dtype is not None and images.is_cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            out = system.run_net(images, branch, ddp=False)
            if out["pose_pca"] is not None:
                pred = system.decode(out, K)
                for k, v in (("joints", pred.joints), ("verts", pred.verts), ("j_pro", pred.j_pro)):
                    acc.setdefault(k, []).append(v.float().cpu().numpy())
                if video:
                    normals = system.layer.canonical_face_normals().to(out["face_colors"])
                    lit = shade_faces(normals, out["face_colors"].float(), out["light"].float())
                    for k, v in (("pose", pred.full_pose), ("shape", out["shape"]), ("lit", lit)):
                        acc.setdefault(k, []).append(v.float().cpu().numpy())
            if out["kp2d"] is not None:
                acc.setdefault("hg", []).append(out["kp2d"][-1].float().cpu().numpy())
    finally:
        for m, mode in modes:
            m.training = mode
    return {k: np.concatenate(v) for k, v in acc.items()}


def _mpjpe2d(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


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
        m["pa_mpjpe_cm"], m["auc_j"] = e["mpjpe_cm"], e["auc_j"]
        m["mpjpe_cm_unaligned"] = e["mpjpe_cm_unaligned"]
        if table.verts is not None:
            m["pa_mpvpe_cm"], m["auc_v"] = e["mpvpe_cm"], e["auc_v"]
            m["f5"], m["f15"] = e["f5"], e["f15"]
            m["mpvpe_cm_unaligned"] = e["mpvpe_cm_unaligned"]
    if gt2d is not None:
        if "j_pro" in preds:
            m["proj_mpjpe_px"] = _mpjpe2d(preds["j_pro"], gt2d)
        if "hg" in preds:
            m["hg_mpjpe_px"] = _mpjpe2d(preds["hg"], gt2d)
    return m


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
    method.md s5, s9): acc_mm_per_frame2 (ACC of the predicted 3D joints over time_runs: runs split at cuts and gaps),
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
        m["acc_mm_per_frame2"] = sequence_acceleration(preds["joints"][run_order], run)
    windows = sequence_windows(seq[order], frame[order], n, interval, None if table.cut is None else table.cut[order])
    if len(windows):
        poses = torch.as_tensor(preds["pose"][order][windows], dtype=torch.float64)  # (W, n, 48)
        m["quat_loss"] = float(quaternion_loss(poses))
    m["texture_sd"] = sequence_texture_sd(preds["lit"][order], ids)
    m["shape_sd"] = sequence_shape_sd(preds["shape"][order], ids)
    return m


FRAME_COLUMNS = ("seq", "frame", "pa_mpjpe_cm", "pa_mpvpe_cm", "auc_j", "auc_v", "acc_mm_per_frame2")


def frame_values(preds: dict[str, np.ndarray], table: FrameTable) -> dict[str, np.ndarray]:
    """Per-frame numbers of `predict`'s output on `table`, for paired comparisons between runs on
    the same split (s2hand.metrics.compare): "seq", "frame" (N,) identify the frame; the
    accuracy terms of per_frame_accuracy; "acc_mm_per_frame2": the joints' acceleration norm at
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
    out["acc_mm_per_frame2"] = acc
    return out
