"""Ablations: the ground-truth 3D loss, ablations.yaml against the schema and the paper, the
experiments it expands to, and the report built from (fake) experiment results.

    .venv/bin/python -m pytest -q tests/test_ablations.py       # a few seconds
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from s2hand.ablations import AblationError, exp_run_args, load_spec, plan_experiments
from s2hand.ablations.report import build_tables, render_markdown, table_checks
from s2hand.ablations.spec import check_overrides
from s2hand.losses import supervised_3d_loss
from s2hand.metrics.compare import VERDICTS

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
    from tests.test_train import _batch, train_params
    from s2hand.model.system import S2HandSystem

    data = tiny_training_data(6)
    params = train_params(supervision="full3d")
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
    assert {"full", "ci", "tiny"} <= set(spec.profiles) and spec.profiles["full"].set == {}
    assert spec.profiles["ci"].headline_only and not spec.profiles["full"].headline_only
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
def _fake_results(spec, better: bool, profile: str = "tiny") -> dict:
    """Experiment results in which every row scores its paper number (better=True), or the
    reverse order (better=False), in the table's metrics file."""
    out: dict = {}
    for e in plan_experiments(spec, profile, base=BASE):
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


def _fake_frames(spec, better: bool, sequences: int = 10, per_seq: int = 4, profile: str = "tiny",
                 results: dict | None = None) -> dict:
    """Per-frame values as the training stages write them (frame_values' columns only): each row's
    value is its paper number (or the reverse) plus noise that every row shares frame by frame."""
    from s2hand.model.scores import FRAME_COLUMNS

    noise = np.random.default_rng(0).normal(0, 0.01, sequences * per_seq)
    keys = {"seq": np.repeat(np.arange(sequences), per_seq), "frame": np.tile(np.arange(per_seq), sequences)}
    out: dict = {}
    for name, item in (results or _fake_results(spec, better, profile)).items():
        for file, blocks in item["metrics"].items():
            block = next(iter(blocks.values()))
            cols = {k: v + noise for k, v in block.items() if k in FRAME_COLUMNS}
            out.setdefault(name, {})[file] = pd.DataFrame({**keys, **cols})
    return out


def _per_frame_metric(metric: str) -> bool:
    from s2hand.model.scores import FRAME_COLUMNS

    return metric in FRAME_COLUMNS


def test_report_verdicts_follow_the_paired_per_frame_values(spec):
    frames = build_tables(spec, "tiny", _fake_results(spec, True), pd.DataFrame(), base=BASE)
    checks = table_checks(spec, "tiny", frames, _fake_frames(spec, True), base=BASE)
    json.dumps(checks, allow_nan=False)  # reports/ablations.json: plain data
    for t_id, table in spec.tables.items():
        f = frames[t_id]
        assert list(f.index) == [r.id for r in spec.rows(t_id)]
        first = table.columns[0].label  # (rows shared between tables take the first table's number)
        assert not math.isnan(f.loc[table.reference, first]) and not math.isnan(f.loc["upper_bound", first])
        t = checks["tables"][t_id]
        assert len(t["claims"]) == len(table.claims) and sum(t["counts"].values()) == len(table.claims)
        for c in t["claims"]:
            assert c["verdict"] in VERDICTS
            if _per_frame_metric(c["metric"]):
                assert c["verdict"] == "held" and c["lo"] - 1e-9 <= c["diff"] <= c["hi"] + 1e-9, c
                assert (c["diff"] < 0) == c["lower_is_better"] and c["groups"] == 10
            else:  # texture/shape S.D., quaternion loss: no per-frame values, no verdict
                assert c["verdict"] == "not measurable" and c["diff"] is None and c["reason"]
        u = t["upper_bound"]
        assert u["undertrained"] == (u["beats"] is False)
        lower = table.columns[0].lower_is_better
        assert u["beats"] == ((u["value"] < u["best_self_supervised"]) if lower else (u["value"] > u["best_self_supervised"]))
    flipped = build_tables(spec, "tiny", _fake_results(spec, False), pd.DataFrame(), base=BASE)
    back = table_checks(spec, "tiny", flipped, _fake_frames(spec, False), base=BASE)
    for t in back["tables"].values():
        assert all(c["verdict"] == ("reversed" if _per_frame_metric(c["metric"]) else "not measurable")
                   for c in t["claims"])
    assert render_markdown(spec, "tiny", frames, checks).startswith("# ")  # written from frames and checks


