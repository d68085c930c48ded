"""Networks: shapes and finiteness for every encoder variant, gradients to every parameter, the
documented initial prediction, integral regression's pixel convention, and the offline ImageNet
weights: the lite0 state dict renamed onto timm must classify real photographs exactly as an
independent implementation of the original model (lukemelas / EfficientNet-Lite-PyTorch
semantics, written here from the original key names) does.

    HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q tests/test_nets.py
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from s2hand.nets import (
    DEFAULT_LIGHT,
    MEAN_SKIN_COLOR,
    S2HandNet,
    StackedHourglass,
    axis_angle_facing_camera,
    build_encoder,
    convert_lukemelas_state_dict,
    create_backbone,
    imagenet_normalize,
    integral_keypoints,
    lite0_package_weights_path,
    read_state_dict,
)

torch.set_num_threads(min(2, torch.get_num_threads()))

# ---------------------------------------------------------------------------------------------
# Reference forward pass of lukemelas-style EfficientNet(-Lite) state dicts: TF 'same' padding,
# BatchNorm eps 1e-3, blocks decoded from the original block strings.

LITE0_BLOCKS = ["r1_k3_s1_e1_i32_o16", "r2_k3_s2_e6_i16_o24", "r2_k5_s2_e6_i24_o40",
                "r3_k3_s2_e6_i40_o80", "r3_k5_s1_e6_i80_o112", "r4_k5_s2_e6_i112_o192",
                "r1_k3_s1_e6_i192_o320"]  # efficientnet_lite_builder; b0 is the same with SE 0.25


def _conv_same(x, w, stride=1, groups=1, bias=None):
    ih, iw = x.shape[-2:]
    kh, kw = w.shape[-2:]
    ph = max((math.ceil(ih / stride) - 1) * stride + kh - ih, 0)
    pw = max((math.ceil(iw / stride) - 1) * stride + kw - iw, 0)
    x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    return F.conv2d(x, w, bias, stride, 0, 1, groups)


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], False, 0.0, 1e-3)


def reference_forward(sd, x, act):
    x = act(_bn(_conv_same(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    n = 0
    for s in LITE0_BLOCKS:
        o = {t[0]: int(t[1:]) for t in s.split("_")}
        for j in range(o["r"]):
            p, inp, stride = f"_blocks.{n}", x, (o["s"] if j == 0 else 1)
            if p + "._expand_conv.weight" in sd:
                x = act(_bn(_conv_same(x, sd[p + "._expand_conv.weight"]), sd, p + "._bn0"))
            w = sd[p + "._depthwise_conv.weight"]
            x = act(_bn(_conv_same(x, w, stride, groups=w.shape[0]), sd, p + "._bn1"))
            if p + "._se_reduce.weight" in sd:
                q = x.mean((2, 3), keepdim=True)
                q = act(_conv_same(q, sd[p + "._se_reduce.weight"], bias=sd[p + "._se_reduce.bias"]))
                q = _conv_same(q, sd[p + "._se_expand.weight"], bias=sd[p + "._se_expand.bias"])
                x = torch.sigmoid(q) * x
            x = _bn(_conv_same(x, sd[p + "._project_conv.weight"]), sd, p + "._bn2")
            if stride == 1 and inp.shape[1] == x.shape[1]:
                x = x + inp
            n += 1
    x = act(_bn(_conv_same(x, sd["_conv_head.weight"]), sd, "_bn1"))
    return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def random_lukemelas_b0(seed=0):
    """A random EfficientNet-B0 state dict in lukemelas's key layout, built from the block
    strings (not from the mapping under test)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, *shape, bias=False):
        sd[name + ".weight"] = torch.randn(*shape, generator=g) / math.sqrt(np.prod(shape[1:]))
        if bias:
            sd[name + ".bias"] = 0.1 * torch.randn(shape[0], generator=g)

    def bn(name, c):
        sd[name + ".weight"] = 0.5 + torch.rand(c, generator=g)
        sd[name + ".bias"] = 0.1 * torch.randn(c, generator=g)
        sd[name + ".running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[name + ".running_var"] = 0.5 + torch.rand(c, generator=g)
        sd[name + ".num_batches_tracked"] = torch.tensor(0)

    conv("_conv_stem", 32, 3, 3, 3)
    bn("_bn0", 32)
    n = 0
    for s in LITE0_BLOCKS:
        o = {t[0]: int(t[1:]) for t in s.split("_")}
        for j in range(o["r"]):
            cin = o["i"] if j == 0 else o["o"]
            mid, p = cin * o["e"], f"_blocks.{n}"
            if o["e"] != 1:
                conv(p + "._expand_conv", mid, cin, 1, 1)
                bn(p + "._bn0", mid)
            conv(p + "._depthwise_conv", mid, 1, o["k"], o["k"])
            bn(p + "._bn1", mid)
            sq = max(1, int(cin * 0.25))
            conv(p + "._se_reduce", sq, mid, 1, 1, bias=True)
            conv(p + "._se_expand", mid, sq, 1, 1, bias=True)
            conv(p + "._project_conv", o["o"], mid, 1, 1)
            bn(p + "._bn2", o["o"])
            n += 1
    conv("_conv_head", 1280, 320, 1, 1)
    bn("_bn1", 1280)
    conv("_fc", 1000, 1280, bias=True)
    return sd


def _photo(name: str, size: int = 224) -> torch.Tensor:
    import skimage.data
    img = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)[None].float() / 255
    h, w = img.shape[-2:]
    s = min(h, w)
    img = img[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _randomise_bn_stats(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))


