"""Ground-truth "detector": the table's projected 2D keypoints with every confidence 1.

This is the paper's weakly supervised setting (Table 6: ground-truth 2D keypoints with equal
confidence), against which the self-supervised setting (detected keypoints weighted by their
confidences) is compared. Reads no images.

    kp = detect(table)          # Keypoints(peaks=table.joints2d, conf=1, names=table.image)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from s2hand.data.table import FrameTable
from s2hand.detect.keypoint_file import Keypoints


def detect(table: FrameTable, image_root: str | Path | None = None) -> Keypoints:
    if table.joints2d is None:
        raise ValueError("ground_truth backend: this frame table has no joints2d annotation")
    n = len(table)
    return Keypoints(
        peaks=np.asarray(table.joints2d, np.float32).copy(),  # (N, 21, 2)
        conf=np.ones((n, 21), np.float32),
        names=[str(s) for s in table.image],
    )
