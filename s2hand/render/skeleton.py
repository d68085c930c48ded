"""The 2D hand skeleton drawn over an image: 20 bones and 21 keypoints in OpenPose order
(s2hand.hand.keypoints.BONES), one implementation for every figure (evaluation's qualitative rows
and `s2hand predict` overlays, the training pictures, the dataset contact sheet).

    draw_skeleton(img, joints2d)                                   # one colour per finger, wrist white
    draw_skeleton(img, kp, (230, 40, 40), mask=conf > 0, bones=False)   # detections only, one colour
    draw_skeleton(img, joints2d, visible=visible)                  # occluded keypoints hollow

Keypoints are continuous pixel coordinates (pixel (i, j) has its centre at (j + 0.5, i + 0.5),
s2hand.render.camera); OpenCV draws at integer pixel centres, so they are shifted by half a pixel.
"""
from __future__ import annotations

import cv2
import numpy as np

from s2hand.hand.keypoints import BONES

FINGER_COLORS = ((230, 60, 60), (240, 170, 40), (60, 190, 60), (50, 140, 230), (180, 80, 220))  # thumb..pinky, RGB
WRIST_COLOR = (255, 255, 255)


def _point(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def draw_skeleton(img: np.ndarray, joints2d: np.ndarray, color: tuple[int, int, int] | None = None,
                  mask: np.ndarray | None = None, visible: np.ndarray | None = None, radius: int | None = None,
                  thickness: int | None = None, bones: bool = True) -> np.ndarray:
    """Draw the keypoints joints2d (21, 2) (continuous px of img) and, with `bones`, the bones
    between them on img (H, W, 3) uint8 RGB in place; returns img.

    color: one RGB colour for everything (default: FINGER_COLORS by finger, the wrist WRIST_COLOR).
    mask (21,) bool: the keypoints drawn (default all); a bone is drawn when both its ends are, and
    a keypoint that is not finite is never drawn. visible (21,) bool: False draws that keypoint
    hollow. radius of the keypoints and thickness of the lines in px: default max(1, round(H / 256))."""
    s = max(1, round(img.shape[0] / 256))
    radius = s if radius is None else int(radius)
    thickness = s if thickness is None else int(thickness)
    pts = np.asarray(joints2d, np.float64) - 0.5
    drawn = np.isfinite(pts).all(axis=1)
    if mask is not None:
        drawn &= np.asarray(mask, bool)
    if bones:
        for k, (a, b) in enumerate(BONES):
            if drawn[a] and drawn[b]:
                cv2.line(img, _point(pts[a]), _point(pts[b]), FINGER_COLORS[k // 4] if color is None else color,
                         thickness, cv2.LINE_AA)
    for i in np.flatnonzero(drawn):
        c = color if color is not None else WRIST_COLOR if i == 0 else FINGER_COLORS[(i - 1) // 4]
        fill = -1 if visible is None or visible[i] else 1
        cv2.circle(img, _point(pts[i]), radius, c, fill, cv2.LINE_AA)
    return img
