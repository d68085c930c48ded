"""Evaluation figures (matplotlib with the Agg backend, and the project's painter renderer).

    png = pck_figure(curves_by_model, px_thresholds, detector_curve)  # PNG bytes
    rows = hand_rows(system, dataset, [0, 40, 90], size=192)         # (H, W, 3) uint8, one row per frame
    png = png_bytes(qualitative_figure({"s2hand": rows, "s2hand_v": rows_v}))
    panel = overlay_panel(image, verts, faces, K, joints2d)           # mesh + skeleton over an image
    front, back = textured_views(verts, faces, lit_colors, size=192)  # the textured hand from two sides

Qualitative rows (the paper's Fig. 5 and 9): input | the projected 3D keypoints (skeleton, one
colour per finger) | mesh overlay (the predicted mesh, shaded grey-blue by its normals, over the
input) | the textured hand
(the predicted per-face texture lit with the predicted light, in the predicted pose) seen from
the camera | the same hand turned 180 degrees about the image's vertical axis (its other side).
"""
from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch

from s2hand.hand.mesh import face_normals
from s2hand.model.system import S2HandSystem
from s2hand.render.lighting import lit_face_colors
from s2hand.render.painter import render_mesh
from s2hand.render.skeleton import draw_skeleton

MESH_RGB = np.array([0.55, 0.68, 0.9])  # overlay mesh colour before shading
VIEW_BACKGROUND = (235, 235, 235)
PANELS = 5  # panels per qualitative row


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG file contents."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def overlay_panel(image: np.ndarray, verts: np.ndarray, faces: np.ndarray, K: np.ndarray,
                  joints2d: np.ndarray | None = None, orthographic: bool = False, alpha: float = 0.8) -> np.ndarray:
    """image (S, S, 3) uint8 RGB; verts (V, 3) camera space; K (3, 3) in px of the S-px image;
    joints2d (21, 2) px of it -> (S, S, 3) uint8: the mesh blended over the image, skeleton on top."""
    S = image.shape[0]
    shade = 0.35 + 0.65 * np.abs(face_normals(verts, faces)[:, 2:3])  # both sides lit (open mesh)
    paint = render_mesh(verts, faces, np.clip(shade * MESH_RGB, 0, 1), K, S, background=image,
                        orthographic=orthographic)
    a = alpha * paint.mask[..., None]
    out = (image.astype(np.float32) * (1 - a) + paint.image.astype(np.float32) * a).round().astype(np.uint8)
    if joints2d is not None:
        draw_skeleton(out, joints2d)
    return out


