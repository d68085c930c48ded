"""The evaluate stage: report sentences follow the numbers, metrics.json keys, the plot files and
dvc.yaml's declarations, the whole evaluation on a tiny generated dataset with an untrained
network, time runs for ACC, and its error paths.

The FreiHAND evaluation itself is checked against an independent reading of the official script in
tests/test_metrics.py (test_matches_reference_on_random_data, test_cli_evaluate_end_to_end).
    .venv/bin/python -m pytest -q tests/test_evaluate.py
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from s2hand.config import EvaluateParams, TrainParams, VideoParams
from s2hand.data.table import FrameTable, load_split
from s2hand.detect.keypoint_file import load_keypoints
from s2hand.evaluate.report import (
    ACCURACY_KEYS,
    metrics_json,
    paper_directions,
    readme,
    table_keypoint_fit,
    write_curves,
)
from s2hand.evaluate.run import EvalResult, acceleration_metrics, load_eval_split, time_runs
from s2hand.evaluate.stage import EvaluatePaths, run_evaluation
from s2hand.metrics.freihand import UNALIGNED_KEYS
from s2hand.model.files import CheckpointError, load_system, model_record, read_checkpoint
from s2hand.model.system import S2HandSystem
from s2hand.train.loop import BRANCH_PREFIXES, load_branch_weights
from tests.conftest import tiny_params

ROOT = Path(__file__).resolve().parent.parent


def tiny_checkpoint(path: Path, hand_model: Path, stage: str = "finetune", seed: int = 0) -> Path:
    """An untrained network saved the way s2hand.train.loop saves trained ones."""
    params = tiny_params()
    torch.manual_seed(seed)
    system = S2HandSystem.from_params(params, hand_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model_record(system, params.model_copy(update={"seed": seed}), stage, 0), path)
    return path


@pytest.fixture(scope="module")
def tiny_eval(tiny_training_data, tmp_path_factory):
    data, kp_dir, hand = tiny_training_data(10)
    root = tmp_path_factory.mktemp("eval")
    cks = {"s2hand": tiny_checkpoint(root / "ck" / "finetune.pt", hand),
           "s2hand_v": tiny_checkpoint(root / "ck" / "finetune_video.pt", hand, "finetune_video", seed=1)}
    paths = EvaluatePaths(dataset=data, keypoints=kp_dir, hand_model=hand, checkpoints=cks, reports=root / "reports")
    ep = EvaluateParams(split="val", batch_size=8, device="cpu", qualitative_frames=2, qualitative_size=64,
                        keypoint_fit_iters=60)
    summary = run_evaluation(ep, VideoParams(), paths, train_params=TrainParams(max_disagreement=0.2))
    return summary, paths


# ---- report from synthetic numbers -----------------------------------------------------------------

def _model(mpjpe: float, **extra: float) -> dict:
    m = {"auc_j": 1 - mpjpe / 5, "pa_mpjpe_cm": mpjpe, "auc_v": 1 - mpjpe / 5, "pa_mpvpe_cm": mpjpe,
         "f5": 1 - mpjpe / 3, "f15": 1 - mpjpe / 10}
    return {**m, **extra}


SETUP = {"dataset": "synthetic", "split": "test", "frames": 10, "sequences": 2, "image_size": 64, "fps": 30.0,
         "checkpoints": {"s2hand": ("a.pt", 1), "s2hand_v": ("b.pt", 2)}, "temporal_loss": "quaternion",
         "ts": True, "camera": "perspective"}


def _table_rows(lines: list[str]) -> dict[str, list[str]]:
    """A markdown table's body rows, keyed by their first cell."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if line.startswith("| ")]
    return {r[0]: r[1:] for r in rows[1:]}


