"""Regression heads of the 3D branch (method.md s1): geometry code x and texture/light code y.

    geo = GeometryHead(in_features=1280)(feat)            # feat (B, 1280) from the encoder
    geo.pose_pca (B, 30), geo.shape (B, 10), geo.scale (B, 1), geo.rot (B, 3), geo.trans (B, 3)
    tex = TextureLightHead(in_channels=24, num_faces=1538)(low)   # low (B, 24, H/4, W/4)
    tex.face_colors (B, F, 3) in (0, 1), tex.light (B, 11)

Geometry head (released code's MyPoseHand): shared MLP in -> 1024 -> 512 (Linear, BatchNorm1d,
ReLU), then one small MLP per output: pose and shape 512 -> 128 -> ReLU -> n; scale, rotation and
translation 512 -> 128 -> ReLU -> 32 -> n. Initialisation puts the hand in front of the camera:
- scale: last layer N(0, 0.001), bias 0.95. `scale` multiplies the canonical hand in metres:
  M = scale * M0 R + T (method.md s2); the released code uses |scale|.
- translation: last layer N(0, 0.001), bias (0, 0, 0.65) m (released): 65 cm along the camera's
  optical axis (OpenCV camera: x right, y down, z forward).
- rotation: last layer N(0, 0.001), bias `init_rot` (axis-angle, default zeros).
  `camera_init` says what happens to the hidden layers of these three heads: "released"
  (default) draws them N(0, 0.001) too, as the released code does for scale and translation (it
  leaves rotation at the default); "last" leaves them at PyTorch's default init, so the output
  starts within millimetres / milliradians of the bias but depends on the image from the first
  step. With three stacked 1e-3 layers the output is a constant whose image dependence grows
  only after hundreds of steps (on the embedded default's few hundred CPU steps the network
  predicts nearly one hand size and place for every image). "last" learns placement sooner, but
  with the paper's photometric weights on the embedded default it let E_pixel shrink the hand
  to a few pixels during finetune (measured; docs/training.md; `train.loss.photo_placement:
  detach` now keeps the photometric terms off the scale and translation). Which init_rot makes
  a canonical hand face the camera depends on the hand layer's convention; for a right hand with fingers along -x, palm
  facing -y, thumb +z (MANO), the rotation Q taking fingers to image-up (-y), the palm normal to
  the camera (-z), and so the thumb to image-right (+x), is Q = [[0,0,1],[1,0,0],[0,1,0]]
  (v_cam = Q v): 120 degrees about (1,1,1)/sqrt(3), axis-angle (1.2092, 1.2092, 1.2092). A layer
  that computes M0 @ R with R = rodrigues(r) (row vectors) needs r = -(1.2092, 1.2092, 1.2092).
- pose and shape: last layer N(0, 0.001), bias 0: the mean pose and mean shape (a deviation: the
  released code keeps PyTorch's default init here, which starts from a random pose).

Texture/light head (released code's texture_light_estimator): two convs on the stride-4 map and
two small MLPs. The released convs (kernel 10 stride 4, max-pools) assume a 56x56 map; here two
3x3 stride-2 convs (C4 -> 48 -> 64, ReLU) and an adaptive average pool to 2x2 give the same
256-d code at any input size. Texture: 256 -> 64 -> ReLU -> F*3, last layer N(0, 0.001), bias 0,
added to a mean skin colour (released: (200, 150, 150) / 256). `color_activation`:
- "sigmoid" (default): C = sigmoid(logit(mean_skin) + out): colours stay in (0, 1) and start at
  exactly the mean skin colour.
- "tanh" (released code): C = tanh(mean_skin + out); the released renderer is given
  tanh(texture), which starts at tanh(mean_skin) = (0.65, 0.53, 0.53) and can go negative.
face_colors is the colour C the renderer takes (s2hand.render), already activated.
Light: 256 -> 64 -> ReLU -> 11, last layer N(0, 0.001), bias `init_light`, no activation (as the
released code); layout L = [ambient intensity 1, ambient colour 3, directional intensity 1,
directional colour 3, direction 3] (s2hand.render.lighting.split_light; the released code orders
it [l_a, l_d, c_a, c_d, d] instead). Default init: ambient 0.5 white, directional 0.5 white, from
the camera: direction (0, 0, -1) in OpenCV camera coordinates points from the surface to a light
at the camera.
"""
from __future__ import annotations

import math
from typing import Literal, NamedTuple, Sequence

import torch
from torch import Tensor, nn

MEAN_SKIN_COLOR = (200 / 256, 150 / 256, 150 / 256)  # released code's texture_mean
DEFAULT_LIGHT = (0.5, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 0.0, 0.0, -1.0)
SCALE_INIT = 0.95
TRANS_INIT = (0.0, 0.0, 0.65)
HEAD_INIT_STD = 1e-3


