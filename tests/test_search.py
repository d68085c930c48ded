"""Loss-weight search (s2hand/search) on a cheap stand-in objective with a known optimum.

The stand-in's accuracy error is separable in log10 of each weight, minimal at TARGET (a
switched-off weight costs OFF); its unweighted sub-losses are (1 + error), so the fixed weighted
loss sum falls when the accuracy improves, as the supplementary's criteria assume.
    .venv/bin/python -m pytest tests/test_search.py -q
"""
from __future__ import annotations

import math
import os
import time
from typing import get_args

import pytest
import yaml

from s2hand.config import WEIGHT_NAMES, GroupName, LossWeights
from s2hand.search import (
    GridSearchParams,
    MissingTrial,
    TrialScores,
    TrialStore,
    build_plan,
    open_executor,
    render_report,
    run_search,
    write_selected_weights,
)
from s2hand.search.plan import DETERMINES, GROUPS, SUBLOSSES, canon, matched_start, rescale
from s2hand.search.report import apply_command

# search scale (geo = 1): the paper's weights x 1000 for the top-level ones
TARGET = {"geo": 1.0, "ori": 100.0, "regu": 10.0, "tex": 0.5, "scale": 10.0, "joint": 10.0, "branch2d": 1.0,
          "cons": 0.2, "photo": 5.0, "ssim": 0.2, "quat": 50.0, "ts": 10.0}
# nearest power of ten: what phase 1 must find
DECADE = {k: 10.0 ** round(math.log10(v)) for k, v in TARGET.items()}
OFF = 2.0
PARAMS_WEIGHTS = LossWeights().model_dump()


def standin(weights: dict[str, float]) -> TrialScores:
    err = sum((math.log10(weights[k]) - math.log10(t)) ** 2 if weights[k] > 0 else OFF for k, t in TARGET.items())
    losses = {s: 1.0 + err for s in SUBLOSSES}
    return TrialScores(accuracy_error=err, fixed_loss_sum=sum(losses.values()), losses=losses)


class Counting:
    """The stand-in, recording the weights it was called with; raises after `budget` calls."""

    def __init__(self, budget: int | None = None) -> None:
        self.calls: list[dict[str, float]] = []
        self.budget = budget

    def __call__(self, weights: dict[str, float]) -> TrialScores:
        if self.budget is not None and len(self.calls) >= self.budget:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append(dict(weights))
        return standin(weights)


class FailOn:
    """The stand-in, failing on one weight value (picklable: usable in a process pool)."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value

    def __call__(self, weights: dict[str, float]) -> TrialScores:
        if weights[self.name] == self.value:
            raise RuntimeError("trial failed")
        return standin(weights)


def _visible_devices() -> str:
    time.sleep(0.3)
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def _search(tmp_path, name="trials.jsonl", objective=standin, executor=None, **kw):
    plan = build_plan(GridSearchParams(**kw))
    store = TrialStore(tmp_path / name)
    return plan, store, run_search(plan, objective, store, PARAMS_WEIGHTS, executor=executor)


@pytest.fixture(scope="module")
def full_v(tmp_path_factory):
    return _search(tmp_path_factory.mktemp("full_v"), profile="full", variant="s2hand_v")


def test_run_counts_of_the_profiles():
    assert build_plan(GridSearchParams(profile="full", variant="s2hand")).phase2_runs == 105
    assert build_plan(GridSearchParams(profile="full", variant="s2hand_v")).phase2_runs == 111
    reduced = build_plan(GridSearchParams())
    assert (reduced.min_runs, reduced.max_runs) == (26, 26)  # 1 + 2*3, 3 + 9, 1 + 3*2
    assert build_plan(GridSearchParams(variant="s2hand_v")).min_runs == 32  # 1 + 4*3, 3 + 9, 1 + 3*2 (ts searched too)


def test_schema_vocabulary_matches_the_search():
    """The grid_search schema (s2hand/config.py) names the search's groups and weights, in order."""
    assert tuple(GROUPS) == get_args(GroupName)
    assert WEIGHT_NAMES == tuple(LossWeights.model_fields)


def test_params_reject_bad_orders():
    with pytest.raises(ValueError, match="parent"):
        GridSearchParams(phase1_weights=("tex", "regu"))
    with pytest.raises(ValueError, match="anchor"):
        GridSearchParams(phase1_weights=("geo",))
    with pytest.raises(ValueError, match="not searched"):
        GridSearchParams(sensitivity_weights=("quat",))
    with pytest.raises(ValueError):
        GridSearchParams(unknown=1)


