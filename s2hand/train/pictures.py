"""Training pictures: per frame one row  input | rendered hand | overlay of keypoints.

    grid = picture_grid(system, dataset, indices, device)    # (H, W, 3) uint8 RGB
    save_png(grid, "reports/train/finetune.png")

Overlay colours: detected keypoints (the training signal, only where conf > 0) red, projected 3D
joints green, the 2D branch's keypoints blue; bones drawn for the projected hand.
The render is upsampled (nearest) to the input size.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from s2hand.model.system import S2HandSystem
from s2hand.render.skeleton import draw_skeleton

DETECTED, PROJECTED, BRANCH2D = (230, 40, 40), (40, 200, 40), (40, 90, 230)


def draw_points(img: np.ndarray, pts: np.ndarray, color, mask: np.ndarray | None = None, bones: bool = False
                ) -> np.ndarray:
    """One set of keypoints (21, 2) in one colour at the pictures' scale (s2hand.render.skeleton)."""
    radius = max(1, int(round(1.5 * img.shape[0] / 128.0)))
    return draw_skeleton(img, pts, color, mask=mask, radius=radius, thickness=1, bones=bones)


@torch.no_grad()
def picture_grid(system: S2HandSystem, dataset, indices, device: torch.device | str) -> np.ndarray:
    """Rows for dataset[indices] (unaugmented): input | render | overlay. (H, W, 3) uint8 RGB."""
    was_training = system.training
    system.eval()
    try:
        items = [dataset[int(i)] for i in indices]
        images = torch.stack([it["image"] for it in items]).to(device)
        K = torch.stack([it["K"] for it in items]).to(device)
        out = system.run_net(images, "all", ddp=False)
        pred = system.decode(out, K)
        rend = system.render(pred, out, K)
        up = F.interpolate(rend.image.float().clamp(0, 1), size=images.shape[-2:], mode="nearest")
    finally:
        system.train(was_training)
    rows = []
    for b, it in enumerate(items):
        inp = (images[b].float().permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        ren = (up[b].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        ov = inp.copy()
        if "kp" in it:
            draw_points(ov, it["kp"].numpy(), DETECTED, it["conf"].numpy() > 0)
        draw_points(ov, pred.j_pro[b].cpu().numpy(), PROJECTED, bones=True)
        if out["kp2d"] is not None:
            draw_points(ov, out["kp2d"][-1][b].float().cpu().numpy(), BRANCH2D)
        rows.append(np.concatenate([inp, ren, ov], axis=1))
    return np.concatenate(rows, axis=0)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path
