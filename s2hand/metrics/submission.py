"""The online-evaluation file format (FreiHAND and HO-3D codalab): pred.json = [xyz, verts],
xyz a list of N (21, 3) lists, verts a list of N (V, 3) lists (V = 778 for MANO; any V is
accepted), metres, camera coordinates.

    write_submission("pred.json", xyz, verts)               # FreiHAND: OpenPose order, OpenCV frame
    write_submission("pred.json", xyz, verts, fmt="ho3d")   # HO-3D: its joint order, OpenGL frame
    xyz, verts = read_submission("pred.json", expect_n=3960, expect_v=778)
    gt_xyz, gt_verts = read_freihand_gt("data/freihand")    # evaluation_xyz.json, evaluation_verts.json
    # then zip -j pred.zip pred.json and upload

Arrays in and out of this module are in the project's convention (OpenPose keypoint order,
OpenCV camera frame); fmt="ho3d" converts on writing and converts back on reading.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from s2hand.hand.keypoints import ho3d_to_openpose, opencv_to_opengl, opengl_to_opencv, openpose_to_ho3d
from s2hand.io import atomic_file

FORMATS = ("freihand", "ho3d")
NUM_KEYPOINTS = 21
MAX_ABS_METRES = 1e6  # a coordinate beyond this is no hand in camera space (and breaks the SVD of the alignment)


class SubmissionError(ValueError):
    """A prediction or ground-truth file that does not have the expected content."""


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")


def write_submission(path: str | Path, xyz: np.ndarray, verts: np.ndarray, fmt: str = "freihand",
                     decimals: int | None = None) -> None:
    """xyz (N, 21, 3), verts (N, V, 3), metres, OpenPose order, OpenCV frame -> JSON file at path.
    decimals rounds the written numbers (e.g. 6 = 1 micrometre) to shrink the file; None keeps them exact."""
    _check_format(fmt)
    xyz, verts = np.asarray(xyz, np.float64), np.asarray(verts, np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (NUM_KEYPOINTS, 3):
        raise SubmissionError(f"xyz must be (N, {NUM_KEYPOINTS}, 3), got {xyz.shape}")
    if verts.ndim != 3 or verts.shape[2] != 3 or len(verts) != len(xyz):
        raise SubmissionError(f"verts must be (N={len(xyz)}, V, 3), got {verts.shape}")
    for name, a in (("xyz", xyz), ("verts", verts)):
        bad = ~np.isfinite(a).all(axis=(1, 2))
        if bad.any():
            raise SubmissionError(f"{name}[{int(np.argmax(bad))}] contains NaN or inf")
    if fmt == "ho3d":
        xyz = opencv_to_opengl(openpose_to_ho3d(xyz))
        verts = opencv_to_opengl(verts)
    if decimals is not None:
        xyz, verts = np.round(xyz, decimals), np.round(verts, decimals)
    with atomic_file(path) as f:
        json.dump([xyz.tolist(), verts.tolist()], f)


def _load_json(path: Path) -> object:
    """The JSON in `path`; only numbers may sit inside its lists (numpy would read true/false as
    1/0 and null as NaN), so a file with any other token is searched for the first one."""
    try:
        text = path.read_text()
        obj = json.loads(text)
    except FileNotFoundError:
        raise SubmissionError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SubmissionError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise SubmissionError(f"{path}: cannot read ({e.strerror or e})") from None
    if isinstance(obj, list) and any(t in text for t in ("true", "false", "null", '"', "{")):
        bad = _first_non_number(obj, str(path))
        if bad is not None:
            raise SubmissionError(bad)
    return obj


def _first_non_number(obj: object, where: str) -> str | None:
    """The index path of the first value in nested lists that is not an int or float (a bool,
    a string, null, an object), or None."""
    stack = [(obj, where)]
    while stack:
        o, w = stack.pop()
        if isinstance(o, list):
            stack.extend((x, f"{w}[{i}]") for i, x in reversed(list(enumerate(o))))
        elif isinstance(o, bool) or not isinstance(o, (int, float)):
            return f"{w}: {json.dumps(o)[:20]} is not a number"
    return None


def _as_array(items: object, what: str, n_points: int | None, expect_n: int | None) -> np.ndarray:
    """A JSON list of N (n_points, 3) lists -> (N, n_points, 3) float64; n_points None = take the
    first item's. Raises SubmissionError naming `what`, the index and the problem."""
    if not isinstance(items, list):
        raise SubmissionError(f"{what}: expected a list of samples, got {type(items).__name__}")
    if expect_n is not None and len(items) != expect_n:
        raise SubmissionError(f"{what}: {len(items)} samples, expected {expect_n}")
    if not items:
        raise SubmissionError(f"{what}: no samples")
    try:                                                           # fast path: a regular array
        arr = np.asarray(items, dtype=np.float64)
        if (arr.ndim == 3 and arr.shape[2] == 3 and n_points in (None, arr.shape[1]) and np.isfinite(arr).all()
                and np.abs(arr).max() <= MAX_ABS_METRES):
            return arr
    except (ValueError, TypeError):
        pass
    for i, item in enumerate(items):                               # find the first bad sample
        try:
            a = np.asarray(item, dtype=np.float64)
        except (ValueError, TypeError):
            raise SubmissionError(f"{what}[{i}]: not a numeric (points, 3) array") from None
        want = (n_points if n_points is not None else (a.shape[0] if a.ndim == 2 else -1), 3)
        if a.shape != want:
            raise SubmissionError(f"{what}[{i}]: shape {a.shape}, expected {want}")
        if n_points is None:
            n_points = a.shape[0]
        if not np.isfinite(a).all():
            raise SubmissionError(f"{what}[{i}]: contains NaN or inf")
        if np.abs(a).max() > MAX_ABS_METRES:
            raise SubmissionError(f"{what}[{i}]: a coordinate beyond {MAX_ABS_METRES:g} m (not metres?)")
    raise SubmissionError(f"{what}: not a regular (N, points, 3) array")   # not reached in practice