def test_matched_start_equalises_weighted_losses():
    # Table 11: E_loc ~ 13 with phi_loc = 1, E_ori ~ 0.0139: phi_ori starts at 1000
    cur = {**rescale(PARAMS_WEIGHTS, 1.0), "ori": 0.0}
    assert matched_start("ori", cur, {"loc": 13.0, "ori": 0.0139}, 13.0) == 1000.0
    assert matched_start("ori", cur, {"loc": 13.0}, 13.0) is None


def test_full_search_finds_decades_then_grid_optimum(full_v):
    plan, store, res = full_v
    for k in plan.phase1_weights:
        assert res.phase1[k] == pytest.approx(DECADE[k]), k
    for step in res.phase_steps("phase2"):  # each group keeps its best cell
        assert step.best.accuracy_error == min(r.accuracy_error for r in step.records)
    assert {k: res.selected[k] for k in TARGET} == pytest.approx(TARGET)
    assert sum(len(s.records) for s in res.phase_steps("phase2")) == 111
    assert len({r.key for s in res.phase_steps("phase2") for r in s.records}) == 111
    # the start of every phase-1 weight was matched, not taken from params
    assert all(s.start_rule == "matched" for s in res.phase_steps("phase1")[1:])


def test_full_s2hand_has_105_grid_runs_and_no_temporal_weights(tmp_path):
    plan, store, res = _search(tmp_path, profile="full", variant="s2hand")
    assert sum(len(s.records) for s in res.phase_steps("phase2")) == 105
    assert all(r.weights["quat"] == 0 and r.weights["ts"] == 0 for r in store.records())
    assert "quat" not in res.output_weights()


def test_sensitivity_doubles_and_halves_each_weight(full_v):
    plan, _, res = full_v
    steps = res.phase_steps("sensitivity")
    assert len(steps) == 1 + 2 * len(plan.sensitivity_weights) == 23  # Table 10: 11 weights of S2HAND(V)
    base = steps[0].best.weights
    assert base == res.selected
    for s in steps[1:]:
        name, f = s.step.split("*")
        diff = {k for k in base if s.best.weights[k] != base[k]}
        assert diff == {name}
        assert s.best.weights[name] == pytest.approx(base[name] * float(f))
    assert {s.step for s in steps[1:]} == {f"{w}*{f}" for w in plan.sensitivity_weights for f in ("0.5", "2")}


def test_reduced_profile_one_step_each_side(tmp_path):
    plan, store, res = _search(tmp_path)
    assert len(store) == 26
    for s in res.phase_steps("phase1")[1:]:
        assert sorted(r.weights[s.step] for r in s.records) == pytest.approx([s.start / 10, s.start, s.start * 10])
    # weights outside phase 1 stay at params values (rescaled to geo = 1)
    assert res.phase1["joint"] == pytest.approx(PARAMS_WEIGHTS["joint"])
    assert res.phase1["regu"] == pytest.approx(PARAMS_WEIGHTS["regu"] * 1000)


def test_resume_reruns_no_completed_trial(tmp_path):
    _, _, ref = _search(tmp_path, "ref.jsonl", profile="full", variant="s2hand")
    broken = Counting(budget=40)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, "t.jsonl", objective=broken, profile="full", variant="s2hand")
    stored = TrialStore(tmp_path / "t.jsonl")
    assert len(stored) == 40
    # a torn last line (killed mid-write) is skipped on load
    with open(tmp_path / "t.jsonl", "a") as f:
        f.write('{"key": "trunc')
    again = Counting()
    plan, store, res = _search(tmp_path, "t.jsonl", objective=again, profile="full", variant="s2hand")
    done = {tuple(sorted(c.items())) for c in broken.calls}
    assert not [c for c in again.calls if tuple(sorted(c.items())) in done]
    assert len(broken.calls) + len(again.calls) == len(store) == len(TrialStore(tmp_path / "ref.jsonl"))
    assert res.selected == ref.selected and res.phase1 == ref.phase1
    # a finished log replays without an objective; a missing trial says so
    assert run_search(plan, None, TrialStore(tmp_path / "t.jsonl"), PARAMS_WEIGHTS).selected == ref.selected
    with pytest.raises(MissingTrial):
        run_search(plan, None, TrialStore(tmp_path / "empty.jsonl"), PARAMS_WEIGHTS)


