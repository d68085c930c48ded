"""Where a 2D keypoint detector puts the 21 keypoints on the hand model: its keypoint convention.

    kp_det = detector_keypoints(joints, offsets)         # joints (B, 21, 3) model keypoints, OpenPose order
    offsets = calibrate_convention(layer, kp, conf, K, weights, image_size)   # (21,), detections only
                                                        # (s2hand.evaluate.keypoint_fit: a per-frame fit)

A detector and a hand model need not agree on where a keypoint is. On the embedded data MediaPipe
puts the wrist about a fifth of the way from the open hand's wrist joint towards the middle MCP,
and each fingertip about half-way from the model's tip vertex back towards its DIP joint
(docs/training.md, "Keypoint convention"). Trained against the model's own keypoints, such a
consistent offset is learnt as a consistent error: the loss bends the fingers to shorten their
last segment. The convention models it as a shift of each keypoint along its bone:

    k_det = k + a_k (k_next - k)      wrist -> middle MCP; tips -> their DIP joint (moving inwards)

a_k = 0 everywhere is the model's own keypoints (the paper). The shift is a fixed point of the
bone, so it holds in every pose and view.

Calibration uses the detections alone, no ground truth: every frame of a calibration set gets its
own free hand code (as s2hand.evaluate.keypoint_fit), and the offsets, shared by all frames, are
fitted jointly with them to the keypoint energy (E_loc + w_ori E_ori and the regularisers). Only
the wrist and the five tips are free: a shift of the inner finger joints along their bones is
matched by a slide of the whole chain and a change of scale, so their offsets are not identified
(measured: fitted freely they drift outwards by half a bone while the tips move the opposite way).
The offsets are freed after the codes have settled (a third of the iterations), and the fit
absorbs part of a tip's offset into the DIP flexion that E_J allows, so the calibrated offsets are
about half the true ones (measured against the ground truth, which the calibration never reads).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from s2hand.hand.keypoints import FINGERTIPS, MIDDLE_MCP, WRIST

# NEXT[k]: the keypoint each keypoint moves towards (OpenPose order): the wrist towards the middle
# MCP, each finger joint towards the next one out, each tip back towards its DIP joint
NEXT = np.array([MIDDLE_MCP] + [1 + 4 * f + j + 1 if j < 3 else 1 + 4 * f + 2 for f in range(5) for j in range(4)])
CALIBRATED = (WRIST, *FINGERTIPS)  # the keypoints whose offsets the detections identify


def detector_keypoints(joints: Tensor, offsets: Tensor | None) -> Tensor:
    """joints (B, 21, 3) (or (B, 21, 2)) model keypoints, offsets (21,) -> the same points moved
    along their bones to where the detector puts them; offsets None: unchanged."""
    if offsets is None:
        return joints
    nxt = torch.as_tensor(NEXT, device=joints.device)
    return joints + offsets.to(joints)[:, None] * (joints[:, nxt] - joints)


def load_offsets(path: str | Path) -> np.ndarray:
    """The offsets (21,) of a convention file (the keypoint_convention stage's JSON); refuses a file
    that is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no keypoint convention file (run the keypoint_convention stage)")
    data = json.loads(path.read_text())
    raw = data.get("offsets") if isinstance(data, dict) else None
    try:
        off = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        off = np.zeros(0)
    if off.shape != (21,) or not np.isfinite(off).all() or np.abs(off).max() > 1.0:
        raise ValueError(f"{path}: 'offsets' must be 21 finite numbers in [-1, 1], got {raw!r}")
    return off


def measured_offsets(kp: np.ndarray, conf: np.ndarray, joints2d: np.ndarray) -> np.ndarray:
    """Offsets (21,) measured against ground-truth 2D keypoints joints2d (N, 21, 2): the least-squares
    a_k of kp ~ j_k + a_k (j_next - j_k) over the detected keypoints (conf > 0). For reports only:
    the calibration never reads ground truth."""
    d = joints2d[:, NEXT] - joints2d  # (N, 21, 2)
    r = kp - joints2d
    m = (conf > 0)[..., None]
    return (d * r * m).sum((0, 2)) / np.maximum((d * d * m).sum((0, 2)), 1e-9)
