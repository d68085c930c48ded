"""How much 3D do the 2D keypoints carry? Fit the hand to each frame's keypoints, no network.

    fit = fit_to_keypoints(layer, kp, conf, K, weights, image_size=128)   # kp (N, 21, 2) px
    fit.joints (N, 21, 3), fit.verts (N, V, 3) camera space (m), fit.j_pro (N, 21, 2) px

Every frame gets its own free code (global rotation R, the layer's pose PCA (30), 10 shape, scale s,
translation T, decoded as in s2hand.model.system: M = |s| (M_layer - J_layer[9]) + T) and Adam
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

With `offsets` (s2hand.hand.convention) the energy compares the detections with the model's
keypoints moved to where the detector puts them, as training does under
`train.keypoint_convention: calibrated`. `calibrate_convention` fits those offsets: the same
per-frame fit over a set of frames, with the offsets of the wrist and the tips shared by all of
them and freed once the codes have settled (a third of the iterations); s2hand.hand.convention
says why only those six and what the result means.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from s2hand.config import LossWeights
from s2hand.hand.convention import CALIBRATED, detector_keypoints
from s2hand.hand.layer import HandLayer
from s2hand.losses import bone_orientation_loss, joint_angle_loss, location_loss, scale_loss, shape_loss
from s2hand.model.system import place_hand
from s2hand.nets import axis_angle_facing_camera
from s2hand.nets.heads import SCALE_INIT, TRANS_INIT
from s2hand.render import project


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
    placed exactly as the network's codes are (s2hand.model.system.place_hand)."""
    p = place_hand(layer, code["rot"], code["pose"], code["shape"], code["scale"], code["trans"], K)
    return p.joints, p.verts, p.j_pro, p.full_pose[:, 3:]


def keypoint_energy(layer: HandLayer, code: dict[str, Tensor], kp: Tensor, conf: Tensor, K: Tensor,
                    w: LossWeights, image_size: float, offsets: Tensor | None = None) -> Tensor:
    """Mean over the frames of the module docstring's energy (frames share no variable, so N x this
    has each frame's own energy gradient); offsets (21,): the detector's keypoint convention."""
    joints, _, j_pro, finger_pose = decode(layer, code, K)
    if offsets is not None:
        j_pro = project(detector_keypoints(joints, offsets), K)
    geo = location_loss(j_pro, kp, conf, "paper", image_size=image_size) + w.ori * bone_orientation_loss(j_pro, kp, conf)
    regu = shape_loss(code["shape"]) + w.scale * scale_loss(joints) + w.joint * joint_angle_loss(finger_pose)
    return w.geo * geo + w.regu * regu


def fit_codes(layer: HandLayer, kp: np.ndarray, conf: np.ndarray, K: np.ndarray, weights: LossWeights,
              image_size: float, iters: int = 300, lr: float = 0.02, chunk: int = 256,
              offsets: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-frame fit (module docstring): the fitted codes, {"rot" (N, 3), "pose" (N, P), "shape"
    (N, 10), "scale" (N, 1), "trans" (N, 3)}. kp (N, 21, 2) px, conf (N, 21), K (N, 3, 3) for the
    keypoints' image of side `image_size` px; offsets (21,): the detector's convention (None: the
    model's keypoints). Frames go `chunk` at a time (memory)."""
    if iters < 1:
        raise ValueError(f"fit_codes: iters must be >= 1, got {iters}")
    n = len(kp)
    out: dict[str, list[np.ndarray]] = {}
    layer = layer.to("cpu")
    off = None if offsets is None else torch.as_tensor(offsets, dtype=torch.float32)
    for a in range(0, n, chunk):
        sl = slice(a, min(n, a + chunk))
        k = torch.as_tensor(kp[sl], dtype=torch.float32)
        c = torch.as_tensor(conf[sl], dtype=torch.float32)
        cam = torch.as_tensor(K[sl], dtype=torch.float32)
        code = {name: v.requires_grad_() for name, v in initial_code(len(k), layer.num_pca_comps).items()}
        opt = torch.optim.Adam(code.values(), lr=lr)
        for _ in range(iters):
            opt.zero_grad(set_to_none=True)
            (len(k) * keypoint_energy(layer, code, k, c, cam, weights, image_size, off)).backward()
            opt.step()
        for name, v in code.items():
            out.setdefault(name, []).append(v.detach().numpy())
    return {name: np.concatenate(v) for name, v in out.items()}


def fit_to_keypoints(layer: HandLayer, kp: np.ndarray, conf: np.ndarray, K: np.ndarray, weights: LossWeights,
                     image_size: float, iters: int = 300, lr: float = 0.02, chunk: int = 256,
                     offsets: np.ndarray | None = None) -> KeypointFit:
    """fit_codes decoded: joints and vertices in camera space, j_pro the model's keypoints."""
    codes = fit_codes(layer, kp, conf, K, weights, image_size, iters, lr, chunk, offsets)
    with torch.no_grad():
        joints, verts, j_pro, _ = decode(layer.to("cpu"), {k: torch.as_tensor(v) for k, v in codes.items()},
                                         torch.as_tensor(K, dtype=torch.float32))
    return KeypointFit(joints.numpy(), verts.numpy(), j_pro.numpy())


def calibrate_convention(layer: HandLayer, kp: np.ndarray, conf: np.ndarray, K: np.ndarray, weights: LossWeights,
                         image_size: float, iters: int = 600, lr: float = 0.02, offsets_lr: float = 0.01) -> np.ndarray:
    """Offsets (21,) of the detector's convention fitted to detections kp (N, 21, 2) px with conf
    (N, 21) and K (N, 3, 3) (module docstring): free for the wrist and the tips, 0 elsewhere."""
    if iters < 3:
        raise ValueError(f"calibrate_convention: iters must be >= 3, got {iters}")
    n = len(kp)
    if n == 0:
        raise ValueError("calibrate_convention: no frames to calibrate on")
    layer = layer.to("cpu")
    k = torch.as_tensor(kp, dtype=torch.float32)
    c = torch.as_tensor(conf, dtype=torch.float32)
    cam = torch.as_tensor(K, dtype=torch.float32)
    code = {name: v.requires_grad_() for name, v in initial_code(n, layer.num_pca_comps).items()}
    offsets = torch.zeros(21, requires_grad=True)
    free = torch.zeros(21)
    free[list(CALIBRATED)] = 1.0
    opt_code = torch.optim.Adam(code.values(), lr=lr)
    opt_off = torch.optim.Adam([offsets], lr=offsets_lr)
    for it in range(iters):
        opt_code.zero_grad(set_to_none=True)
        opt_off.zero_grad(set_to_none=True)
        # n x the mean: each frame's own gradient for its code; the offsets get the sum over frames
        (n * keypoint_energy(layer, code, k, c, cam, weights, image_size, offsets)).backward()
        opt_code.step()
        if it >= iters // 3:
            offsets.grad.mul_(free)
            opt_off.step()
    return offsets.detach().numpy().astype(np.float64) * free.numpy()
