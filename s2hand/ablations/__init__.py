"""The paper's ablations as DVC experiments, and the report that compares them with the paper.

    spec     ablations.yaml's schema; rows -> distinct experiments (`dvc exp run` arguments)
    runner   queue or run the experiments through DVC's command line
    report   results (`dvc exp show --json` and the MLflow store) -> reports/ablations.md
    cli      `s2hand ablations list|run|queue|report`, `s2hand mlflow-ui`

docs/ablations.md has the details; tests: .venv/bin/python -m pytest -q tests/test_ablations.py
"""
from .spec import AblationError, Experiment, Spec, exp_run_args, load_spec, plan_experiments

__all__ = ["AblationError", "Experiment", "Spec", "exp_run_args", "load_spec", "plan_experiments"]
