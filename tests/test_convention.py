"""The detector's keypoint convention (s2hand/hand/convention.py): the shift, its measurement and its
calibration from detections alone."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from s2hand.config import LossWeights
from s2hand.evaluate.keypoint_fit import calibrate_convention
from s2hand.hand.convention import CALIBRATED, NEXT, detector_keypoints, load_offsets, measured_offsets
from s2hand.hand.keypoints import FINGERTIPS, MIDDLE_MCP, WRIST
from s2hand.model.system import place_hand
from s2hand.nets import axis_angle_facing_camera
from s2hand.render import project


def test_next_points_along_each_bone():
    assert NEXT[WRIST] == MIDDLE_MCP
    for f in range(5):
        mcp, pip, dip, tip = 1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f
        assert (NEXT[mcp], NEXT[pip], NEXT[dip], NEXT[tip]) == (pip, dip, tip, dip)


def test_zero_or_no_offsets_leave_the_keypoints(rng):
    j = torch.as_tensor(rng.normal(size=(3, 21, 3)), dtype=torch.float32)
    assert detector_keypoints(j, None) is j
    assert torch.equal(detector_keypoints(j, torch.zeros(21)), j)


def test_offsets_move_along_the_bone(rng):
    j = torch.as_tensor(rng.normal(size=(2, 21, 3)), dtype=torch.float32)
    off = torch.zeros(21)
    off[WRIST], off[FINGERTIPS[1]] = 0.25, 1.0
    out = detector_keypoints(j, off)
    torch.testing.assert_close(out[:, WRIST], j[:, WRIST] + 0.25 * (j[:, MIDDLE_MCP] - j[:, WRIST]))
    torch.testing.assert_close(out[:, FINGERTIPS[1]], j[:, FINGERTIPS[1] - 1])  # a tip moved all the way: its DIP
    keep = [k for k in range(21) if k not in (WRIST, FINGERTIPS[1])]
    assert torch.equal(out[:, keep], j[:, keep])


def test_gradient_reaches_joints_and_offsets(rng):
    j = torch.as_tensor(rng.normal(size=(2, 21, 3)), dtype=torch.float32).requires_grad_()
    off = torch.full((21,), 0.1, requires_grad=True)
    detector_keypoints(j, off).square().sum().backward()
    assert torch.isfinite(j.grad).all() and j.grad.abs().sum() > 0
    assert torch.isfinite(off.grad).all() and off.grad.abs().sum() > 0


def test_measured_offsets_recover_a_known_shift(rng):
    gt = rng.uniform(0, 128, size=(50, 21, 2))
    truth = rng.uniform(-0.3, 0.6, size=21)
    kp = gt + truth[:, None] * (gt[:, NEXT] - gt)
    conf = np.ones((50, 21))
    np.testing.assert_allclose(measured_offsets(kp, conf, gt), truth, atol=1e-9)
    conf[:, 3] = 0.0  # an undetected keypoint is left out, not counted as agreeing
    kp[:, 3] = 0.0
    np.testing.assert_allclose(measured_offsets(kp, conf, gt)[3], 0.0, atol=1e-12)


def _frames(layer, n: int, rng: np.random.Generator, offsets: np.ndarray):
    """n hands in view (random finger pose, rotation near palm-to-camera) -> their keypoints
    as a detector with `offsets` would give them (N, 21, 2) px of a 128 px image, and K."""
    base = torch.tensor(axis_angle_facing_camera()).repeat(n, 1)
    rot = base + torch.as_tensor(rng.normal(0, 0.4, (n, 3)), dtype=torch.float32)
    pose = torch.as_tensor(rng.normal(0, 0.3, (n, layer.num_pca_comps)), dtype=torch.float32)
    K = torch.tensor([[300.0, 0, 64], [0, 300.0, 64], [0, 0, 1]]).repeat(n, 1, 1)
    with torch.no_grad():
        hand = place_hand(layer, rot, pose, torch.zeros(n, 10), torch.full((n, 1), 0.95),
                          torch.tensor([0.0, 0.0, 0.65]).repeat(n, 1), K)
        kp = project(detector_keypoints(hand.joints, torch.as_tensor(offsets, dtype=torch.float32)), K)
    return kp.numpy(), K.numpy()


def test_calibration_follows_the_detectors_wrist_and_tips(layer):
    """From detections alone: a detector that puts the wrist and the tips inwards by 0.3 of their
    bone gets offsets larger by at least a third of that than one that follows the model. (Not
    more: the per-frame fits absorb part of a tip's shift into finger flexion, and the priors
    bias the offsets even on exact keypoints; docs/training.md, "Keypoint convention".)"""
    truth = np.zeros(21)
    truth[list(CALIBRATED)] = 0.3
    kp0, K = _frames(layer, 32, np.random.default_rng(0), np.zeros(21))  # the same hands, two detectors
    kp1, _ = _frames(layer, 32, np.random.default_rng(0), truth)
    free = list(CALIBRATED)
    off0, off1 = (calibrate_convention(layer, kp, np.ones((32, 21)), K, LossWeights(), 128.0, iters=240)
                  for kp in (kp0, kp1))
    for off in (off0, off1):
        assert np.all(off[[k for k in range(21) if k not in free]] == 0) and np.isfinite(off).all()
    assert np.all(off1[free] - off0[free] > 0.1), (off0[free], off1[free])


def test_load_offsets_refuses_what_is_not_a_convention(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"offsets": [0.1] * 21}))
    assert load_offsets(good).shape == (21,)
    for bad in ({"offsets": [0.1] * 20}, {"offsets": [float("nan")] * 21}, {"offsets": [5.0] * 21}, [1, 2]):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="offsets"):
            load_offsets(path)
    with pytest.raises(FileNotFoundError, match="keypoint_convention"):
        load_offsets(tmp_path / "missing.json")