class GeometryCode(NamedTuple):
    pose_pca: Tensor  # (B, P) PCA coefficients of the finger pose
    shape: Tensor  # (B, 10) beta
    scale: Tensor  # (B, 1) s
    rot: Tensor  # (B, 3) global rotation R, axis-angle
    trans: Tensor  # (B, 3) T, metres, camera frame


class TextureLight(NamedTuple):
    face_colors: Tensor  # (B, F, 3) C
    light: Tensor  # (B, 11) L


def _small_init(layer: nn.Linear, bias: Sequence[float] | float = 0.0) -> None:
    nn.init.normal_(layer.weight, 0.0, HEAD_INIT_STD)
    with torch.no_grad():
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype).expand_as(layer.bias))


def _mlp(dims: Sequence[int], relu_after: Sequence[bool]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for (a, b), relu in zip(zip(dims[:-1], dims[1:]), relu_after):
        layers.append(nn.Linear(a, b))
        if relu:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class GeometryHead(nn.Module):
    """(B, in_features) global feature -> GeometryCode (module docstring for the init)."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (1024, 512), num_pose: int = 30,
                 num_shape: int = 10, init_scale: float = SCALE_INIT,
                 init_trans: Sequence[float] = TRANS_INIT,
                 init_rot: Sequence[float] = (0.0, 0.0, 0.0),
                 camera_init: Literal["last", "released"] = "released"):
        super().__init__()
        if camera_init not in ("last", "released"):
            raise ValueError(f"camera_init must be 'last' or 'released', got {camera_init!r}")
        layers: list[nn.Module] = []
        for a, b in zip([in_features, *hidden[:-1]], hidden):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        self.base = nn.Sequential(*layers)
        d = hidden[-1]
        self.pose = _mlp([d, 128, num_pose], [True, False])
        self.shape = _mlp([d, 128, num_shape], [True, False])
        self.scale = _mlp([d, 128, 32, 1], [True, False, False])
        self.rot = _mlp([d, 128, 32, 3], [True, False, False])
        self.trans = _mlp([d, 128, 32, 3], [True, False, False])
        _small_init(self.pose[-1])
        _small_init(self.shape[-1])
        for head, bias in ((self.scale, [init_scale]), (self.rot, list(init_rot)),
                           (self.trans, list(init_trans))):
            linears = [m for m in head if isinstance(m, nn.Linear)]
            if camera_init == "released" and head is not self.rot:
                for m in linears[:-1]:
                    _small_init(m)
            _small_init(linears[-1], bias)

    def forward(self, feat: Tensor) -> GeometryCode:
        h = self.base(feat)  # (B, 512)
        return GeometryCode(self.pose(h), self.shape(h), self.scale(h), self.rot(h), self.trans(h))


class TextureLightHead(nn.Module):
    """(B, C4, h, w) stride-4 feature map -> TextureLight (module docstring)."""

    def __init__(self, in_channels: int, num_faces: int,
                 color_activation: Literal["sigmoid", "tanh"] = "sigmoid",
                 mean_color: Sequence[float] = MEAN_SKIN_COLOR,
                 init_light: Sequence[float] = DEFAULT_LIGHT):
        super().__init__()
        if color_activation not in ("sigmoid", "tanh"):
            raise ValueError(f"color_activation must be 'sigmoid' or 'tanh', got {color_activation!r}")
        if len(init_light) != 11:
            raise ValueError("init_light needs 11 numbers")
        self.num_faces = num_faces
        self.color_activation = color_activation
        self.base = nn.Sequential(
            nn.Conv2d(in_channels, 48, kernel_size=3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(48, 64, kernel_size=3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())  # (B, 256)
        self.texture = _mlp([256, 64, num_faces * 3], [True, False])
        self.light = _mlp([256, 64, 11], [True, False])
        _small_init(self.texture[-1])
        _small_init(self.light[-1], list(init_light))
        mean = torch.tensor(mean_color, dtype=torch.float32)
        offset = torch.logit(mean) if color_activation == "sigmoid" else mean
        self.register_buffer("color_offset", offset, persistent=False)  # (3,)

    def forward(self, low: Tensor) -> TextureLight:
        h = self.base(low)  # (B, 256)
        raw = self.texture(h).view(-1, self.num_faces, 3) + self.color_offset.to(h.dtype)
        colors = torch.sigmoid(raw) if self.color_activation == "sigmoid" else torch.tanh(raw)
        return TextureLight(colors, self.light(h))


def axis_angle_facing_camera() -> tuple[float, float, float]:
    """Axis-angle of Q (v_cam = Q v_canonical) that turns a canonical MANO right hand (fingers -x,
    palm -y, thumb +z) to face an OpenCV camera palm-first, fingers up, thumb right."""
    a = 2 * math.pi / 3 / math.sqrt(3)
    return (a, a, a)
