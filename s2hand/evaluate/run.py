"""Evaluate trained models and the mean-pose baseline on one split of a prepared dataset.

    split = load_eval_split("outputs/dataset", "test", "outputs/keypoints")
    system, _ = load_system("outputs/checkpoints/finetune/model.pt", hand_model)
    res = evaluate_model(system, split, batch_size=32, n=3, interval=3)
    res.metrics["pa_mpjpe_cm"], res.curves["pck_j"], res.preds["joints"]
    base = evaluate_mean_pose(layer, train_table, split)

Metrics of a model (method.md s9; every key is documented in docs/evaluation.md; validation during
training, s2hand.model.scores, uses the same names):
- 3D, s2hand.metrics.freihand (the FreiHAND online evaluation): pa_mpjpe_cm, auc_j, pa_mpvpe_cm,
  auc_v, f5, f15 after per-frame Procrustes alignment, and mpjpe_cm_unaligned, auc_j_unaligned, ...;
- 2D, in pixels of the dataset's images: proj_mpjpe_px (3D joints projected with the frame's K) and
  hg_mpjpe_px (the 2D branch), against the ground-truth 2D keypoints, all 21 joints;
- video, frames in time order, sequences split into runs of consecutive frames (a cut or a
  missing frame ends a run; ACC needs runs of 3): acc_mm_s2 / acc_err_mm_s2 (ACC and ACC-ERR in
  mm/s^2 from the dataset's fps) and acc_mm_frame2 / acc_err_mm_frame2 (the same per frame^2, the
  unit the paper's Table 5 magnitudes fit), all of wrist-relative joints as VIBE subtracts the root
  (s2hand.metrics.video), and acc_cam_mm_frame2 (ACC of the camera-space joints), quat_loss (E_quat averaged over every window of n
  frames `interval` apart), texture_sd and shape_sd (per sequence, then averaged).
Curves: the PCK of joints and vertices (aligned, thresholds in cm) and the fraction of frames
whose largest 2D joint error is within a distance (thresholds in px).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from s2hand.config import LossWeights
from s2hand.data.table import FrameTable, load_meta, load_split
from s2hand.detect.keypoint_file import Keypoints, load_keypoints
from s2hand.hand.layer import HandLayer
from s2hand.metrics.freihand import evaluate_freihand
from s2hand.metrics.pose2d import frames_within_distance, mpjpe_2d
from s2hand.metrics.video import sequence_acceleration, sequence_acceleration_error
from s2hand.model.baseline import mean_pose_predictions
from s2hand.model.frames import HandFrames
from s2hand.model.predict import predict
from s2hand.model.scores import time_runs, video_metrics
from s2hand.model.system import S2HandSystem

from .keypoint_fit import fit_to_keypoints

PX_CURVE_FRACTION = 0.5  # 2D curves run from 0 to this fraction of the image side
PX_CURVE_POINTS = 51


@dataclasses.dataclass
class EvalSplit:
    """One split ready for evaluation: ground truth, images, detections, frame rate."""

    name: str
    root: Path
    table: FrameTable
    image_size: int  # px side of the dataset's (square) images
    fps: float | None
    keypoints: Keypoints | None = None  # the detector's, for the 2D comparison

    @property
    def px_thresholds(self) -> np.ndarray:  # (PX_CURVE_POINTS,) px
        return np.linspace(0.0, PX_CURVE_FRACTION * self.image_size, PX_CURVE_POINTS)


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float | None]
    curves: dict[str, list[float]]
    preds: dict[str, np.ndarray]


def load_eval_split(root: str | Path, split: str, keypoints_dir: str | Path | None = None) -> EvalSplit:
    """Read `split` of a prepared dataset; fails loudly when it lacks 3D ground truth."""
    root = Path(root)
    table = load_split(root, split)
    if len(table) == 0:
        raise ValueError(f"{root}/{split}.npz: the split has no frames")
    missing = [f for f in ("joints3d", "verts", "joints2d") if getattr(table, f) is None]
    if missing:
        raise ValueError(f"{root}/{split}.npz: no {', '.join(missing)}: evaluation needs 3D and 2D ground truth "
                         "(FreiHAND's test ground truth is only on its online server: submit pred.json there)")
    meta = load_meta(root)
    fps = meta.get("fps")
    kp = None
    if keypoints_dir is not None and (Path(keypoints_dir) / f"{split}.json").is_file():
        kp = load_keypoints(Path(keypoints_dir) / f"{split}.json").reorder(table.image)
    size = HandFrames(table, root, None, 32).read(0).shape[1]
    return EvalSplit(split, root, table, int(size), None if fps is None else float(fps), kp)


def acceleration_metrics(joints: np.ndarray, gt: np.ndarray, table: FrameTable, fps: float | None
                         ) -> dict[str, float]:
    """ACC and ACC-ERR of joints (N, 21, 3) against gt (N, 21, 3), metres, over the runs of `table`
    (time_runs), wrist-relative: per frame^2 always, per s^2 when fps is known; acc_cam_mm_frame2 of the
    camera-space joints. {} when no run has 3 frames."""
    order, run = time_runs(table)
    if len(order) == 0 or np.bincount(run).max() < 3:
        return {}
    j, g = joints[order], gt[order]
    m = {"acc_mm_frame2": sequence_acceleration(j, run), "acc_err_mm_frame2": sequence_acceleration_error(j, g, run),
         "acc_cam_mm_frame2": sequence_acceleration(j, run, root=None)}  # placement jitter included
    if fps:
        m["acc_mm_s2"] = sequence_acceleration(j, run, fps)
        m["acc_err_mm_s2"] = sequence_acceleration_error(j, g, run, fps)
    return m


def metrics_3d(preds: dict[str, np.ndarray], table: FrameTable) -> tuple[dict[str, float | None], dict]:
    """The twelve FreiHAND numbers (NaN -> None) and the curves of predictions against the split."""
    e = evaluate_freihand(table.joints3d, table.verts, preds["joints"], preds["verts"], with_curves=True)
    curves = e.pop("curves")
    return {k: (None if np.isnan(v) else float(v)) for k, v in e.items()}, curves


def evaluate_model(system: S2HandSystem, split: EvalSplit, batch_size: int, n: int, interval: int,
                   device: torch.device | str = "cpu") -> EvalResult:
    """All metrics and curves of one trained model on `split` (module docstring)."""
    input_size = system.input_size
    ds = HandFrames(split.table, split.root, None, input_size)
    preds = predict(system, ds, batch_size, device, branch="all", video=True)
    to_image = split.image_size / input_size  # input px -> image px (plain resize, s2hand.model.frames)
    preds["j_pro_px"] = preds["j_pro"] * to_image
    metrics, c3 = metrics_3d(preds, split.table)
    gt2d = split.table.joints2d
    metrics["proj_mpjpe_px"] = mpjpe_2d(preds["j_pro_px"], gt2d)
    if split.keypoints is not None:  # on the keypoints the detector found, as the detector's own error is
        found = split.keypoints.conf > 0
        metrics["proj_mpjpe_px_on_detected"] = None if not found.any() else mpjpe_2d(preds["j_pro_px"], gt2d, found)
    curves = {"pck_j": c3["pck_j"], "pck_v": c3["pck_v"], "thresholds_cm": c3["thresholds_cm"],
              "within_px": frames_within_distance(preds["j_pro_px"], gt2d, split.px_thresholds).tolist()}
    if "hg" in preds:
        preds["hg_px"] = preds["hg"] * to_image
        metrics["hg_mpjpe_px"] = mpjpe_2d(preds["hg_px"], gt2d)
        curves["within_px_branch2d"] = frames_within_distance(preds["hg_px"], gt2d, split.px_thresholds).tolist()
    metrics.update(acceleration_metrics(preds["joints"], split.table.joints3d, split.table, split.fps))
    vm = video_metrics(preds, split.table, n, interval)
    metrics.update({k: float(vm[k]) for k in ("quat_loss", "texture_sd", "shape_sd") if k in vm})
    return EvalResult(metrics, curves, preds)


def evaluate_mean_pose(layer: HandLayer, train: FrameTable, split: EvalSplit) -> EvalResult:
    """3D metrics, curves and ACC / ACC-ERR of the mean-pose baseline on `split`."""
    preds = mean_pose_predictions(layer, train, split.table)
    metrics, c3 = metrics_3d(preds, split.table)
    metrics.update(acceleration_metrics(preds["joints"], split.table.joints3d, split.table, split.fps))
    return EvalResult(metrics, {"pck_j": c3["pck_j"], "pck_v": c3["pck_v"], "thresholds_cm": c3["thresholds_cm"]},
                      preds)


def evaluate_keypoint_fit(layer: HandLayer, train: FrameTable, split: EvalSplit, weights: LossWeights,
                          iters: int, kept: np.ndarray | None = None, offsets: np.ndarray | None = None
                          ) -> dict[str, dict[str, float | None]]:
    """3D metrics of per-frame fits to 2D keypoints (s2hand.evaluate.keypoint_fit): "ground_truth_2d"
    on every frame (visible keypoints, confidence 1) and, when the split has detections,
    "detections" on the frames with any (fitted in the detector's convention `offsets`, None: the
    model's keypoints), split into "detections_kept" and "detections_dropped" by `kept` (the rows
    training's filters would keep, s2hand.model.frames.training_rows), with the mean-pose baseline's
    MPJPE / MPVPE on those same frames beside each (mean_pose_pa_mpjpe_cm, mean_pose_pa_mpvpe_cm). Each
    has frames and proj_mpjpe_px (the fitted model's keypoints against the ground truth) and, for the
    detections, detector_mpjpe_px (the detections' own error on those frames)."""
    t = split.table
    jobs = [("ground_truth_2d", np.arange(len(t)), t.joints2d, t.visible.astype(np.float32), None)]
    if split.keypoints is not None:
        rows = np.flatnonzero(split.keypoints.conf.max(axis=1) > 0)
        if len(rows):
            jobs.append(("detections", rows, split.keypoints.peaks[rows], split.keypoints.conf[rows], offsets))
    out: dict[str, dict[str, float | None]] = {}
    for name, rows, kp, conf, off in jobs:
        sub = t.subset(rows)
        fit = fit_to_keypoints(layer, kp, conf, sub.K, weights, split.image_size, iters=iters, offsets=off)
        parts = {name: np.arange(len(rows))}
        if name == "detections" and kept is not None:
            is_kept = np.isin(rows, kept)
            parts.update(detections_kept=np.flatnonzero(is_kept), detections_dropped=np.flatnonzero(~is_kept))
        for part, idx in parts.items():
            if not len(idx):
                continue
            part_table = sub.subset(idx)
            m, _ = metrics_3d({"joints": fit.joints[idx], "verts": fit.verts[idx]}, part_table)
            m["proj_mpjpe_px"] = mpjpe_2d(fit.j_pro[idx], part_table.joints2d)
            m["frames"] = float(len(idx))
            if name == "detections":
                m["detector_mpjpe_px"] = mpjpe_2d(kp[idx], part_table.joints2d, conf[idx] > 0)
                base, _ = metrics_3d(mean_pose_predictions(layer, train, part_table), part_table)
                m["mean_pose_pa_mpjpe_cm"], m["mean_pose_pa_mpvpe_cm"] = base["pa_mpjpe_cm"], base["pa_mpvpe_cm"]
            out[part] = m
    return out


def evaluate_detector(split: EvalSplit) -> EvalResult | None:
    """2D error of the detected keypoints (those found, conf > 0) against ground truth, image px."""
    kp = split.keypoints
    if kp is None:
        return None
    found = kp.conf > 0  # (N, 21)
    metrics = {"mpjpe_px": mpjpe_2d(kp.peaks, split.table.joints2d, found),
               "detected_fraction": float(found.mean())}
    metrics = {k: (None if np.isnan(v) else v) for k, v in metrics.items()}
    curve = frames_within_distance(kp.peaks, split.table.joints2d, split.px_thresholds, found)
    return EvalResult(metrics, {"within_px": [None if np.isnan(x) else float(x) for x in curve]}, {})


def ground_truth_smoothness(split: EvalSplit) -> dict[str, float]:
    """ACC of the ground-truth joints themselves (the motion's own acceleration, for scale)."""
    gt = split.table.joints3d
    m = acceleration_metrics(gt, gt, split.table, split.fps)
    return {k: v for k, v in m.items() if not k.startswith("acc_err")}


def describe_split(split: EvalSplit) -> dict:
    """Facts about the split a report states: name, frames, sequences, image size, fps."""
    seq = np.asarray(split.table.seq)
    return {"split": split.name, "frames": len(split.table), "sequences": int(len(np.unique(seq[seq >= 0]))),
            "image_size": split.image_size, "fps": split.fps,
            "dataset": json.loads((split.root / "meta.json").read_text()).get("name", "")}