# ---------------------------------------------------------------------------------------------
# Encoder


@pytest.mark.parametrize("name,channels,low_channels", [("b0", 1280, 24), ("lite0", 1280, 24),
                                                        ("b3", 1536, 32)])
def test_encoder_shapes_and_finite(name, channels, low_channels):
    enc = build_encoder(name, "random")
    x = imagenet_normalize(torch.rand(2, 3, 64, 96), enc.mean, enc.std)
    feat, low = enc(x)
    assert feat.shape == (2, channels) and enc.num_features == channels
    assert low.shape == (2, low_channels, 16, 24) and enc.low_channels == low_channels
    assert torch.isfinite(feat).all() and torch.isfinite(low).all()


def test_lite0_mapping_uses_every_tensor():
    sd = read_state_dict(lite0_package_weights_path())
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    mapped = convert_lukemelas_state_dict(sd, model)
    target = model.state_dict()
    assert len(mapped) == len(sd) == len(target) == 296
    assert set(mapped) == set(target)
    assert all(mapped[k].shape == target[k].shape for k in target)
    for k_old, k_new in [("_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
                         ("_blocks.0._project_conv.weight", "blocks.0.0.conv_pw.weight"),
                         ("_blocks.15._bn2.running_var", "blocks.6.0.bn3.running_var"),
                         ("_bn1.weight", "bn2.weight"), ("_fc.bias", "classifier.bias")]:
        assert mapped[k_new] is sd[k_old]


def test_lite0_imagenet_agrees_with_original_on_photographs():
    sd = read_state_dict(lite0_package_weights_path())
    model, mean, std = create_backbone("lite0", "imagenet", num_classes=1000)
    model.eval()
    names = ["chelsea", "coffee", "astronaut", "rocket"]
    x = imagenet_normalize(torch.cat([_photo(n) for n in names]), mean, std)
    with torch.no_grad():
        ours = model(x)
        ref = reference_forward(sd, x, F.relu6)
    assert torch.equal(ours.argmax(-1), ref.argmax(-1))
    assert (ours - ref).abs().max().item() < 1e-3
    top1 = ours.argmax(-1).tolist()
    assert 281 <= top1[0] <= 285  # chelsea: a domestic cat class
    assert top1[1] in (967, 968)  # coffee: espresso or cup
    # the trunk inside the encoder is the same network
    enc = build_encoder("lite0", "imagenet").eval()
    with torch.no_grad():
        feat, _ = enc(x)
    assert torch.allclose(model.forward_head(model.forward_features(x), pre_logits=True), feat, atol=1e-4)


def test_lukemelas_b0_file_loads_with_se_and_swish(tmp_path):
    sd = random_lukemelas_b0()
    path = tmp_path / "efficientnet-b0.pth"
    torch.save(sd, path)
    model, mean, std = create_backbone("b0", "imagenet", path, num_classes=1000)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference_forward(sd, x, F.silu), atol=1e-4)
    assert mean == (0.485, 0.456, 0.406)


