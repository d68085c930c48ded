"""The one checked image reader every stage uses: a missing, unreadable or corrupt image is
reported, never returned as a silently grey-filled frame.

    img, failure = read_image(path)           # img (H, W, 3) uint8 BGR, or None and a failure
    for i, img, failure in iter_images(root, rel_paths): ...   # detection: a failure gets confidence 0
    rgb = read_rgb(path)                      # (H, W, 3) uint8 RGB; raises ImageError on a failure
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageFailure:
    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def read_image(path: str | Path) -> tuple[np.ndarray | None, ImageFailure | None]:
    """(H, W, 3) uint8 BGR image, or (None, failure). Grey images are expanded to 3
    channels, an alpha channel is dropped. A JPEG without its end-of-image marker is
    reported as truncated (OpenCV would return it grey-filled with only a warning)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ImageFailure(str(path), "missing file")
    except OSError as err:
        return None, ImageFailure(str(path), f"cannot read file: {err.strerror or err}")
    if not data:
        return None, ImageFailure(str(path), "empty file")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        return None, ImageFailure(str(path), "truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None, ImageFailure(str(path), "cannot decode image (corrupt or unknown format)")
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.shape[2] != 3:
        return None, ImageFailure(str(path), f"unsupported channel count {img.shape[2]}")
    return img, None


class ImageError(ValueError):
    """An image read_image could not read; its ImageFailure is `.failure`."""

    def __init__(self, failure: ImageFailure):
        super().__init__(f"{failure.path}: {failure.reason}")
        self.failure = failure


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB by read_image; raises ImageError for a missing, truncated or
    undecodable image."""
    img, failure = read_image(path)
    if failure is not None:
        raise ImageError(failure)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def iter_images(root: str | Path, rel_paths: Sequence[str]) -> Iterator[tuple[int, np.ndarray | None, ImageFailure | None]]:
    """Yield (index, image or None, failure or None) for root / each relative path; a
    failure's path is the relative one (as in the keypoint file's names)."""
    root = Path(root)
    for i, rel in enumerate(rel_paths):
        img, failure = read_image(root / str(rel))
        if failure is not None:
            failure = dataclasses.replace(failure, path=str(rel))
        yield i, img, failure
