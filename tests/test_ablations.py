"""Ablations: the ground-truth 3D loss, ablations.yaml against the schema and the paper, the
experiments it expands to, and the report built from (fake) experiment results.

    .venv/bin/python -m pytest -q tests/test_ablations.py       # a few seconds
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from s2hand.ablations import AblationError, exp_run_args, load_spec, plan_experiments
from s2hand.ablations.report import build_tables, render_markdown, verdict
from s2hand.ablations.spec import check_overrides
from s2hand.losses import supervised_3d_loss

ROOT = Path(__file__).resolve().parent.parent
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def spec():
    return load_spec(ROOT / "ablations.yaml", ROOT / "params.yaml")


# ----------------------------------------------------------------------------- E_sup3d
def test_supervised_loss_zero_at_ground_truth_positive_elsewhere_finite_gradient():
    g = torch.Generator().manual_seed(0)
    j, v = torch.randn(2, 21, 3, generator=g), torch.randn(2, 50, 3, generator=g)
    jp, vp = j.clone().requires_grad_(True), v.clone().requires_grad_(True)
    e = supervised_3d_loss(jp, vp, j, v)
    assert float(e.detach()) == pytest.approx(0.0, abs=1e-9)
    e.backward()  # identical points: the smoothed distance keeps the gradient finite
    assert torch.isfinite(jp.grad).all() and torch.isfinite(vp.grad).all()
    shift = torch.tensor([0.01, 0.0, 0.0])  # 1 cm everywhere: only the root's distance, 0.01
    assert float(supervised_3d_loss(j + shift, v + shift, j, v)) == pytest.approx(0.01, rel=1e-3)
    bent = j.clone()
    bent[:, 12] += shift  # one fingertip 1 cm off: 1/21 of a cm in the joint term, the root stays
    assert float(supervised_3d_loss(bent, v, j, v)) == pytest.approx(0.01 / 21, rel=1e-3)
    with pytest.raises(ValueError):
        supervised_3d_loss(j, v, j[:, :20], v)


def test_full3d_replaces_keypoint_and_photometric_terms_and_trains(tiny_training_data):
    from tests.test_train import _batch, tiny_params
    from s2hand.train import S2HandSystem

    data = tiny_training_data(6)
    params = tiny_params(supervision="full3d")
    torch.manual_seed(0)
    system = S2HandSystem.from_params(params, data[2])
    batch = _batch(data, params)
    total, parts, terms = system.training_loss(batch, "finetune")
    assert set(terms) == {"sup3d", "beta", "tex", "scale", "joint", "2d", "cons"}
    assert torch.isclose(total, sum(parts.values())) and float(terms["sup3d"].detach()) > 0
    total.backward()
    assert system.net.geometry.trans[-1].weight.grad.abs().sum() > 0  # translation learns from it
    del batch["verts"]
    with pytest.raises(ValueError, match="full3d"):
        system.training_loss(batch, "pretrain_3d")


# ----------------------------------------------------------------------------- definitions
def test_every_override_is_a_params_key_and_valid(spec):
    assert {"full", "tiny"} <= set(spec.profiles) and spec.profiles["full"] == {}
    with pytest.raises(AblationError, match="weights.quaternion"):
        check_overrides(BASE, {"weights.quaternion": 0.1}, "test")
    with pytest.raises(AblationError, match="video.temporal_loss"):
        check_overrides(BASE, {"video.temporal_loss": "spline"}, "test")


def test_paper_numbers_support_every_claim(spec):
    """Each direction the report checks is one the paper's own numbers show."""
    for t_id, table in spec.tables.items():
        rows = {r.id: r for r in table.rows}
        lower = {c.key: c.lower_is_better for c in table.columns}
        for c in table.claims:
            a, b = rows[c.better].paper[c.metric], rows[c.worse].paper[c.metric]
            assert (a < b) if lower[c.metric] else (a > b), (t_id, c.says, a, b)