def test_torchvision_and_timm_b0_files_load(tmp_path):
    import torchvision
    from safetensors.torch import save_file
    tv = torchvision.models.efficientnet_b0()
    with torch.no_grad():
        _randomise_bn_stats(tv)
    tv.eval()
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    model, _, _ = create_backbone("b0", "imagenet", tmp_path / "tv.pth", num_classes=1000)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), tv(x), atol=1e-4)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "timm.safetensors")
    enc = build_encoder("b0", "imagenet", tmp_path / "timm.safetensors").eval()
    with torch.no_grad():
        assert torch.allclose(enc(x)[0], model.forward_head(model.forward_features(x), pre_logits=True),
                              atol=1e-5)


def test_missing_or_wrong_weights_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights_path"):
        build_encoder("b0", "imagenet")
    with pytest.raises(FileNotFoundError, match="not found"):
        build_encoder("b0", "imagenet", tmp_path / "nothing.pth")
    with pytest.raises((ValueError, RuntimeError)):  # lite0 file lacks b0's squeeze-excitation
        build_encoder("b0", "imagenet", lite0_package_weights_path())


# ---------------------------------------------------------------------------------------------
# Integral regression


def test_integral_regression_returns_peak_cell_centre():
    g = torch.Generator().manual_seed(0)
    B, K, h, w, stride = 3, 21, 16, 12, 4
    hm = torch.zeros(B, K, h, w)
    ii = torch.randint(0, h, (B, K), generator=g)
    jj = torch.randint(0, w, (B, K), generator=g)
    hm[torch.arange(B)[:, None], torch.arange(K)[None], ii, jj] = 40.0
    kp = integral_keypoints(hm, (h * stride, w * stride))
    expected = torch.stack([(jj + 0.5) * stride, (ii + 0.5) * stride], -1).float()
    assert (kp - expected).abs().max() < 0.5
    assert (kp - expected).abs().max() < 1e-3
    # stride 1: the argmax pixel's centre (j + 0.5, i + 0.5); a flat map gives the image centre
    kp1 = integral_keypoints(hm, (h, w))
    assert torch.allclose(kp1, torch.stack([jj + 0.5, ii + 0.5], -1).float(), atol=1e-3)
    flat = integral_keypoints(torch.zeros(1, 1, h, w), (h * stride, w * stride))
    assert torch.allclose(flat, torch.tensor([[[w * stride / 2, h * stride / 2]]]))


def test_hourglass_shapes_any_multiple_of_four():
    net = StackedHourglass(num_stacks=2, num_modules=1, num_feats=16, depth=4).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 88, 72))  # 22x18 heatmaps: odd sizes inside the hourglass
    assert len(out.heatmaps) == len(out.keypoints) == 2
    assert out.heatmaps[0].shape == (1, 21, 22, 18) and out.keypoints[1].shape == (1, 21, 2)
    assert ((out.keypoints[0] >= 0) & (out.keypoints[0] <= torch.tensor([72.0, 88.0]))).all()
    with pytest.raises(ValueError, match="at least"):
        net(torch.rand(1, 3, 56, 72))  # 14 rows < 2**4


# ---------------------------------------------------------------------------------------------
# Full network


def _small_net(**kw) -> S2HandNet:
    torch.manual_seed(0)
    args = dict(encoder="b0", encoder_init="random", num_faces=50, hg_feats=16, hg_modules=1,
                init_rot=axis_angle_facing_camera())
    args.update(kw)
    return S2HandNet(**args)


def test_every_parameter_gets_a_gradient():
    net = _small_net().train()
    out = net(torch.rand(2, 3, 64, 64))
    assert out["face_colors"].shape == (2, 50, 3) and out["light"].shape == (2, 11)
    assert out["pose_pca"].shape == (2, 30) and out["shape"].shape == (2, 10)
    assert out["scale"].shape == (2, 1) and out["rot"].shape == (2, 3) and out["trans"].shape == (2, 3)
    assert [k.shape for k in out["kp2d"]] == [(2, 21, 2)] * 2
    loss = sum(v.square().mean() for k, v in out.items() if torch.is_tensor(v))
    loss = loss + sum(k.square().mean() for k in out["kp2d"])
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # every parameter moves the loss, but for shifts that a later BatchNorm removes again (an
    # encoder block's bn3 bias before a 1x1 conv and the next block's BatchNorm; an hourglass conv's
    # bias before its BatchNorm): their gradient is 0 in exact arithmetic and float noise (~1e-9)
    # in practice, exactly 0 at some random states. Every weight must get a gradient.
    zero = [n for n, p in net.named_parameters() if not p.grad.abs().sum() > 0]
    assert all(n.endswith(".bias") for n in zero), zero


