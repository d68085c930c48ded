"""STB (Stereo Hand Pose Tracking Benchmark) -> FrameTable, the SK (RealSense colour) images.

Layout and numbers from the dataset's README (github.com/zhjwustc/icip17_stereo_hand_pose_dataset),
`root` = the folder holding images/ and labels/:
    images/<SEQ>/SK_color_<i>.png   i = 0..1499, 640x480, for the 12 sequences B1..B6 x
                                    {Counting, Random}
    labels/<SEQ>_SK.mat             'handPara' (3, 21, 1500): x, y, z in millimetres
Keypoint order of handPara (README): palm centre (not the wrist), then little (pinky), ring,
middle, index, thumb, each MCP, PIP, DIP, tip (root to tip). The same order is used by the STB
loaders of Ge et al. (hand-graph-cnn) and Yang et al. (bihand), whose names run
pinky_01..04 from the knuckle to the tip.
The SK labels are in the depth sensor's frame: the README's rotation vector r and translation t
map colour-camera coordinates to depth-camera ones (p_depth = R p_colour + t, R = Rodrigues(r)),
so p_colour = R^T (p_depth - t), as the README's positionCalc.m does.
SK colour intrinsics from the README: fx 607.92271, fy 607.88192, u0 314.78337, v0 236.42484.

OpenPose needs a wrist, STB has a palm centre. `wrist="extrapolate"` (default) puts the wrist
at ring_mcp + 2 (palm - ring_mcp), the ring knuckle reflected through the palm centre, as in
the STB loader of Ge et al. 2019 (3D hand shape and pose from a single RGB image);
`wrist="palm"` keeps the palm centre in the wrist slot (compare only root-relative, aligned
errors then). The hands in STB are left hands (joint names *_L); FrameTable has no
handedness, so meta records hand_side "left": mirror images and x before fitting a right MANO.

Splits (as in the papers): "test" = B1Counting, B1Random; "train" = the other 10 sequences.
seq = index in SEQUENCES; frame = i.

    table = load_stb(Path("data/stb/STB"), "test")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from s2hand.data.table import FrameTable
from s2hand.hand.keypoints import OPENPOSE_NAMES

SEQUENCES = tuple(f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random"))
TEST_SEQUENCES = ("B1Counting", "B1Random")
FRAMES_PER_SEQUENCE = 1500
SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
SK_ROT_VEC = np.array([0.00531, -0.01196, 0.00301])  # colour -> depth camera (Rodrigues)
SK_TRANS_MM = np.array([-24.0381, -0.4563, -1.2326])  # colour -> depth camera, mm
STB_NAMES = ("palm",) + tuple(f"{f}{i}" for f in ("pinky", "ring", "middle", "index", "thumb") for i in range(1, 5))
# openpose[..., i, :] = stb[..., STB_TO_OPENPOSE[i], :]; STB's palm centre fills the wrist slot
STB_TO_OPENPOSE = np.array([STB_NAMES.index("palm" if n == "wrist" else n) for n in OPENPOSE_NAMES])
META = {"image_size": [640, 480], "fps": None, "hand_side": "left", "pose": None}


def depth_to_color(xyz_mm: np.ndarray) -> np.ndarray:
    """(..., 3) points in the SK depth camera's frame (mm) -> the SK colour camera's frame (mm)."""
    R = cv2.Rodrigues(SK_ROT_VEC)[0]
    return (xyz_mm - SK_TRANS_MM) @ R  # row vectors: (R^T (p - t))^T = (p - t)^T R


def stb_to_openpose(stb: np.ndarray, wrist: Literal["extrapolate", "palm"] = "extrapolate") -> np.ndarray:
    """(N, 21, 3) STB order -> OpenPose order, the wrist placed as `wrist` says (module docstring)."""
    out = stb[:, STB_TO_OPENPOSE].copy()
    if wrist == "extrapolate":
        palm, ring_mcp = stb[:, STB_NAMES.index("palm")], stb[:, STB_NAMES.index("ring1")]
        out[:, 0] = ring_mcp + 2.0 * (palm - ring_mcp)
    elif wrist != "palm":
        raise ValueError(f"wrist: 'extrapolate' or 'palm', got {wrist!r}")
    return out


def load_stb(
    root: str | Path,
    split: str,
    *,
    wrist: Literal["extrapolate", "palm"] = "extrapolate",
    K: np.ndarray = SK_COLOR_K,
) -> FrameTable:
    from scipy.io import loadmat

    root = Path(root)
    if split == "test":
        seqs = TEST_SEQUENCES
    elif split == "train":
        seqs = tuple(s for s in SEQUENCES if s not in TEST_SEQUENCES)
    else:
        raise ValueError(f"STB split: 'train' or 'test', got {split!r}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"STB intrinsics: expected (3, 3), got {K.shape}")
    images, joints, seq_ids, frames = [], [], [], []
    for name in seqs:
        mat = root / "labels" / f"{name}_SK.mat"
        if not mat.is_file():
            raise FileNotFoundError(f"{mat}: missing STB label file")
        para = loadmat(mat).get("handPara")
        if para is None or para.ndim != 3 or para.shape[:2] != (3, 21):
            raise ValueError(f"{mat}: expected 'handPara' of shape (3, 21, N), got {None if para is None else para.shape}")
        n = para.shape[2]
        rels = [f"images/{name}/SK_color_{i}.png" for i in range(n)]
        missing = [r for r in rels if not os.path.isfile(root / r)]
        if missing:
            raise FileNotFoundError(f"{root / missing[0]}: missing STB image ({len(missing)} of {n} missing in {name})")
        xyz = depth_to_color(np.transpose(para, (2, 1, 0)).astype(np.float64)) / 1000.0  # (n, 21, 3) m
        images += rels
        joints.append(stb_to_openpose(xyz, wrist))
        seq_ids.append(np.full(n, SEQUENCES.index(name), np.int64))
        frames.append(np.arange(n, dtype=np.int64))
    joints3d = np.concatenate(joints)
    uvw = joints3d @ K.T
    return FrameTable(
        image=np.array(images), K=np.broadcast_to(K, (len(images), 3, 3)).astype(np.float32),
        joints3d=joints3d.astype(np.float32), seq=np.concatenate(seq_ids), frame=np.concatenate(frames),
        joints2d=(uvw[..., :2] / uvw[..., 2:]).astype(np.float32),
    )