def test_keypoint_fit_section_reads_the_numbers():
    fit = {"ground_truth_2d": {"pa_mpjpe_cm": 0.8, "pa_mpvpe_cm": 0.7, "frames": 10.0, "proj_mpjpe_px": 0.9},
           "detections": {"pa_mpjpe_cm": 1.2, "pa_mpvpe_cm": 1.1, "frames": 6.0, "proj_mpjpe_px": 7.0,
                          "mean_pose_pa_mpjpe_cm": 1.0, "mean_pose_pa_mpvpe_cm": 0.9, "detector_mpjpe_px": 8.0},
           "detections_kept": {"pa_mpjpe_cm": 0.8, "pa_mpvpe_cm": 0.7, "frames": 4.0, "proj_mpjpe_px": 5.0,
                               "mean_pose_pa_mpjpe_cm": 1.0, "mean_pose_pa_mpvpe_cm": 0.9, "detector_mpjpe_px": 4.0}}
    m = {"frames": 10, "mean_pose": _model(1.05), "s2hand": _model(1.1, proj_mpjpe_px=9.0), "keypoint_fit": fit}
    rows = _table_rows(table_keypoint_fit(m))
    assert rows["fitted to the detected keypoints"] == ["6", "1.200", "1.100", "1.000", "+20.0 %", "7.00", "8.00"]
    assert rows["... on the frames training keeps"] == ["4", "0.800", "0.700", "1.000", "-20.0 %", "5.00", "4.00"]
    assert rows["fitted to ground-truth 2D keypoints"][:4] == ["10", "0.800", "0.700", "1.050"]
    assert "... on the frames its filters drop" not in rows  # no such part: no row
    assert table_keypoint_fit({"frames": 10}) == []  # keypoint_fit_iters: 0 -> no section


def test_paper_directions_follow_the_numbers():
    video = dict(acc_mm_frame2=1.0, acc_err_mm_frame2=1.0, quat_loss=0.01, texture_sd=0.01, shape_sd=0.01)
    worse_video = {k: 2 * v for k, v in video.items()}
    good = {"s2hand": _model(1.2, **worse_video), "s2hand_v": _model(1.0, **video), "mean_pose": _model(1.5)}
    bad = {"s2hand": _model(1.0, **video), "s2hand_v": _model(1.2, **worse_video), "mean_pose": _model(0.9)}
    held, against = paper_directions(good, SETUP), paper_directions(bad, SETUP)
    assert held["table_1_2"] == {"flags": dict.fromkeys(ACCURACY_KEYS, True), "verdict": "held"}
    assert against["table_1_2"] == {"flags": dict.fromkeys(ACCURACY_KEYS, False), "verdict": "did not hold"}
    measures = {"table_4": {"pa_mpjpe_cm", "pa_mpvpe_cm"}, "table_5": {"acc_mm_frame2", "acc_err_mm_frame2", "quat_loss"},
                "table_9": {"texture_sd", "shape_sd"}}
    for table, names in measures.items():
        assert held[table] == {"flags": dict.fromkeys(names, True), "verdict": "held"}, table
        assert against[table] == {"flags": dict.fromkeys(names, False), "verdict": "did not hold"}, table
    mixed = {**bad, "s2hand_v": {**bad["s2hand_v"], "texture_sd": 0.005}}
    assert paper_directions(mixed, SETUP)["table_9"] == {"flags": {"texture_sd": True, "shape_sd": False},
                                                         "verdict": "held on 1 of 2 measures"}
    # without T&S the paper's S.D.s rose: rising numbers now follow the paper
    assert paper_directions(bad, {**SETUP, "ts": False})["table_9"]["verdict"] == "held"
    assert readme(good, SETUP).startswith("# ")  # the README is written from these


def test_paired_comparison_verdicts_reach_the_report_data():
    c = {"diff_cm": -0.02, "lo_cm": -0.05, "hi_cm": 0.01, "better": False, "worse": False, "groups": 6,
         "frames": 180, "frames_better": 0.55}
    assert metrics_json({}, None, {}, 3, vs_mean_pose={"s2hand": c})["vs_mean_pose"]["s2hand"] == c
    from s2hand.evaluate.stage import judged

    assert judged(c)["verdict"] == "not measurable" and judged({**c, "hi_cm": -0.01})["verdict"] == "held"
    assert judged({**c, "lo_cm": 0.01})["verdict"] == "reversed"
    assert judged({**c, "lo_cm": None, "hi_cm": None})["verdict"] == "not measurable"
    few = {**c, "lo_cm": None, "hi_cm": None, "groups": 2}  # no interval: the README is still written
    for comparisons in ({"s2hand": c, "s2hand_v": {**c, "hi_cm": -0.01, "better": True}}, {"s2hand": judged(few)}):
        assert readme({"s2hand": _model(1.0), "mean_pose": _model(1.02), "vs_mean_pose": comparisons},
                      SETUP).startswith("# ")


