"""The frames a model sees: a torch Dataset over a FrameTable plus its detected keypoints, the
geometry that crops and resizes them, and the filter of the frames training keeps.

    ds = HandFrames(table, "outputs/dataset", keypoints, input_size=128, augment=AugmentParams(), seed=0)
    item = ds[(index, epoch)]     # augmented (epoch given, augment set); ds[index]: plain resize
    item["image"] (3, S, S) float [0, 1] RGB; item["K"] (3, 3) px of the S-px input;
    item["kp"] (21, 2) detected keypoints, input px; item["conf"] (21,); item["index"] ();
    item["joints3d"] (21, 3), item["verts"] (V, 3), item["joints2d"] (21, 2) where the table has them
    rows = training_rows(table, keypoints, params.train)               # the frames training keeps

Geometry (pixel (i, j) has its centre at (j + 0.5, i + 0.5), s2hand.render.camera). Every frame
goes through one affine map of continuous pixel coordinates, u' = r (Rot_K(u - p) + p - o):
- Rot_K: in-plane rotation by a about the principal point p = (cx, cy), written in the camera's
  normalised coordinates, F Rot(a) F^-1 with F = diag(fx, fy). That is exactly the image of the
  scene turned by Rz(a) about the optical axis (x' = K Rz K^-1 x is affine for a rotation about
  z), so K is unchanged by it; the implied 3D ground truth is Rz(a) X (returned rotated too, so
  an augmented item stays self-consistent; training reads only 2D).
- crop and resize: the square crop of side c at origin o (c = W (1 + scale U(-1, 1)), centre
  W/2 + shift W U(-1, 1) per axis) resized to S px, r = S / c: K -> crop_intrinsics(K, o, c, S),
  i.e. f -> r f, c -> r (c - o).
Without augmentation c = W, o = 0: a plain resize to S (scale_intrinsics). Keypoints get the same
map; confidences are unchanged (0 = missing stays 0). Pixels outside the source are black.

Randomness: the augmentation of (index, epoch) is drawn from numpy's Generator seeded with
(seed, epoch, index), and the epoch order from (seed, epoch) (s2hand.train.batches): the data a
step sees depends on nothing else (not on workers, processes or an interruption), which makes
resume and DDP exact.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from s2hand.config import AugmentParams, TrainParams
from s2hand.data.table import FrameTable
from s2hand.data.images import ImageError, read_rgb
from s2hand.detect.keypoint_file import Keypoints
from s2hand.detect.temporal import neighbour_disagreement


def frame_affine(K: np.ndarray, src_size: int, out_size: int, angle: float = 0.0,
                 crop_side: float | None = None, crop_origin: tuple[float, float] = (0.0, 0.0)
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(2, 3) affine of continuous pixel coordinates source -> output, and the output's K (3, 3).

    angle: radians, in-plane rotation about the principal point (image axes: x right, y down,
    so positive turns x towards y); crop_side, crop_origin: the square crop in source px
    (None: the whole image)."""
    K = np.asarray(K, np.float64)
    c = float(src_size if crop_side is None else crop_side)
    ox, oy = crop_origin
    r = out_size / c
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    cs, sn = math.cos(angle), math.sin(angle)
    rot = np.array([[cs, -sn * fx / fy], [sn * fy / fx, cs]])  # F Rot F^-1
    p = np.array([cx, cy])
    A = r * rot
    b = r * (p - rot @ p - np.array([ox, oy]))
    K_out = K.copy()
    K_out[0, 0], K_out[1, 1] = r * fx, r * fy
    K_out[0, 1] = r * K[0, 1]
    K_out[0, 2], K_out[1, 2] = r * (cx - ox), r * (cy - oy)
    return np.concatenate([A, b[:, None]], axis=1), K_out


