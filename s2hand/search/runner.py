"""Run the loss-weight search (plan.py) against an objective; resumable, parallel per step.

The objective is the overfit protocol (supplementary s1.1), provided by the training code:

    def objective(weights: dict[str, float]) -> TrialScores: ...

`weights` holds all 13 names of `LossWeights` (search scale: geo = anchor, 1 by default; a weight
not yet determined in phase 1 is 0). It returns TrialScores(accuracy_error, fixed_loss_sum,
losses): the overfit accuracy error (lower is better, e.g. MPJPE on the overfit subset), the
total weighted loss it trained on (logged only), and `losses`, the *unweighted* sub-losses E_X at
the end of the overfit keyed by plan.SUBLOSSES (loc, ori, pixel, ssim, beta, tex, scale, joint,
2d, cons, quat, ts), including those whose weight is 0 (the phase-1 start of a weight needs its
loss before it is switched on). The runner weights them (plan.weighted_losses) to get each
step's "sum of the already-fixed weighted losses"; with `losses` empty it falls back to
`fixed_loss_sum` (and phase 1 starts every weight at its params value instead of the matched one).
For a process pool the objective must pickle: a module-level function or a small class instance.

Parallelism: every step's candidates (the start with its /10 and x10, a phase-2 grid, the
sensitivity set) go to a concurrent.futures executor at once; decisions between steps are
sequential and read results in candidate order, so serial and parallel runs agree.
`open_executor(workers, gpus)` gives a ProcessPoolExecutor (one worker per GPU, each with its
own CUDA_VISIBLE_DEVICES, when `gpus` is given) or None (serial, in-process).

Usage (a pipeline stage, with the lead's params and objective):
    plan = build_plan(params.search)
    with mlflow_run("search_weights", params), open_executor(2) as ex:
        result = run_search(plan, objective, TrialStore("outputs/search/trials.jsonl"),
                            params.weights.model_dump(), executor=ex, logger=MlflowTrialLogger())
    Re-run the same command after an interruption: trials already in the log are not rerun.
    run_search(plan, None, store, ...) replays a finished search from the log alone.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from s2hand.search.plan import (
    SUBLOSSES,
    WEIGHT_NAMES,
    SearchPlan,
    canon,
    effective_weights,
    grid,
    improves,
    initial_weights,
    matched_start,
    rescale,
    sensitivity_set,
    weighted_losses,
)
from s2hand.search.store import TrialRecord, TrialStore, trial_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialScores:
    """What the objective returns for one trial (see the module docstring)."""

    accuracy_error: float
    fixed_loss_sum: float
    losses: dict[str, float] = field(default_factory=dict)
    # the trial's PA-MPJPE minus the mean pose's on the subset, paired frame by frame (cm):
    # {"diff_cm", "lo_cm", "hi_cm", "groups", "frames", "mean_pose_cm", "verdict"}; {} if not measured
    vs_mean_pose: dict = field(default_factory=dict)


Objective = Callable[[dict[str, float]], TrialScores]
TrialLogger = Callable[[TrialRecord], None]


class MissingTrial(RuntimeError):
    """Raised when replaying without an objective and a needed trial is not in the log."""


@dataclass(frozen=True)
class Candidate:
    phase: str
    step: str
    weights: dict[str, float]

    @property
    def key(self) -> str:
        return trial_key(self.phase, self.step, self.weights)


@dataclass(frozen=True)
class StepResult:
    """One sequential step: its candidates' records (candidate order) and the one kept."""

    phase: str
    step: str
    tuned: tuple[str, ...]  # weights varied in this step
    fixed: tuple[str, ...]  # sub-losses in the step's loss sum
    records: list[TrialRecord]
    best: TrialRecord
    start: float | None = None  # phase 1: the value the x10 steps start from
    start_rule: str = ""  # phase 1: 'matched' (weighted losses equalised) or 'initial' (params value)


