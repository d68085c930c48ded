"""The detected-keypoint file: the released S2HAND code's JSON layout, read by training.

On disk (one JSON list of three lists, OpenPose keypoint order):
    [peaks  (N x 21 x 2) pixel x, y in the image,
     values (N x 21 x 1) confidence; 0 where nothing was found,
     names  (N)          image names (here: paths relative to the dataset folder)]

    save_keypoints("keypoints.json", peaks, conf, names)
    kp = load_keypoints("keypoints.json")        # validated; the one loader training uses
    kp = kp.reorder(table.image)                 # rows in the frame table's order
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2hand.io import atomic_file

NUM_KEYPOINTS = 21


class KeypointFileError(ValueError):
    """A keypoint file or array set that does not follow the layout above."""


@dataclasses.dataclass
class Keypoints:
    """Detections for N images. `failures` lists images that could not be read (their
    confidences are 0); it is not stored in the keypoint file."""

    peaks: np.ndarray  # (N, 21, 2) f32 px
    conf: np.ndarray  # (N, 21) f32, >= 0, 0 = not found
    names: list[str]
    failures: list = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.peaks, self.conf, self.names = _validate(self.peaks, self.conf, self.names, "Keypoints")

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx: np.ndarray | Sequence[int]) -> "Keypoints":
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Keypoints(self.peaks[idx], self.conf[idx], [self.names[i] for i in idx], list(self.failures))

    def reorder(self, names: Sequence[str]) -> "Keypoints":
        """The rows for `names`, in that order; KeypointFileError if any name is absent."""
        where = {n: i for i, n in enumerate(self.names)}
        missing = [str(n) for n in names if str(n) not in where]
        if missing:
            raise KeypointFileError(
                f"{len(missing)} of {len(names)} images have no detections, e.g. {missing[:3]}"
            )
        return self.subset(np.array([where[str(n)] for n in names], dtype=np.int64))


def _validate(peaks, conf, names, source: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        peaks = np.asarray(peaks, dtype=np.float32)
        conf = np.asarray(conf, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise KeypointFileError(f"{source}: peaks/values are not numeric arrays ({err})") from None
    if isinstance(names, (str, bytes)):
        raise KeypointFileError(f"{source}: names must be a list of strings, got one string")
    names = list(names)
    n = len(names)
    if n == 0:  # json [[], [], []] loads as shape (0,)
        peaks = peaks.reshape(0, NUM_KEYPOINTS, 2) if peaks.size == 0 else peaks
        conf = conf.reshape(0, NUM_KEYPOINTS) if conf.size == 0 else conf
    if conf.ndim == 3 and conf.shape[2:] == (1,):
        conf = conf[..., 0]
    if peaks.shape != (n, NUM_KEYPOINTS, 2):
        raise KeypointFileError(f"{source}: peaks have shape {peaks.shape}, expected ({n}, 21, 2) for {n} names")
    if conf.shape != (n, NUM_KEYPOINTS):
        raise KeypointFileError(
            f"{source}: values have shape {conf.shape}, expected ({n}, 21, 1) (or ({n}, 21)) for {n} names"
        )
    for what, arr in (("peaks", peaks), ("values", conf)):
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise KeypointFileError(f"{source}: {int(bad.sum())} non-finite {what} (first in image {names[row]!r})")
    if (conf < 0).any():
        row = int(np.argwhere(conf < 0)[0][0])
        raise KeypointFileError(
            f"{source}: {int((conf < 0).sum())} negative confidences (first in image {names[row]!r}, "
            f"value {conf[row].min():g}); 0 means 'not found'"
        )
    if not all(isinstance(s, str) for s in names):
        bad = next(s for s in names if not isinstance(s, str))
        raise KeypointFileError(f"{source}: names must be strings, found {type(bad).__name__} {bad!r}")
    return peaks, conf, names


def save_keypoints(path: str | Path, peaks: np.ndarray, conf: np.ndarray, names: Sequence[str]) -> None:
    """Write the authors' layout atomically (temporary file, then rename). Pixel positions
    are rounded to 1e-3 px, confidences to 1e-5."""
    peaks, conf, names = _validate(peaks, conf, [str(s) for s in names], f"save_keypoints({path})")
    obj = [
        np.round(peaks.astype(np.float64), 3).tolist(),
        np.round(conf.astype(np.float64), 5)[..., None].tolist(),
        names,
    ]
    with atomic_file(path) as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def load_keypoints(path: str | Path) -> Keypoints:
    """Read and validate a keypoint file; KeypointFileError names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such keypoint file")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KeypointFileError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, list) or len(obj) != 3:
        kind = f"a list of {len(obj)}" if isinstance(obj, list) else type(obj).__name__
        raise KeypointFileError(f"{path}: expected a JSON list [peaks, values, names], got {kind}")
    peaks, values, names = obj
    if not isinstance(names, list):
        raise KeypointFileError(f"{path}: names must be a list, got {type(names).__name__}")
    if not (isinstance(peaks, list) and isinstance(values, list)) or not (len(peaks) == len(values) == len(names)):
        lens = [len(x) if isinstance(x, list) else type(x).__name__ for x in (peaks, values, names)]
        raise KeypointFileError(f"{path}: peaks, values and names must have one entry per image, got {lens}")
    p, c, nm = _validate(peaks, values, names, str(path))
    return Keypoints(p, c, nm)