def test_paper_directions_with_numbers_missing_or_no_paper_row():
    m = {"s2hand": _model(1.0), "s2hand_v": _model(1.0, quat_loss=None), "mean_pose": _model(1.0)}
    setup = {**SETUP, "temporal_loss": "smooth", "ts": False}
    held = paper_directions(m, setup)
    assert held["table_9"] == {"flags": {"texture_sd": None, "shape_sd": None},
                               "verdict": "could not be checked (numbers missing)"}
    assert held["table_5"]["flags"]["quat_loss"] is None
    assert paper_directions({"s2hand": _model(1.0)}, SETUP)["table_1_2"]["flags"] == {}  # no S2HAND(V)
    none = paper_directions(m, {**SETUP, "temporal_loss": "none"})
    assert none["table_4"] is None and none["table_5"] is None  # the paper has no such row
    assert readme(m, setup).startswith("# ")


def _result(metrics: dict, n: int = 5) -> EvalResult:
    t = list(np.linspace(0, 5, n))
    curves = {"thresholds_cm": t, "pck_j": list(np.linspace(0, 1, n)), "pck_v": list(np.linspace(0, 1, n)),
              "within_px": list(np.linspace(0, 1, 3)), "within_px_branch2d": list(np.linspace(0, 0.5, 3))}
    return EvalResult(metrics, curves, {})


def test_metrics_json_is_numbers_only():
    res = {"s2hand": _result({"pa_mpjpe_cm": 1.0, "pa_mpvpe_cm": float("nan")}),
           "mean_pose": _result({"pa_mpjpe_cm": 2.0})}
    det = EvalResult({"mpjpe_px": 3.0, "detected_fraction": 0.5}, {"within_px": [0, 1, 1]}, {})
    m = metrics_json(res, det, {"acc_mm_s2": 10.0}, frames=7)
    assert m == {"frames": 7, "s2hand": {"pa_mpjpe_cm": 1.0, "pa_mpvpe_cm": None}, "mean_pose": {"pa_mpjpe_cm": 2.0},
                 "detector": {"detected_fraction": 0.5, "mpjpe_px": 3.0}, "ground_truth": {"acc_mm_s2": 10.0}}
    json.dumps(m, allow_nan=False)


def test_curve_files_and_dvc_yaml_agree(tmp_path):
    res = {"s2hand": _result({}), "s2hand_v": _result({}), "mean_pose": _result({})}
    del res["mean_pose"].curves["within_px"], res["mean_pose"].curves["within_px_branch2d"]
    det = EvalResult({}, {"within_px": [0.0, None, 1.0]}, {})
    write_curves(tmp_path, res, det, [0.0, 1.0, 2.0])
    headers = {}
    for f in ("pck_joints.csv", "pck_verts.csv", "within_2d.csv"):
        rows = list(csv.reader((tmp_path / f).open()))
        headers[f] = rows[0]
        assert len({len(r) for r in rows}) == 1
        for r in rows[1:]:
            assert all(x == "" or np.isfinite(float(x)) for x in r)
    assert headers["pck_joints.csv"] == ["threshold_cm", "s2hand", "s2hand_v", "mean_pose"]
    assert headers["within_2d.csv"] == ["threshold_px", "s2hand_projected", "s2hand_branch2d", "s2hand_v_projected",
                                        "s2hand_v_branch2d", "detector"]
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stage = dvc["stages"]["evaluate"]
    assert "reports/metrics.json" in [next(iter(x)) if isinstance(x, dict) else x for x in stage["metrics"]]
    declared = {next(iter(x)) if isinstance(x, dict) else x for x in stage["outs"]}  # curves: outs drawn by top-level plots
    for plot in dvc["plots"]:
        (_, spec), = plot.items()
        for file, cols in spec["y"].items():
            name = Path(file).name
            assert file in declared and spec["x"] == headers[name][0]
            assert set(cols) <= set(headers[name]), (file, cols)


