"""The one in-memory and on-disk layout every dataset is turned into.

A `FrameTable` holds one split: a row per frame, numpy arrays with a shared first axis N.
Units: metres, camera coordinates (OpenCV: x right, y down, z forward), pixels for 2D.
Keypoints are always in OpenPose order (s2hand.hand.keypoints).

On disk, a prepared dataset is a folder:
    meta.json                  {"name", "image_size", "fps", "splits": {"train": N, ...}, ...}
    <split>.npz                the arrays below (images as paths relative to the folder)
    images/...                 image files (the synthetic set writes JPEGs here)

Fields (None where a dataset has no such annotation):
    image      (N,)       str   image path relative to the dataset folder
    K          (N,3,3)    f32   intrinsics in pixels of that image
    joints3d   (N,21,3)   f32   camera-space 3D keypoints (m)
    verts      (N,V,3)    f32   camera-space mesh vertices (m)
    pose       (N,48)     f32   axis-angle: global rotation (3) + 15 finger joints (45), full (not PCA)
    shape      (N,10)     f32   shape coefficients beta
    seq        (N,)       i64   sequence id (frames of a video share it; -1 for still images)
    frame      (N,)       i64   frame index inside the sequence
    joints2d   (N,21,2)   f32   projected ground-truth keypoints (px)
    visible    (N,21)     bool  keypoint not occluded (by an object or the image border)
    cut        (N,)       bool  a cut (scene change) happens right before this frame
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from s2hand.io import save_npz

FIELDS = ("image", "K", "joints3d", "verts", "pose", "shape", "seq", "frame", "joints2d", "visible", "cut")


@dataclasses.dataclass
class FrameTable:
    image: np.ndarray
    K: np.ndarray
    joints3d: np.ndarray | None = None
    verts: np.ndarray | None = None
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    seq: np.ndarray | None = None
    frame: np.ndarray | None = None
    joints2d: np.ndarray | None = None
    visible: np.ndarray | None = None
    cut: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.image)
        if self.seq is None:
            self.seq = np.full(n, -1, np.int64)
        if self.frame is None:
            self.frame = np.zeros(n, np.int64)
        expect = {
            "K": (3, 3), "joints3d": (21, 3), "pose": (48,), "shape": (10,),
            "seq": (), "frame": (), "joints2d": (21, 2), "visible": (21,), "cut": (),
        }
        for name in FIELDS:
            arr = getattr(self, name)
            if arr is None:
                continue
            if len(arr) != n:
                raise ValueError(f"FrameTable.{name}: {len(arr)} rows, expected {n}")
            if name in expect and arr.shape[1:] != expect[name]:
                raise ValueError(f"FrameTable.{name}: shape {arr.shape}, expected (N, {', '.join(map(str, expect[name]))})")
            if name == "verts" and (arr.ndim != 3 or arr.shape[2] != 3):
                raise ValueError(f"FrameTable.verts: shape {arr.shape}, expected (N, V, 3)")

    def __len__(self) -> int:
        return len(self.image)

    def subset(self, idx: np.ndarray) -> "FrameTable":
        return FrameTable(**{f: (None if getattr(self, f) is None else getattr(self, f)[idx]) for f in FIELDS})

    def save(self, path: str | Path) -> None:
        arrays = {f: getattr(self, f) for f in FIELDS if getattr(self, f) is not None}
        arrays["image"] = np.asarray(self.image, dtype=str)
        save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "FrameTable":
        with np.load(path, allow_pickle=False) as z:
            return cls(**{f: (z[f] if f in z.files else None) for f in FIELDS})


def save_meta(root: str | Path, meta: dict) -> None:
    Path(root, "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_split(root: str | Path, split: str) -> FrameTable:
    path = Path(root) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such split (prepared splits: {sorted(p.stem for p in Path(root).glob('*.npz'))})")
    return FrameTable.load(path)


def load_meta(root: str | Path) -> dict:
    return json.loads(Path(root, "meta.json").read_text())
