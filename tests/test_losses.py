"""Losses: zero for a perfect prediction, positive otherwise, finite scalars with finite gradients
at the edges (zero-length bones, empty silhouettes, zero confidences, rotations near pi, identical
frames), and the properties the papers state (E_quat's fixed-axis invariance, E_J's limits, the
released code's keypoint weights).

    .venv/bin/python -m pytest -q tests/test_losses.py
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from s2hand.config import LossWeights
from s2hand.hand.keypoints import FINGERTIPS, WRIST
from s2hand.hand.limits import LIMITS_RAD
from s2hand.losses import (
    S2HAND_TERMS,
    bone_orientation_loss,
    branch2d_loss,
    consistency_loss,
    joint_angle_loss,
    location_loss,
    pixel_loss,
    quaternion_loss,
    regularization_loss,
    rotation_angle,
    rotvec_to_quaternion,
    s2hand_loss,
    scale_loss,
    shape_loss,
    smooth_loss,
    ssim_loss,
    temporal_loss,
    texture_loss,
    texture_shape_loss,
    video_loss,
    video_temporal_loss,
)

B, H = 2, 16  # batch, image side: small tensors keep the suite fast


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _keypoints(g: torch.Generator) -> torch.Tensor:
    return (torch.rand(B, 21, 2, generator=g) * 200 + 12).double()  # (B, 21, 2) px of a 224 crop


def _conf(g: torch.Generator) -> torch.Tensor:
    return (torch.rand(B, 21, generator=g) * 0.8 + 0.2).double()  # (B, 21), all > 0.1


def _poses(g: torch.Generator, S: int = 2, n: int = 3) -> torch.Tensor:
    return (torch.randn(S, n, 16, 3, generator=g) * 0.5).double()


def _inside_pose() -> torch.Tensor:
    return torch.as_tensor(LIMITS_RAD.mean(-1)).reshape(1, 45).repeat(B, 1)  # (B, 45) mid-range


def _assert_scalar_with_finite_grad(loss: torch.Tensor, *inputs: torch.Tensor) -> None:
    assert loss.dim() == 0 and torch.isfinite(loss), loss
    leaves = [x for x in inputs if x.requires_grad]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    for x, gx in zip(leaves, grads):
        assert gx is None or torch.isfinite(gx).all(), f"non-finite gradient, input {tuple(x.shape)}"


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


# Each case: (loss of the inputs, perfect inputs, imperfect inputs); everything in `dtype`.
def _case(name: str, dtype: torch.dtype = torch.float64):
    g = _gen(1)
    c = lambda x: x.to(dtype)  # noqa: E731
    kp, conf = c(_keypoints(g)), c(_conf(g))
    noisy_kp = kp + c(torch.randn(B, 21, 2, generator=g)) * 8
    img = c(torch.rand(B, 3, H, H, generator=g))
    sil = c(torch.zeros(B, 1, H, H))
    sil[..., 4:12, 4:12] = 1.0
    poses = c(_poses(g))
    static = poses[:, :1].repeat(1, 3, 1, 1)
    colours = c(torch.rand(2, 3, 20, 3, generator=g))
    light = c(torch.rand(2, 3, 11, generator=g))
    betas = c(torch.randn(2, 3, 10, generator=g))
    normals = torch.nn.functional.normalize(c(torch.randn(20, 3, generator=g)), dim=-1)
    same = lambda x: x[:, :1].expand_as(x).clone()  # noqa: E731  every frame = the first
    flat_colours = c(torch.full((B, 30, 3), 0.5))
    outlier_colours = flat_colours.clone()
    outlier_colours[:, 0] = 1.0
    joints3d = c(torch.randn(B, 21, 3, generator=g)) * 0.05
    right_bone = joints3d.clone()
    right_bone[:, 10] = right_bone[:, 9] + c(torch.tensor([0.0282, 0.0, 0.0]))
    inside = c(_inside_pose())
    out_pose = inside.clone()
    out_pose[:, 2] = 3.0  # index MCP z beyond 100 degrees
    zero_beta = c(torch.zeros(B, 10))
    cases = {
        "loc_paper": (lambda a: location_loss(a, kp, conf, "paper"), (kp,), (noisy_kp,)),
        "loc_code": (lambda a: location_loss(a, kp, conf, "code"), (kp,), (noisy_kp,)),
        "ori": (lambda a: bone_orientation_loss(a, kp, conf), (kp,), (noisy_kp,)),
        "2d_paper": (lambda a: branch2d_loss([a, a], kp, conf, "paper"), (kp,), (noisy_kp,)),
        "2d_code": (lambda a: branch2d_loss([a, a], kp, conf, "code"), (kp,), (noisy_kp,)),
        "cons": (lambda a: consistency_loss(a, kp), (kp,), (noisy_kp,)),
        "pixel_paper": (lambda r, s: pixel_loss(img, r, s, conf, "paper"), (img, sil), (img.flip(-1), sil)),
        "pixel_code": (lambda r, s: pixel_loss(img, r, s, conf, "code"), (img, sil), (img.flip(-1), sil)),
        "ssim": (lambda r, s: ssim_loss(img, r, s), (img * sil, sil), (img.flip(-1), sil)),
        "ssim_white": (lambda r, s: ssim_loss(img, r, s, background=(1, 1, 1)),
                       (img * sil + 1 - sil, sil), (img * sil, sil)),
        "beta_paper": (lambda b: shape_loss(b, "paper"), (zero_beta,), (betas[0],)),
        "beta_code": (lambda b: shape_loss(b, "code"), (zero_beta,), (betas[0],)),
        "tex": (texture_loss, (flat_colours,), (outlier_colours,)),
        "scale": (scale_loss, (right_bone,), (joints3d,)),
        "joint": (joint_angle_loss, (inside,), (out_pose,)),
        "quat": (quaternion_loss, (static,), (poses,)),
        "temporal": (temporal_loss, (static,), (poses,)),
        "smooth": (lambda p: smooth_loss(p, threshold=0.1), (static,), (poses,)),
        "ts": (lambda col, li, be: texture_shape_loss(col, li, be, normals),
               (same(colours), same(light), same(betas)), (colours, light, betas)),
    }
    return cases[name]


CASES = ["loc_paper", "loc_code", "ori", "2d_paper", "2d_code", "cons", "pixel_paper", "pixel_code",
         "ssim", "ssim_white", "beta_paper", "beta_code", "tex", "scale", "joint", "quat", "temporal",
         "smooth", "ts"]


@pytest.mark.parametrize("name", CASES)
def test_zero_when_perfect_positive_otherwise(name):
    fn, perfect, imperfect = _case(name)
    good = [_leaf(x) for x in perfect]
    loss = fn(*good)
    _assert_scalar_with_finite_grad(loss, *good)
    assert abs(loss.item()) < 1e-6, (name, loss.item())
    bad = [_leaf(x) for x in imperfect]
    loss = fn(*bad)
    _assert_scalar_with_finite_grad(loss, *bad)
    assert loss.item() > 1e-4, (name, loss.item())


@pytest.mark.parametrize("name", CASES)
def test_float32_finite_and_dtype_kept(name):
    fn, perfect, imperfect = _case(name, torch.float32)
    for xs in (perfect, imperfect):
        leaves = [_leaf(x) for x in xs]
        loss = fn(*leaves)
        assert loss.dtype == torch.float32
        _assert_scalar_with_finite_grad(loss, *leaves)


# ---------------------------------------------------------------- 2D keypoints: edges and weights
@pytest.mark.parametrize("variant", ["paper", "code"])
def test_keypoint_losses_zero_confidence_and_zero_length_bones(variant):
    g = _gen(2)
    kp = _leaf(torch.zeros(B, 21, 2))  # every joint at one point: zero-length bones, d = 0
    de = _leaf(torch.rand(B, 21, 2, generator=g) * 224)
    zero = torch.zeros(B, 21)
    for loss in (location_loss(kp, de, zero, variant), branch2d_loss(kp, de, zero, variant),
                 bone_orientation_loss(kp, de, zero)):
        _assert_scalar_with_finite_grad(loss, kp, de)
        assert loss.item() == 0.0
    for loss in (bone_orientation_loss(kp, kp.detach(), _conf(g).float()),
                 bone_orientation_loss(kp, de, _conf(g).float()),
                 location_loss(kp, kp.detach(), _conf(g).float(), variant),
                 consistency_loss(kp, kp.detach())):
        _assert_scalar_with_finite_grad(loss, kp, de)


def test_location_code_variant_weights_wrist_and_tips():
    """Released code: weights (con * kw)^2 with kw = 2 wrist, 1.5 tips, 1 else."""
    kp = torch.zeros(1, 21, 2, dtype=torch.float64)
    conf = torch.ones(1, 21, dtype=torch.float64)

    def with_error_at(i: int, variant: str) -> float:
        pro = kp.clone()
        pro[0, i, 0] = 20.0
        return location_loss(pro, kp, conf, variant).item()

    plain = with_error_at(1, "code")  # thumb 1: kw = 1
    assert with_error_at(WRIST, "code") == pytest.approx(4.0 * plain)
    for tip in FINGERTIPS:
        assert with_error_at(tip, "code") == pytest.approx(2.25 * plain)
    assert with_error_at(WRIST, "paper") == pytest.approx(with_error_at(1, "paper"))
    # SmoothL1 with beta = 5 px: quadratic d^2/10 below 5 px, d - 2.5 above (per joint, /21 in paper)
    assert with_error_at(1, "paper") == pytest.approx((20.0 - 2.5) / 21)
    pro = kp.clone()
    pro[0, 1, 0] = 3.0
    assert location_loss(pro, kp, conf).item() == pytest.approx(0.9 / 21)


def test_pixel_normalisation_keeps_loss_across_image_sizes():
    g = _gen(3)
    kp, conf = _keypoints(g), _conf(g)
    pro = kp + torch.randn(B, 21, 2, generator=g).double() * 8
    for variant in ("paper", "code"):
        ref = location_loss(pro, kp, conf, variant)
        half = location_loss(pro / 2, kp / 2, conf, variant, image_size=112)
        assert half.item() == pytest.approx(ref.item())
    half = consistency_loss(pro / 2, kp / 2, image_size=112)
    assert half.item() == pytest.approx(consistency_loss(pro, kp).item())


def test_branch2d_sums_stacks_and_consistency_uses_last_stack():
    g = _gen(4)
    kp, conf = _keypoints(g), _conf(g)
    a, b = kp + 3, kp - 7
    assert branch2d_loss([a, b], kp, conf).item() == pytest.approx(
        branch2d_loss(a, kp, conf).item() + branch2d_loss(b, kp, conf).item())
    assert consistency_loss(kp, [a, b]).item() == pytest.approx(consistency_loss(kp, b).item())


def test_bone_orientation_ignores_scale_and_translation():
    g = _gen(5)
    kp, conf = _keypoints(g), _conf(g)
    assert bone_orientation_loss(kp * 0.3 + 5, kp, conf).item() == pytest.approx(0.0, abs=1e-8)
    flipped = kp.clone()
    flipped[..., 0] = -flipped[..., 0]
    assert bone_orientation_loss(flipped, kp, conf).item() > 0.01


# ---------------------------------------------------------------- photometric: edges
@pytest.mark.parametrize("variant", ["paper", "code"])
def test_photometric_empty_silhouette_and_zero_confidence(variant):
    g = _gen(6)
    img = torch.rand(B, 3, H, H, generator=g)
    rendered = _leaf(torch.rand(B, 3, H, H, generator=g))
    empty = _leaf(torch.zeros(B, 1, H, H))
    loss = pixel_loss(img, rendered, empty, torch.rand(B, 21, generator=g), variant)
    _assert_scalar_with_finite_grad(loss, rendered, empty)
    assert loss.item() == 0.0
    full = _leaf(torch.ones(B, 1, H, H))
    loss = pixel_loss(img, rendered, full, torch.zeros(B, 21), variant)
    _assert_scalar_with_finite_grad(loss, rendered, full)
    assert loss.item() == 0.0
    for bg in (None, (1.0, 1.0, 1.0)):
        _assert_scalar_with_finite_grad(ssim_loss(img, rendered, empty, background=bg), rendered, empty)


def test_pixel_code_variant_drops_samples_with_a_low_confidence():
    g = _gen(7)
    img = torch.rand(2, 3, H, H, generator=g)
    rendered = torch.rand(2, 3, H, H, generator=g)
    sil = torch.ones(2, 1, H, H)
    conf = torch.ones(2, 21)
    conf[1, 3] = 0.05  # sample 1 has one keypoint below 0.1
    both = pixel_loss(img, rendered, sil, conf, "code")
    first = pixel_loss(img[:1], rendered[:1], sil[:1], conf[:1], "code")
    assert both.item() == pytest.approx(first.item())
    # paper: conf_sum / |S| * sum over S of the L1 over channels
    expected = (21.0 * (img[:1] - rendered[:1]).abs().sum() / (H * H)).item()
    got = pixel_loss(img[:1], rendered[:1], sil[:1], conf[:1], "paper")
    assert got.item() == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- regularisers
def test_joint_angle_loss_limits_and_z_weight():
    inside = _inside_pose()
    assert joint_angle_loss(inside).item() == 0.0
    lim = torch.as_tensor(LIMITS_RAD)  # (15, 3, 2)
    edge = lim[..., 1].reshape(1, 45).repeat(B, 1)  # on the upper limits: still zero
    assert joint_angle_loss(edge).item() == pytest.approx(0.0, abs=1e-12)
    over_x, over_z = inside.clone(), inside.clone()
    over_x[:, 0] = lim[0, 0, 1] + 0.1  # index MCP x 0.1 rad above its limit
    over_z[:, 2] = lim[0, 2, 1] + 0.1  # index MCP z 0.1 rad above its limit
    under = inside.clone()
    under[:, 0] = lim[0, 0, 0] - 0.1
    assert joint_angle_loss(over_x).item() == pytest.approx(0.1 / 45)
    assert joint_angle_loss(under).item() == pytest.approx(0.1 / 45)
    assert joint_angle_loss(over_z).item() == pytest.approx(2 * 0.1 / 45)
    extreme = _leaf(torch.full((B, 45), math.pi - 1e-6))
    _assert_scalar_with_finite_grad(joint_angle_loss(extreme), extreme)


def test_scale_and_shape_edges():
    joints = _leaf(torch.zeros(B, 21, 3))  # zero-length middle bone
    loss = scale_loss(joints)
    _assert_scalar_with_finite_grad(loss, joints)
    assert loss.item() == pytest.approx(0.0282)
    beta = _leaf(torch.zeros(B, 10))
    _assert_scalar_with_finite_grad(shape_loss(beta), beta)


def test_regularization_loss_combines_with_weights():
    g = _gen(8)
    w = LossWeights()
    beta = torch.randn(B, 10, generator=g)
    colours = torch.rand(B, 30, 3, generator=g)
    colours[:, 0] = 3.0
    joints = torch.randn(B, 21, 3, generator=g) * 0.05
    pose = torch.randn(B, 45, generator=g)
    got = regularization_loss(w, beta=beta, face_colors=colours, joints3d=joints, hand_pose=pose)
    want = (shape_loss(beta) + w.tex * texture_loss(colours) + w.scale * scale_loss(joints)
            + w.joint * joint_angle_loss(pose))
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert regularization_loss(w, beta=beta).item() == pytest.approx(shape_loss(beta).item())


# ---------------------------------------------------------------- E_quat
def _fixed_axis_poses(rng: np.random.Generator, S: int, n: int, flips: bool) -> torch.Tensor:
    """(S, n, 16, 3) each joint: R_i = Rot(u, a_i) R0 with a random axis u, base R0 and a random
    monotonic angle profile a_1 <= ... <= a_n spanning less than pi; optionally some frames'
    axis-angle re-expressed as r - 2 pi r/|r| (the same rotation, quaternion q -> -q)."""
    out = np.zeros((S, n, 16, 3))
    for s in range(S):
        for j in range(16):
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            steps = rng.exponential(size=n - 1) * rng.uniform(0, 1, size=n - 1) ** 3  # uneven speed
            span = rng.uniform(0.05, 3.0)
            a = np.concatenate([[0.0], np.cumsum(steps) / steps.sum() * span]) + rng.uniform(-3, 3)
            R0 = Rotation.random(random_state=rng)
            rv = (Rotation.from_rotvec(a[:, None] * u) * R0).as_rotvec()  # (n, 3)
            if flips:
                for i in np.flatnonzero(rng.random(n) < 0.5):
                    t = np.linalg.norm(rv[i])
                    rv[i] = rv[i] - 2 * np.pi * rv[i] / t
            out[s, :, j] = rv
    return torch.from_numpy(out)


@pytest.mark.parametrize("n", [3, 6])
def test_quaternion_loss_zero_for_fixed_axis_any_speed(n):
    rng = np.random.default_rng(n)
    for flips in (False, True):
        poses = _leaf(_fixed_axis_poses(rng, S=3, n=n, flips=flips))
        loss = quaternion_loss(poses)
        _assert_scalar_with_finite_grad(loss, poses)
        assert loss.item() < 1e-9, loss.item()


def test_quaternion_loss_positive_when_axis_changes():
    rv = np.zeros((1, 3, 16, 3))
    rv[0, 1, :] = Rotation.from_rotvec([1.0, 0, 0]).as_rotvec()
    rv[0, 2, :] = (Rotation.from_rotvec([0, 1.0, 0]) * Rotation.from_rotvec([1.0, 0, 0])).as_rotvec()
    direct = (Rotation.from_rotvec(rv[0, 2, 0])).magnitude()
    loss = quaternion_loss(torch.from_numpy(rv))
    assert loss.item() == pytest.approx(2.0 - direct)
    assert loss.item() > 0.1


def test_rotation_angle_matches_scipy_and_ignores_quaternion_sign():
    rng = np.random.default_rng(9)
    r0, r1 = Rotation.random(200, random_state=rng), Rotation.random(200, random_state=rng)
    q0 = rotvec_to_quaternion(torch.from_numpy(r0.as_rotvec()))
    q1 = rotvec_to_quaternion(torch.from_numpy(r1.as_rotvec()))
    want = (r1 * r0.inv()).magnitude()
    np.testing.assert_allclose(rotation_angle(q0, q1).numpy(), want, atol=1e-9)
    np.testing.assert_allclose(rotation_angle(-q0, q1).numpy(), want, atol=1e-9)
    np.testing.assert_allclose(rotation_angle(q0, -q1).numpy(), want, atol=1e-9)
    # quaternions match scipy's (x, y, z, w) up to sign
    sq = torch.from_numpy(r0.as_quat())[:, [3, 0, 1, 2]]
    assert torch.allclose((q0 * sq).sum(-1).abs(), torch.ones(200, dtype=torch.float64))
    # q -> -q per frame through the axis-angle input: same loss
    g = _gen(10)
    poses = _poses(g, S=2, n=4)
    t = poses.norm(dim=-1, keepdim=True)
    flipped = poses - 2 * math.pi * poses / t
    assert quaternion_loss(flipped).item() == pytest.approx(quaternion_loss(poses).item(), abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quaternion_loss_edges(dtype):
    g = _gen(11)
    one = _poses(g, S=2, n=1).to(dtype)
    cases = {
        "identical frames": one.repeat(1, 3, 1, 1),
        "zero rotations": torch.zeros(2, 3, 16, 3, dtype=dtype),
        "near pi": torch.nn.functional.normalize(torch.randn(2, 3, 16, 3, generator=g), dim=-1).to(dtype)
        * (math.pi - torch.rand(2, 3, 16, 1, generator=g).to(dtype) * 1e-5),
        "exactly pi, flipped axis": (torch.tensor([[math.pi, 0, 0], [-math.pi, 0, 0], [math.pi, 0, 0]])
                                     .to(dtype)[None, :, None].repeat(2, 1, 16, 1)),
    }
    for name, p in cases.items():
        p = _leaf(p)
        loss = quaternion_loss(p)
        _assert_scalar_with_finite_grad(loss, p)
        if name != "near pi":
            assert loss.item() < 1e-5, (name, loss.item())


def test_quaternion_loss_accepts_flat_poses():
    p = _poses(_gen(12))
    assert quaternion_loss(p.reshape(2, 3, 48)).item() == pytest.approx(quaternion_loss(p).item())


# ---------------------------------------------------------------- baselines, E_T&S, dispatcher
def test_smooth_loss_threshold_and_dispatcher():
    p = torch.zeros(1, 3, 16, 3, dtype=torch.float64)
    p[0, 1, :, 0] = 0.05
    p[0, 2, :, 0] = 0.10
    assert smooth_loss(p, threshold=0.1).item() == 0.0
    assert smooth_loss(p, threshold=0.01).item() == pytest.approx(0.04 ** 2)
    assert temporal_loss(p).item() == pytest.approx(0.05 ** 2 / 3)
    poses = _poses(_gen(13))
    assert video_temporal_loss("quaternion", poses).item() == quaternion_loss(poses).item()
    assert video_temporal_loss("temporal", poses).item() == temporal_loss(poses).item()
    assert video_temporal_loss("smooth", poses, threshold=0.2).item() == smooth_loss(poses, 0.2).item()
    assert video_temporal_loss("none", poses).item() == 0.0
    with pytest.raises(ValueError):
        video_temporal_loss("slerp", poses)


def test_texture_shape_loss_uses_lit_texture():
    g = _gen(14)
    normals = torch.nn.functional.normalize(torch.randn(20, 3, generator=g), dim=-1)
    colours = torch.rand(1, 1, 20, 3, generator=g).repeat(1, 3, 1, 1)
    light = torch.rand(1, 1, 11, generator=g).repeat(1, 3, 1)
    betas = torch.zeros(1, 3, 10)
    # the same lit texture from different (C, L): ambient doubled, colours halved, no directional
    light[..., 4] = 0.0
    light2 = light.clone()
    light2[0, 1, 0] *= 2
    colours2 = colours.clone()
    colours2[0, 1] /= 2
    assert texture_shape_loss(colours2, light2, betas, normals).item() == pytest.approx(0.0, abs=1e-6)
    assert texture_shape_loss(colours, light2, betas, normals).item() > 1e-3


# ---------------------------------------------------------------- weighted sums
def test_total_weights_and_missing_terms():
    w = LossWeights()
    one = torch.tensor(1.0)
    image_terms = ("loc", "ori", "pixel", "ssim", "regu", "2d", "cons")
    total, parts = s2hand_loss({name: one for name in image_terms}, w)
    want = w.branch3d * (w.geo * (1 + w.ori) + w.photo * (1 + w.ssim) + w.regu) + w.branch2d + w.cons
    assert total.item() == pytest.approx(want)
    assert sum(parts.values()).item() == pytest.approx(total.item())
    assert parts["ori"].item() == pytest.approx(w.branch3d * w.geo * w.ori)
    total3d, parts3d = s2hand_loss({"loc": one, "ori": one, "regu": one}, w)  # pretrain_3d: no 2D branch
    assert set(parts3d) == {"loc", "ori", "regu"}
    assert total3d.item() == pytest.approx(w.branch3d * (w.geo * (1 + w.ori) + w.regu))
    _, split = s2hand_loss({"beta": one, "tex": one, "scale": one, "joint": one}, w)
    assert sum(split.values()).item() == pytest.approx(w.branch3d * w.regu * (1 + w.tex + w.scale + w.joint))
    vtotal, vparts = video_loss({"loc": one, "quat": one, "ts": one}, w)
    assert vtotal.item() == pytest.approx(w.branch3d * w.geo + w.quat + w.ts)
    with pytest.raises(KeyError):
        s2hand_loss({"quat": one}, w)  # a video term in the image loss
    with pytest.raises(KeyError):
        s2hand_loss({"regu": one, "beta": one}, w)
    assert "2d" in S2HAND_TERMS


def test_pseudo_label_loss_zero_at_the_target_masked_frames_ignored_and_nan_safe():
    from s2hand.losses import pseudo_label_loss

    torch.manual_seed(0)
    pose, shape = torch.randn(4, 6, requires_grad=True), torch.randn(4, 10, requires_grad=True)
    mask = torch.tensor([True, True, False, False])
    tp = torch.cat([pose.detach()[:2], torch.full((2, 6), float("nan"))])
    ts = torch.cat([shape.detach()[:2], torch.full((2, 10), float("nan"))])
    e = pseudo_label_loss(pose, shape, tp, ts, mask)
    assert e.item() == 0.0
    # off the target: positive, the gradient finite (NaN targets of masked frames never leak) and only on kept frames
    e = pseudo_label_loss(pose + 1.0, shape, tp, ts, mask, shape_weight=0.5)
    assert e.item() == pytest.approx(1.0)
    e.backward()
    assert torch.isfinite(pose.grad).all() and pose.grad[2:].abs().sum() == 0 and pose.grad[:2].abs().sum() > 0
    assert pseudo_label_loss(pose, shape, tp, ts, torch.zeros(4, dtype=torch.bool)).item() == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        pseudo_label_loss(pose, shape, tp[:, :5], ts, mask)