def test_time_runs_split_at_cuts_and_gaps():
    seq = np.array([1, 1, 1, 1, 0, 0, 0, 2, -1])
    frame = np.array([3, 0, 1, 2, 0, 1, 3, 0, 0])  # seq 0 misses frame 2
    cut = np.array([False, False, False, True, False, False, False, False, False])  # cut before seq 1 frame 2
    t = FrameTable(image=np.array([f"{i}" for i in range(9)]), K=np.tile(np.eye(3), (9, 1, 1)), seq=seq, frame=frame,
                   cut=cut)
    order, run = time_runs(t)
    assert order.tolist() == [4, 5, 6, 1, 2, 3, 0, 7]  # still image (seq -1) left out
    assert run.tolist() == [0, 0, 1, 2, 2, 3, 3, 4]
    # constant velocity along each run: ACC = 0, ACC-ERR = 0 against itself
    j = np.zeros((9, 21, 3))
    j[:, :, 0] = frame[:, None] * 0.01
    t2 = FrameTable(image=t.image[:4], K=t.K[:4], seq=np.zeros(4, np.int64), frame=np.arange(4))
    m = acceleration_metrics(j[:4][np.argsort(frame[:4])], j[:4][np.argsort(frame[:4])], t2, fps=30.0)
    assert m["acc_mm_frame2"] == pytest.approx(0.0, abs=1e-9) and m["acc_err_mm_s2"] == pytest.approx(0.0, abs=1e-6)
    assert m["acc_cam_mm_frame2"] == pytest.approx(0.0, abs=1e-9)
    assert acceleration_metrics(j, j, t, fps=None) == {}  # no run of 3 frames


# ---- the whole evaluation, untrained network, tiny data ------------------------------------------------

