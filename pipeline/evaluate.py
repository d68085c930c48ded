"""Stage evaluate: S2HAND (finetune) and S2HAND(V) (finetune_video) and the mean-pose baseline on
the test split; the report, metrics and plots (s2hand.evaluate.stage), and the learning curve of
the 3D-training stages beside the references in reports/learning_curves/ (s2hand/curves.py), all
logged to MLflow.

    python -m pipeline.evaluate          # or: dvc repro evaluate
    dvc metrics show ; dvc plots show    # reports/metrics.json ; reports/evaluate/*.csv

The MLflow run (stage tag "evaluate") gets every number of reports/metrics.json as a metric
("s2hand/pa_mpjpe_cm", ...), the report files as artifacts, and tags linking it to the evaluated
training runs: evaluated_run.finetune / evaluated_run.finetune_video = the newest run of that
stage with the same DVC experiment name ("not found" when there is none; never an error).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.common import CONVENTION, DATASET, HAND_MODEL, KEYPOINTS, mlflow_run, stage_params
from pipeline.training import model_path
from s2hand.curves import draw_pipeline_curves
from s2hand.evaluate.stage import EvaluatePaths, run_evaluation
from s2hand.hand.convention import load_offsets

REPORTS = Path("reports")
LEARNING_CURVE = REPORTS / "evaluate" / "learning_curve.png"  # s2hand/curves.py
EVALUATED = {"s2hand": "finetune", "s2hand_v": "finetune_video"}  # model name -> training stage
log = logging.getLogger("pipeline.evaluate")


def training_run_ids(experiment: str, stages: list[str]) -> dict[str, str]:
    """Newest MLflow run id of each stage with this DVC experiment's name (tag dvc_exp), or a
    'not found: ...' note. Never raises: a missing store or run only shows in the tag."""
    found: dict[str, str] = {}
    try:
        import mlflow

        exp = mlflow.get_experiment_by_name(experiment)
        dvc_exp = os.environ.get("DVC_EXP_NAME", "")
        for stage in stages:
            runs = [] if exp is None else mlflow.search_runs(
                [exp.experiment_id], filter_string=f"tags.stage = '{stage}' and tags.dvc_exp = '{dvc_exp}'",
                order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
            found[stage] = runs[0].info.run_id if runs else f"not found (no run tagged stage={stage}, dvc_exp={dvc_exp!r})"
    except Exception as e:  # the link is information, not a reason to fail the stage
        for stage in stages:
            found.setdefault(stage, f"not found ({type(e).__name__}: {e})"[:250])
    return found


def _flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        elif v is not None:
            out[f"{prefix}{k}"] = float(v)
    return out


def main() -> dict:
    params = stage_params()
    paths = EvaluatePaths(dataset=DATASET, keypoints=KEYPOINTS, hand_model=HAND_MODEL,
                          checkpoints={name: model_path(stage) for name, stage in EVALUATED.items()},
                          reports=REPORTS)
    with mlflow_run("evaluate", params) as _:
        import mlflow

        ids = training_run_ids(params.mlflow.experiment, list(EVALUATED.values()))
        mlflow.set_tags({f"evaluated_run.{stage}": run_id for stage, run_id in ids.items()})
        offsets = load_offsets(CONVENTION) if params.train.keypoint_convention == "calibrated" else None
        summary = run_evaluation(params.evaluate, params.video, paths, params.weights, params.train, offsets)
        mlflow.log_metrics(_flat(summary["metrics"]))
        curve = draw_pipeline_curves(REPORTS / "train", LEARNING_CURVE, f"this run ({params.detect.backend} keypoints)")
        mlflow.log_artifact(str(curve), artifact_path="reports/evaluate")
        mlflow.log_metric("seconds", summary["setup"]["seconds"])
        for f in summary["files"]:
            mlflow.log_artifact(str(f), artifact_path="reports" if f.parent == REPORTS else "reports/evaluate")
    m = summary["metrics"]
    for name in EVALUATED:
        r = m[name]
        log.info("%s: MPJPE %.3f cm, MPVPE %.3f cm, AUC_J %.3f, ACC %.0f mm/s^2 (%.2f mm/frame^2)", name,
                 r["pa_mpjpe_cm"], r["pa_mpvpe_cm"] or float("nan"), r["auc_j"], r.get("acc_mm_s2") or float("nan"),
                 r.get("acc_mm_frame2") or float("nan"))
    log.info("mean-pose baseline: MPJPE %.3f cm; evaluate took %.1f s; linked runs %s",
             m["mean_pose"]["pa_mpjpe_cm"], summary["setup"]["seconds"], ids)
    return summary


if __name__ == "__main__":
    main()
