"""What every stage shares: the repository root, params, and the MLflow run.

One SQLite store at the repository root (`mlruns.db`, artifacts in `mlartifacts/`), also
inside queued DVC experiments: DVC sets `DVC_ROOT` to the main repository, so a queued
experiment running in a temporary copy logs to the same store. Runs are named after
`DVC_EXP_NAME` when DVC sets it, and tagged with the stage and git commit.

Open the UI on loopback:
    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns.db --host 127.0.0.1 --port 5000
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from s2hand.config import Params, ParamsError, flatten, load_params

log = logging.getLogger("pipeline")

# stage outputs other stages read (relative to the stage's working copy, as dvc.yaml names them)
DATASET = Path("outputs/dataset")
KEYPOINTS = Path("outputs/keypoints")
HAND_MODEL = Path("outputs/hand_model/MANO_RIGHT.npz")
CONVENTION = Path("outputs/convention/convention.json")  # the keypoint_convention stage's file
PSEUDO_LABELS = Path("outputs/pseudo_labels/train.npz")  # the pseudo_labels stage's file


def repo_root() -> Path:
    """The main repository: `DVC_ROOT` when DVC runs us (also in queued experiments)."""
    env = os.environ.get("DVC_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def tracking_uri(root: Path | None = None) -> str:
    root = root or repo_root()
    return f"sqlite:///{(root / 'mlruns.db').as_posix()}"


def artifact_location(root: Path | None = None) -> str:
    root = root or repo_root()
    return (root / "mlartifacts").resolve().as_uri()


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path.cwd(), capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def stage_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate params.yaml; exit with the schema's message on any bad key. Under `dvc
    queue start -j N` (N > 1) it also gives this stage its share of the CPU threads (share_threads)."""
    setup_logging()
    try:
        params = load_params(path)
    except ParamsError as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None
    share_threads(params)
    return params


def share_threads(params: Params, jobs: int | None = None) -> int:
    """Torch's threads for this stage (s2hand.cpu: the queue's jobs share the cores) unless
    `train.runtime.num_threads` sets them; -> the queue's jobs (1 outside a parallel queue)."""
    import torch

    from s2hand.cpu import cpu_share, queue_jobs

    jobs = queue_jobs() if jobs is None else jobs
    if jobs > 1 and not params.train.runtime.num_threads:
        n = cpu_share(torch.get_num_threads(), jobs)
        torch.set_num_threads(n)
        logging.getLogger("stage").info("%d experiments run at once (dvc queue): %d torch thread(s) here", jobs, n)
    return jobs


@contextlib.contextmanager
def mlflow_run(stage: str, params: Params, tags: dict[str, str] | None = None, **kwargs) -> Iterator[object]:
    """Start (or resume, with `run_id=`) an MLflow run for `stage`; logs all params flat.

    The run name is `DVC_EXP_NAME/stage` inside a DVC experiment, else `stage`.
    """
    import mlflow  # imported here: stages that do not train should not pay for it

    root = repo_root()
    mlflow.set_tracking_uri(tracking_uri(root))
    name = params.mlflow.experiment
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=artifact_location(root))
    mlflow.set_experiment(name)
    exp = os.environ.get("DVC_EXP_NAME")
    run_name = f"{exp}/{stage}" if exp else stage
    all_tags = {"stage": stage, "git_commit": git_commit(), "dvc_exp": exp or ""}
    all_tags.update(params.mlflow.tags)  # e.g. ablation_table4: quaternion (s2hand/ablations)
    all_tags.update(tags or {})
    with mlflow.start_run(run_name=run_name, tags=all_tags, **kwargs) as run:
        if "run_id" not in kwargs:
            flat = {k: ("" if v is None else v) for k, v in flatten(params).items()}
            items = list(flat.items())
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                mlflow.log_params(dict(items[i : i + 100]))
        yield run
