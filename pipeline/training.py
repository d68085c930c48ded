"""What the three training stages share (pretrain_2d, pretrain_3d, finetune): paths, MLflow.

    python -m pipeline.pretrain_2d ; python -m pipeline.pretrain_3d ; python -m pipeline.finetune
    torchrun --standalone --nproc_per_node=N -m pipeline.finetune       # DDP on N GPUs (or CPU procs)

Each stage reads outputs/dataset, outputs/keypoints, outputs/hand_model (and finetune the two
pretrained models), trains with s2hand.train.train_stage and writes
    outputs/checkpoints/<stage>/model.pt    the trained network (DVC out)
    reports/train/<stage>.json              final validation metrics, mean-pose baseline, timings
    reports/train/<stage>.png               validation frames: input | render | keypoints
    reports/train/<stage>_frames.csv        per-frame values of the final validation (3D stages; the
                                            ablation report's paired intervals)
The in-progress checkpoint lives in outputs/.resume/<stage>/ (not a DVC out, so `dvc repro`
does not delete it): kill a stage, rerun `dvc repro`, and it continues from there; the MLflow run
is continued too (its id is kept beside the checkpoint).
Everything goes to MLflow: all params, every loss term per step (train/<term>, raw, and
train/weighted_<term>), validation per epoch (val/pa_mpjpe_cm, ...), baseline/*, the pictures
and the model file.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.common import CONVENTION, DATASET, HAND_MODEL, KEYPOINTS, PSEUDO_LABELS, mlflow_run, stage_params
from s2hand.io import atomic_file, write_json

CHECKPOINTS = Path("outputs/checkpoints")
RESUME = Path("outputs/.resume")
REPORTS = Path("reports/train")
WILD_STRETCHES = Path("outputs/yt3d_filter/stretches.json")
log = logging.getLogger("pipeline.training")


def model_path(stage: str) -> Path:
    return CHECKPOINTS / stage / "model.pt"


def frames_path(stage: str) -> Path:
    """reports/train/<stage>_frames.csv: one row per validation frame (s2hand.model.scores.frame_values)."""
    return REPORTS / f"{stage}_frames.csv"


def write_frame_values(path: Path, values: dict) -> None:
    import pandas as pd

    with atomic_file(path) as f:
        pd.DataFrame(values).to_csv(f, index=False, float_format="%.6g")


class MlflowLogger:
    def __init__(self) -> None:
        import mlflow

        self.mlflow = mlflow

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if metrics:
            self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path, artifact_path=None) -> None:
        self.mlflow.log_artifact(str(path), artifact_path=artifact_path)


def run_stage(stage: str) -> dict:
    """Train `stage` with params.yaml; log to MLflow (rank 0); write the model and the report."""
    from s2hand.train import StagePaths, distributed_env, train_stage
    from s2hand.model.scores import FRAME_COLUMNS
    from s2hand.model.system import STAGE_BRANCH

    params = stage_params()
    paths = StagePaths(dataset=DATASET, keypoints=KEYPOINTS, hand_model=HAND_MODEL,
                       model_out=model_path(stage), resume_dir=RESUME / stage, pictures_dir=REPORTS,
                       convention=CONVENTION, pseudo_labels=PSEUDO_LABELS)
    init_from = ({"pretrain_2d": model_path("pretrain_2d"), "pretrain_3d": model_path("pretrain_3d")}
                 if stage == "finetune" else {"finetune": model_path("finetune")} if stage == "finetune_video"
                 else None)
    if stage == "finetune_video":
        paths.wild_stretches = WILD_STRETCHES
    rank = distributed_env()[0]
    if rank != 0:
        return train_stage(params, stage, paths, init_from=init_from)
    run_id_file = paths.resume_dir / "mlflow_run_id"
    kwargs = {}
    if run_id_file.is_file() and (paths.resume_dir / "last.pt").is_file():
        kwargs["run_id"] = run_id_file.read_text().strip()
        log.info("%s: continuing MLflow run %s", stage, kwargs["run_id"])
    with mlflow_run(stage, params, **kwargs) as run:
        paths.resume_dir.mkdir(parents=True, exist_ok=True)
        run_id_file.write_text(run.info.run_id + "\n")
        summary = train_stage(params, stage, paths, init_from=init_from, logger=MlflowLogger())
    report = {k: v for k, v in summary.items() if k not in ("history", "frames")}
    if STAGE_BRANCH[stage] != "2d":  # per-frame values of the final validation: the ablations' paired intervals
        write_frame_values(frames_path(stage), summary.get("frames") or {c: [] for c in FRAME_COLUMNS})
    # the validation curve (learning-curve figure of the evaluate stage): images seen in this stage
    report["curve"] = [{"images": h.get("images", 0), "step": h["step"], "pa_mpjpe_cm": h["pa_mpjpe_cm"]}
                       for h in summary.get("history", []) if "pa_mpjpe_cm" in h]
    write_json(REPORTS / f"{stage}.json", report)
    val, base = summary["val"], summary["baseline_mean_pose"]
    if "pa_mpjpe_cm" in val:
        log.info("%s: val PA-MPJPE %.3f cm (mean-pose baseline %.3f cm), PA-MPVPE %.3f cm (baseline %.3f cm)",
                 stage, val["pa_mpjpe_cm"], base.get("pa_mpjpe_cm", float("nan")),
                 val.get("pa_mpvpe_cm", float("nan")), base.get("pa_mpvpe_cm", float("nan")))
    vs = summary.get("vs_baseline") or {}
    if vs and vs.get("lo_cm") is None:
        log.info("%s: val PA-MPJPE minus the mean-pose baseline's: %+.3f cm over %d sequences, too few for an "
                 "interval", stage, vs["diff_cm"], vs["groups"])
    elif vs:
        log.info("%s: val PA-MPJPE minus the mean-pose baseline's: %+.3f cm (95%% interval %+.3f to %+.3f over %d "
                 "sequences): %s", stage, vs["diff_cm"], vs["lo_cm"], vs["hi_cm"], vs["groups"],
                 "better" if vs["better"] else "worse" if vs["worse"] else "no measurable difference")
    if "comparison" in summary:
        c = summary["comparison"]
        log.info("%s: val S2HAND %s | S2HAND(V) %s", stage, c["s2hand"], c["s2hand_v"])
    log.info("%s: %d steps in %.1f s (%.1f images/s)", stage, summary["steps"], summary["train_seconds"],
             summary["images_per_second"] or 0.0)
    return summary
