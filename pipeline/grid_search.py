"""Stage grid_search: the supplementary's loss-weight selection (method.md s7; s2hand/search).

    python -m pipeline.grid_search              # or dvc repro grid_search
    dvc exp run -S grid_search.profile=full     # the full 105-run grid (111 with variant s2hand_v)

Reads outputs/dataset, outputs/keypoints, outputs/hand_model and params (grid_search, weights,
seed, the network / hand / render / loss settings). Every trial is an overfit run
(s2hand.search.objective), run `grid_search.workers` at a time (or one per GPU of
`grid_search.gpus`), appended to outputs/.grid_search/<fingerprint>/trials.jsonl as it finishes
(not a DVC out: an interrupted stage keeps it, and a rerun skips the finished trials; another
objective configuration has another fingerprint, so stale trials are never reused), and logged
to MLflow as a child of one parent run "grid_search" (continued after an interruption). Writes
    reports/grid_search/selected_weights.yaml   params fragment, with its apply command (the paper's weights
                                                when no trial ended below the mean pose: not informative)
    reports/grid_search/README.md               Tables 10-12 of the supplementary, from real trials
    reports/grid_search/metrics.json            best overfit accuracy, trial counts, wall time; informative
                                                (any trial measurably below the mean pose), the gaps
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from pipeline.common import CONVENTION, DATASET, HAND_MODEL, KEYPOINTS, mlflow_run, stage_params
from s2hand.cpu import cpu_share, queue_jobs
from s2hand.io import atomic_file, write_json

STATE = Path("outputs/.grid_search")
REPORTS = Path("reports/grid_search")
log = logging.getLogger("pipeline.grid_search")


def protocol_notes(objective, fingerprint: str, trials_path: Path, ran: int, wall: float) -> str:
    """The report's closing section: how the trials were made."""
    p = objective.params
    gs = p.grid_search
    unit = (f"{gs.subset_size // p.video.n} windows of {p.video.n} frames {p.video.interval} apart"
            if gs.variant == "s2hand_v" else f"{gs.subset_size} frames")
    return (
        "## Protocol\n\n"
        f"Overfit objective (`s2hand/search/objective.py`): {unit} of the train split (drawn from seed {p.seed}), "
        f"{gs.epochs} epochs, Adam lr {gs.lr:g}, batch {gs.batch_size}, input {gs.input_size} px, render "
        f"{gs.render_size} px, from the ImageNet encoder and the heads' initialisation; accuracy error = 3D "
        "PA-MPJPE (cm) on the subset after training, losses = the unweighted sub-losses on the subset "
        "(eval mode). The supplementary: 30 HO-3D samples, 10 epochs, lr 1e-3, batch 10.\n\n"
        f"Trial log `{trials_path}` (objective fingerprint `{fingerprint}`); {ran} trials run by the last "
        f"execution, which took {wall:.0f} s. docs/grid_search.md explains the stage.\n"
    )


def main() -> dict:
    from s2hand.search import MlflowTrialLogger, TrialStore, build_plan, open_executor, render_report, run_search
    from s2hand.search import write_selected_weights
    from s2hand.search.report import selection_check
    from s2hand.search.objective import OverfitObjective

    t0 = time.perf_counter()
    params = stage_params()
    gs = params.grid_search
    workers = len(gs.gpus) or gs.workers
    threads = gs.threads or cpu_share(os.cpu_count() or 1, workers * queue_jobs())  # the queue's jobs share the cores
    objective = OverfitObjective.from_params(params, DATASET, KEYPOINTS, HAND_MODEL, threads=threads,
                                             convention=CONVENTION)
    fingerprint = objective.fingerprint()
    state = STATE / fingerprint
    state.mkdir(parents=True, exist_ok=True)
    store = TrialStore(state / "trials.jsonl")
    plan = build_plan(gs)
    log.info("grid_search: %s %s, %d-%d trials, %d in the log %s; %d worker(s) x %d thread(s)", gs.profile,
             gs.variant, plan.min_runs, plan.max_runs, len(store), store.path, workers, threads)

    # one parent run per execution; an interrupted one is continued (its id is kept until success)
    run_id_file = state / "mlflow_run_id"
    kwargs = {"run_id": run_id_file.read_text().strip()} if run_id_file.is_file() else {}
    with mlflow_run("grid_search", params, tags={"grid_search_fingerprint": fingerprint}, **kwargs) as run:
        run_id_file.write_text(run.info.run_id + "\n")
        before = len(store)
        with open_executor(gs.workers, gs.gpus) as ex:
            result = run_search(plan, objective, store, params.weights.model_dump(), executor=ex,
                                logger=MlflowTrialLogger())
        ran = len(store) - before
        wall = time.perf_counter() - t0
        records = [r for s in result.steps for r in s.records]
        best = min(records, key=lambda r: (r.accuracy_error, r.step_loss_sum))
        metrics = {
            "trials": len({r.key for r in records}), "trials_run": ran, "wall_seconds": round(wall, 1),
            "best_accuracy_error_cm": best.accuracy_error,
            "selected_accuracy_error_cm": result.phase_steps("phase2")[-1].best.accuracy_error
            if result.phase_steps("phase2") else best.accuracy_error,
            "trial_seconds_mean": round(sum(r.wall_s for r in records) / len(records), 2),
            "trial_seconds_total": round(sum(r.wall_s for r in records), 1),  # all trials, when they ran
        }
        check = selection_check(result)  # did any trial overfit? if not, the paper's weights are written
        metrics.update({"informative": check["informative"], "trials_below_mean_pose": check["trials_below_mean_pose"],
                        "mean_pose_error_cm": check["mean_pose_error_cm"], "best_gap_to_mean_pose_cm": check["best_gap_cm"]})
        weights = write_selected_weights(REPORTS / "selected_weights.yaml", result)
        with atomic_file(REPORTS / "README.md") as f:
            f.write(render_report(result) + "\n" + protocol_notes(objective, fingerprint, store.path, ran, wall))
        write_json(REPORTS / "metrics.json", metrics)
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        mlflow.log_artifacts(str(REPORTS), "grid_search")
    run_id_file.unlink()
    if not metrics["informative"]:
        log.warning("grid_search: no trial ended below the mean pose on its frames: selection not informative, "
                    "the paper's weights written instead")
    log.info("grid_search: %d trials (%d run now) in %.0f s; selected %s", metrics["trials"], ran, wall, weights)
    return metrics


if __name__ == "__main__":
    main()
