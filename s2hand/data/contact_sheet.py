"""A contact sheet of sample frames with ground-truth keypoints and silhouettes overlaid.

    contact_sheet("outputs/dataset", "reports/dataset_contact_sheet.png")

Keypoints are drawn as the OpenPose skeleton (one colour per finger, hollow where the
keypoint is marked occluded); the hand silhouette (when the dataset stores one) as a
white outline. Rows: splits; each tile is labelled split/sequence/frame.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from s2hand.data.table import load_meta, load_split
from s2hand.hand.keypoints import BONES

FINGER_COLORS = [(255, 80, 80), (255, 200, 0), (60, 220, 60), (0, 160, 255), (200, 80, 255)]  # RGB


def draw_keypoints(img: np.ndarray, kp: np.ndarray, visible: np.ndarray | None = None, scale: float = 1.0,
                   thickness: int = 1) -> np.ndarray:
    """Draw an OpenPose-order skeleton (21, 2) onto an RGB uint8 image in place; returns it."""
    pts = kp * scale
    for b, (i, j) in enumerate(BONES):
        c = FINGER_COLORS[b // 4]
        cv2.line(img, tuple(np.round(pts[i]).astype(int)), tuple(np.round(pts[j]).astype(int)), c, thickness, cv2.LINE_AA)
    for k, pt in enumerate(pts):
        c = (255, 255, 255) if k == 0 else FINGER_COLORS[(k - 1) // 4]
        filled = -1 if visible is None or visible[k] else 1
        cv2.circle(img, tuple(np.round(pt).astype(int)), 2 + thickness, c, filled, cv2.LINE_AA)
    return img


def contact_sheet(root: str | Path, out: str | Path, per_split: int = 8, tile: int = 192) -> Path:
    root, out = Path(root), Path(out)
    meta = load_meta(root)
    rows = []
    for split in meta["splits"]:
        table = load_split(root, split)
        masks_path = root / f"{split}_masks.npy"
        masks = np.load(masks_path) if masks_path.is_file() else None
        idx = np.linspace(0, len(table) - 1, per_split).round().astype(int)
        tiles = []
        for i in idx:
            img = cv2.imread(str(root / table.image[i]), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"{root / table.image[i]}: unreadable image")
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            s = tile / img.shape[1]
            img = np.ascontiguousarray(cv2.resize(img, (tile, round(img.shape[0] * s)), interpolation=cv2.INTER_LINEAR))
            if masks is not None:
                m = np.unpackbits(masks[i], axis=-1)[:, : meta["image_size"]].astype(np.uint8)
                m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
                contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(img, contours, -1, (255, 255, 255), 1, cv2.LINE_AA)
            if table.joints2d is not None:
                vis = None if table.visible is None else table.visible[i]
                draw_keypoints(img, table.joints2d[i], vis, scale=s)
            label = f"{split} s{table.seq[i]} f{table.frame[i]}" + (" CUT" if table.cut is not None and table.cut[i] else "")
            cv2.putText(img, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(img)
        while len(tiles) < per_split:
            tiles.append(np.zeros_like(tiles[0]))
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{out}: could not write the contact sheet")
    tmp.replace(out)
    return out
