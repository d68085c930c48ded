"""S2HAND network (method.md s1): encoder + geometry head + texture/light head + optional 2D branch.

A pure network: it regresses codes; decoding them with the hand layer and rendering belong to the
caller (s2hand.hand, s2hand.render).

    net = S2HandNet("b0", "imagenet", weights_path="efficientnet_b0.safetensors", num_faces=1538)
    out = net(images)                    # images (B, 3, H, W) in [0, 1], H and W multiples of 4
    out["pose_pca"] (B, 30), out["shape"] (B, 10), out["scale"] (B, 1), out["rot"] (B, 3),
    out["trans"] (B, 3), out["face_colors"] (B, F, 3), out["light"] (B, 11),
    out["kp2d"] list of (B, 21, 2) per hourglass stack (input pixels, centre of pixel (i, j) at
    (j + 0.5, i + 0.5)), out["heatmaps"] list of (B, 21, H/4, W/4)

Stage-wise training (method.md s6): `net(images, branch="3d")` runs only encoder and heads (2D
outputs None), `branch="2d"` only the hourglass (3D outputs None); `branch_parameters("3d"|"2d")`
gives each branch's parameters for its optimiser. The encoder gets `imagenet_normalize(images,
encoder.mean, encoder.std)`, the hourglass `images - 0.5` (released code). No dtype or memory
format is fixed: `net.to(memory_format=torch.channels_last)` and `torch.autocast(...,
dtype=torch.bfloat16)` work as they are. The geometry MLP has BatchNorm1d: train with batches of
2 or more.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal, Sequence, TypedDict

from torch import Tensor, nn

from .encoder import EncoderInit, EncoderName, EncoderSpec, build_encoder, encoder_from_spec, imagenet_normalize
from .heads import GeometryHead, TextureLightHead
from .hourglass import StackedHourglass

Branch = Literal["all", "3d", "2d"]


class S2HandOutput(TypedDict):
    pose_pca: Tensor | None  # (B, 30)
    shape: Tensor | None  # (B, 10)
    scale: Tensor | None  # (B, 1)
    rot: Tensor | None  # (B, 3) axis-angle
    trans: Tensor | None  # (B, 3) metres
    face_colors: Tensor | None  # (B, F, 3)
    light: Tensor | None  # (B, 11)
    kp2d: list[Tensor] | None  # per stack (B, 21, 2), input pixels
    heatmaps: list[Tensor] | None  # per stack (B, 21, H/4, W/4)


class S2HandNet(nn.Module):
    def __init__(self, encoder: EncoderName = "b0", encoder_init: EncoderInit = "imagenet",
                 weights_path: str | Path | None = None, num_faces: int = 1538,
                 num_pose: int = 30, num_shape: int = 10,
                 init_rot: Sequence[float] = (0.0, 0.0, 0.0),
                 color_activation: Literal["sigmoid", "tanh"] = "sigmoid",
                 use_2d_branch: bool = True, hg_stacks: int = 2, hg_feats: int = 256,
                 hg_modules: int = 2, hg_depth: int = 4, hg_beta: float = 1.0,
                 num_joints: int = 21, camera_init: Literal["last", "released"] = "released",
                 encoder_spec: EncoderSpec | None = None):
        """encoder_spec: build the encoder as that spec says, with random weights (a trained model
        being restored: s2hand.model.files); encoder, encoder_init, weights_path are then unused."""
        super().__init__()
        self.encoder = (build_encoder(encoder, encoder_init, weights_path) if encoder_spec is None
                        else encoder_from_spec(encoder_spec))
        self.geometry = GeometryHead(self.encoder.num_features, num_pose=num_pose,
                                     num_shape=num_shape, init_rot=init_rot, camera_init=camera_init)
        self.texture_light = TextureLightHead(self.encoder.low_channels, num_faces,
                                              color_activation=color_activation)
        self.hourglass = (StackedHourglass(num_joints, hg_stacks, hg_modules, hg_feats, hg_depth,
                                           hg_beta) if use_2d_branch else None)

    def branch_parameters(self, branch: Literal["3d", "2d"]) -> Iterator[nn.Parameter]:
        if branch == "3d":
            for m in (self.encoder, self.geometry, self.texture_light):
                yield from m.parameters()
        elif branch == "2d":
            if self.hourglass is None:
                raise ValueError("this S2HandNet has no 2D branch")
            yield from self.hourglass.parameters()
        else:
            raise ValueError(f"branch must be '3d' or '2d', got {branch!r}")

    def forward(self, images: Tensor, branch: Branch = "all") -> S2HandOutput:
        """images (B, 3, H, W) in [0, 1] -> S2HandOutput; branch 'all' | '3d' | '2d'."""
        if branch not in ("all", "3d", "2d"):
            raise ValueError(f"branch must be 'all', '3d' or '2d', got {branch!r}")
        out: S2HandOutput = dict(pose_pca=None, shape=None, scale=None, rot=None, trans=None,
                                 face_colors=None, light=None, kp2d=None, heatmaps=None)
        if branch in ("all", "3d"):
            feat, low = self.encoder(imagenet_normalize(images, self.encoder.mean, self.encoder.std))
            geo = self.geometry(feat)  # codes (B, .)
            tex = self.texture_light(low)  # (B, F, 3), (B, 11)
            out.update(pose_pca=geo.pose_pca, shape=geo.shape, scale=geo.scale, rot=geo.rot,
                       trans=geo.trans, face_colors=tex.face_colors, light=tex.light)
        if branch == "2d" or (branch == "all" and self.hourglass is not None):
            if self.hourglass is None:
                raise ValueError("branch='2d' needs use_2d_branch=True")
            hm = self.hourglass(images)
            out.update(kp2d=hm.keypoints, heatmaps=hm.heatmaps)
        return out