def test_evaluation_on_tiny_data(tiny_eval, tiny_training_data):
    summary, paths = tiny_eval
    m = summary["metrics"]
    reports = paths.reports
    assert json.loads((reports / "metrics.json").read_text()) == m
    for name in ("s2hand", "s2hand_v"):
        keys = set(m[name])
        assert set(ACCURACY_KEYS) | set(UNALIGNED_KEYS) <= keys
        assert {"proj_mpjpe_px", "hg_mpjpe_px", "acc_mm_s2", "acc_err_mm_s2", "acc_mm_frame2",
                "acc_err_mm_frame2", "quat_loss", "texture_sd", "shape_sd"} <= keys
        assert m[name]["acc_mm_s2"] == pytest.approx(m[name]["acc_mm_frame2"] * 30.0 ** 2)
        assert 0 <= m[name]["auc_j"] <= 1 and m[name]["pa_mpjpe_cm"] > 0
    assert m["frames"] == len(load_split(paths.dataset, "val"))
    # articulation: each model and the mean pose (a constant hand: no correlation, no gap)
    assert set(m["articulation"]) == {"s2hand", "s2hand_v", "mean_pose"}
    assert m["articulation"]["mean_pose"]["gap_ratio"] == pytest.approx(0, abs=1e-6)
    assert m["articulation"]["s2hand"]["closed"]["gt"] <= m["articulation"]["s2hand"]["open"]["gt"]
    assert 0 < m["detector"]["detected_fraction"] <= 1
    # the baseline here is s2hand.model.baseline's mean-pose baseline
    from s2hand.hand.layer import HandLayer
    from s2hand.model.baseline import mean_pose_baseline

    ref = mean_pose_baseline(HandLayer.from_file(paths.hand_model), load_split(paths.dataset, "train"),
                             load_split(paths.dataset, "val"))
    assert m["mean_pose"]["pa_mpjpe_cm"] == pytest.approx(ref["pa_mpjpe_cm"])
    assert m["mean_pose"]["pa_mpvpe_cm"] == pytest.approx(ref["pa_mpvpe_cm"])
    for name in ("s2hand", "s2hand_v"):  # the paired comparison's difference is the difference of the means
        c = m["vs_mean_pose"][name]
        assert c["diff_cm"] == pytest.approx(m[name]["pa_mpjpe_cm"] - m["mean_pose"]["pa_mpjpe_cm"], abs=1e-6)
        assert c["frames"] == m["frames"] and isinstance(c["frames"], int) and isinstance(c["better"], bool)
    for name in ("s2hand", "s2hand_v"):  # projected error on the detector's keypoints (its own error's frames)
        assert m[name]["proj_mpjpe_px_on_detected"] > 0
    v = m["s2hand_v_vs_s2hand"]  # S2HAND(V) against S2HAND, paired
    from s2hand.metrics.compare import verdict

    judged = json.loads((reports / "verdicts.json").read_text())  # the README's comparisons with verdicts
    assert judged == json.loads(json.dumps(summary["verdicts"]))
    for name, c in judged["vs_mean_pose"].items():  # one verdict each, from the interval (paper: lower)
        assert c["verdict"] == verdict({"lo": c["lo_cm"], "hi": c["hi_cm"]}, paper_lower=True)
        assert {k: x for k, x in c.items() if k != "verdict"} == m["vs_mean_pose"][name]
    jv = judged["s2hand_v_vs_s2hand"]
    assert jv["pa_mpjpe"]["verdict"] == verdict({"lo": jv["pa_mpjpe"]["lo_cm"], "hi": jv["pa_mpjpe"]["hi_cm"]}, True)
    assert jv["acc_mm_frame2"]["verdict"] == verdict(jv["acc_mm_frame2"], paper_lower=True)
    assert v["pa_mpjpe"]["diff_cm"] == pytest.approx(m["s2hand_v"]["pa_mpjpe_cm"] - m["s2hand"]["pa_mpjpe_cm"], abs=1e-6)
    assert v["acc_mm_frame2"]["diff"] == pytest.approx(v["acc_mm_frame2"]["s2hand_v"] - v["acc_mm_frame2"]["s2hand"])
    assert (reports / "README.md").read_text().startswith("# ")  # written from metrics.json and verdicts.json
    # keypoint fits: to ground-truth 2D on every frame, to the detections on the frames with any
    fits = m["keypoint_fit"]
    assert fits["ground_truth_2d"]["frames"] == m["frames"]
    kp = load_keypoints(paths.keypoints / "val.json")
    assert fits["detections"]["frames"] == (kp.conf.max(axis=1) > 0).sum()
    parts = [fits[k]["frames"] for k in ("detections_kept", "detections_dropped") if k in fits]
    assert parts and sum(parts) == fits["detections"]["frames"]  # training's filters split the detected frames
    # 60 Adam steps move the hand from the image centre onto the ground-truth keypoints
    assert fits["ground_truth_2d"]["proj_mpjpe_px"] < 0.5 * m["s2hand"]["proj_mpjpe_px"]
    assert fits["detections"]["mean_pose_pa_mpjpe_cm"] > 0
    import cv2

    q = cv2.imread(str(reports / "evaluate" / "qualitative.png"))
    assert q.shape[1] == 5 * 64 and q.shape[0] >= 4 * 64  # 2 frames x 2 models, 5 panels of 64 px
    assert cv2.imread(str(reports / "evaluate" / "pck.png")) is not None
    rows = list(csv.reader((reports / "evaluate" / "pck_joints.csv").open()))
    assert len(rows) == 101 and float(rows[-1][0]) == pytest.approx(5.0)


def test_evaluation_failure_leaves_the_old_report(tiny_eval, tmp_path):
    summary, paths = tiny_eval
    before = (paths.reports / "README.md").read_text()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    bad = EvaluatePaths(paths.dataset, paths.keypoints, paths.hand_model, {"s2hand": broken}, paths.reports)
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        run_evaluation(EvaluateParams(split="val", device="cpu"), VideoParams(), bad)
    assert (paths.reports / "README.md").read_text() == before


