"""Temporal consistency of detected keypoints: a gross misdetection disagrees with its neighbours.

    d = neighbour_disagreement(kp.peaks, kp.conf, table.seq, table.frame, table.cut)   # (N,)
    keep = d <= 0.2

For each frame of a video, each detected hand is reduced to its shape: the detected keypoints
centred on their mean and scaled to unit RMS radius (so a hand that moves or grows between frames
still agrees with itself). The frame's disagreement is the median, over the frames at most
`radius` frames away in the same shot (same sequence, no cut in between) that have a detection, of
the mean distance between the two shapes over the keypoints both detected. Frames with fewer than
`min_neighbours` such frames, and still images (seq -1), get inf: they cannot be judged.

Measured on 950 synthetic 10-frame sequences with MediaPipe (7,700 frames with a hand): a quarter
of the detected hands are grossly wrong (mean keypoint error above 0.3 wrist-to-middle-MCP
lengths). Keeping disagreement < 0.2 kept 54 % of them with 7.5 % gross errors; the palm detector's
score, the other cue, kept 53 % (score >= 0.8) with 13 % (docs/training.md).
"""
from __future__ import annotations

import numpy as np

from s2hand.data.sampler import shot_ids


def hand_shapes(peaks: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(N, 21, 2), (N, 21) -> (N, 21, 2) detected keypoints centred and scaled to unit RMS radius
    (undetected keypoints 0; frames without any, all 0)."""
    m = (conf > 0)[..., None].astype(np.float64)  # (N, 21, 1)
    n = np.maximum(m.sum(1, keepdims=True), 1.0)
    c = (peaks * m).sum(1, keepdims=True) / n  # (N, 1, 2)
    d = (peaks - c) * m
    r = np.sqrt((d ** 2).sum((1, 2), keepdims=True) / n)
    return np.where(r > 0, d / np.maximum(r, 1e-12), 0.0)


def neighbour_disagreement(peaks: np.ndarray, conf: np.ndarray, seq: np.ndarray, frame: np.ndarray,
                           cut: np.ndarray | None = None, radius: int = 2, min_keypoints: int = 5,
                           min_neighbours: int = 2) -> np.ndarray:
    """(N,) disagreement of each frame's detection with its temporal neighbours (module docstring);
    peaks (N, 21, 2) px, conf (N, 21), seq / frame / cut (N,) as in s2hand.data.table.FrameTable."""
    if radius < 1 or min_neighbours < 1:
        raise ValueError("neighbour_disagreement: radius and min_neighbours must be >= 1")
    n = len(peaks)
    seq = np.asarray(seq, np.int64)
    frame = np.asarray(frame, np.int64)
    detected = conf > 0  # (N, 21)
    usable = detected.sum(1) >= min_keypoints
    shapes = hand_shapes(peaks, conf)
    shot = shot_ids(seq, frame, cut)  # neighbours share sequence and shot
    row = {(int(s), int(f)): i for i, (s, f) in enumerate(zip(seq, frame))}
    out = np.full(n, np.inf)
    for i in range(n):
        if seq[i] < 0 or not usable[i]:
            continue
        ds = []
        for df in range(-radius, radius + 1):
            j = row.get((int(seq[i]), int(frame[i]) + df))
            if df == 0 or j is None or not usable[j] or shot[j] != shot[i]:
                continue
            both = detected[i] & detected[j]
            if both.any():
                ds.append(float(np.linalg.norm(shapes[i, both] - shapes[j, both], axis=-1).mean()))
        if len(ds) >= min_neighbours:
            out[i] = float(np.median(ds))
    return out
