"""Evaluation of trained models, reports and predictions on new images (method.md s9, s10).

    from s2hand.evaluate import run_evaluation, EvaluatePaths      # the evaluate stage (stage.py)
    s2hand predict VIDEO_OR_FOLDER --out DIR                        # predict.py

Files: run.py (metrics of a model / the baseline on a split),
report.py (metrics.json, curve CSVs, reports/README.md), figures.py (PCK plot, qualitative rows),
stage.py (the whole stage), predict.py (`s2hand predict`), probe.py (`python -m s2hand.evaluate.probe`:
what frozen encoder features teach a ridge read-out with 3D labels, or a head with the keypoint energy). docs/evaluation.md describes the outputs.
Tests: .venv/bin/python -m pytest -q tests/test_evaluate.py tests/test_predict.py tests/test_probe.py
"""
from .run import EvalResult, EvalSplit, evaluate_mean_pose, evaluate_model, load_eval_split
from .stage import EvaluatePaths, run_evaluation

__all__ = ["EvalResult", "EvalSplit", "evaluate_mean_pose",
           "evaluate_model", "load_eval_split", "EvaluatePaths", "run_evaluation"]
