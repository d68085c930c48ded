"""`detect` stage: 2D keypoints with confidences for every split of the prepared dataset.

Writes outputs/keypoints/<split>.json in the authors' layout ([peaks N x 21 x 2, values
N x 21 x 1, names], OpenPose order, confidence 0 where no hand was found), and the
detection-quality report against ground truth: reports/detection/quality.json and .png
(detection rate, 2D MPJPE in pixels, fraction of frames within a distance), logged to MLflow;
reports/detection/metrics.json holds the headline numbers (DVC metrics).

    python -m pipeline.detect
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.common import DATASET, KEYPOINTS, mlflow_run, stage_params
from s2hand.config import Params
from s2hand.data.table import load_meta, load_split
from s2hand.detect import detect, save_keypoints
from s2hand.detect.quality import detection_quality, plot_quality
from s2hand.io import atomic_dir, write_json
from s2hand.cpu import cpu_share, queue_jobs

REPORT = Path("reports/detection")
log = logging.getLogger("detect")


def backend_options(p: Params) -> dict:
    d = p.detect
    if d.backend == "mediapipe":
        return {**d.mediapipe.model_dump(), "progress": True}
    if d.backend == "openpose":
        return d.openpose.model_dump()
    if d.backend == "simulated":
        return {**d.simulated.model_dump(), "seed": p.seed}
    return {}


def headline(per_split: dict[str, dict], fps: float, unreadable: int) -> dict:
    """The few numbers `dvc metrics show` lists; quality.json has the full report."""
    out: dict = {"frames_per_second": round(fps, 2), "unreadable_images": unreadable}
    for split, q in per_split.items():
        out[split] = {"detection_rate": q["detection_rate"], "mpjpe_px": q["mpjpe_px"], "curve_auc": q["curve"]["auc"]}
    return out


def main() -> None:
    p = stage_params()
    meta = load_meta(DATASET)
    options = backend_options(p)
    if "workers" in options:  # the detector's processes: a share of the cores under a parallel dvc queue
        options["workers"] = cpu_share(options["workers"], queue_jobs())
    per_split, failures, n_total, seconds = {}, [], 0, 0.0
    with atomic_dir(KEYPOINTS) as tmp:
        for i, split in enumerate(meta["splits"]):
            table = load_split(DATASET, split)
            opts = {**options, "seed": p.seed * 1000 + i} if p.detect.backend == "simulated" else options
            t0 = time.perf_counter()
            kp = detect(table, DATASET, p.detect.backend, **opts)
            dt = time.perf_counter() - t0
            seconds += dt
            n_total += len(table)
            save_keypoints(tmp / f"{split}.json", kp.peaks, kp.conf, kp.names)
            for f in kp.failures:
                log.warning("unreadable image %s: %s", f.path, f.reason)
            failures += [{"split": split, "path": str(f.path), "reason": f.reason} for f in kp.failures]
            if table.joints2d is not None:
                per_split[split] = detection_quality(kp, table.joints2d, table.visible)
            log.info("%s: %d frames in %.1f s (%.1f frames/s)", split, len(table), dt, len(table) / max(dt, 1e-9))

    fps = n_total / max(seconds, 1e-9)
    report = {"backend": p.detect.backend, "options": options, "frames": n_total, "seconds": round(seconds, 2),
              "frames_per_second": round(fps, 2), "unreadable_images": len(failures), "failures": failures,
              "splits": per_split}
    REPORT.mkdir(parents=True, exist_ok=True)
    write_json(REPORT / "quality.json", report)
    write_json(REPORT / "metrics.json", headline(per_split, fps, len(failures)))
    main_split = "val" if "val" in per_split else next(iter(per_split), None)
    if main_split:
        plot_quality(per_split[main_split], REPORT / "quality.png",
                     title=f"{p.detect.backend} on {p.data.name}/{main_split}")
    with mlflow_run("detect", p) as _:
        import mlflow

        mlflow.log_metrics({"frames_per_second": fps, "unreadable_images": len(failures)})
        for split, q in per_split.items():
            mlflow.log_metrics({f"{split}/{k}": v for k, v in q.items() if isinstance(v, (int, float)) and v is not None})
        mlflow.log_artifacts(str(REPORT), artifact_path="detection")
    if main_split:
        q = per_split[main_split]
        log.info("%s: detection rate %.3f, 2D MPJPE %.2f px", main_split, q["detection_rate"], q["mpjpe_px"] or float("nan"))


if __name__ == "__main__":
    main()