def test_parallel_matches_serial(tmp_path, full_v):
    _, _, serial = full_v
    with open_executor(workers=2) as ex:
        _, store, par = _search(tmp_path, executor=ex, profile="full", variant="s2hand_v")
    assert par.selected == serial.selected and par.phase1 == serial.phase1
    assert [r.key for s in par.steps for r in s.records] == [r.key for s in serial.steps for r in s.records]
    # a failing trial in a parallel batch: its siblings are still stored, the error is raised
    with open_executor(workers=2) as ex:
        with pytest.raises(RuntimeError, match="trial failed"):
            _search(tmp_path, "fail.jsonl", objective=FailOn("ori", 10.0), executor=ex)
    steps = {r.step for r in TrialStore(tmp_path / "fail.jsonl").records()}
    assert len(TrialStore(tmp_path / "fail.jsonl")) == 3 and steps == {"base", "ori"}  # base, ori 0.1 and 1


def test_one_gpu_per_worker():
    with open_executor(gpus=(0, 1)) as ex:
        seen = {f.result() for f in [ex.submit(_visible_devices) for _ in range(4)]}
    assert seen and seen <= {"0", "1"}


def test_mlflow_parent_with_nested_trials(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from pipeline.common import mlflow_run
    from s2hand.config import Params
    from s2hand.search import MlflowTrialLogger

    import mlflow

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    # mlflow_run sets a global tracking URI (and MLFLOW_TRACKING_URI): both restored after the test
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    kw = dict(phase1_weights=("ori",), phase2_groups=("ori",), sensitivity_weights=("ori",))
    plan = build_plan(GridSearchParams(**kw))
    store = TrialStore(tmp_path / "trials.jsonl")
    with mlflow_run("search_weights", Params()) as parent:
        run_search(plan, standin, store, PARAMS_WEIGHTS, logger=MlflowTrialLogger())
    pid = parent.info.run_id
    client = MlflowClient()
    exp = client.get_run(pid).info.experiment_id

    def children():
        return client.search_runs([exp], f"tags.mlflow.parentRunId = '{pid}'")

    kids = children()
    assert len(kids) == len(store) == 1 + 3 + 3 + 3
    assert {r.data.tags["trial_key"] for r in kids} == {r.key for r in store.records()}
    one = kids[0]
    assert "weights.ori" in one.data.params and "accuracy_error" in one.data.metrics
    assert "weighted.loc" in one.data.metrics
    # resuming under the same parent logs nothing twice
    with mlflow_run("search_weights", Params(), run_id=pid):
        run_search(plan, standin, TrialStore(tmp_path / "trials.jsonl"), PARAMS_WEIGHTS, logger=MlflowTrialLogger())
    assert len(children()) == len(kids)


def test_report_tables_and_fragment(tmp_path, full_v):
    _, _, res = full_v
    assert render_report(res).startswith("# ")  # its tables: res (test_full_search_..., test_sensitivity_...)
    frag = tmp_path / "selected_weights.yaml"
    written = write_selected_weights(frag, res)
    loaded = yaml.safe_load(frag.read_text())["weights"]
    assert loaded == written
    lw = LossWeights(**loaded)  # a valid params section
    # written in method.md s6 units (geo = 0.001): the stand-in's optimum is the paper's weights
    for k in TARGET:
        assert getattr(lw, k) == pytest.approx(PARAMS_WEIGHTS[k]), k
    cmd = apply_command(written)
    assert cmd.startswith("dvc exp run -S weights.branch3d=") and f"-S weights.cons=0.0002" in cmd
    assert cmd in frag.read_text()
    parsed = {a.split("=")[0][len("weights."):]: yaml.safe_load(a.split("=")[1]) for a in cmd.split(" -S ")[1:]}
    assert parsed == pytest.approx(written)


def test_trial_key_is_stable_under_float_noise():
    from s2hand.search import trial_key

    w = {k: v for k, v in TARGET.items()}
    assert trial_key("phase2", "loc", w) == trial_key("phase2", "loc", {**w, "cons": 0.2 * 3 / 3 + 1e-12})
    assert trial_key("phase2", "loc", w) != trial_key("phase2", "ori", w)
    assert canon(0.001 * 2 * 0.5) == 0.001
    assert set(DETERMINES.values()) == set(SUBLOSSES)
