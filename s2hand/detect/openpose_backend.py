"""OpenPose's hand keypoint detector (the paper's detector) through its Python API, pyopenpose.

OpenPose cannot be pip-installed: build it with `-DBUILD_PYTHON=ON`, put its python folder on
PYTHONPATH (so `from openpose import pyopenpose` or `import pyopenpose` works) and pass the
models folder:

    kp = detect(table, dataset_root, model_folder="/opt/openpose/models")

The images are hand crops, so no body or hand box detector runs (body=0, hand_detector=2:
rectangles given by the user); each image's hand box is the centred square covering the whole
image, placed in the slot of `hand` (OpenPose takes [left, right] boxes per person and flips
left hands itself). OpenPose returns (x, y, score) per keypoint, score = heatmap peak value,
(0, 0, 0) where nothing was found: exactly the confidence the paper uses.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2hand.data.table import FrameTable
from s2hand.data.images import iter_images
from s2hand.detect.keypoint_file import Keypoints


def import_pyopenpose():
    """The pyopenpose module, or ImportError saying how to get it."""
    try:
        from openpose import pyopenpose as op
        return op
    except ImportError:
        pass
    try:
        import pyopenpose as op
        return op
    except ImportError as err:
        raise ImportError(
            "openpose backend: pyopenpose not found. Build OpenPose "
            "(github.com/CMU-Perceptual-Computing-Lab/openpose) with -DBUILD_PYTHON=ON, add its "
            "build/python folder to PYTHONPATH, and pass model_folder=<openpose>/models; or use "
            "the mediapipe or simulated backend."
        ) from err


def detect_paths(root: str | Path, rel_paths: Sequence[str], *, model_folder: str | Path, hand: str = "right",
                 net_resolution: str = "368x368", scale_number: int = 1, scale_range: float = 0.4,
                 extra_params: dict | None = None, progress: bool = False) -> Keypoints:
    if hand not in ("right", "left", "any"):
        raise ValueError(f"openpose backend: hand must be right, left or any, got {hand!r}")
    model_folder = Path(model_folder)
    if not model_folder.is_dir():
        raise FileNotFoundError(f"openpose backend: model_folder {model_folder} is not a folder "
                                "(it is OpenPose's models/ folder, with hand/pose_iter_102000.caffemodel)")
    op = import_pyopenpose()
    params = {"model_folder": str(model_folder), "hand": True, "hand_detector": 2, "body": 0,
              "hand_net_resolution": net_resolution, "hand_scale_number": scale_number,
              "hand_scale_range": scale_range}
    params.update(extra_params or {})
    wrapper = op.WrapperPython()
    wrapper.configure(params)
    wrapper.start()

    rels = [str(r) for r in rel_paths]
    slots = {"left": (0,), "right": (1,), "any": (0, 1)}[hand]
    peaks = np.zeros((len(rels), 21, 2), np.float32)
    conf = np.zeros((len(rels), 21), np.float32)
    failures = []
    it = iter_images(root, rels)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=len(rels), desc="openpose", unit="img")
    try:
        for i, img, failure in it:
            if failure is not None:
                failures.append(failure)
                continue
            h, w = img.shape[:2]
            side = float(max(h, w))
            box = op.Rectangle((w - side) / 2, (h - side) / 2, side, side)  # square, as OpenPose requires
            empty = op.Rectangle(0.0, 0.0, 0.0, 0.0)
            datum = op.Datum()
            datum.cvInputData = img  # BGR, as OpenPose expects
            datum.handRectangles = [[box if 0 in slots else empty, box if 1 in slots else empty]]
            # OpenPose >= 1.7 takes a VectorDatum; older builds a plain list
            wrapper.emplaceAndPop(op.VectorDatum([datum]) if hasattr(op, "VectorDatum") else [datum])
            best = None
            for slot in slots:  # with hand="any": the side with the higher mean score
                out = datum.handKeypoints[slot] if datum.handKeypoints is not None else None
                out = None if out is None else np.asarray(out, np.float32)
                if out is None or out.size == 0:
                    continue
                out = out.reshape(-1, 21, 3)[0]  # (21, 3): x, y, score of person 0
                out = np.where(np.isfinite(out), out, 0.0)
                if best is None or out[:, 2].mean() > best[:, 2].mean():
                    best = out
            if best is not None:
                peaks[i], conf[i] = best[:, :2], np.clip(best[:, 2], 0.0, None)
    finally:
        stop = getattr(wrapper, "stop", None)
        if callable(stop):
            stop()
    return Keypoints(peaks, conf, rels, failures)


def detect(table: FrameTable, image_root: str | Path, **options) -> Keypoints:
    return detect_paths(image_root, list(table.image), **options)
