"""2D hand keypoint detection: the self-supervision signal of S2HAND (method.md s4, s8).

Backends (each module has `detect(table, image_root, **options) -> Keypoints`):
    mediapipe     MediaPipe Hands on the images (CPU, offline)
    openpose      OpenPose's hand detector through pyopenpose (the paper's; needs a build)
    simulated     ground truth + difficulty-dependent noise and misses (reads no images)
    ground_truth  ground truth with all confidences 1 (the paper's weakly supervised setting)

    from s2hand.detect import detect, save_keypoints, load_keypoints
    kp = detect(table, dataset_root, "mediapipe", pad=0.25, workers=2)
    save_keypoints("keypoints.json", kp.peaks, kp.conf, kp.names)   # kp.failures: unreadable images
    kp = load_keypoints("keypoints.json").reorder(table.image)
"""
from __future__ import annotations

import importlib
from pathlib import Path

from s2hand.data.table import FrameTable
from s2hand.detect.keypoint_file import KeypointFileError, Keypoints, load_keypoints, save_keypoints

# name -> module with detect(); imported on use, so mediapipe loads only when asked for
BACKENDS: dict[str, str] = {
    "mediapipe": "s2hand.detect.mediapipe_backend",
    "openpose": "s2hand.detect.openpose_backend",
    "simulated": "s2hand.detect.simulated_backend",
    "ground_truth": "s2hand.detect.ground_truth_backend",
}


def detect(table: FrameTable, image_root: str | Path, backend: str, **options) -> Keypoints:
    """Keypoints for every row of `table` (names = table.image), by the named backend."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown detector backend {backend!r}; choose one of {sorted(BACKENDS)}")
    module = importlib.import_module(BACKENDS[backend])
    return module.detect(table, image_root, **options)


__all__ = ["BACKENDS", "KeypointFileError", "Keypoints", "detect", "load_keypoints", "save_keypoints"]