def test_error_paths(tiny_training_data, tmp_path):
    data, _, hand = tiny_training_data(10)
    with pytest.raises(FileNotFoundError, match="no such split"):
        load_eval_split(data, "test")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a trained model file"):
        read_checkpoint(tmp_path / "other.pt")
    # a split without 3D ground truth (FreiHAND's test set) is refused with the reason
    t = load_split(data, "val")
    stripped = FrameTable(image=t.image, K=t.K, seq=t.seq, frame=t.frame)
    bare = tmp_path / "bare"
    bare.mkdir()
    stripped.save(bare / "test.npz")
    (bare / "meta.json").write_text("{}")
    with pytest.raises(ValueError, match="no joints3d, verts, joints2d"):
        load_eval_split(bare, "test")
    ck = tiny_checkpoint(tmp_path / "ck.pt", hand)
    system, info = load_system(ck, hand)
    assert info == {"stage": "finetune", "step": 0, "input_size": 64} and not system.training
    old = {k: v for k, v in torch.load(ck, weights_only=True).items() if k != "encoder"}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="without the encoder spec"):
        read_checkpoint(tmp_path / "old.pt")


@pytest.mark.parametrize("init", ["imagenet", "random"])
def test_model_file_reloads_the_same_network(tiny_training_data, tmp_path, init):
    """The reloaded network computes what the saved one did, also when it started from the shipped
    Lite0 weights (a TensorFlow port: 'same' padding, BatchNorm eps 1e-3, other input statistics,
    none of which its state dict records)."""
    _, _, hand = tiny_training_data(10)
    params = tiny_params(train={"model": {"encoder_init": init}})
    torch.manual_seed(0)
    system = S2HandSystem.from_params(params, hand).eval()
    with torch.no_grad():  # move BatchNorm statistics off their init so that eps and stats matter
        for m in system.net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.0005, 0.002)
    torch.save(model_record(system, params, "finetune", 3), tmp_path / "m.pt")
    loaded, info = load_system(tmp_path / "m.pt", hand)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = system.net(images, branch="3d"), loaded.net(images, branch="3d")
    for k in ("pose_pca", "shape", "scale", "rot", "trans", "face_colors", "light"):
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    assert info["step"] == 3 and loaded.net.encoder.spec == system.net.encoder.spec
    other = "random" if init == "imagenet" else "imagenet"
    params2 = tiny_params(train={"model": {"encoder_init": other}})
    net2 = S2HandSystem.from_params(params2, hand).net
    with pytest.raises(ValueError, match="encoder_init / encoder_weights changed between stages"):
        load_branch_weights(net2, tmp_path / "m.pt", BRANCH_PREFIXES["3d"])
    assert load_branch_weights(net2, tmp_path / "m.pt", BRANCH_PREFIXES["2d"]) > 0


def test_frame_values_mark_every_frame_and_acceleration_only_inside_runs():
    from s2hand.model.scores import FRAME_COLUMNS, frame_values

    seq = np.array([1, 1, 1, 1, 0, 0, 0, 2, -1])
    frame = np.array([3, 0, 1, 2, 0, 1, 3, 0, 0])
    r = np.random.default_rng(0)
    gt = r.normal(0, 0.05, (9, 21, 3))
    t = FrameTable(image=np.array([f"{i}" for i in range(9)]), K=np.tile(np.eye(3), (9, 1, 1)), seq=seq,
                   frame=frame, joints3d=gt)
    v = frame_values({"joints": gt + r.normal(0, 0.01, gt.shape)}, t)
    assert set(v) <= set(FRAME_COLUMNS) and all(len(x) == 9 for x in v.values())
    assert v["seq"].tolist() == seq.tolist() and v["frame"].tolist() == frame.tolist()
    # runs: seq 0 frames 0,1 | seq 0 frame 3 | seq 1 frames 0-3 (inner: 1, 2) | seq 2 | still image
    assert np.flatnonzero(np.isfinite(v["acc_mm_frame2"])).tolist() == [2, 3]
    assert frame_values({}, t) == {}


def test_qualitative_frames_run_from_the_most_closed_hand_to_the_most_open():
    from s2hand.evaluate.stage import qualitative_indices

    s = np.array([0.9, 0.4, 0.7, 1.0, 0.5, 0.8])
    assert qualitative_indices(6, 3, s).tolist() == [1, 2, 3]  # ranks 0, 2 (or 3), 5
    assert qualitative_indices(6, 10, s).tolist() == [1, 4, 2, 5, 0, 3]  # at most every frame
    assert qualitative_indices(6, 2).tolist() == [1, 4]  # without ground truth: spread over the split