@pytest.mark.parametrize("encoder,init", [("b0", "random"), ("lite0", "imagenet")])
def test_initial_prediction_is_the_documented_init(encoder, init):
    net = _small_net(encoder=encoder, encoder_init=init).eval()
    with torch.no_grad():
        out = net(_photo("chelsea", 64).repeat(2, 1, 1, 1), branch="3d")
    # at the biases (camera_init "released"; "last" stays within millimetres / milliradians of them)
    assert torch.allclose(out["scale"], torch.tensor(0.95), atol=5e-3)
    assert torch.allclose(out["trans"], torch.tensor([0.0, 0.0, 0.65]), atol=5e-3)
    assert torch.allclose(out["rot"], torch.tensor(axis_angle_facing_camera()), atol=5e-3)
    assert out["pose_pca"].abs().max() < 0.05 and out["shape"].abs().max() < 0.05
    assert torch.allclose(out["face_colors"], torch.tensor(MEAN_SKIN_COLOR), atol=0.02)
    assert torch.allclose(out["light"], torch.tensor(DEFAULT_LIGHT), atol=0.05)
    assert out["kp2d"] is None


def test_camera_heads_see_the_image_from_the_start_unless_released_init():
    """camera_init "last": scale / translation outputs differ between images at step 0, so their
    gradients reach every layer; "released" (all layers N(0, 1e-3)) gives one constant output."""
    x = torch.cat([_photo("chelsea", 64), _photo("astronaut", 64)])
    spread = {}
    for init in ("last", "released"):
        torch.manual_seed(0)
        net = _small_net(encoder="lite0", encoder_init="imagenet", camera_init=init).eval()
        with torch.no_grad():
            out = net(x, branch="3d")
        spread[init] = float((out["trans"][0] - out["trans"][1]).abs().max() + (out["scale"][0] - out["scale"][1]).abs().max())
    assert spread["last"] > 1e-4 and spread["released"] < 1e-3 * spread["last"], spread


def test_facing_rotation_turns_canonical_hand_to_camera():
    R = Rotation.from_rotvec(axis_angle_facing_camera()).as_matrix()  # v_cam = R v
    assert np.allclose(R @ [-1, 0, 0], [0, -1, 0], atol=1e-6)  # fingers -> image up
    assert np.allclose(R @ [0, -1, 0], [0, 0, -1], atol=1e-6)  # palm normal -> towards camera
    assert np.allclose(R @ [0, 0, 1], [1, 0, 0], atol=1e-6)  # thumb -> image right


def test_branch_flags_and_parameter_split():
    net = _small_net().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        o3, o2 = net(x, branch="3d"), net(x, branch="2d")
    assert o3["kp2d"] is None and o3["trans"] is not None
    assert o2["trans"] is None and o2["face_colors"] is None and len(o2["kp2d"]) == 2
    p3, p2 = {id(p) for p in net.branch_parameters("3d")}, {id(p) for p in net.branch_parameters("2d")}
    assert not p3 & p2 and p3 | p2 == {id(p) for p in net.parameters()}
    no2d = _small_net(use_2d_branch=False).eval()
    with torch.no_grad():
        assert no2d(x)["kp2d"] is None
    with pytest.raises(ValueError):
        no2d(x, branch="2d")


def test_channels_last_and_bf16_autocast():
    net = _small_net().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        cl = net_cl(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = net_cl(x.contiguous(memory_format=torch.channels_last))
    for k in ("trans", "face_colors", "light"):
        assert torch.allclose(ref[k], cl[k], atol=1e-4), k
        assert torch.isfinite(bf[k].float()).all(), k
    assert torch.allclose(ref["kp2d"][-1], cl["kp2d"][-1], atol=1e-3)
    assert bf["kp2d"][-1].dtype == torch.float32
    assert (bf["kp2d"][-1] - ref["kp2d"][-1]).abs().max() < 2.0
