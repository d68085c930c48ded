"""Shot cuts from the frames' appearance: the whole picture changes at once at a cut (a new
background, light and camera), while inside a shot it drifts with the camera and the hand.

    th = thumbnails(dataset_root, table.image, size=4)        # (N, 48): 4x4 cell colours in [0, 1]
    cuts = image_cuts(frame, th, threshold=0.042, ratio=3.0)  # one video, rows in frame order

A tiny thumbnail (the mean colour of each of a few image cells) ignores detail and noise; a
moving hand or camera shifts the cell means a little from frame to frame, a cut replaces them,
so the mean absolute change between two frames' thumbnails separates cuts from motion inside a
shot. The keypoint detector plays no part: a cut is found even where no hand is detected on
one side of it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from s2hand.data.images import read_image


def thumbnail(img: np.ndarray, size: int = 4) -> np.ndarray:
    """(size * size * 3,) float32 in [0, 1]: the mean colour of each of size x size cells of an
    (H, W, 3) uint8 image (channel order as given: BGR from read_image)."""
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32).reshape(-1) / 255.0


def thumbnails(image_root: str | Path, names: Sequence[str], size: int = 4) -> np.ndarray:
    """(N, size * size * 3) float32 thumbnails of image_root / each name; NaN rows for images
    that cannot be read (they are skipped when looking for cuts)."""
    out = np.full((len(names), size * size * 3), np.nan, np.float32)
    for i, name in enumerate(names):
        img, failure = read_image(Path(image_root) / str(name))
        if failure is None:
            out[i] = thumbnail(img, size)
    return out


def thumbnail_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (D,) in [0, 1]; NaN if either is missing."""
    return float(np.mean(np.abs(b - a)))


def image_cuts(frame: np.ndarray, thumbs: np.ndarray, threshold: float, ratio: float | None = None,
               window: int = 10, max_gap: int = 3) -> list[int]:
    """Positions i (into one video's frames sorted by frame number: frame (M,), thumbs (M, D))
    with a cut right before frame i: the change from the last readable frame exceeds
    `threshold` and, with `ratio`, `ratio` x the median change of the up to `window` compared
    frame pairs on either side (fast camera motion raises them all; a cut stands out). Frames
    more than `max_gap` frame numbers apart are not compared (a break, not a cut);
    unreadable frames (NaN) are skipped."""
    readable = np.flatnonzero(np.isfinite(thumbs).all(1))
    pairs = [(a, b) for a, b in zip(readable[:-1], readable[1:]) if frame[b] - frame[a] <= max_gap]
    change = np.array([thumbnail_change(thumbs[a], thumbs[b]) for a, b in pairs])
    cuts = []
    for k, (_, b) in enumerate(pairs):
        around = np.r_[change[max(0, k - window):k], change[k + 1:k + 1 + window]]
        local = float(np.median(around)) if ratio is not None and len(around) else 0.0
        if change[k] > threshold and change[k] > (ratio or 0.0) * local:
            cuts.append(int(b))
    return cuts
