"""Networks of S2HAND (method.md s1): EfficientNet encoder, geometry and texture/light heads,
stacked-hourglass 2D branch with integral regression, and the assembled S2HandNet.

    from s2hand.nets import S2HandNet
    net = S2HandNet("lite0", "imagenet", num_faces=1538)
    out = net(images)   # images (B, 3, H, W) in [0, 1]

Tests: .venv/bin/python -m pytest -q tests/test_nets.py
"""
from .encoder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_TF_MEAN,
    LITE_TF_STD,
    Encoder,
    EncoderSpec,
    build_encoder,
    convert_lukemelas_state_dict,
    convert_torchvision_state_dict,
    create_backbone,
    encoder_from_spec,
    imagenet_normalize,
    lite0_package_weights_path,
    read_state_dict,
)
from .heads import (
    DEFAULT_LIGHT,
    MEAN_SKIN_COLOR,
    SCALE_INIT,
    TRANS_INIT,
    GeometryCode,
    GeometryHead,
    TextureLight,
    TextureLightHead,
    axis_angle_facing_camera,
)
from .hourglass import HourglassOutput, StackedHourglass, integral_keypoints
from .model import Branch, S2HandNet, S2HandOutput

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "LITE_TF_MEAN", "LITE_TF_STD", "Encoder", "EncoderSpec", "build_encoder", "encoder_from_spec",
    "convert_lukemelas_state_dict", "convert_torchvision_state_dict", "create_backbone",
    "imagenet_normalize", "lite0_package_weights_path", "read_state_dict",
    "DEFAULT_LIGHT", "MEAN_SKIN_COLOR", "SCALE_INIT", "TRANS_INIT", "GeometryCode",
    "GeometryHead", "TextureLight", "TextureLightHead", "axis_angle_facing_camera",
    "HourglassOutput", "StackedHourglass", "integral_keypoints",
    "Branch", "S2HandNet", "S2HandOutput",
]