def read_submission(path: str | Path, expect_n: int | None = None, expect_v: int | None = None,
                    fmt: str = "freihand") -> tuple[np.ndarray, np.ndarray]:
    """pred.json -> xyz (N, 21, 3), verts (N, V, 3) float64, in OpenPose order and the OpenCV frame
    (converted back from HO-3D's when fmt="ho3d"). Raises SubmissionError on a wrong layout, a
    wrong count (expect_n, expect_v), a wrong shape or a non-finite number, naming the list and index."""
    _check_format(fmt)
    path = Path(path)
    pred = _load_json(path)
    if not isinstance(pred, list) or len(pred) != 2:
        got = f"a list of {len(pred)}" if isinstance(pred, list) else type(pred).__name__
        raise SubmissionError(f"{path}: expected [xyz list, verts list], got {got}")
    xyz = _as_array(pred[0], f"{path}: xyz", NUM_KEYPOINTS, expect_n)
    verts = _as_array(pred[1], f"{path}: verts", expect_v, expect_n)
    if len(verts) != len(xyz):
        raise SubmissionError(f"{path}: {len(xyz)} xyz samples but {len(verts)} verts samples")
    if fmt == "ho3d":
        xyz = ho3d_to_openpose(opengl_to_opencv(xyz))
        verts = opengl_to_opencv(verts)
    return xyz, verts


def read_freihand_gt(directory: str | Path, set_name: str = "evaluation") -> tuple[np.ndarray, np.ndarray]:
    """FreiHAND ground truth: DIR/{set_name}_xyz.json (N, 21, 3) and DIR/{set_name}_verts.json (N, 778, 3)
    -> (xyz, verts) float64 metres, OpenCV camera frame, OpenPose order."""
    directory = Path(directory)
    p_xyz, p_verts = directory / f"{set_name}_xyz.json", directory / f"{set_name}_verts.json"
    xyz = _as_array(_load_json(p_xyz), str(p_xyz), NUM_KEYPOINTS, None)
    verts = _as_array(_load_json(p_verts), str(p_verts), None, len(xyz))
    return xyz, verts
