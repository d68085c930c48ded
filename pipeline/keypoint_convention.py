"""`keypoint_convention` stage: where the detector puts the wrist and the fingertips on the hand model.

Fits the along-bone offsets of s2hand.hand.convention to the detections of `convention.frames` kept
train frames (the training stages' filters), jointly with a free hand per frame; no ground truth is
read for the fit. Writes outputs/convention/convention.json (read by the training stages when
`train.keypoint_convention: calibrated`) and reports/keypoint_convention.json. Where the split has
ground-truth 2D keypoints, the report also gives the offsets measured against them on the other
kept frames, for comparison only.

    python -m pipeline.keypoint_convention
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline.common import CONVENTION, DATASET, HAND_MODEL, KEYPOINTS, stage_params
from s2hand.data.table import load_meta, load_split
from s2hand.detect import load_keypoints
from s2hand.evaluate.keypoint_fit import calibrate_convention
from s2hand.hand.convention import CALIBRATED, measured_offsets
from s2hand.hand.keypoints import OPENPOSE_NAMES
from s2hand.hand.layer import HandLayer
from s2hand.io import atomic_dir, write_json
from s2hand.model.frames import training_rows

OUT = CONVENTION.parent
REPORT = Path("reports/keypoint_convention.json")
log = logging.getLogger("keypoint_convention")


def main() -> None:
    p = stage_params()
    c = p.convention
    table = load_split(DATASET, "train")
    kp = load_keypoints(KEYPOINTS / "train.json").reorder(table.image)
    rows = training_rows(table, kp, p.train)
    if len(rows) == 0:
        raise SystemExit("keypoint_convention: no kept train frames to calibrate on (train filters too strict?)")
    rng = np.random.default_rng([p.seed, 7])
    fit_rows = np.sort(rng.choice(rows, min(c.frames, len(rows)), replace=False))
    size = float(load_meta(DATASET)["image_size"])
    layer = HandLayer.from_file(HAND_MODEL, p.hand.num_pca_comps, p.hand.flat_hand_mean)
    t = time.perf_counter()
    offsets = calibrate_convention(layer, kp.peaks[fit_rows], kp.conf[fit_rows], table.K[fit_rows], p.weights,
                                   size, iters=c.iters)
    seconds = time.perf_counter() - t
    named = {OPENPOSE_NAMES[k]: round(float(offsets[k]), 4) for k in CALIBRATED}
    log.info("offsets fitted to %d frames in %.0f s: %s", len(fit_rows), seconds, named)
    report = {"frames": int(len(fit_rows)), "kept_train_frames": int(len(rows)), "iters": c.iters,
              "seconds": round(seconds, 1), "offsets": named}
    rest = np.setdiff1d(rows, fit_rows)
    if table.joints2d is not None and len(rest):
        gt = measured_offsets(kp.peaks[rest], kp.conf[rest], table.joints2d[rest])
        report["measured_with_ground_truth"] = {OPENPOSE_NAMES[k]: round(float(gt[k]), 4) for k in CALIBRATED}
        report["measured_frames"] = int(len(rest))
        log.info("the same offsets measured against the ground truth (not used): %s",
                 report["measured_with_ground_truth"])
    with atomic_dir(OUT) as tmp:
        write_json(tmp / CONVENTION.name, {"offsets": offsets.tolist(), "keypoints": list(OPENPOSE_NAMES),
                                             "frames": int(len(fit_rows))})
    write_json(REPORT, report)


if __name__ == "__main__":
    main()
