"""How much 3D do the 2D keypoints carry? Fit the hand to each frame's keypoints, no network.

    fit = fit_to_keypoints(layer, kp, conf, K, weights, image_size=128)   # kp (N, 21, 2) px
    fit.joints (N, 21, 3), fit.verts (N, V, 3) camera space (m), fit.j_pro (N, 21, 2) px

Every frame gets its own free code (global rotation R, the layer's pose PCA (30), 10 shape, scale s,
translation T, decoded as in s2hand.train.system: M = |s| (M_layer - J_layer[9]) + T) and Adam
minimises S2HAND's keypoint and regulariser energy for that frame alone:

    wgeo (E_loc + wori E_ori) + wregu (E_beta + ws E_s + wJ E_J)         (method.md s4, eq. 3, 4, 9)

with the loss functions and `weights` training uses (E_C has no texture to act on; the photometric
terms need a network's texture and are left out). The start is the network heads' initial hand
(s2hand.nets.heads: mean pose, mean shape, s = 0.95, T = (0, 0, 0.65) m, palm to the camera).

What the number means: the network is trained on these very energies, so a per-frame optimum
that is no better than the mean-pose baseline says the keypoints, as detected, pin the 3D
articulation no better than the mean does; a network can average their noise over frames but
not their bias. With ground-truth 2D keypoints the same fit shows the depth-ambiguity floor of
2D supervision. The evaluate stage reports both (docs/evaluation.md).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from s2hand.config import LossWeights
from s2hand.hand.layer import HandLayer
from s2hand.losses import bone_orientation_loss, joint_angle_loss, location_loss, scale_loss, shape_loss
from s2hand.nets import axis_angle_facing_camera
from s2hand.nets.heads import SCALE_INIT, TRANS_INIT
from s2hand.train.system import place_hand


class KeypointFit(NamedTuple):
    joints: np.ndarray  # (N, 21, 3) camera space, metres
    verts: np.ndarray  # (N, V, 3) camera space, metres
    j_pro: np.ndarray  # (N, 21, 2) projected joints, px of the keypoints' image


def initial_code(n: int, num_pose: int = 30) -> dict[str, Tensor]:
    """The network heads' initial hand for n frames (module docstring)."""
    return {
        "rot": torch.tensor(axis_angle_facing_camera(), dtype=torch.float32).repeat(n, 1),  # (n, 3)
        "pose": torch.zeros(n, num_pose),
        "shape": torch.zeros(n, 10),
        "scale": torch.full((n, 1), SCALE_INIT),
        "trans": torch.tensor(TRANS_INIT, dtype=torch.float32).repeat(n, 1),  # (n, 3)
    }


def decode(layer: HandLayer, code: dict[str, Tensor], K: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Code -> joints (N, 21, 3), verts (N, V, 3), projections (N, 21, 2), finger pose (N, 45),
    placed exactly as the network's codes are (s2hand.train.system.place_hand)."""
    p = place_hand(layer, code["rot"], code["pose"], code["shape"], code["scale"], code["trans"], K)
    return p.joints, p.verts, p.j_pro, p.full_pose[:, 3:]


def keypoint_energy(layer: HandLayer, code: dict[str, Tensor], kp: Tensor, conf: Tensor, K: Tensor,
                    w: LossWeights, image_size: float) -> Tensor:
    """Mean over the frames of the module docstring's energy (frames share no variable, so N x this
    has each frame's own energy gradient)."""
    joints, _, j_pro, finger_pose = decode(layer, code, K)
    geo = location_loss(j_pro, kp, conf, "paper", image_size=image_size) + w.ori * bone_orientation_loss(j_pro, kp, conf)
    regu = shape_loss(code["shape"]) + w.scale * scale_loss(joints) + w.joint * joint_angle_loss(finger_pose)
    return w.geo * geo + w.regu * regu


def fit_to_keypoints(layer: HandLayer, kp: np.ndarray, conf: np.ndarray, K: np.ndarray, weights: LossWeights,
                     image_size: float, iters: int = 300, lr: float = 0.02, chunk: int = 256) -> KeypointFit:
    """Per-frame fit (module docstring). kp (N, 21, 2) px, conf (N, 21), K (N, 3, 3) for the
    keypoints' image of side `image_size` px. Frames go `chunk` at a time (memory)."""
    if iters < 1:
        raise ValueError(f"fit_to_keypoints: iters must be >= 1, got {iters}")
    n = len(kp)
    out: list[tuple[np.ndarray, ...]] = []
    layer = layer.to("cpu")
    for a in range(0, n, chunk):
        sl = slice(a, min(n, a + chunk))
        k = torch.as_tensor(kp[sl], dtype=torch.float32)
        c = torch.as_tensor(conf[sl], dtype=torch.float32)
        cam = torch.as_tensor(K[sl], dtype=torch.float32)
        code = {name: v.requires_grad_() for name, v in initial_code(len(k), layer.num_pca_comps).items()}
        opt = torch.optim.Adam(code.values(), lr=lr)
        for _ in range(iters):
            opt.zero_grad(set_to_none=True)
            (len(k) * keypoint_energy(layer, code, k, c, cam, weights, image_size)).backward()
            opt.step()
        with torch.no_grad():
            joints, verts, j_pro, _ = decode(layer, code, cam)
        out.append((joints.numpy(), verts.numpy(), j_pro.numpy()))
    return KeypointFit(*(np.concatenate([o[i] for o in out]) for i in range(3)))