def test_upper_bound_that_does_not_beat_self_supervision_is_called_undertrained(spec):
    results = _fake_results(spec, True)
    frames = build_tables(spec, "tiny", results, pd.DataFrame(), base=BASE)
    frames["table3"].loc["upper_bound", "MPJPE cm"] = 9.0  # worse than every self-supervised row
    checks = table_checks(spec, "tiny", frames, {}, base=BASE)
    u = checks["tables"]["table3"]["upper_bound"]
    assert u["beats"] is False and u["undertrained"] is True
    frames["table3"].loc["upper_bound", "MPJPE cm"] = 0.1
    assert table_checks(spec, "tiny", frames, {}, base=BASE)["tables"]["table3"]["upper_bound"]["undertrained"] is False


def test_report_without_results_says_not_measurable_and_uses_mlflow(spec):
    assert math.isnan(build_tables(spec, "tiny", {}, pd.DataFrame(), base=BASE)["table3"].loc["loc", "MPJPE cm"])
    runs = pd.DataFrame({"tags.ablation_table3": ["loc"], "tags.stage": ["finetune"],
                         "metrics.val/pa_mpjpe_cm": [2.5],
                         "start_time": pd.to_datetime(["2025-01-01 00:00"]),
                         "end_time": pd.to_datetime(["2025-01-01 00:03"])})
    f = build_tables(spec, "tiny", {}, runs, base=BASE)
    assert f["table3"].loc["loc", "MPJPE cm"] == 2.5 and f["table3"].loc["loc", "source"] == "mlflow"
    assert f["table3"].loc["loc", "mlflow runs"] == 1 and f["table3"].loc["loc", "train min"] == 3.0
    checks = table_checks(spec, "tiny", f, {}, base=BASE)
    claims = checks["tables"]["table3"]["claims"]
    assert all(c["verdict"] == "not measurable" and c["reason"] == "no per-frame values" for c in claims)
    assert checks["tables"]["table3"]["upper_bound"]["beats"] is None


def test_cli_lists_the_experiments(capsys, monkeypatch):
    from s2hand.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["ablations", "list", "--profile", "tiny", "--tables", "table6"]) == 0
    out = capsys.readouterr().out
    assert "tiny-table6-wsl-ground-truth  [table6.wsl_ground_truth]" in out
    assert "dvc exp run --temp -n tiny-upper-bound" in out and "-S train.supervision=full3d" in out
    assert main(["ablations", "list", "--tables", "table99"]) == 1  # one-line error, exit 1


def test_ablation_rows_are_mlflow_runs_tagged_with_table_and_row_under_the_same_metric_names(spec, tmp_path,
                                                                                              monkeypatch):
    """What the MLflow compare view lines up: every experiment's tags name each (table, row) it
    stands for; the stages log them on their runs; the report finds a row's runs by that tag and
    reads the same val/<column> metric names for every row (tests/test_mlflow_server.py: over REST)."""
    import mlflow

    from pipeline.common import mlflow_run, tracking_uri
    from s2hand.ablations.report import mlflow_runs
    from s2hand.config import validate_params

    exps = plan_experiments(spec, "tiny", base=BASE)
    for e in exps:
        assert e.tags == {f"ablation_{t}": r for t, r in e.members}
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    table = spec.tables["table6"]
    logged = [e for e in exps if any(t == "table6" for t, _ in e.members)]
    for i, e in enumerate(logged):
        monkeypatch.setenv("DVC_EXP_NAME", e.name)
        params = validate_params({"mlflow": {"experiment": f"{spec.mlflow_experiment}-tiny", "tags": e.tags}})
        with mlflow_run(table.stages[0], params):
            mlflow.log_metrics({f"val/{c.key}": 0.1 * (i + 1) for c in table.columns})
    runs = mlflow_runs(tracking_uri(tmp_path), f"{spec.mlflow_experiment}-tiny")
    f = build_tables(spec, "tiny", {}, runs, base=BASE)["table6"]
    assert (f["mlflow runs"] == 1).all() and (f["source"] == "mlflow").all()
    for i, e in enumerate(logged):
        for t, r in e.members:
            if t == "table6":
                assert f.loc[r, table.columns[0].label] == pytest.approx(0.1 * (i + 1))


