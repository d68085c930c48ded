"""How good are the detected 2D keypoints? (method.md s9: 2D MPJPE in px and the paper's
Fig. 7 curve, the fraction of frames within a maximum joint distance.)

    q = detection_quality(kp.reorder(table.image), table.joints2d, table.visible)
    write_json("detect_quality.json", q); plot_quality(q, "detect_quality.png")

Definitions (a keypoint is "detected" when its confidence is > 0, a frame when any is):
    detection_rate           detected frames / frames
    keypoint_detection_rate  detected keypoints / (frames x 21)
    mpjpe_px                 mean Euclidean error (px) over detected keypoints
    mpjpe_px_per_keypoint    the same per keypoint (OpenPose names), None where never detected
    mpjpe_px_visible/_occluded  split by the ground-truth `visible` flag, when given
    conf_error_spearman      rank correlation of confidence and error over detected keypoints
                             (negative: lower confidence where the error is larger)
    curve                    paper Fig. 7: x = threshold (px), y = fraction of ALL frames whose
                             MAX error over their detected keypoints is <= x; frames with no
                             detected keypoint never count as within, so y tops out at the
                             detection rate. `auc` = mean of y over the thresholds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from s2hand.detect.keypoint_file import Keypoints
from s2hand.hand.keypoints import OPENPOSE_NAMES


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def detection_quality(kp: Keypoints, joints2d: np.ndarray, visible: np.ndarray | None = None,
                      max_threshold_px: float = 40.0, num_thresholds: int = 41) -> dict:
    """Quality of `kp` against ground truth joints2d (N, 21, 2) of the same rows; a JSON-ready dict."""
    gt = np.asarray(joints2d, np.float64)
    if gt.shape != (len(kp), 21, 2):
        raise ValueError(f"detection_quality: joints2d has shape {gt.shape}, expected ({len(kp)}, 21, 2)")
    det = kp.conf > 0  # (N, 21)
    err = np.linalg.norm(kp.peaks.astype(np.float64) - gt, axis=-1)  # (N, 21) px
    n = len(kp)
    frame_det = det.any(1)
    out: dict = {
        "n_frames": n,
        "n_detected_frames": int(frame_det.sum()),
        "detection_rate": _num(frame_det.mean()) if n else None,
        "keypoint_detection_rate": _num(det.mean()) if n else None,
        "mpjpe_px": _num(err[det].mean()) if det.any() else None,
    }
    per_kp = np.where(det.any(0), np.nansum(np.where(det, err, 0), 0) / np.maximum(det.sum(0), 1), np.nan)
    out["mpjpe_px_per_keypoint"] = {name: _num(v) for name, v in zip(OPENPOSE_NAMES, per_kp)}
    if visible is not None:
        vis = np.asarray(visible, bool)
        for key, sel in (("mpjpe_px_visible", det & vis), ("mpjpe_px_occluded", det & ~vis)):
            out[key] = _num(err[sel].mean()) if sel.any() else None
        out["fraction_occluded"] = _num((~vis).mean()) if n else None
    rho = None
    if det.sum() > 2 and np.ptp(kp.conf[det]) > 0 and np.ptp(err[det]) > 0:
        from scipy.stats import spearmanr
        rho = _num(spearmanr(kp.conf[det], err[det]).statistic)
    out["conf_error_spearman"] = rho

    frame_err = np.where(frame_det, np.where(det, err, -np.inf).max(1), np.inf)  # (N,)
    thr = np.linspace(0.0, max_threshold_px, num_thresholds)
    frac = (frame_err[None, :] <= thr[:, None]).mean(1) if n else np.zeros_like(thr)
    out["curve"] = {
        "reduce": "max",
        "threshold_px": [float(t) for t in thr],
        "fraction": [float(f) for f in frac],
        "auc": float(frac.mean()),
    }
    return out


def plot_quality(result: dict, path_png: str | Path, title: str | None = None) -> None:
    """Fig. 7-style curve (left) and per-keypoint MPJPE (right) to a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    c = result["curve"]
    a.plot(c["threshold_px"], c["fraction"], lw=2)
    a.set_xlabel("max joint distance threshold (px)")
    a.set_ylabel("fraction of frames within")
    a.set_ylim(0, 1.02)
    a.grid(alpha=0.3)
    a.set_title(f"detected {result['detection_rate'] or 0:.1%}, AUC {c['auc']:.3f}")
    names = list(result["mpjpe_px_per_keypoint"])
    vals = [np.nan if v is None else v for v in result["mpjpe_px_per_keypoint"].values()]
    b.bar(range(len(names)), vals, color="tab:orange")
    b.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    b.set_ylabel("MPJPE (px)")
    mp = result["mpjpe_px"]
    b.set_title(f"MPJPE {mp:.2f} px" if mp is not None else "MPJPE: nothing detected")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path_png, dpi=120)
    plt.close(fig)
