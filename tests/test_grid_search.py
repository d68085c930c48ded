"""The grid_search stage: the overfit objective on the tiny dataset, the stage's resume, the schema.

    .venv/bin/python -m pytest -q tests/test_grid_search.py       # ~15 s on 2 cores
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import yaml

from s2hand.config import GridSearchParams, LossWeights, Params, ParamsError, validate_params
from s2hand.search.plan import SUBLOSSES, rescale, weighted_losses
from s2hand.search.runner import TrialScores
from tests.conftest import tiny_params

TINY_SEARCH = {"subset_size": 6, "epochs": 1, "batch_size": 3, "input_size": 64, "render_size": 16, "workers": 1}


def tiny_search_params(**search) -> Params:
    """The tiny params with a one-stack network, tiny overfit settings (input and render sizes: the
    search's own); video windows of 2 frames 1 apart."""
    return tiny_params(train={"model": {"hg_stacks": 1}}, video={"n": 2, "interval": 1},
                       grid_search={**TINY_SEARCH, **search})


def _objective(tiny_data, **search):
    from s2hand.search.objective import OverfitObjective

    data, kp, hand = tiny_data
    return OverfitObjective.from_params(tiny_search_params(**search), data, kp, hand)


@pytest.fixture(scope="module")
def tiny_data(tiny_training_data):
    return tiny_training_data(6)


def _search_weights(variant: str) -> dict[str, float]:
    w = rescale(LossWeights().model_dump(), 1.0)
    return w if variant == "s2hand_v" else {**w, "quat": 0.0, "ts": 0.0}


@pytest.mark.parametrize("variant", ["s2hand", "s2hand_v"])
def test_overfit_objective_finite_complete_deterministic(tiny_data, variant):
    obj = _objective(tiny_data, variant=variant)
    obj = pickle.loads(pickle.dumps(obj))  # what a process pool does with it
    w = _search_weights(variant)
    a = obj(w)
    expected = set(SUBLOSSES) - ({"quat", "ts"} if variant == "s2hand" else set())
    assert set(a.losses) == expected
    assert all(math.isfinite(v) and v >= 0 for v in a.losses.values())
    assert math.isfinite(a.accuracy_error) and 0 < a.accuracy_error < 20  # cm
    assert a.fixed_loss_sum == pytest.approx(sum(weighted_losses(w, a.losses).values()))  # phi_X E_X summed
    # the same trial again (network reset to the same initial state, same batches): same scores
    assert obj(w) == a
    # E_pixel / E_SSIM are reported while the photometric weight is 0 (phase 1 needs them)
    w_off = {**w, "photo": 0.0}
    off = obj(w_off)
    assert off.losses["pixel"] > 0 and off.losses["ssim"] > 0
    assert weighted_losses(w_off, off.losses)["pixel"] == 0
    assert off.losses != a.losses  # the photometric weight changed the training
    # the trial's gap to the mean pose on its own frames: the difference of the two PA-MPJPEs, with a verdict
    g = a.vs_mean_pose
    assert g["diff_cm"] == pytest.approx(a.accuracy_error - g["mean_pose_cm"], abs=1e-4)
    assert g["frames"] == obj.params.grid_search.subset_size and g["verdict"] in ("held", "reversed", "not measurable")


def test_fingerprint_follows_the_objective_not_the_runtime(tiny_data, monkeypatch):
    base = _objective(tiny_data).fingerprint()
    with monkeypatch.context() as m:  # edited code: trials of the old code are not reused
        m.setattr("s2hand.search.objective.code_digest", lambda: "0" * 16)
        assert _objective(tiny_data).fingerprint() != base
    assert _objective(tiny_data, workers=2, threads=1).fingerprint() == base
    assert _objective(tiny_data, epochs=2).fingerprint() != base
    assert _objective(tiny_data, render_size=32).fingerprint() != base
    assert _objective(tiny_data, variant="s2hand_v").fingerprint() != base


def test_subset_needs_enough_frames(tiny_data):
    with pytest.raises(ValueError, match="subset_size"):
        _objective(tiny_data, subset_size=500)({})


def test_schema_errors_name_the_key():
    with pytest.raises(ParamsError, match=r"grid_search\.profile"):
        validate_params({"grid_search": {"profile": "huge"}})
    with pytest.raises(ParamsError, match=r"grid_search\.epoch: unknown key"):
        validate_params({"grid_search": {"epoch": 3}})
    with pytest.raises(ParamsError, match=r"grid_search.*multiple of 4"):
        validate_params({"grid_search": {"input_size": 66}})
    with pytest.raises(ParamsError, match=r"grid_search.*parent"):
        validate_params({"grid_search": {"phase1_weights": ["tex", "regu"]}})
    with pytest.raises(ParamsError, match=r"grid_search.*not searched"):
        validate_params({"grid_search": {"sensitivity_weights": ["quat"]}})


# ---------------------------------------------------------------------------------------------
# the stage, on a cheap stand-in objective

class StandIn:
    """Separable in log10 of each weight (as tests/test_search.py); counts its calls, raises
    KeyboardInterrupt after `budget` calls (a killed stage)."""

    TARGET = {"geo": 1.0, "ori": 100.0, "photo": 5.0, "ssim": 0.2, "joint": 10.0}

    def __init__(self, params, budget: int | None = None) -> None:
        self.params, self.budget, self.calls = params, budget, 0

    def fingerprint(self) -> str:
        return "standin"

    def __call__(self, weights: dict[str, float]) -> TrialScores:
        if self.budget is not None and self.calls >= self.budget:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        err = sum((math.log10(weights[k] / t)) ** 2 if weights[k] > 0 else 2.0 for k, t in self.TARGET.items())
        losses = {s: 1.0 + err for s in SUBLOSSES if s not in ("quat", "ts")}
        return TrialScores(err, sum(losses.values()), losses)


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A repository-like folder: params.yaml (serial search), its own MLflow store."""
    pytest.importorskip("mlflow")
    import mlflow

    search = {"workers": 1, "phase1_weights": ["ori"], "phase2_groups": ["ori"], "sensitivity_weights": ["ori"]}
    full = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())  # every section
    full["grid_search"].update(search)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(full))  # 1 + 3 + 3 + 3 trials
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    return tmp_path


def test_stage_resumes_without_rerunning_trials(stage_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    import pipeline.grid_search as stage
    from s2hand.search.objective import OverfitObjective
    from s2hand.search.store import TrialStore

    made: list[StandIn] = []

    def fake(budget):
        def from_params(params, *args, **kwargs):
            made.append(StandIn(params, budget))
            return made[-1]
        return from_params

    monkeypatch.setattr(OverfitObjective, "from_params", staticmethod(fake(4)))
    with pytest.raises(KeyboardInterrupt):
        stage.main()
    state = stage_dir / "outputs/.grid_search/standin"
    assert len(TrialStore(state / "trials.jsonl")) == 4
    parent = (state / "mlflow_run_id").read_text().strip()  # kept: the next execution continues it
    assert not (stage_dir / "reports/grid_search/README.md").exists()

    monkeypatch.setattr(OverfitObjective, "from_params", staticmethod(fake(None)))
    metrics = stage.main()
    assert made[1].calls == 10 - 4 and metrics["trials_run"] == 6 and metrics["trials"] == 10
    assert not (state / "mlflow_run_id").exists()
    client = MlflowClient()
    exp = client.get_run(parent).info.experiment_id
    kids = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent}'")
    assert len(kids) == 10 and len({k.data.tags["trial_key"] for k in kids}) == 10

    reports = stage_dir / "reports/grid_search"
    assert (reports / "README.md").read_text().startswith("# ")  # written from the trial log (test_search.py)
    frag = yaml.safe_load((reports / "selected_weights.yaml").read_text())["weights"]
    validate_params({"weights": frag})
    assert frag["geo"] == pytest.approx(0.001) and "quat" not in frag  # params units, S2HAND weights only
    written = json.loads((reports / "metrics.json").read_text())
    assert written["trials"] == 10
    # the stand-in reports no gap to the mean pose: nothing overfit, so the selection is not applied
    assert written["informative"] is False and written["trials_below_mean_pose"] == 0
    assert frag == pytest.approx({k: v for k, v in LossWeights().model_dump().items() if k in frag})  # the paper's
    assert "NOT INFORMATIVE" in (reports / "selected_weights.yaml").read_text()  # the fragment's warning header

    # a third execution finds every trial in the log: nothing runs
    monkeypatch.setattr(OverfitObjective, "from_params", staticmethod(fake(0)))
    assert stage.main()["trials_run"] == 0


def test_selection_is_applied_only_when_a_trial_ends_below_the_mean_pose(tmp_path):
    """A search whose trials never end measurably below the mean pose writes the paper's weights;
    one where a trial does writes its selection."""
    from s2hand.search import TrialStore, build_plan, run_search
    from s2hand.search.report import chosen_weights, render_report, selection_check

    def run(gap: dict, name: str):
        base = StandIn(None)

        def objective(w):
            s = base(w)
            return TrialScores(s.accuracy_error, s.fixed_loss_sum, s.losses, vs_mean_pose=gap)

        plan = build_plan(GridSearchParams(profile="reduced", phase1_weights=["ori"], phase2_groups=["ori"],
                                           sensitivity_weights=[]))
        start = {**LossWeights().model_dump(), "ori": 1.0}  # far from the stand-in's optimum (100)
        return run_search(plan, objective, TrialStore(tmp_path / f"{name}.jsonl"), start)

    below = {"diff_cm": -0.5, "lo_cm": -0.7, "hi_cm": -0.3, "groups": 9, "frames": 30, "mean_pose_cm": 1.5,
             "verdict": "held"}
    at = {**below, "diff_cm": -0.01, "lo_cm": -0.05, "hi_cm": 0.04, "verdict": "not measurable"}
    yes, no = run(below, "yes"), run(at, "no")
    assert selection_check(yes)["informative"] and selection_check(yes)["trials_below_mean_pose"] > 0
    assert chosen_weights(yes) == yes.output_weights()
    c = selection_check(no)
    assert not c["informative"] and c["trials_below_mean_pose"] == 0 and c["best_gap_cm"] == pytest.approx(-0.01)
    assert c["mean_pose_error_cm"] == 1.5
    paper = LossWeights().model_dump()
    assert chosen_weights(no) == {k: paper[k] for k in no.output_weights()}
    assert "Selection not informative" in render_report(no) and "Selection not informative" not in render_report(yes)
    assert "-0.01 [-0.05, +0.04]" in render_report(no)  # each trial's gap, with its interval