# ----------------------------------------------------------------------------- headline, ci profile
def test_ci_profile_runs_just_the_rows_the_headline_reads(spec):
    exps = plan_experiments(spec, "ci", base=BASE)
    served = {m for e in exps for m in e.members}
    assert spec.headline_rows() <= served and len(spec.headline) >= 5
    assert {e.name for e in exps} == {"ci-default", "ci-table3-all-no-pseudo", "ci-table3-no-ori-no-pseudo",
                                      "ci-upper-bound", "ci-table4-none", "ci-table4-quaternion",
                                      "ci-table6-wsl-ground-truth"}
    assert len(plan_experiments(spec, "full", base=BASE)) > len(exps)  # full runs every row
    frames = build_tables(spec, "ci", {}, pd.DataFrame(), base=BASE)
    assert list(frames["table3"].index) == ["all", "all_no_pseudo", "no_ori_no_pseudo", "upper_bound"]
    assert "table7" not in frames


def test_headline_verdicts_pair_rows_and_read_the_mean_pose_comparison(spec):
    results = _fake_results(spec, True, "ci")
    # the rows the headline compares: the first better, frame by frame (lower error, higher AUC and ACC below)
    better = {("table3", "all"): 1.0, ("table3", "all_no_pseudo"): 1.4, ("table3", "no_ori_no_pseudo"): 1.6,
              ("table3", "upper_bound"): 0.9,
              ("table6", "ssl_mediapipe"): 0.8, ("table6", "wsl_ground_truth"): 0.7,
              ("table5", "quaternion"): 1.0, ("table5", "none"): 1.5}
    cols = {"table3": "pa_mpjpe_cm", "table6": "auc_j", "table5": "acc_mm_frame2"}
    for e in plan_experiments(spec, "ci", base=BASE):
        for t_id, r_id in e.members:
            if (t_id, r_id) in better:
                t = spec.tables[t_id]
                results[e.name]["metrics"][t.metrics_file][t.metrics_prefix][cols[t_id]] = better[(t_id, r_id)]
    default = results["ci-default"]["metrics"]["reports/train/finetune.json"]
    default["vs_baseline"] = {"diff_cm": -0.15, "lo_cm": -0.25, "hi_cm": -0.07, "groups": 50, "frames": 500}
    per_frame = _fake_frames(spec, True, profile="ci", results=results)
    frames = build_tables(spec, "ci", results, pd.DataFrame(), base=BASE)
    checks = table_checks(spec, "ci", frames, per_frame, base=BASE, results=results, commit="abc1234")
    json.dumps(checks, allow_nan=False)
    h = {(c["better"], c["worse"]): c for c in checks["headline"]}
    assert [c["says"] for c in checks["headline"]] == [x.says for x in spec.headline]
    e_ori = h[("all_no_pseudo", "no_ori_no_pseudo")]
    assert e_ori["verdict"] == "held" and e_ori["hi"] < 0
    assert h[("ssl_mediapipe", "wsl_ground_truth")]["verdict"] == "held"
    assert h[("quaternion", "none")]["verdict"] == "held"
    assert h[("upper_bound", "all")]["verdict"] == "held"
    m = h[("all", "mean_pose")]
    assert m["verdict"] == "held" and (m["diff"], m["lo"], m["hi"], m["groups"]) == (-0.15, -0.25, -0.07, 50)
    text = render_markdown(spec, "ci", frames, checks)
    assert text.startswith("# Ablations (ci profile at commit `abc1234`)") and "## Headline comparisons" in text
    assert "5 of 5 measured" in text
    # the same rows the other way round: every comparison measurably reversed
    default["vs_baseline"] = {"diff_cm": 0.15, "lo_cm": 0.07, "hi_cm": 0.25, "groups": 50, "frames": 500}
    for e in plan_experiments(spec, "ci", base=BASE):
        for t_id, r_id in e.members:
            if (t_id, r_id) in better:
                t = spec.tables[t_id]
                results[e.name]["metrics"][t.metrics_file][t.metrics_prefix][cols[t_id]] *= -1
    back = table_checks(spec, "ci", frames, _fake_frames(spec, True, profile="ci", results=results), base=BASE,
                        results=results)
    assert all(c["verdict"] == "reversed" for c in back["headline"])
    # nothing measured: every headline comparison says why
    none = table_checks(spec, "ci", frames, {}, base=BASE, results={})
    assert all(c["verdict"] == "not measurable" and c["reason"] for c in none["headline"])


@pytest.mark.parametrize("bad, match", [
    ({"says": "x", "table": "table3", "better": "all", "worse": "nope", "metric": "pa_mpjpe_cm"}, "no row 'nope'"),
    ({"says": "x", "table": "table3", "better": "all", "worse": "mean_pose", "metric": "auc_j"}, "pa_mpjpe_cm only"),
    ({"says": "x", "table": "table3", "better": "mean_pose", "worse": "all", "metric": "pa_mpjpe_cm"}, "no row"),
    ({"says": "x", "table": "table99", "better": "all", "worse": "loc", "metric": "pa_mpjpe_cm"}, "no table"),
])
def test_bad_headline_stops_with_its_reason(tmp_path, bad, match):
    raw = yaml.safe_load((ROOT / "ablations.yaml").read_text())
    raw["headline"] = [bad]
    path = tmp_path / "ablations.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(AblationError, match=match):
        load_spec(path, None)