@dataclass(frozen=True)
class SearchResult:
    plan: SearchPlan
    initial: dict[str, float]  # phase-1 start configuration (search scale)
    phase1: dict[str, float]  # after phase 1
    selected: dict[str, float]  # after phase 2 (search scale)
    steps: list[StepResult]

    def output_weights(self) -> dict[str, float]:
        """Selected weights for params.yaml: rescaled to plan.output_geo, excluded ones dropped."""
        w = rescale(self.selected, self.plan.output_geo) if self.plan.output_geo else dict(self.selected)
        return {k: w[k] for k in WEIGHT_NAMES if k not in self.plan.excluded}

    def phase_steps(self, phase: str) -> list[StepResult]:
        return [s for s in self.steps if s.phase == phase]


def _call(objective: Objective, weights: dict[str, float]) -> tuple[TrialScores, float]:
    """Runs in the worker: the objective and its wall time."""
    t0 = time.perf_counter()
    scores = objective(dict(weights))
    return scores, time.perf_counter() - t0


def step_loss_sum(weights: Mapping[str, float], scores: TrialScores | TrialRecord, fixed: Sequence[str]) -> float:
    """Sum of phi_X E_X over the sub-losses `fixed`; the objective's fixed_loss_sum if no losses."""
    if not scores.losses:
        return float(scores.fixed_loss_sum)
    phi = effective_weights(weights)
    fixed = [s for s in fixed if phi[s] != 0]  # a loss switched off adds nothing (and need not be reported)
    missing = [s for s in fixed if s not in scores.losses]
    if missing:
        raise KeyError(f"objective's losses lack sub-losses {missing} (expected keys: {list(SUBLOSSES)})")
    return float(sum(phi[s] * float(scores.losses[s]) for s in fixed))


class Evaluator:
    """Evaluates a batch of candidates: cached ones from the store, the rest on the executor."""

    def __init__(self, objective: Objective | None, store: TrialStore, executor: Executor | None = None,
                 logger: TrialLogger | None = None) -> None:
        self.objective, self.store, self.executor, self.logger = objective, store, executor, logger
        self.executed = 0  # trials run by this evaluator (not read from the log)

    def _record(self, c: Candidate, scores: TrialScores, wall: float, fixed: Sequence[str]) -> TrialRecord:
        rec = TrialRecord(
            key=c.key, phase=c.phase, step=c.step, weights=dict(c.weights),
            accuracy_error=float(scores.accuracy_error), fixed_loss_sum=float(scores.fixed_loss_sum),
            step_loss_sum=step_loss_sum(c.weights, scores, fixed),
            losses={k: float(v) for k, v in scores.losses.items()}, wall_s=wall, finished=time.time(),
            vs_mean_pose=dict(scores.vs_mean_pose),
        )
        self.store.append(rec)
        self.executed += 1
        if self.logger:
            self.logger(rec)
        return rec

    def run(self, cands: list[Candidate], fixed: Sequence[str]) -> list[TrialRecord]:
        """Records in candidate order. Completed trials are stored as they finish; if any trial
        fails, the others still finish and are stored, then the first error is raised."""
        out: dict[str, TrialRecord] = {}
        pending: list[Candidate] = []
        for c in cands:
            rec = self.store.get(c.key)
            if rec is not None:
                out[c.key] = rec
                if self.logger:
                    self.logger(rec)
            elif c.key not in {p.key for p in pending}:
                pending.append(c)
        if pending and self.objective is None:
            raise MissingTrial(f"{len(pending)} trial(s) of {pending[0].phase}/{pending[0].step} not in {self.store.path}")
        if self.executor is None:
            for c in pending:
                log.info("trial %s/%s %s", c.phase, c.step, c.key)
                scores, wall = _call(self.objective, c.weights)
                out[c.key] = self._record(c, scores, wall, fixed)
        elif pending:
            futures: dict[Future, Candidate] = {self.executor.submit(_call, self.objective, c.weights): c for c in pending}
            errors: dict[str, BaseException] = {}
            for fut in _as_done(futures):
                c = futures[fut]
                err = fut.exception()
                if err is not None:
                    errors[c.key] = err
                    continue
                scores, wall = fut.result()
                out[c.key] = self._record(c, scores, wall, fixed)
            if errors:
                first = next(c.key for c in pending if c.key in errors)
                raise errors[first]
        return [out[c.key] for c in cands]


