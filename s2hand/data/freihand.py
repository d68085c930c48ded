"""FreiHAND v2 -> FrameTable.

Layout (github.com/lmb-freiburg/freihand, utils/fh_utils.py), `root` = the unpacked
FreiHAND_pub_v2 folder:
    training/rgb/%08d.jpg      32,560 ids x 4 versions (gs, hom, sample, auto): image
                               i + k * 32,560 is version k of id i and shares id i's annotation
    training_K.json            (N, 3, 3) intrinsics
    training_xyz.json          (N, 21, 3) keypoints, metres, camera frame (OpenCV), OpenPose order
    training_mano.json         (N, 1, 61) = pose 48 (global 3 + fingers 45, axis-angle, fingers
                               relative to MANO's hands_mean: the toolkit builds MANO with
                               flat_hand_mean=False) + shape 10 + root uv 2 + scale 1. The last three
                               are the toolkit's weak-perspective root, not a translation.
    training_verts.json        (N, 778, 3) metres
    evaluation/rgb/%08d.jpg    3,960 images; evaluation_K.json beside them
    evaluation_{xyz,verts,mano}.json   released later in FreiHAND_pub_v2_eval.zip (optional:
                               pass its unpacked folder as `eval_root`, or copy them into root)

Splits: "train" (all versions of the ids not held out), "val" (the held-out ids, green-screen
version only; `val_fraction` of the ids, drawn with a fixed seed), "test" (evaluation).
Image paths in the returned table are relative to `root`; seq = -1 (still images), frame =
the image's file number.

    table = load_freihand(Path("data/freihand/FreiHAND_pub_v2"), "train")
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2hand.data.table import FrameTable

log = logging.getLogger(__name__)

VERSIONS = ("gs", "hom", "sample", "auto")  # image i + k * N is version VERSIONS[k]
NUM_TRAIN, NUM_EVAL = 32560, 3960
META = {
    "image_size": 224, "fps": None, "hand_side": "right",
    "pose": "MANO axis-angle; the 45 finger values are relative to MANO's hands_mean (flat_hand_mean=False)",
}


def read_json_array(path: Path, tail: tuple[int, ...]) -> np.ndarray:
    """A JSON file of nested numeric lists -> float array of shape (-1, *tail).

    Parsed as text (brackets dropped, numbers split on commas): the FreiHAND files hold
    tens of millions of numbers, which json.load would turn into gigabytes of Python floats.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing FreiHAND annotation file")
    text = path.read_text()
    if not text.lstrip().startswith("["):
        raise ValueError(f"{path}: expected a JSON list of numbers")
    try:
        flat = np.fromstring(text.translate(str.maketrans("[],", "   ")), dtype=np.float64, sep=" ")
    except ValueError as err:
        raise ValueError(f"{path}: not a JSON list of numbers ({err})") from None
    size = int(np.prod(tail))
    if flat.size % size:
        raise ValueError(f"{path}: {flat.size} numbers do not make whole items of shape {tail}")
    return flat.reshape(-1, *tail)


