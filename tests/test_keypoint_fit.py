"""Per-frame hand fits to 2D keypoints (s2hand.evaluate.keypoint_fit)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2hand.config import LossWeights
from s2hand.evaluate.keypoint_fit import decode, fit_to_keypoints, initial_code, keypoint_energy
from s2hand.metrics.freihand import procrustes_align
from s2hand.render import project

SIZE = 128.0
K = np.array([[160.0, 0, 64], [0, 160.0, 64], [0, 0, 1]], np.float32)


def _target_hands(layer, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n hands near the initial one (turned, articulated, moved), their joints and 2D keypoints."""
    code = initial_code(n, layer.num_pca_comps)
    code["rot"] = code["rot"] + torch.as_tensor(rng.normal(0, 0.25, (n, 3)), dtype=torch.float32)
    code["pose"] = torch.as_tensor(rng.normal(0, 1.0, (n, layer.num_pca_comps)), dtype=torch.float32)
    code["trans"] = code["trans"] + torch.as_tensor(rng.normal(0, 0.02, (n, 3)), dtype=torch.float32)
    with torch.no_grad():
        joints, verts, j_pro, _ = decode(layer, code, torch.as_tensor(K).expand(n, 3, 3))
    return {"joints": joints.numpy(), "verts": verts.numpy(), "kp": j_pro.numpy()}


def _pa_error(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([np.linalg.norm(procrustes_align(p, g) - g, axis=-1).mean() for p, g in zip(pred, gt)]))


def test_fit_moves_the_projections_onto_the_keypoints(layer):
    """The true hand has (almost) no keypoint energy, the start a large one; the fit's projections
    end on the keypoints."""
    rng = np.random.default_rng(0)
    n = 4
    t = _target_hands(layer, n, rng)
    kp, conf, Ks = torch.as_tensor(t["kp"]), torch.ones(n, 21), torch.as_tensor(K).expand(n, 3, 3)
    w = LossWeights()
    code0 = initial_code(n, layer.num_pca_comps)
    with torch.no_grad():
        _, _, p0, _ = decode(layer, code0, Ks)
        start = keypoint_energy(layer, code0, kp, conf, Ks, w, SIZE)
        at_keypoints = keypoint_energy(layer, code0, p0, conf, Ks, w, SIZE)  # keypoints = the start's own
    assert at_keypoints < 0.05 * start
    fit = fit_to_keypoints(layer, t["kp"], np.ones((n, 21), np.float32), np.repeat(K[None], n, 0), w, SIZE,
                           iters=300)
    assert np.isfinite(fit.joints).all() and np.isfinite(fit.verts).all()
    err0 = (p0 - kp).norm(dim=-1).mean().item()
    err_fit = np.linalg.norm(fit.j_pro - t["kp"], axis=-1).mean()
    assert err0 > 3.0 and err_fit < 0.3 * err0


@pytest.mark.slow  # 300 iterations on 6 hands: ~25 CPU-s (the fast set fits in test_evaluate.py)
def test_fit_recovers_articulation_better_than_the_start(layer):
    """From exact 2D keypoints the fitted 3D joints are closer (Procrustes-aligned) to the truth
    than the initial mean hand is."""
    rng = np.random.default_rng(1)
    n = 6
    t = _target_hands(layer, n, rng)
    fit = fit_to_keypoints(layer, t["kp"], np.ones((n, 21), np.float32), np.repeat(K[None], n, 0), LossWeights(),
                           SIZE, iters=300)
    with torch.no_grad():
        j0, _, _, _ = decode(layer, initial_code(n, layer.num_pca_comps), torch.as_tensor(K).expand(n, 3, 3))
    assert _pa_error(fit.joints, t["joints"]) < 0.7 * _pa_error(j0.numpy(), t["joints"])


def test_zero_confidence_frames_stay_finite_and_chunks_agree(layer):
    """A frame with no keypoints (all confidences 0) gets only the regularisers: it stays finite and
    moves less than the fitted ones; fitting in chunks gives the same answer as in one go for the
    constrained frames (frames are independent; the unconstrained one's near-zero gradients make
    Adam's steps depend on rounding)."""
    rng = np.random.default_rng(2)
    t = _target_hands(layer, 3, rng)
    conf = np.ones((3, 21), np.float32)
    conf[1] = 0.0
    Ks = np.repeat(K[None], 3, 0)
    a = fit_to_keypoints(layer, t["kp"], conf, Ks, LossWeights(), SIZE, iters=50)
    b = fit_to_keypoints(layer, t["kp"], conf, Ks, LossWeights(), SIZE, iters=50, chunk=1)
    np.testing.assert_allclose(a.joints[[0, 2]], b.joints[[0, 2]], atol=1e-4)
    assert np.isfinite(a.joints).all()
    with torch.no_grad():
        j0, _, _, _ = decode(layer, initial_code(3, layer.num_pca_comps), torch.as_tensor(Ks))
    # the unconstrained frame moves far less than the fitted ones
    moved = np.linalg.norm(a.joints - j0.numpy(), axis=-1).mean(axis=1)
    assert moved[1] < 0.5 * min(moved[0], moved[2])


def test_projection_matches_the_renderer_convention(layer):
    """decode's projections are s2hand.render.project of its joints (the convention training uses)."""
    code = initial_code(2, layer.num_pca_comps)
    Ks = torch.as_tensor(K).expand(2, 3, 3)
    joints, _, j_pro, _ = decode(layer, code, Ks)
    torch.testing.assert_close(j_pro, project(joints, Ks))
    # the initial hand is in front of the camera and inside the image
    assert (joints[..., 2] > 0).all() and ((j_pro > 0) & (j_pro < SIZE)).all()