def _as_done(futures: Mapping[Future, Candidate]) -> Iterator[Future]:
    """Futures as they complete (so each is stored as soon as it finishes)."""
    left = set(futures)
    while left:
        done, left = wait(left, return_when="FIRST_COMPLETED")
        # deterministic order within a batch of simultaneous completions
        yield from sorted(done, key=lambda f: list(futures).index(f))


def _rank(rec: TrialRecord) -> tuple[float, float]:
    """Selection: lowest overfit accuracy error, then lowest step loss sum."""
    return (rec.accuracy_error, rec.step_loss_sum)


def _fixed_sublosses(determined: set[str], tuned: str | None) -> tuple[str, ...]:
    """Sub-losses whose weights are all determined and whose phi does not involve `tuned`."""
    return tuple(s for s, ws in SUBLOSSES.items() if all(w in determined for w in ws) and tuned not in ws)


def run_phase1(plan: SearchPlan, ev: Evaluator, current: dict[str, float], params_initial: Mapping[str, float]) -> tuple[dict[str, float], list[StepResult]]:
    """Order of magnitude, one weight at a time (module plan.py, phase 1)."""
    if not plan.phase1_weights:
        return dict(current), []
    determined = {w for w in WEIGHT_NAMES if w not in plan.phase1_weights}
    fixed = _fixed_sublosses(determined, None)
    base = ev.run([Candidate("phase1", "base", current)], fixed)[0]
    steps = [StepResult("phase1", "base", (), fixed, [base], base)]
    best, current = base, dict(current)
    preset = rescale({k: float(params_initial[k]) for k in WEIGHT_NAMES}, plan.anchor)
    for w in plan.phase1_weights:
        fixed = _fixed_sublosses(determined, w)
        start = matched_start(w, current, best.losses, step_loss_sum(current, best, fixed)) if best.losses else None
        rule = "matched"
        if start is None:
            start, rule = (preset[w] or 1.0), "initial"
        level: dict[int, TrialRecord] = {}

        def value(k: int) -> dict[str, float]:
            return {**current, w: canon(start * 10.0**k)}

        batch = [-1, 0, 1]
        while batch:
            recs = ev.run([Candidate("phase1", w, value(k)) for k in batch], fixed)
            level.update(zip(batch, recs))
            batch = []
            for d in (-1, 1):
                k = max(level, key=lambda j: j * d)  # furthest level in direction d
                if k * d < plan.phase1_steps and improves(_rank(level[k]), _rank(level[k - d]), plan.phase1_rule):
                    batch.append(k + d)
        order = sorted(level)
        best = min((level[k] for k in order), key=_rank)
        current = dict(best.weights)
        determined.add(w)
        steps.append(StepResult("phase1", w, (w,), fixed, [level[k] for k in order], best, start, rule))
        log.info("phase 1: %s = %g (start %g, %s)", w, current[w], start, rule)
    return current, steps


def run_phase2(plan: SearchPlan, ev: Evaluator, current: dict[str, float]) -> tuple[dict[str, float], list[StepResult]]:
    """Divide-and-conquer grid: each group's grid in turn, its best cell fixed."""
    fixed = tuple(SUBLOSSES)
    steps = []
    current = dict(current)
    for g, names in plan.groups:
        recs = ev.run([Candidate("phase2", g, c) for c in grid(current, names, plan.factors)], fixed)
        best = min(recs, key=_rank)
        current = dict(best.weights)
        steps.append(StepResult("phase2", g, names, fixed, recs, best))
        log.info("phase 2: %s -> %s", g, {n: current[n] for n in names})
    return current, steps


def run_sensitivity(plan: SearchPlan, ev: Evaluator, selected: dict[str, float]) -> list[StepResult]:
    """Table 10: the selected weights, then each weight x0.5 and x2 (one parallel batch)."""
    if not plan.sensitivity_weights:
        return []
    sset = sensitivity_set(selected, plan.sensitivity_weights, plan.sensitivity_factors)
    fixed = tuple(SUBLOSSES)
    recs = ev.run([Candidate("sensitivity", name, w) for name, w in sset], fixed)
    return [StepResult("sensitivity", name, () if name == "base" else (name.split("*")[0],), fixed, [r], r)
            for (name, _), r in zip(sset, recs)]


