"""HO-3D (v2 and v3) -> FrameTable.

Layout (github.com/shreyashampali/ho3d, utils/vis_utils.py and pred.py), `root` = the folder
holding train/, evaluation/, train.txt, evaluation.txt:
    train.txt, evaluation.txt  one "SEQ/NNNN" per line
    <split>/<SEQ>/rgb/NNNN.png (v2) or .jpg (v3)
    <split>/<SEQ>/meta/NNNN.pkl  pickled dict; training frames: handJoints3D (21, 3) in HO-3D
                               order, handPose (48) axis-angle (full pose, MANO's mean folded in:
                               the toolkit uses flat_hand_mean=True), handBeta (10), handTrans (3),
                               camMat (3, 3); some frames carry None instead. Evaluation frames:
                               only the root joint handJoints3D (3), handBoundingBox (4), camMat.
Coordinates are OpenGL (y up, z towards the viewer); they are turned into OpenCV (y down, z
forward) here, keypoints into OpenPose order, and the global rotation pose[:3] is turned with
them (R_cv = diag(1, -1, -1) R_gl). handTrans is not kept: under that flip the translation
changes with the shape-dependent MANO root joint, and FrameTable holds no translation.

Splits: "train" = train.txt minus the supplementary's validation sequences, "val" = those
sequences (VAL_SEQUENCES), "trainval" = all of train.txt, "test" = evaluation.txt (3D ground
truth only where an evaluation_xyz.json lies in root; the online server keeps it otherwise).
seq = index of the sequence name in `sequence_names(root)`; frame = the file number.
Frames whose annotation is None are dropped (their count is logged), or kept with NaN
ground truth when `keep_unannotated`; frames without camMat are always dropped.

Pickles are read with a restricted unpickler that only rebuilds numpy arrays and scalars.

    table = load_ho3d(Path("data/ho3d/HO3D_v2"), "val")
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from s2hand.data.table import FrameTable
from s2hand.hand.keypoints import ho3d_to_openpose, opengl_to_opencv

log = logging.getLogger(__name__)

VAL_SEQUENCES = ("GSF10", "GSF13", "SB10", "GPMF11", "SS1", "ABF14", "SiBF10", "SiBF13", "SiBF12", "MC5")
SPLITS = ("train", "val", "trainval", "test")
GL_TO_CV = np.diag([1.0, -1.0, -1.0])
META = {
    "image_size": [640, 480], "fps": None, "hand_side": "right",
    "pose": "MANO axis-angle, full pose (MANO's hands_mean folded in, flat_hand_mean=True); "
            "global rotation converted to OpenCV axes; translation not kept",
}

# (module, name) pairs a HO-3D pickle may reference; numpy 1.x pickles say numpy.core, and
# Python 3 pickles of protocol <= 2 rebuild bytes with _codecs.encode (data only, no code).
_NUMPY_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        module = module.replace("numpy.core.", "numpy._core.")
        return super().find_class(module, name)


def safe_load_pickle(path: str | Path) -> object:
    """Unpickle a HO-3D meta file (Python 2 or 3 pickle) allowing only numpy reconstruction."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def read_list(root: Path, name: str) -> list[tuple[str, str]]:
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing HO-3D file list")
    out = []
    for line in path.read_text().split():
        seq, sep, fid = line.strip().partition("/")
        if not sep or not fid:
            raise ValueError(f"{path}: expected lines 'SEQ/NNNN', got {line!r}")
        out.append((seq, fid))
    return out


def sequence_names(root: str | Path) -> list[str]:
    """All sequence names of train.txt and evaluation.txt, sorted: seq ids index this list."""
    root = Path(root)
    names = {s for s, _ in read_list(root, "train.txt")}
    if (root / "evaluation.txt").is_file():
        names |= {s for s, _ in read_list(root, "evaluation.txt")}
    return sorted(names)


def pose_to_opencv(pose: np.ndarray) -> np.ndarray:
    """(N, 48) axis-angle pose in OpenGL camera axes -> OpenCV axes (only the global rotation changes)."""
    out = pose.copy()
    ok = np.isfinite(pose[:, :3]).all(axis=1)  # NaN rows: kept unannotated frames
    if ok.any():
        R = GL_TO_CV @ Rotation.from_rotvec(pose[ok, :3]).as_matrix()  # (n, 3, 3)
        out[ok, :3] = Rotation.from_matrix(R).as_rotvec()
    return out


def _image_path(root: Path, folder: str, seq: str, fid: str, ext: dict[str, str]) -> str:
    if seq not in ext:
        for e in (".png", ".jpg"):
            if (root / folder / seq / "rgb" / f"{fid}{e}").is_file():
                ext[seq] = e
                break
        else:
            raise FileNotFoundError(f"{root / folder / seq / 'rgb' / fid}.png (or .jpg): missing HO-3D image")
    rel = f"{folder}/{seq}/rgb/{fid}{ext[seq]}"
    if not (root / rel).is_file():
        raise FileNotFoundError(f"{root / rel}: missing HO-3D image")
    return rel