def test_experiments_dedupe_rows_and_carry_tags_and_targets(spec):
    exps = plan_experiments(spec, "tiny", base=BASE)
    names = [e.name for e in exps]
    assert len(names) == len(set(names))
    members = [m for e in exps for m in e.members]
    assert len(members) == sum(len(spec.rows(t)) for t in spec.tables)  # every row exactly once
    default = next(e for e in exps if e.name == "tiny-default")
    assert ("table4", "quaternion_ts") in default.members and ("table6", "ssl_mediapipe") in default.members
    assert set(default.stages) == {"finetune", "finetune_video"}
    args = exp_run_args(default, spec, "tiny", queue=True)
    assert args[:6] == ["dvc", "exp", "run", "--queue", "-n", "tiny-default"]
    assert "train.runtime.max_steps=6" in args and "+mlflow.tags.ablation_table7=interv3_n3" in args
    assert "mlflow.experiment=s2hand-ablations-tiny" in args
    # a table subset keeps names and tags (the report finds the same experiments)
    sub = plan_experiments(spec, "tiny", ["table6"], base=BASE)
    assert {e.name for e in sub} <= set(names) and "tiny-default" in {e.name for e in sub}
    with pytest.raises(AblationError, match="profile"):
        plan_experiments(spec, "huge")


# ----------------------------------------------------------------------------- report
def _fake_results(spec, better: bool) -> dict:
    """Experiment results in which every row scores its paper number (better=True), or the
    reverse order (better=False), in the table's metrics file."""
    out: dict = {}
    for e in plan_experiments(spec, "tiny", base=BASE):
        metrics: dict = {}
        for t_id, r_id in e.members:
            t = spec.tables[t_id]
            row = next(r for r in spec.rows(t_id) if r.id == r_id)
            block = metrics.setdefault(t.metrics_file, {}).setdefault(t.metrics_prefix, {})
            for c in t.columns:
                v = row.paper.get(c.key, 0.5)
                block[c.key] = v if better else -v
        out[e.name] = {"rev": "x", "timestamp": "t", "params": {}, "metrics": metrics}
    return out


def test_report_tables_and_verdicts_follow_the_numbers(spec):
    frames = build_tables(spec, "tiny", _fake_results(spec, True), pd.DataFrame(), base=BASE)
    for t_id, table in spec.tables.items():
        f = frames[t_id]
        assert list(f.index) == [r.id for r in spec.rows(t_id)]
        held, measured, _ = verdict(table, f)
        assert held == measured == len(table.claims)
        first = table.columns[0].label  # (rows shared between tables take the first table's number)
        assert not math.isnan(f.loc[table.reference, first]) and not math.isnan(f.loc["upper_bound", first])
    flipped = build_tables(spec, "tiny", _fake_results(spec, False), pd.DataFrame(), base=BASE)
    assert all(verdict(t, flipped[i])[0] == 0 for i, t in spec.tables.items())
    text = render_markdown(spec, "tiny", frames)
    assert text.count("\n## ") == len(spec.tables)
    assert "held here in" in text and re.search(r"\| E_loc +\|", text)


def test_report_without_results_says_not_measured_and_uses_mlflow(spec):
    assert math.isnan(build_tables(spec, "tiny", {}, pd.DataFrame(), base=BASE)["table3"].loc["loc", "MPJPE cm"])
    runs = pd.DataFrame({"tags.ablation_table3": ["loc"], "tags.stage": ["finetune"],
                         "metrics.val/pa_mpjpe_cm": [2.5],
                         "start_time": pd.to_datetime(["2025-01-01 00:00"]),
                         "end_time": pd.to_datetime(["2025-01-01 00:03"])})
    f = build_tables(spec, "tiny", {}, runs, base=BASE)["table3"]
    assert f.loc["loc", "MPJPE cm"] == 2.5 and f.loc["loc", "source"] == "mlflow"
    assert f.loc["loc", "mlflow runs"] == 1 and f.loc["loc", "train min"] == 3.0
    held, measured, lines = verdict(spec.tables["table3"], f)
    assert measured == 0 and all("not measured" in x for x in lines)


def test_cli_lists_the_experiments(capsys, monkeypatch):
    from s2hand.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["ablations", "list", "--profile", "tiny", "--tables", "table6"]) == 0
    out = capsys.readouterr().out
    assert "tiny-table6-wsl-ground-truth  [table6.wsl_ground_truth]" in out
    assert "dvc exp run --temp -n tiny-upper-bound" in out and "-S train.supervision=full3d" in out
    assert main(["ablations", "list", "--tables", "table99"]) == 1  # one-line error, exit 1
