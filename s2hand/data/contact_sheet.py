"""A contact sheet of sample frames with ground-truth keypoints and silhouettes overlaid.

    contact_sheet("outputs/dataset", "reports/dataset_contact_sheet.png")

Keypoints are drawn as the OpenPose skeleton (s2hand.render.skeleton: one colour per finger,
hollow where the keypoint is marked occluded); the hand silhouette (when the dataset stores one) as a
white outline. Rows: splits; each tile is labelled split/sequence/frame.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from s2hand.data.images import read_rgb
from s2hand.data.table import load_meta, load_split
from s2hand.render.skeleton import draw_skeleton


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
            img = read_rgb(root / table.image[i])
            s = tile / img.shape[1]
            img = np.ascontiguousarray(cv2.resize(img, (tile, round(img.shape[0] * s)), interpolation=cv2.INTER_LINEAR))
            if masks is not None:
                m = np.unpackbits(masks[i], axis=-1)[:, : meta["image_size"]].astype(np.uint8)
                m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
                contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(img, contours, -1, (255, 255, 255), 1, cv2.LINE_AA)
            if table.joints2d is not None:
                vis = None if table.visible is None else table.visible[i]
                draw_skeleton(img, table.joints2d[i] * s, visible=vis, radius=3, thickness=1)
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
