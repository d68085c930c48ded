"""The hand layer: smplx's MANO on our MANO-format npz (real MANO or the open hand alike).

    from s2hand.hand.layer import HandLayer
    hand = HandLayer.from_file("outputs/hand_model/MANO_RIGHT.npz", num_pca_comps=30)
    out = hand(global_orient, theta, beta)      # (B, 3), (B, 30) PCA coefficients, (B, 10)
    out.verts (B, V, 3); out.joints (B, 21, 3) OpenPose order; out.full_pose (B, 48) axis-angle
    out = hand(global_orient, pose45, beta, pca=False)   # (B, 45) absolute finger axis-angle

Finger pose (method.md s2): full finger pose = hands_mean + theta @ hands_components[:num_pca_comps]
(hands_mean is zero with flat_hand_mean=True), or the given (B, 45) when pca=False; that full
pose is what limits.py's ranges apply to. The composition is done here and smplx.MANO is built
with use_pca=False, flat_hand_mean=True, so smplx only skins: this avoids smplx's quirks
(num_pca_comps=45 silently turns PCA off; with use_pca=False it still adds hands_mean).
21 keypoints = smplx's 16 joints + the model's 5 fingertip vertices, converted to OpenPose order.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx
import torch
from smplx.utils import Struct

from s2hand.hand.keypoints import MANO21_TO_OPENPOSE
from s2hand.hand.mano_io import read_hand_model
from s2hand.hand.mesh import face_normals


@dataclass
class HandOutput:
    verts: torch.Tensor  # (B, V, 3)
    joints: torch.Tensor  # (B, 21, 3) OpenPose order
    full_pose: torch.Tensor  # (B, 48) global orient + 15 finger joints, axis-angle


class HandLayer(torch.nn.Module):
    """No trainable parameters; every model array is a buffer."""

    def __init__(self, model: dict, num_pca_comps: int = 30, flat_hand_mean: bool = False,
                 dtype: torch.dtype = torch.float32, model_path: str = "MANO_RIGHT.npz"):
        super().__init__()
        if not 1 <= num_pca_comps <= 45:
            raise ValueError(f"num_pca_comps must be in 1..45, got {num_pca_comps}")
        struct = Struct(**{k: v for k, v in model.items() if k not in ("source", "info")})
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10 betas
            self.mano = smplx.MANO(
                model_path, is_rhand=True, data_struct=struct, use_pca=False, num_pca_comps=num_pca_comps,
                flat_hand_mean=True, dtype=dtype, create_global_orient=False, create_hand_pose=False,
                create_betas=False, create_transl=False, create_body_pose=False,
            )
        self.num_pca_comps = num_pca_comps
        self.flat_hand_mean = flat_hand_mean
        self.source = str(model.get("source", ""))
        self.num_verts = int(np.shape(model["v_template"])[0])
        mean = np.zeros(45) if flat_hand_mean else np.asarray(model["hands_mean"])
        self.register_buffer("hand_mean", torch.as_tensor(mean, dtype=dtype))  # (45,)
        comps = np.asarray(model["hands_components"])[:num_pca_comps]
        self.register_buffer("hand_components", torch.as_tensor(comps, dtype=dtype))  # (n, 45)
        self.register_buffer("faces", torch.as_tensor(np.asarray(model["f"], dtype=np.int64)))  # (F, 3)
        self.register_buffer("tip_vertex_ids", torch.as_tensor(np.asarray(model["tip_vertex_ids"], dtype=np.int64)))
        self.register_buffer("mano21_to_openpose", torch.as_tensor(MANO21_TO_OPENPOSE, dtype=torch.long))

    def _apply(self, fn, recurse: bool = True):
        """Module.to / .cuda / ...: smplx's kinematic-tree buffer `parents` stays on the CPU. smplx
        walks the tree indexing a Python list with its elements (lbs.batch_rigid_transform), and
        on CUDA each such index is a device-to-host copy that waits for the GPU: 15 per forward.
        Kept on the CPU, the walk reads host memory; the one tensor index with it
        (joints[:, parents[1:]]) copies 15 numbers to the device instead."""
        parents = self.mano.parents.cpu()  # (16,) int64
        super()._apply(fn, recurse)
        self.mano.parents = parents
        return self

    @classmethod
    def from_file(cls, path: str | Path, num_pca_comps: int = 30, flat_hand_mean: bool = False,
                  dtype: torch.dtype = torch.float32) -> "HandLayer":
        return cls(read_hand_model(path), num_pca_comps, flat_hand_mean, dtype, model_path=str(path))

    def finger_pose(self, hand_pose: torch.Tensor, pca: bool = True) -> torch.Tensor:
        """(B, num_pca_comps) coefficients, or (B, 45) when pca=False -> (B, 45) full axis-angle."""
        if not pca:
            if hand_pose.shape[-1] != 45:
                raise ValueError(f"pca=False needs (B, 45) axis-angle, got {tuple(hand_pose.shape)}")
            return hand_pose
        if hand_pose.shape[-1] != self.num_pca_comps:
            raise ValueError(f"expected (B, {self.num_pca_comps}) PCA coefficients, got {tuple(hand_pose.shape)}")
        return self.hand_mean + hand_pose @ self.hand_components

    def forward(self, global_orient: torch.Tensor, hand_pose: torch.Tensor, betas: torch.Tensor,
                transl: torch.Tensor | None = None, pca: bool = True) -> HandOutput:
        """global_orient (B, 3), hand_pose (B, num_pca_comps) or (B, 45) with pca=False,
        betas (B, 10), transl (B, 3) or None -> HandOutput."""
        fingers = self.finger_pose(hand_pose, pca)  # (B, 45)
        out = self.mano(betas=betas, global_orient=global_orient, hand_pose=fingers, transl=transl)
        verts = out.vertices  # (B, V, 3)
        tips = verts[:, self.tip_vertex_ids]  # (B, 5, 3)
        mano21 = torch.cat([out.joints, tips], dim=1)  # (B, 21, 3)
        return HandOutput(verts=verts, joints=mano21[:, self.mano21_to_openpose],
                          full_pose=torch.cat([global_orient, fingers], dim=1))

    def canonical_face_normals(self) -> torch.Tensor:
        """Unit face normals of the zero-pose (flat hand), mean-shape mesh. (F, 3)"""
        return face_normals(self.mano.v_template, self.faces)  # zero pose and zero betas: the template itself

    @torch.no_grad()
    def mesh_np(self, hand_pose45: np.ndarray, betas: np.ndarray | None = None) -> np.ndarray:
        """Convenience for plots: absolute (45,) finger pose, optional (10,) betas -> verts (V, 3)."""
        dtype = self.hand_mean.dtype
        pose = torch.as_tensor(np.asarray(hand_pose45), dtype=dtype)[None]
        b = torch.zeros(1, 10, dtype=dtype) if betas is None else torch.as_tensor(np.asarray(betas), dtype=dtype)[None]
        return self(torch.zeros(1, 3, dtype=dtype), pose, b, pca=False).verts[0].numpy()
