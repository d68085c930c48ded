"""Metrics: invariants, hand-computed cases, an independent reference of the official FreiHAND
evaluation, the submission format and the `s2hand evaluate` command.

    .venv/bin/python -m pytest -q tests/test_metrics.py
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from s2hand import cli
from s2hand.hand.keypoints import OPENPOSE_TO_HO3D
from s2hand.metrics import (
    ALL_METRIC_KEYS,
    AUC_THRESHOLDS_M,
    SubmissionError,
    acceleration,
    acceleration_error,
    auc,
    evaluate_freihand,
    frames_within_distance,
    fscore,
    mpjpe_2d,
    pck_curve,
    procrustes_align,
    read_freihand_gt,
    read_submission,
    scale_translation_align,
    sequence_acceleration,
    sequence_shape_sd,
    sequence_texture_sd,
    shape_sd,
    texture_sd,
    write_submission,
)

H = 0.05 / 99  # spacing of the 100 official thresholds


def hand_like(rng, s=4, v=60):
    """(s, 21, 3) keypoints and (s, v, 3) vertices in front of the camera, metres."""
    xyz = rng.normal(0, 0.04, (s, 21, 3)) + [0, 0, 0.6]
    verts = rng.normal(0, 0.04, (s, v, 3)) + [0, 0, 0.6]
    return xyz, verts


def similarity(x, rot, scale, trans):
    return scale * x @ rot.T + trans


# ---- an independent reference, written from the official script (loops, scipy) ----------------

def ref_align(gt, pred):
    t1, t2 = gt.mean(0), pred.mean(0)
    a, b = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(a) + 1e-8, np.linalg.norm(b) + 1e-8
    a, b = a / s1, b / s2
    r, s = orthogonal_procrustes(a, b)
    return b @ r.T * s * s1 + t1


def ref_align_by_keypoints(gt_xyz, pred_xyz, pred_verts):
    t1, t2 = gt_xyz.mean(0), pred_xyz.mean(0)
    a, b = gt_xyz - t1, pred_xyz - t2
    s1, s2 = np.linalg.norm(a) + 1e-8, np.linalg.norm(b) + 1e-8
    r, s = orthogonal_procrustes(a / s1, b / s2)
    c = pred_verts.mean(0)
    return (pred_verts - c) @ r.T * s * s1 + (t1 - t2) + c


def ref_fscore(gt, pr, th):
    d_gt = cKDTree(pr).query(gt)[0]
    d_pr = cKDTree(gt).query(pr)[0]
    p = sum(1 for d in d_pr if d < th) / len(d_pr)
    r = sum(1 for d in d_gt if d < th) / len(d_gt)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


class RefEvalUtil:
    def __init__(self, k):
        self.data = [[] for _ in range(k)]

    def feed(self, gt, pred):
        for i in range(len(gt)):
            self.data[i].append(math.sqrt(sum((gt[i][c] - pred[i][c]) ** 2 for c in range(3))))

    def measures(self):
        ts = np.linspace(0.0, 0.05, 100)
        norm = np.trapezoid(np.ones_like(ts), ts)
        means, aucs = [], []
        for d in self.data:
            d = np.array(d)
            means.append(d.mean())
            aucs.append(np.trapezoid([np.mean(d <= t) for t in ts], ts) / norm)
        return float(np.mean(means)), float(np.mean(aucs))


def ref_evaluate(gt_xyz, gt_verts, pred_xyz, pred_verts):
    is_mano = pred_verts.shape[1] == gt_verts.shape[1]
    ej, eja, ev, eva = RefEvalUtil(21), RefEvalUtil(21), RefEvalUtil(gt_verts.shape[1]), RefEvalUtil(gt_verts.shape[1])
    f, fa = [], []
    for i in range(len(gt_xyz)):
        ej.feed(gt_xyz[i], pred_xyz[i])
        eja.feed(gt_xyz[i], ref_align(gt_xyz[i], pred_xyz[i]))
        if is_mano:
            ev.feed(gt_verts[i], pred_verts[i])
            va = ref_align(gt_verts[i], pred_verts[i])
            eva.feed(gt_verts[i], va)
        else:
            va = ref_align_by_keypoints(gt_xyz[i], pred_xyz[i], pred_verts[i])
        f.append([ref_fscore(gt_verts[i], pred_verts[i], t) for t in (0.005, 0.015)])
        fa.append([ref_fscore(gt_verts[i], va, t) for t in (0.005, 0.015)])
    out = {}
    for prefix, suffix, j, v, ff in (("pa_", "", eja, eva, fa), ("", "_unaligned", ej, ev, f)):
        m, a = j.measures()
        out[prefix + "mpjpe_cm" + suffix], out["auc_j" + suffix] = m * 100, a
        if is_mano:
            m, a = v.measures()
            out[prefix + "mpvpe_cm" + suffix], out["auc_v" + suffix] = m * 100, a
        else:
            out[prefix + "mpvpe_cm" + suffix] = out["auc_v" + suffix] = float("nan")
        out["f5" + suffix], out["f15" + suffix] = np.mean(ff, axis=0).tolist()
    return out


def assert_metrics_close(a, b, tol=1e-6):
    assert set(a) >= set(ALL_METRIC_KEYS) and set(b) >= set(ALL_METRIC_KEYS)
    for k in ALL_METRIC_KEYS:
        if math.isnan(b[k]):
            assert math.isnan(a[k]), k
        else:
            assert a[k] == pytest.approx(b[k], abs=tol), k


# ---- FreiHAND metrics ---------------------------------------------------------------------------

# The official alignment adds 1e-8 to both norms, so an aligned perfect prediction is off by about
# 1e-7 of its size (~1e-9 m), and PCK at the first threshold, t = 0 (inclusive), then misses: the
# official aligned AUC of a perfect prediction is 1 - 0.5/99 (or 1 where round-off happens to vanish).
ALIGNED_AUC_OF_PERFECT = 1 - 0.5 / 99


def test_perfect_prediction():
    xyz, verts = hand_like(np.random.default_rng(0))
    m = evaluate_freihand(xyz, verts, xyz.copy(), verts.copy())
    assert m["mpjpe_cm_unaligned"] == m["mpvpe_cm_unaligned"] == 0.0
    for k in ("auc_j", "auc_v", "f5", "f15"):
        assert m[k + "_unaligned"] == 1.0, k
    assert m["pa_mpjpe_cm"] < 1e-5 and m["pa_mpvpe_cm"] < 1e-5
    assert m["f5"] == m["f15"] == 1.0
    assert ALIGNED_AUC_OF_PERFECT - 1e-12 <= m["auc_j"] <= 1.0 and ALIGNED_AUC_OF_PERFECT - 1e-12 <= m["auc_v"] <= 1.0


@pytest.mark.parametrize("mirror", [False, True])
def test_similarity_copy_is_perfect_after_alignment(mirror):
    rng = np.random.default_rng(1)
    xyz, verts = hand_like(rng)
    rot = Rotation.from_rotvec([0.3, -1.2, 0.7]).as_matrix()
    if mirror:  # the official Procrustes allows reflections, so a mirrored copy aligns perfectly too
        rot = rot @ np.diag([1.0, 1.0, -1.0])
    px, pv = similarity(xyz, rot, 1.3, [0.05, -0.02, 0.1]), similarity(verts, rot, 1.3, [0.05, -0.02, 0.1])
    m = evaluate_freihand(xyz, verts, px, pv)
    assert m["pa_mpjpe_cm"] < 1e-5 and m["pa_mpvpe_cm"] < 1e-5
    assert m["f5"] == m["f15"] == 1.0
    assert m["auc_j"] >= ALIGNED_AUC_OF_PERFECT - 1e-12 and m["auc_v"] >= ALIGNED_AUC_OF_PERFECT - 1e-12
    assert m["mpjpe_cm_unaligned"] > 5 and m["auc_j_unaligned"] < 0.5 and m["f5_unaligned"] < 0.5
    np.testing.assert_allclose(procrustes_align(px[0], xyz[0]), xyz[0], atol=1e-8)


def test_constant_offset_by_hand():
    # vertices on a 5 cm grid, so a 1 cm shift keeps each point's nearest neighbour its own copy
    g = np.stack(np.meshgrid(*[np.arange(3) * 0.05] * 3, indexing="ij"), -1).reshape(-1, 3)   # (27, 3)
    rng = np.random.default_rng(2)
    xyz, _ = hand_like(rng, s=3)
    verts = np.stack([g + [0, 0, 0.6]] * 3)
    off = np.array([0.0, 0.01, 0.0])
    m = evaluate_freihand(xyz, verts, xyz + off, verts + off)
    # PCK is 0 for t_i < 1 cm (i <= 19) and 1 from t_20 = 1.0101 cm: trapezoid area 0.5 h + 79 h, of 99 h
    assert m["mpjpe_cm_unaligned"] == pytest.approx(1.0) and m["mpvpe_cm_unaligned"] == pytest.approx(1.0)
    assert m["auc_j_unaligned"] == pytest.approx(79.5 / 99) and m["auc_v_unaligned"] == pytest.approx(79.5 / 99)
    assert m["f5_unaligned"] == 0.0 and m["f15_unaligned"] == 1.0
    assert m["pa_mpjpe_cm"] < 1e-5 and m["f5"] == 1.0


def test_pck_auc_by_hand():
    errors = np.array([[0.0], [0.02]])                  # (S=2, K=1)
    pck = pck_curve(errors)
    assert pck[0] == 0.5 and pck[39] == 0.5 and pck[40] == 1.0   # t_40 = 2.0202 cm
    assert auc(pck) == pytest.approx((0.5 * 99 + 0.5 * 59.5) / 99)
    assert pck_curve(np.array([[0.05]]))[-1] == 1.0            # inclusive at the threshold
    # per-keypoint curves are averaged over keypoints
    np.testing.assert_allclose(pck_curve(np.array([[0.0, 1.0]])), 0.5)
    assert len(AUC_THRESHOLDS_M) == 100 and AUC_THRESHOLDS_M[-1] == 0.05


def test_fscore_by_hand_and_symmetry():
    gt = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    f, p, r = fscore(gt[:2], gt, 0.1)                   # every prediction is right, half the gt found
    assert (p, r) == (1.0, 0.5) and f == pytest.approx(2 / 3)
    assert fscore(gt, gt[:2], 0.1) == pytest.approx((2 / 3, 0.5, 1.0))   # swapped roles swap p and r
    pred = np.concatenate([gt[:2], gt[2:] + 5.0])
    assert fscore(pred, gt, 0.1) == pytest.approx((0.5, 0.5, 0.5))
    assert fscore(gt + [0.25, 0, 0], gt, 0.25)[0] == 0.0       # strict: distance == threshold misses
    assert fscore(gt + [0.25, 0, 0], gt, 0.2501)[0] == 1.0
    assert fscore(gt + 9.0, gt, 0.1) == (0.0, 0.0, 0.0)


def test_matches_reference_on_random_data():
    rng = np.random.default_rng(3)
    xyz, verts = hand_like(rng, s=6, v=120)
    rot = Rotation.from_rotvec([0.2, 0.1, -0.4]).as_matrix()
    px = similarity(xyz, rot, 0.9, [0.01, 0, 0.02]) + rng.normal(0, 0.01, xyz.shape)
    pv = similarity(verts, rot, 0.9, [0.01, 0, 0.02]) + rng.normal(0, 0.008, verts.shape)
    m = evaluate_freihand(xyz, verts, px, pv)
    assert 0.1 < m["auc_j"] < 0.95 and 0 < m["f5"] < 1 and 0 < m["f15"] < 1   # not a degenerate case
    assert_metrics_close(m, ref_evaluate(xyz, verts, px, pv))
    # a non-MANO prediction (other vertex count): mesh errors undefined, F-scores via keypoint transform
    m = evaluate_freihand(xyz, verts, px, pv[:, :90])
    assert math.isnan(m["pa_mpvpe_cm"]) and math.isnan(m["auc_v_unaligned"])
    assert_metrics_close(m, ref_evaluate(xyz, verts, px, pv[:, :90]))


def test_procrustes_matches_scipy():
    rng = np.random.default_rng(4)
    for _ in range(5):
        gt, pred = rng.normal(size=(21, 3)), rng.normal(size=(21, 3))
        np.testing.assert_allclose(procrustes_align(pred, gt), ref_align(gt, pred), atol=1e-10)


def test_scale_translation_align():
    rng = np.random.default_rng(5)
    gt, pred = rng.normal(size=(21, 3)), rng.normal(size=(21, 3))
    out = scale_translation_align(pred, gt)
    np.testing.assert_allclose(out[0], gt[0])
    assert np.linalg.norm(out[9] - out[0]) == pytest.approx(np.linalg.norm(gt[9] - gt[0]))


# ---- video and 2D metrics -----------------------------------------------------------------------

def test_acceleration():
    t = np.arange(10)[:, None, None] / 30.0                          # 30 fps, (T, 1, 1) seconds
    base = np.random.default_rng(6).normal(size=(1, 21, 3))
    direction = np.array([0.6, 0.0, 0.8])
    cam = dict(root=None)                                             # camera space: the whole hand moves
    assert acceleration(base + t * direction * 0.5, fps=30, **cam) == pytest.approx(0, abs=1e-6)  # constant velocity
    a = 2.0                                                           # m/s^2
    traj = base + 0.5 * a * t**2 * direction
    assert acceleration(traj, fps=30, **cam) == pytest.approx(a * 1000)      # mm/s^2
    assert acceleration(traj, **cam) == pytest.approx(a * 1000 / 30**2)      # mm/frame^2
    assert acceleration_error(traj, traj, fps=30, **cam) == pytest.approx(0)
    assert acceleration_error(traj, base + 0 * t, fps=30, **cam) == pytest.approx(a * 1000)
    ids = np.array([0] * 10 + [1] * 10 + [2] * 2)                    # a 2-frame sequence is skipped
    joints = np.concatenate([traj, base + 0 * t, base + 0 * t[:2]])
    assert sequence_acceleration(joints, ids, fps=30, **cam) == pytest.approx(a * 1000 / 2)
    with pytest.raises(ValueError):
        acceleration(traj[:2])


def test_acceleration_is_wrist_relative_by_default():
    """The default ACC (VIBE's convention, root subtracted) ignores how the whole hand is placed; it
    equals the camera-space ACC when the wrist stays still."""
    t = np.arange(10)[:, None, None] / 30.0
    base = np.random.default_rng(8).normal(size=(1, 21, 3))
    jitter = np.random.default_rng(9).normal(scale=0.01, size=(10, 1, 3))   # placement noise, the same for all joints
    assert acceleration(base + jitter) == pytest.approx(0, abs=1e-9)
    assert acceleration(base + jitter, root=None) > 1.0
    fingers = base + 0.5 * 2.0 * t**2 * np.array([0.0, 0.6, 0.8]) * (np.arange(21) > 0)[None, :, None]
    assert acceleration(fingers, fps=30) == pytest.approx(acceleration(fingers, fps=30, root=None))
    assert acceleration(fingers + jitter, fps=30) == pytest.approx(acceleration(fingers, fps=30))
    assert acceleration_error(fingers + jitter, fingers) == pytest.approx(0, abs=1e-9)
    ids = np.zeros(10, int)
    assert sequence_acceleration(fingers + jitter, ids) == pytest.approx(acceleration(fingers))


def test_texture_and_shape_sd():
    rng = np.random.default_rng(7)
    tex = np.repeat(rng.uniform(size=(1, 1538, 3)), 5, axis=0)
    assert texture_sd(tex) == pytest.approx(0, abs=1e-12) and shape_sd(np.zeros((4, 10))) == 0.0
    betas = np.array([[1.0] * 10, [-1.0] * 10] * 3)                  # SD 1 in every dimension
    assert shape_sd(betas) == pytest.approx(1.0)
    ids = np.array([0] * 6 + [1] * 6)
    assert sequence_shape_sd(np.concatenate([betas, np.zeros((6, 10))]), ids) == pytest.approx(0.5)
    assert sequence_texture_sd(np.concatenate([tex, tex]), np.array([0] * 5 + [1] * 5)) == pytest.approx(0, abs=1e-12)


def test_pose2d():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = [3, 4]                                               # 5 px
    pred[1, 2] = [0, 10]                                              # 10 px
    assert mpjpe_2d(pred, gt) == pytest.approx(15 / 6)
    mask = np.array([[True, True, True], [True, True, False]])
    assert mpjpe_2d(pred, gt, mask) == pytest.approx(1.0)
    np.testing.assert_allclose(frames_within_distance(pred, gt, [4, 5, 10]), [0, 0.5, 1.0])
    np.testing.assert_allclose(frames_within_distance(pred, gt, [0, 5], mask), [0.5, 1.0])


# ---- submission format and the CLI --------------------------------------------------------------

@pytest.fixture
def gt_dir(tmp_path):
    xyz, verts = hand_like(np.random.default_rng(8), s=5, v=30)
    d = tmp_path / "gt"
    d.mkdir()
    (d / "evaluation_xyz.json").write_text(json.dumps(xyz.tolist()))
    (d / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    return d, xyz, verts


def test_submission_roundtrip_and_ho3d(tmp_path):
    xyz, verts = hand_like(np.random.default_rng(9), s=3, v=30)
    p = tmp_path / "pred.json"
    write_submission(p, xyz, verts)
    rx, rv = read_submission(p, expect_n=3, expect_v=30)
    np.testing.assert_array_equal(rx, xyz)
    np.testing.assert_array_equal(rv, verts)
    write_submission(p, xyz, verts, fmt="ho3d")
    raw_xyz, raw_verts = (np.array(a) for a in json.loads(p.read_text()))
    np.testing.assert_allclose(raw_xyz, xyz[:, OPENPOSE_TO_HO3D] * [1, -1, -1])   # HO-3D order, OpenGL frame
    assert (raw_xyz[..., 2] < 0).all() and (raw_verts[..., 2] < 0).all()
    rx, rv = read_submission(p, fmt="ho3d")
    np.testing.assert_allclose(rx, xyz)
    np.testing.assert_allclose(rv, verts)
    with pytest.raises(SubmissionError, match=r"verts\[1\].*NaN"):
        bad = verts.copy()
        bad[1, 3, 0] = np.nan
        write_submission(p, xyz, bad)


def test_cli_evaluate_end_to_end(gt_dir, tmp_path):
    d, xyz, verts = gt_dir
    rng = np.random.default_rng(10)
    px, pv = xyz + rng.normal(0, 0.005, xyz.shape), verts + rng.normal(0, 0.005, verts.shape)
    pred, out, curves = tmp_path / "pred.json", tmp_path / "m" / "metrics.json", tmp_path / "curves.json"
    write_submission(pred, px, pv)
    assert cli.main(["evaluate", "--gt", str(d), "--pred", str(pred), "--out", str(out), "--curves", str(curves)]) == 0
    got = json.loads(out.read_text())
    assert sorted(got) == sorted(ALL_METRIC_KEYS)
    assert_metrics_close(got, ref_evaluate(xyz, verts, px, pv))
    c = json.loads(curves.read_text())
    assert len(c["thresholds_cm"]) == len(c["pck_j"]) == 100 and c["thresholds_cm"][-1] == pytest.approx(5.0)
    # ho3d-format predictions are converted back before scoring
    write_submission(pred, px, pv, fmt="ho3d")
    assert cli.main(["evaluate", "--gt", str(d), "--pred", str(pred), "--out", str(out), "--format", "ho3d"]) == 0
    assert_metrics_close(json.loads(out.read_text()), got)


def _raw(path, xyz, verts):
    path.write_text(json.dumps([xyz, verts]))  # json writes NaN as the (non-standard) NaN token
    return path


@pytest.mark.parametrize("case, message", [
    ("count", r"xyz: 4 samples, expected 5"),
    ("xyz_shape", r"xyz\[3\]: shape \(20, 3\), expected \(21, 3\)"),
    ("verts_shape", r"verts\[2\]: shape \(29, 3\), expected \(30, 3\)"),
    ("nan", r"verts\[1\]: contains NaN or inf"),
    ("inf", r"xyz\[0\]: contains NaN or inf"),
    ("layout", r"expected \[xyz list, verts list\]"),
    ("missing", r"no such file"),
    ("not_json", r"not valid JSON"),
    ("bool", r"pred.json\[0\]\[1\]\[4\]\[2\]: true is not a number"),
    ("huge", r"verts\[3\]: a coordinate beyond"),
    ("out_folder", r"--out .*: is a folder"),
])
def test_cli_evaluate_bad_input(gt_dir, tmp_path, capsys, case, message):
    d, xyz, verts = gt_dir
    x, v = xyz.tolist(), verts.tolist()
    pred = tmp_path / "pred.json"
    if case == "count":
        _raw(pred, x[:4], v[:4])
    elif case == "xyz_shape":
        x[3] = x[3][:20]
        _raw(pred, x, v)
    elif case == "verts_shape":
        v[2] = v[2][:29]
        _raw(pred, x, v)
    elif case == "nan":
        v[1][5][2] = float("nan")
        _raw(pred, x, v)
    elif case == "inf":
        x[0][0][0] = float("inf")
        _raw(pred, x, v)
    elif case == "layout":
        pred.write_text(json.dumps([x]))
    elif case == "not_json":
        pred.write_text("[[1, 2")
    elif case == "bool":
        x[1][4][2] = True
        _raw(pred, x, v)
    elif case == "huge":
        v[3][0][1] = 1e306
        _raw(pred, x, v)
    elif case == "out_folder":
        _raw(pred, x, v)
    out = tmp_path / "metrics.json"
    if case == "out_folder":
        out.mkdir()
    assert cli.main(["evaluate", "--gt", str(d), "--pred", str(pred), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("s2hand evaluate: error:") and err.count("\n") == 1
    assert __import__("re").search(message, err), err
    assert not out.exists() or case == "out_folder"


def test_python_dash_m_exits_with_the_commands_status(gt_dir, tmp_path):
    d, _, _ = gt_dir
    r = subprocess.run([sys.executable, "-m", "s2hand", "evaluate", "--gt", str(d), "--pred",
                        str(tmp_path / "none.json"), "--out", str(tmp_path / "m.json")], capture_output=True, text=True)
    assert r.returncode == 1 and "no such file" in r.stderr


def test_read_freihand_gt_names_the_file(gt_dir):
    d, xyz, _ = gt_dir
    gx, _ = read_freihand_gt(d)
    np.testing.assert_array_equal(gx, xyz)
    (d / "evaluation_verts.json").write_text(json.dumps([[[0.0, 0.0, 0.0]]]))
    with pytest.raises(SubmissionError, match="evaluation_verts.json: 1 samples, expected 5"):
        read_freihand_gt(d)


def test_console_script(gt_dir, tmp_path):
    exe = shutil.which("s2hand", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("s2hand entry point not installed (pip install --no-deps -e .)")
    d, xyz, verts = gt_dir
    pred, out = tmp_path / "pred.json", tmp_path / "metrics.json"
    write_submission(pred, xyz, verts)
    r = subprocess.run([exe, "evaluate", "--gt", str(d), "--pred", str(pred), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["auc_j_unaligned"] == 1.0
    r = subprocess.run([exe, "evaluate", "--gt", str(d), "--pred", str(tmp_path / "none.json"), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "no such file" in r.stderr


def test_frame_accelerations_zero_at_constant_velocity_and_grouped_by_sequence():
    from s2hand.metrics.video import frame_accelerations, sequence_acceleration

    t = np.arange(5, dtype=float)[:, None, None]
    line = np.broadcast_to(t * np.array([0.01, 0.0, 0.0]), (5, 21, 3))  # constant velocity
    bump = line.copy()
    bump[2] += 0.001  # one frame off by 1 mm: second differences 1, -2, 1 mm at frames 1, 2, 3
    joints = np.concatenate([line, bump, bump[:2]])
    seq = np.array([0] * 5 + [1] * 5 + [2] * 2)  # sequence 2 is too short for any value
    values, groups = frame_accelerations(joints, seq, root=None)
    assert groups.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(values, [0, 0, 0, np.sqrt(3), 2 * np.sqrt(3), np.sqrt(3)], atol=1e-9)
    # their mean per sequence is ACC (per frame^2)
    assert np.mean(values[3:]) == pytest.approx(sequence_acceleration(joints[5:10], seq[5:10], root=None))
    assert frame_accelerations(joints, seq)[0] == pytest.approx(0)  # wrist-relative: the whole hand moved


# ---- articulation ---------------------------------------------------------------------------------

def _hand(curl: float) -> np.ndarray:
    """(21, 3) OpenPose-order joints: each finger's three bones (3, 2, 1.5 cm) turn by `curl` rad at
    every joint in the finger's plane; curl 0 is a straight hand."""
    j = np.zeros((21, 3))
    for f in range(5):
        base = np.array([0.02 * (f - 2), 0.08, 0.0])
        j[1 + 4 * f] = base
        angle, p = 0.0, base
        for k, length in enumerate((0.03, 0.02, 0.015)):
            angle += curl
            p = p + length * np.array([0.0, np.cos(angle), np.sin(angle)])
            j[2 + 4 * f + k] = p
    return j


def test_straightness_is_one_for_straight_fingers_lower_when_curled_and_invariant_to_placement():
    from scipy.spatial.transform import Rotation

    from s2hand.metrics.articulation import straightness

    assert straightness(_hand(0.0)) == pytest.approx(1.0)
    values = [straightness(_hand(c)) for c in (0.3, 0.7, 1.2)]
    assert 1 > values[0] > values[1] > values[2] > 0.3  # a fist
    R = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    moved = 1.7 * _hand(0.7) @ R.T + np.array([0.1, -0.2, 0.5])
    assert straightness(moved) == pytest.approx(values[1])
    assert straightness(np.stack([_hand(0.0), _hand(1.2)])).shape == (2,)
    with pytest.raises(ValueError):
        straightness(np.zeros((16, 3)))


def test_articulation_agreement_tells_a_following_prediction_from_a_constant_one():
    from s2hand.metrics.articulation import articulation_agreement

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 10)
    gt = 0.4 + 0.6 * rng.uniform(size=200)
    same = articulation_agreement(gt, gt, groups)
    assert same["r"] == pytest.approx(1) and same["gap_ratio"] == pytest.approx(1)
    assert same["closed"]["pred"] == same["closed"]["gt"] < same["open"]["gt"]
    half = articulation_agreement(0.7 + 0.5 * (gt - 0.7), gt, groups)  # opens and closes half as much
    assert half["gap_ratio"] == pytest.approx(0.5) and half["r"] == pytest.approx(1)
    const = articulation_agreement(np.full(200, 0.8), gt, groups)
    assert const["r"] == 0 and const["gap_ratio"] == pytest.approx(0)
    noisy = articulation_agreement(gt + rng.normal(0, 0.2, 200), gt, groups)
    assert noisy["r_lo"] < noisy["r"] < noisy["r_hi"] and noisy["gap_lo"] < noisy["gap_ratio"] < noisy["gap_hi"]
    assert noisy["groups"] == 20 and noisy["frames"] == 200
    with pytest.raises(ValueError):
        articulation_agreement(gt[:5], gt[:5], groups[:5])