# ----------------------------------------------------------------------------- seeds
def _seeded_spec(spec, seeds):
    profiles = {**spec.profiles, "ci": spec.profiles["ci"].model_copy(update={"seeds": seeds})}
    return spec.model_copy(update={"profiles": profiles})


def test_every_row_runs_once_per_seed_of_the_profile(spec):
    assert spec.profiles["full"].seeds == [0, 1, 2]
    one = plan_experiments(spec, "ci", base=BASE)
    three = plan_experiments(_seeded_spec(spec, [0, 1, 2]), "ci", base=BASE)
    assert len(three) == 3 * len(one)
    by_name = {e.name: e for e in three}
    assert "seed" not in by_name["ci-default"].overrides and by_name["ci-default"].seed == 0  # params.yaml's seed
    assert by_name["ci-default-s2"].overrides["seed"] == 2 and by_name["ci-default-s2"].members == by_name["ci-default"].members
    assert "seed=1" in " ".join(exp_run_args(by_name["ci-table3-no-ori-no-pseudo-s1"], spec, "ci", queue=False))
    from s2hand.ablations.spec import Profile
    with pytest.raises(ValueError, match="distinct"):
        Profile(seeds=[1, 1])


def test_intervals_pool_the_seeds_and_pair_frames_within_a_seed(spec):
    seeded = _seeded_spec(spec, [0, 1, 2])
    results = _fake_results(seeded, True, "ci")
    for name, item in results.items():  # every seed's default beats the mean pose
        block = item["metrics"].get("reports/train/finetune.json")
        if block is not None:
            block["vs_baseline"] = {"diff_cm": -0.1, "lo_cm": -0.2, "hi_cm": -0.03, "groups": 50, "frames": 500}
    per_frame = _fake_frames(seeded, True, profile="ci", results=results)
    frames = build_tables(seeded, "ci", results, pd.DataFrame(), base=BASE)
    assert (frames["table3"]["seeds"] == 3).all()
    checks = table_checks(seeded, "ci", frames, per_frame, base=BASE, results=results)
    h = {(c["better"], c["worse"]): c for c in checks["headline"]}
    assert h[("upper_bound", "all")]["groups"] == 30  # 10 sequences in each of 3 seeds
    assert h[("all", "mean_pose")]["verdict"] == "held" and len(h[("all", "mean_pose")]["seeds"]) == 3
    results["ci-default-s1"]["metrics"]["reports/train/finetune.json"]["vs_baseline"].update(hi_cm=0.05)
    again = table_checks(seeded, "ci", frames, per_frame, base=BASE, results=results)
    m = next(c for c in again["headline"] if c["worse"] == "mean_pose")
    assert m["verdict"] == "not measurable" and m["reason"] == "the seeds disagree"


def test_exp_results_leave_out_experiments_still_running(monkeypatch):
    """A running experiment's files are its baseline's until it ends: reading them would pair a row
    with the default's own frames (difference exactly 0)."""
    import subprocess

    from s2hand.ablations import runner

    def rev(name, ts):
        return {"rev": name + "rev", "name": name, "error": None,
                "data": {"timestamp": ts, "params": {"params.yaml": {"data": {"seed": 0}}},
                         "metrics": {"reports/train/finetune.json": {"data": {"val": {"pa_mpjpe_cm": 1.0}}}}}}
    shown = [{"rev": "workspace", "experiments": None},
             {"rev": "abc", "experiments": [
                 {"name": "ci-table6-wsl", "executor": {"state": "running", "name": "tempdir"}, "revs": [rev("ci-table6-wsl", "2")]},
                 {"name": "ci-default", "executor": None, "revs": [rev("ci-default", "1")]}]}]
    monkeypatch.setattr(runner, "_dvc", lambda args, cwd, capture=False: subprocess.CompletedProcess(
        args, 0, stdout=json.dumps(shown), stderr=""))
    out = runner.exp_results(".")
    assert set(out) == {"ci-default"} and out["ci-default"]["metrics"]["reports/train/finetune.json"]["val"]["pa_mpjpe_cm"] == 1.0