def run_search(plan: SearchPlan, objective: Objective | None, store: TrialStore, params_weights: Mapping[str, float],
               executor: Executor | None = None, logger: TrialLogger | None = None) -> SearchResult:
    """Phase 1, phase 2, sensitivity. `params_weights`: the 13 weights of params.yaml (presets
    and phase-1 fallback starts). Resumable: trials in `store` are not rerun."""
    ev = Evaluator(objective, store, executor, logger)
    init = initial_weights(plan, params_weights)
    p1, s1 = run_phase1(plan, ev, init, params_weights)
    sel, s2 = run_phase2(plan, ev, p1)
    s3 = run_sensitivity(plan, ev, sel)
    log.info("search done: %d trials run now, %d in the log", ev.executed, len(store))
    return SearchResult(plan, init, p1, sel, s1 + s2 + s3)


# ---------------------------------------------------------------------------------------------
# executors

def _claim_gpu(queue) -> None:  # noqa: ANN001 (a multiprocessing queue)
    """Worker initializer: take one GPU id for the life of this worker process."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


@contextlib.contextmanager
def open_executor(workers: int = 1, gpus: Sequence[int] = ()) -> Iterator[Executor | None]:
    """None (serial, in-process) for workers <= 1 and no GPUs; else a ProcessPoolExecutor.

    With `gpus`, one worker per GPU id, each started (spawn) with CUDA_VISIBLE_DEVICES set to
    its id before the objective imports torch, so each trial sees one GPU as cuda:0.
    """
    if gpus:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        for g in gpus:
            queue.put(g)
        ex = ProcessPoolExecutor(len(gpus), mp_context=ctx, initializer=_claim_gpu, initargs=(queue,))
    elif workers > 1:
        ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        yield None
        return
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# MLflow

class MlflowTrialLogger:
    """Logs each trial as a child run of a parent run (default: the active run).

    Child params: `weights.<name>` (as the stages log them), tags phase / step / trial_key;
    metrics: accuracy_error, fixed_loss_sum, step_loss_sum, loss.<sub-loss>, weighted.<sub-loss>.
    Trials already logged under the parent (by trial_key) are skipped, so a resumed search under
    the same parent logs each trial once, and one under a new parent logs them all.
    """

    def __init__(self, parent_run_id: str | None = None) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        if parent_run_id is None:
            run = mlflow.active_run()
            if run is None:
                raise RuntimeError("MlflowTrialLogger: no active run to nest under; pass parent_run_id")
            parent_run_id = run.info.run_id
        self.parent = parent_run_id
        self.experiment_id = self.client.get_run(parent_run_id).info.experiment_id
        found = self.client.search_runs([self.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=50000)
        self.logged = {r.data.tags.get("trial_key") for r in found}

    def __call__(self, rec: TrialRecord) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if rec.key in self.logged:
            return
        run = self.client.create_run(
            self.experiment_id, run_name=f"{rec.phase}/{rec.step}/{rec.key[:8]}",
            tags={"mlflow.parentRunId": self.parent, "phase": rec.phase, "step": rec.step, "trial_key": rec.key},
        )
        ts = int(rec.finished * 1000) or int(time.time() * 1000)
        metrics = {"accuracy_error": rec.accuracy_error, "fixed_loss_sum": rec.fixed_loss_sum,
                   "step_loss_sum": rec.step_loss_sum, "wall_s": rec.wall_s}
        metrics.update({f"loss.{k}": v for k, v in rec.losses.items()})
        metrics.update({f"weighted.{k}": v for k, v in weighted_losses(rec.weights, rec.losses).items()})
        params = [Param(f"weights.{k}", repr(v)) for k, v in rec.weights.items()]
        self.client.log_batch(
            run.info.run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()], params=params,
            tags=[RunTag("mlflow.note.content", f"{rec.phase} step {rec.step}")],
        )
        self.client.set_terminated(run.info.run_id)
        self.logged.add(rec.key)


__all__ = [
    "Candidate", "Evaluator", "MissingTrial", "MlflowTrialLogger", "Objective", "SearchResult", "StepResult",
    "TrialScores", "open_executor", "run_phase1", "run_phase2", "run_search", "run_sensitivity", "step_loss_sum",
]