def val_ids(n: int, val_fraction: float, seed: int = 0) -> np.ndarray:
    """The ids held out for validation: a fixed random subset, sorted."""
    k = int(round(n * val_fraction))
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def _project(xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    uvw = np.einsum("nij,nkj->nki", K, xyz)  # (N, 21, 3)
    return uvw[..., :2] / uvw[..., 2:]


def _check_images(root: Path, rels: Sequence[str]) -> None:
    missing = [r for r in rels if not os.path.isfile(root / r)]
    if missing:
        raise FileNotFoundError(f"{root / missing[0]}: missing FreiHAND image ({len(missing)} of {len(rels)} missing)")


def _find(name: str, *dirs: Path | None) -> Path | None:
    for d in dirs:
        if d is not None and (d / name).is_file():
            return d / name
    return None


def load_freihand(
    root: str | Path,
    split: str,
    *,
    versions: Sequence[str] = VERSIONS,
    val_fraction: float = 0.05,
    seed: int = 0,
    with_verts: bool = True,
    eval_root: str | Path | None = None,
) -> FrameTable:
    root = Path(root)
    eval_root = Path(eval_root) if eval_root is not None else None
    if split in ("train", "val"):
        return _load_training(root, split, versions, val_fraction, seed, with_verts)
    if split == "test":
        return _load_evaluation(root, eval_root, with_verts)
    raise ValueError(f"FreiHAND split: 'train', 'val' or 'test', got {split!r}")


def _load_training(root, split, versions, val_fraction, seed, with_verts) -> FrameTable:
    bad = [v for v in versions if v not in VERSIONS]
    if bad or not versions:
        raise ValueError(f"FreiHAND versions must be a non-empty subset of {VERSIONS}, got {list(versions)}")
    K = read_json_array(root / "training_K.json", (3, 3))
    n = len(K)
    if n != NUM_TRAIN:
        log.warning("FreiHAND: %d training ids in %s (the full set has %d)", n, root, NUM_TRAIN)
    xyz = read_json_array(root / "training_xyz.json", (21, 3))
    mano = read_json_array(root / "training_mano.json", (61,))
    for name, arr in (("training_xyz.json", xyz), ("training_mano.json", mano)):
        if len(arr) != n:
            raise ValueError(f"{root / name}: {len(arr)} items, training_K.json has {n}")
    verts = None
    if with_verts:
        verts = read_json_array(root / "training_verts.json", (778, 3))
        if len(verts) != n:
            raise ValueError(f"{root / 'training_verts.json'}: {len(verts)} items, training_K.json has {n}")

    held = val_ids(n, val_fraction, seed)
    if split == "val":
        ids, use = held, ("gs",)
    else:
        ids, use = np.setdiff1d(np.arange(n), held), tuple(versions)
    idx = np.concatenate([ids for _ in use]).astype(np.int64)  # annotation row of each image
    number = np.concatenate([ids + VERSIONS.index(v) * n for v in use]).astype(np.int64)
    image = np.array([f"training/rgb/{i:08d}.jpg" for i in number])
    _check_images(root, image)
    return FrameTable(
        image=image, K=K[idx].astype(np.float32), joints3d=xyz[idx].astype(np.float32),
        verts=None if verts is None else verts[idx].astype(np.float32),
        pose=mano[idx, :48].astype(np.float32), shape=mano[idx, 48:58].astype(np.float32),
        seq=np.full(len(idx), -1, np.int64), frame=number,
        joints2d=_project(xyz[idx], K[idx]).astype(np.float32),
    )


def _load_evaluation(root, eval_root, with_verts) -> FrameTable:
    k_path = _find("evaluation_K.json", root, eval_root)
    if k_path is None:
        raise FileNotFoundError(f"{root / 'evaluation_K.json'}: missing FreiHAND annotation file")
    K = read_json_array(k_path, (3, 3))
    n = len(K)
    image = np.array([f"evaluation/rgb/{i:08d}.jpg" for i in range(n)])
    _check_images(root, image)
    xyz = verts = pose = shape = uv = None
    xyz_path = _find("evaluation_xyz.json", root, eval_root)
    if xyz_path is None:
        log.warning("FreiHAND test: no evaluation_xyz.json in %s or %s: test ground truth left empty "
                    "(it is in FreiHAND_pub_v2_eval.zip)", root, eval_root)
    else:
        xyz = read_json_array(xyz_path, (21, 3))
        if len(xyz) != n:
            raise ValueError(f"{xyz_path}: {len(xyz)} items, evaluation_K.json has {n}")
        uv = _project(xyz, K).astype(np.float32)
        xyz = xyz.astype(np.float32)
    verts_path = _find("evaluation_verts.json", root, eval_root)
    if with_verts and verts_path is not None:
        verts = read_json_array(verts_path, (778, 3)).astype(np.float32)
        if len(verts) != n:
            raise ValueError(f"{verts_path}: {len(verts)} items, evaluation_K.json has {n}")
    mano_path = _find("evaluation_mano.json", root, eval_root)
    if mano_path is not None:
        mano = read_json_array(mano_path, (61,))
        if len(mano) != n:
            raise ValueError(f"{mano_path}: {len(mano)} items, evaluation_K.json has {n}")
        pose, shape = mano[:, :48].astype(np.float32), mano[:, 48:58].astype(np.float32)
    return FrameTable(
        image=image, K=K.astype(np.float32), joints3d=xyz, verts=verts, pose=pose, shape=shape,
        seq=np.full(n, -1, np.int64), frame=np.arange(n, dtype=np.int64), joints2d=uv,
    )