def warp_image(img: np.ndarray, M: np.ndarray, out_size: int) -> np.ndarray:
    """Apply a continuous-pixel affine (2, 3) to an (H, W, 3) image with OpenCV (whose pixel
    centres sit at integers: shift by half a pixel on both sides). A downscale by more than 1.5
    resizes the source with INTER_AREA first (anti-aliasing), then warps the rest."""
    A, b = M[:, :2], M[:, 2]
    zoom = math.sqrt(abs(np.linalg.det(A)))
    if zoom < 1 / 1.5:
        h, w = img.shape[:2]
        sw, sh = max(1, round(w * zoom)), max(1, round(h * zoom))
        img = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
        A = A @ np.diag([w / sw, h / sh])  # small-image coordinates -> source -> output
    b_cv = A @ np.array([0.5, 0.5]) + b - 0.5
    M_cv = np.concatenate([A, b_cv[:, None]], axis=1)
    if np.allclose(M_cv, np.eye(2, 3), atol=1e-9) and img.shape[:2] == (out_size, out_size):
        return img
    return cv2.warpAffine(img, M_cv, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def apply_affine(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(..., 2) continuous pixel coordinates -> (..., 2) under the (2, 3) affine."""
    return points @ M[:, :2].T + M[:, 2]


log = logging.getLogger("s2hand.train")


class HandFrames(Dataset):
    """Frames of one split with their detected keypoints (module docstring)."""

    def __init__(self, table: FrameTable, root: str | Path, keypoints: Keypoints | None,
                 input_size: int, augment: AugmentParams | None = None, seed: int = 0,
                 targets: dict[str, np.ndarray] | None = None, skip_bad: bool = False):
        """targets: extra per-row arrays (N, ...) passed through as they are (pseudo labels:
        s2hand.train.pseudo_labels.load_pseudo_labels). skip_bad: a bad image gives None (training,
        with s2hand.train.batches.collate_skipping) instead of raising ImageError (validation must see every frame)."""
        self.table, self.root, self.skip_bad = table, Path(root), bool(skip_bad)
        self.targets = targets or {}
        for name, v in self.targets.items():
            if len(v) != len(table):
                raise ValueError(f"target {name!r}: {len(v)} rows for {len(table)} frames")
        self.kp = keypoints
        if keypoints is not None and len(keypoints) != len(table):
            raise ValueError(f"{len(keypoints)} keypoint rows for {len(table)} frames")
        self.size = int(input_size)
        self.augment = augment
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.table)

    def read(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB, read by the checked reader (s2hand.data.images.read_rgb); raises
        ImageError for a missing, truncated or undecodable image."""
        return read_rgb(self.root / str(self.table.image[index]))

    def _draw(self, index: int, epoch: int, src: int) -> tuple[float, float, tuple[float, float]]:
        a = self.augment
        rng = np.random.default_rng([self.seed, epoch, index])
        u = rng.uniform(-1.0, 1.0, size=4)
        side = src * (1.0 + a.scale * u[0])
        centre = src / 2 + a.shift * src * u[1:3]
        angle = math.radians(a.rotation_deg) * u[3]
        return angle, side, (float(centre[0] - side / 2), float(centre[1] - side / 2))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor] | None:
        """The item; None for a bad frame when skip_bad (collate_skipping drops it and counts it)."""
        index, epoch = (key, None) if isinstance(key, (int, np.integer)) else key
        index = int(index)
        try:
            img = self.read(index)
        except ImageError as e:
            if not self.skip_bad:
                raise
            log.warning("skipping a bad frame: %s", e)
            return None
        src = img.shape[1]
        if img.shape[0] != src:
            raise ValueError(f"{self.table.image[index]}: images must be square, got {img.shape[:2]}")
        K = self.table.K[index]
        angle, side, origin = 0.0, None, (0.0, 0.0)
        if self.augment is not None and epoch is not None:
            angle, side, origin = self._draw(index, epoch, src)
        M, K_out = frame_affine(K, src, self.size, angle, side, origin)
        out = {
            "image": torch.from_numpy(np.ascontiguousarray(warp_image(img, M, self.size))).permute(2, 0, 1).float() / 255.0,
            "K": torch.as_tensor(K_out, dtype=torch.float32),
            "index": torch.tensor(index),
        }
        if self.kp is not None:
            conf = self.kp.conf[index]
            kp = np.where(conf[:, None] > 0, apply_affine(self.kp.peaks[index].astype(np.float64), M), 0.0)
            out["kp"] = torch.as_tensor(kp, dtype=torch.float32)
            out["conf"] = torch.as_tensor(conf, dtype=torch.float32)
        for name, v in self.targets.items():
            out[name] = torch.as_tensor(v[index])
        Rz = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
        t = self.table
        if t.joints3d is not None:
            out["joints3d"] = torch.as_tensor(t.joints3d[index] @ Rz.T, dtype=torch.float32)
        if t.verts is not None:
            out["verts"] = torch.as_tensor(t.verts[index] @ Rz.T, dtype=torch.float32)
        if t.joints2d is not None:
            out["joints2d"] = torch.as_tensor(apply_affine(t.joints2d[index].astype(np.float64), M), dtype=torch.float32)
        return out


def train_rows(conf: np.ndarray, min_keypoints: int, min_confidence: float = 0.0,
               disagreement: np.ndarray | None = None, max_disagreement: float = 0.0) -> np.ndarray:
    """Rows of the frames trained on: conf (N, 21) -> indices with at least `min_keypoints`
    detected keypoints, a best keypoint confidence of at least `min_confidence` and, when
    max_disagreement > 0, a temporal disagreement (N,) (s2hand.detect.temporal) of at most it."""
    keep = (conf > 0).sum(axis=1) >= min_keypoints
    if min_confidence > 0:
        keep &= conf.max(axis=1) >= min_confidence
    if max_disagreement > 0:
        if disagreement is None:
            raise ValueError("max_disagreement needs the frames' disagreement")
        keep &= disagreement <= max_disagreement
    return np.flatnonzero(keep)


def training_rows(table: FrameTable, kp: Keypoints, tp: TrainParams) -> np.ndarray:
    """The train frames of `table` (FrameTable) with keypoints `kp` that TrainParams `tp` keep.
    The temporal test (max_disagreement) judges video frames only: still images (seq -1, e.g.
    FreiHAND) have no neighbours and pass it; video frames it cannot judge are left out."""
    disagreement = None
    if tp.max_disagreement > 0:
        disagreement = neighbour_disagreement(kp.peaks, kp.conf, table.seq, table.frame, table.cut)
        disagreement[np.asarray(table.seq) < 0] = 0.0
    return train_rows(kp.conf, tp.min_keypoints, tp.min_confidence, disagreement, tp.max_disagreement)