def _as(arr, shape: tuple[int, ...]) -> np.ndarray | None:
    if arr is None:
        return None
    a = np.asarray(arr, dtype=np.float64)
    if a.size != int(np.prod(shape)):
        raise ValueError(f"expected {shape}, got {a.shape}")
    return a.reshape(shape)


def load_ho3d(root: str | Path, split: str, *, keep_unannotated: bool = False) -> FrameTable:
    from tqdm import tqdm

    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"HO-3D split: one of {SPLITS}, got {split!r}")
    names = sequence_names(root)
    if split == "test":
        entries, folder = read_list(root, "evaluation.txt"), "evaluation"
    else:
        entries, folder = read_list(root, "train.txt"), "train"
        if split == "train":
            entries = [e for e in entries if e[0] not in VAL_SEQUENCES]
        elif split == "val":
            entries = [e for e in entries if e[0] in VAL_SEQUENCES]
    annotated = split != "test"

    rows, dropped, no_cam, ext = [], 0, 0, {}
    for seq, fid in tqdm(entries, desc=f"HO-3D {split}", disable=None):
        meta_path = root / folder / seq / "meta" / f"{fid}.pkl"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: missing HO-3D annotation")
        try:
            meta = safe_load_pickle(meta_path)
            K = _as(meta.get("camMat"), (3, 3))
            joints = _as(meta.get("handJoints3D"), (21, 3)) if annotated else None
            pose = _as(meta.get("handPose"), (48,)) if annotated else None
            beta = _as(meta.get("handBeta"), (10,)) if annotated else None
        except (pickle.UnpicklingError, ValueError, AttributeError, EOFError) as err:
            raise ValueError(f"{meta_path}: unreadable HO-3D annotation ({err})") from err
        if K is None:
            no_cam += 1
            continue
        if annotated and (joints is None or pose is None or beta is None):
            dropped += 1
            if not keep_unannotated:
                continue
            joints = np.full((21, 3), np.nan) if joints is None else joints
            pose = np.full(48, np.nan) if pose is None else pose
            beta = np.full(10, np.nan) if beta is None else beta
        rows.append((_image_path(root, folder, seq, fid, ext), K, joints, pose, beta, names.index(seq), int(fid)))
    if no_cam:
        log.warning("HO-3D %s: dropped %d frames without camMat", split, no_cam)
    if dropped:
        log.warning("HO-3D %s: %d frames without hand annotation %s", split, dropped,
                    "kept with NaN ground truth" if keep_unannotated else "dropped")
    if not rows:
        raise ValueError(f"HO-3D {split}: no usable frames under {root}")

    order = sorted(range(len(rows)), key=lambda i: (rows[i][5], rows[i][6]))
    rows = [rows[i] for i in order]
    image = np.array([r[0] for r in rows])
    K = np.stack([r[1] for r in rows])
    seq = np.array([r[5] for r in rows], np.int64)
    frame = np.array([r[6] for r in rows], np.int64)
    joints3d = joints2d = pose = shape = None
    if annotated:
        joints3d = ho3d_to_openpose(opengl_to_opencv(np.stack([r[2] for r in rows])))
        uvw = np.einsum("nij,nkj->nki", K, joints3d)
        joints2d = (uvw[..., :2] / uvw[..., 2:]).astype(np.float32)
        pose = pose_to_opencv(np.stack([r[3] for r in rows]))
        shape = np.stack([r[4] for r in rows])
    elif (root / "evaluation_xyz.json").is_file():
        from s2hand.data.freihand import read_json_array

        xyz = read_json_array(root / "evaluation_xyz.json", (21, 3))
        if len(xyz) != len(read_list(root, "evaluation.txt")):
            raise ValueError(f"{root / 'evaluation_xyz.json'}: {len(xyz)} items, evaluation.txt has another count")
        if len(xyz) != len(entries) or len(rows) != len(entries):
            raise ValueError(f"{root / 'evaluation_xyz.json'}: cannot align with the kept evaluation frames")
        joints3d = ho3d_to_openpose(opengl_to_opencv(xyz[np.array(order)]))
        uvw = np.einsum("nij,nkj->nki", K, joints3d)
        joints2d = (uvw[..., :2] / uvw[..., 2:]).astype(np.float32)
    return FrameTable(
        image=image, K=K.astype(np.float32),
        joints3d=None if joints3d is None else joints3d.astype(np.float32),
        pose=None if pose is None else pose.astype(np.float32),
        shape=None if shape is None else shape.astype(np.float32),
        seq=seq, frame=frame, joints2d=joints2d,
    )