def textured_views(verts: np.ndarray, faces: np.ndarray, lit: np.ndarray, size: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The hand verts (V, 3) with lit per-face colours (F, 3) in [0, 1], centred in a size-px view,
    seen from the camera and turned 180 degrees about the vertical (y) axis -> two (size, size, 3) uint8."""
    centre = verts.mean(0)
    v = verts - centre
    radius = float(np.linalg.norm(v, axis=1).max()) or 1e-3
    dist = 4.0 * radius
    f = 0.45 * size * dist / radius
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    turn = np.diag([-1.0, 1.0, -1.0])  # 180 degrees about y
    views = []
    for R in (np.eye(3), turn):
        vv = v @ R.T + np.array([0, 0, dist])
        views.append(render_mesh(vv, faces, np.clip(lit, 0, 1), K, size,
                                 background=np.array(VIEW_BACKGROUND, np.uint8), supersample=3).image)
    return views[0], views[1]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """Write text in white on a black strip at the top left of img (in place)."""
    scale = img.shape[0] / 360
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    img[:h + base + 6, :w + 8] = 0
    cv2.putText(img, text, (4, h + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


@torch.no_grad()
def hand_rows(system: S2HandSystem, dataset, indices: Sequence[int], size: int, label: str = "",
              device: torch.device | str = "cpu") -> np.ndarray:
    """One row per frame dataset[i] (s2hand.model.frames.HandFrames, unaugmented): input | projected
    3D keypoints | mesh overlay | textured hand, camera view | other side.
    -> (len(indices) * size, 5 * size, 3) uint8."""
    system.eval()
    items = [dataset[int(i)] for i in indices]
    images = torch.stack([it["image"] for it in items]).to(device)  # (B, 3, S, S)
    K = torch.stack([it["K"] for it in items]).to(device)  # (B, 3, 3) input px
    out, pred = system.predict(images, K)
    lit = lit_face_colors(pred.verts, system.layer.faces, out["face_colors"], out["light"]).clamp(0, 1)
    faces = system.layer.faces.cpu().numpy()
    r = size / system.input_size
    rows = []
    for b, i in enumerate(indices):
        src = dataset.read(int(i))  # full-resolution frame, (H, W, 3) uint8
        img = cv2.resize(src, (size, size), interpolation=cv2.INTER_AREA if src.shape[0] > size else cv2.INTER_LINEAR)
        Kp = K[b].cpu().numpy().astype(np.float64) * np.array([[r], [r], [1.0]])
        verts = pred.verts[b].cpu().numpy().astype(np.float64)
        keypoints = draw_skeleton(img.copy(), pred.j_pro[b].cpu().numpy() * r)
        overlay = overlay_panel(img, verts, faces, Kp, None, system.orthographic)
        front, back = textured_views(verts, faces, lit[b].cpu().numpy(), size)
        first = _label(img.copy(), label) if label else img
        rows.append(np.concatenate([first, keypoints, overlay, front, back], axis=1))
    return np.concatenate(rows, axis=0)


def qualitative_figure(blocks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Stack per-model row blocks (same frames, same width) frame by frame: frame 1 of every model,
    then frame 2, ... so each frame's models sit together. blocks: name -> (n * S, W, 3)."""
    arrays = list(blocks.values())
    S = arrays[0].shape[1] // PANELS
    n = arrays[0].shape[0] // S
    rows = [a[k * S:(k + 1) * S] for k in range(n) for a in arrays]
    sep = np.full((2, arrays[0].shape[1], 3), 255, np.uint8)
    out = []
    for k, row in enumerate(rows):
        out.append(row)
        if (k + 1) % len(arrays) == 0 and k + 1 < len(rows):
            out.append(sep)
    return np.concatenate(out, axis=0)


def pck_figure(curves: Mapping[str, Mapping[str, list]], px_thresholds: Sequence[float],
               detector_curve: Sequence[float | None] | None, labels: Mapping[str, str] | None = None) -> bytes:
    """Three panels: PCK of joints and of vertices (aligned, 0-5 cm) and the fraction of frames
    within a largest 2D joint error. curves: model -> EvalResult.curves. -> PNG file contents."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for ax, key, title in ((axes[0], "pck_j", "3D joints (PCK)"), (axes[1], "pck_v", "3D vertices (PCV)")):
        for name, c in curves.items():
            if c.get(key) is not None:
                ax.plot(c["thresholds_cm"], c[key], label=labels.get(name, name))
        ax.set(title=title + ", Procrustes-aligned", xlabel="error threshold (cm)", ylabel="fraction",
               xlim=(0, 5), ylim=(0, 1.01))
    ax = axes[2]
    for name, c in curves.items():
        for key, suffix in (("within_px", "projected"), ("within_px_branch2d", "2D branch")):
            if key in c:
                ax.plot(px_thresholds, c[key], label=f"{labels.get(name, name)}, {suffix}")
    if detector_curve is not None:
        ax.plot(px_thresholds, [np.nan if v is None else v for v in detector_curve], "k--", label="detector")
    ax.set(title="2D keypoints", xlabel="max joint distance (px)", ylabel="fraction of frames",
           xlim=(0, float(px_thresholds[-1])), ylim=(0, 1.01))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
