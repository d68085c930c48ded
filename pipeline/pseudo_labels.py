"""`pseudo_labels` stage: the hand fitted to each kept train frame's detections (no network).

Fits every train frame that the training stages keep (their filters) with
s2hand.evaluate.keypoint_fit.fit_codes (the keypoint energy training uses, the keypoint convention it uses,
`train.pseudo_labels.iters` Adam steps per frame) and writes outputs/pseudo_labels/train.npz,
which the stages that train the 3D branch distil with weight `train.pseudo_labels.weight`
(s2hand/losses/pseudo.py). Only the detections are read for the fit. reports/pseudo_labels.json
says how good the labels are: PA-MPJPE of the fitted hands against the ground truth on those
frames, beside the mean pose's, with the 95 % sequence-bootstrap interval of the difference, and
whether they open and close as the hands do (finger straightness, s2hand/metrics/articulation.py)
(evaluation only; the ground truth never reaches the labels). With weight 0 (the paper) nothing
is fitted and the file holds no frame.

    python -m pipeline.pseudo_labels
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.common import CONVENTION, DATASET, HAND_MODEL, KEYPOINTS, PSEUDO_LABELS, stage_params
from s2hand.data.table import FrameTable, load_meta, load_split
from s2hand.detect import load_keypoints
from s2hand.evaluate.keypoint_fit import decode, fit_codes
from s2hand.hand.convention import load_offsets
from s2hand.hand.layer import HandLayer
from s2hand.io import atomic_dir, write_json
from s2hand.metrics.articulation import articulation_agreement, straightness
from s2hand.metrics.compare import per_frame_pa_mpjpe
from s2hand.model.baseline import baseline_comparison, has_mean_pose_baseline, mean_pose_predictions
from s2hand.model.frames import training_rows
from s2hand.train.pseudo_labels import propagate_labels, save_pseudo_labels

REPORT = Path("reports/pseudo_labels.json")
log = logging.getLogger("pseudo_labels")


def main() -> None:
    p = stage_params()
    pl = p.train.pseudo_labels
    table = load_split(DATASET, "train")
    layer = HandLayer.from_file(HAND_MODEL, p.hand.num_pca_comps, p.hand.flat_hand_mean)
    if pl.weight == 0:
        with atomic_dir(PSEUDO_LABELS.parent) as tmp:
            empty = {"pose": np.zeros((0, p.hand.num_pca_comps)), "shape": np.zeros((0, 10))}
            save_pseudo_labels(tmp / PSEUDO_LABELS.name, np.zeros(0, str), empty)
        write_json(REPORT, {"off": True, "reason": "train.pseudo_labels.weight is 0 (the paper)"})
        return
    kp = load_keypoints(KEYPOINTS / "train.json").reorder(table.image)
    rows = training_rows(table, kp, p.train)
    if len(rows) == 0:
        raise SystemExit("pseudo_labels: no kept train frames to fit (train filters too strict?)")
    offsets = load_offsets(CONVENTION) if p.train.keypoint_convention == "calibrated" else None
    size = float(load_meta(DATASET)["image_size"])
    t = time.perf_counter()
    codes = fit_codes(layer, kp.peaks[rows], kp.conf[rows], table.K[rows], p.weights, size, iters=pl.iters, lr=pl.lr,
                      offsets=offsets)
    seconds = time.perf_counter() - t
    log.info("fitted %d frames in %.0f s", len(rows), seconds)
    report = {"frames": int(len(rows)), "train_frames": len(table), "iters": pl.iters,
              "num_pca_comps": p.hand.num_pca_comps, "keypoint_convention": p.train.keypoint_convention,
              "seconds": round(seconds, 1)}
    kept = table.subset(rows)
    if has_mean_pose_baseline(table, kept):  # how good the labels are (ground truth for the report only)
        report.update(label_quality(layer, table, kept, codes))
        log.info("labels: PA-MPJPE %.3f cm on those frames, mean pose %.3f", report["fit_pa_mpjpe_cm"],
                 report["mean_pose_pa_mpjpe_cm"])
        if pl.propagate > 0:  # the frames that training lends a neighbour's fit (s2hand.train.pseudo_labels)
            fitted = np.zeros(len(table), bool)
            fitted[rows] = True
            where = np.full(len(table), -1)
            where[rows] = np.arange(len(rows))
            _, source = propagate_labels({"pseudo_mask": fitted}, table.seq, table.frame, table.cut, pl.propagate)
            lent = np.flatnonzero((source >= 0) & ~fitted)
            report["propagated"] = {"frames": int(len(lent)), "radius": pl.propagate}
            if len(lent) >= 8:
                report["propagated"].update(label_quality(layer, table, table.subset(lent),
                                                          {k: v[where[source[lent]]] for k, v in codes.items()}))
    with atomic_dir(PSEUDO_LABELS.parent) as tmp:
        save_pseudo_labels(tmp / PSEUDO_LABELS.name, table.image[rows], codes)
    write_json(REPORT, report)


def label_quality(layer: HandLayer, train: FrameTable, frames: FrameTable, codes: dict[str, np.ndarray]) -> dict:
    """How good the fitted codes (one per row of `frames`) are as labels of those frames: PA-MPJPE
    against the ground truth beside the mean pose's, the 95 % sequence-bootstrap interval of the
    difference, and whether they open and close as the hands do (the ceiling of what the network
    can distil)."""
    with torch.no_grad():
        joints = decode(layer, {k: torch.as_tensor(v) for k, v in codes.items()},
                        torch.as_tensor(frames.K, dtype=torch.float32))[0].numpy()
    base = mean_pose_predictions(layer, train, frames)["joints"]
    return {"fit_pa_mpjpe_cm": round(100 * float(per_frame_pa_mpjpe(joints, frames.joints3d).mean()), 4),
            "mean_pose_pa_mpjpe_cm": round(100 * float(per_frame_pa_mpjpe(base, frames.joints3d).mean()), 4),
            "fit_vs_mean_pose": baseline_comparison(joints, base, frames),
            "articulation": articulation_agreement(straightness(joints), straightness(frames.joints3d), frames.seq)}


if __name__ == "__main__":
    main()
