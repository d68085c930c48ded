"""3D hand metrics as the FreiHAND and HO-3D online evaluations compute them (method.md s9).

    from s2hand.metrics.freihand import evaluate_freihand
    m = evaluate_freihand(gt_xyz, gt_verts, pred_xyz, pred_verts)   # metres in, cm / [0,1] out
    m["pa_mpjpe_cm"], m["auc_j"], m["f5"], m["mpjpe_cm_unaligned"], ...

The algorithm follows the official scripts (lmb-freiburg/freihand eval.py + utils/eval_util.py;
shreyashampali/ho3d eval.py is the same code plus a scale-translation alignment):
- per sample, Euclidean distance per keypoint (or vertex), all keypoints visible;
- MPJPE/MPVPE = mean over keypoints of the per-keypoint mean over samples, reported in cm;
- PCK(t) = fraction of samples with distance <= t (inclusive), per keypoint, then averaged
  over keypoints; thresholds = linspace(0, 0.05 m, 100); AUC = trapezoid(PCK, t) divided by
  trapezoid(1, t) = 0.05, per keypoint, then averaged (the same as the AUC of the mean curve);
- "aligned" = each sample's prediction mapped onto its ground truth by `procrustes_align`
  (centre, divide by the Frobenius norm, orthogonal Procrustes WITHOUT a det(R) = +1 constraint,
  so reflections are allowed, then rescale and translate onto the ground truth); joints and
  vertices are aligned separately, each with its own transform;
- F-score per sample at 5 mm and 15 mm from nearest-neighbour distances between the two vertex
  sets (strict `<` threshold), averaged over samples.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

AUC_THRESHOLDS_M = np.linspace(0.0, 0.05, 100)  # (100,) the official PCK thresholds, metres
F_THRESHOLDS_M = (0.005, 0.015)                  # F@5mm, F@15mm
METRIC_KEYS = ("pa_mpjpe_cm", "auc_j", "pa_mpvpe_cm", "auc_v", "f5", "f15")  # Procrustes-aligned ("pa_")
UNALIGNED_KEYS = ("mpjpe_cm_unaligned", "auc_j_unaligned", "mpvpe_cm_unaligned", "auc_v_unaligned", "f5_unaligned",
                  "f15_unaligned")
ALL_METRIC_KEYS = METRIC_KEYS + UNALIGNED_KEYS
_EPS = 1e-8  # added to the Frobenius norms, as the official script does


def procrustes_transform(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray | float]:
    """The similarity transform of `procrustes_align`, as its parts.

    pred, gt: (N, 3). Returns rot (3, 3), scale (singular-value sum of the normalised problem),
    norm_gt, norm_pred (Frobenius norms of the centred sets, + 1e-8), mean_gt, mean_pred (3,).
    aligned = (pred - mean_pred) / norm_pred @ rot.T * scale * norm_gt + mean_gt.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mean_gt, mean_pred = gt.mean(0), pred.mean(0)            # (3,)
    norm_gt = np.linalg.norm(gt - mean_gt) + _EPS
    norm_pred = np.linalg.norm(pred - mean_pred) + _EPS
    a = (gt - mean_gt) / norm_gt                             # (N, 3)
    b = (pred - mean_pred) / norm_pred                       # (N, 3)
    # R minimising ||a R - b||_F over orthogonal R (reflections allowed): R = U V^T, a^T b = U S V^T.
    u, sv, vt = np.linalg.svd(a.T @ b)
    return dict(rot=u @ vt, scale=float(sv.sum()), norm_gt=float(norm_gt), norm_pred=float(norm_pred),
                mean_gt=mean_gt, mean_pred=mean_pred)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Prediction (N, 3) mapped onto gt (N, 3) by the official `align_w_scale` -> (N, 3)."""
    t = procrustes_transform(pred, gt)
    b = (np.asarray(pred, dtype=np.float64) - t["mean_pred"]) / t["norm_pred"]   # (N, 3)
    return b @ t["rot"].T * t["scale"] * t["norm_gt"] + t["mean_gt"]


def align_by_keypoint_transform(pred_verts: np.ndarray, pred_xyz: np.ndarray, gt_xyz: np.ndarray) -> np.ndarray:
    """Vertices (V, 3) of a non-MANO mesh aligned with the transform fitted on the keypoints,
    exactly as the official `align_by_trafo` does: used only when the predicted mesh has another
    vertex count than the ground truth. Faithful to the script, including its quirks: the
    vertices are centred on their own mean and NOT divided by the keypoints' norm, so the mesh
    comes out scaled by about norm_gt instead of norm_gt / norm_pred.
    """
    t = procrustes_transform(pred_xyz, gt_xyz)
    pred_verts = np.asarray(pred_verts, dtype=np.float64)
    centre = pred_verts.mean(0)                                                  # (3,)
    return ((pred_verts - centre) @ t["rot"].T * t["scale"] * t["norm_gt"]
            + (t["mean_gt"] - t["mean_pred"]) + centre)


def scale_translation_align(pred: np.ndarray, gt: np.ndarray, root: int = 0, ref: int = 9) -> np.ndarray:
    """HO-3D's extra alignment (`align_sc_tr`): scale pred (21, 3) so that |ref - root| matches gt's,
    then move its root onto gt's root. HO-3D uses its joints 0 and 4 (wrist, middle MCP), which are
    0 and 9 in this project's OpenPose order. A zero-length pred bone is left unscaled."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    s = np.linalg.norm(pred[ref] - pred[root])
    if s > 0:
        pred = pred / s
    pred = pred * np.linalg.norm(gt[ref] - gt[root])
    return pred - pred[root] + gt[root]


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(S, K, 3), (S, K, 3) -> (S, K) Euclidean distance per sample and keypoint."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)


def pck_curve(errors: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS_M) -> np.ndarray:
    """errors (S, K), thresholds (T,) -> (T,): for each keypoint the fraction of samples with
    error <= t, then the mean over keypoints."""
    errors = np.sort(np.asarray(errors, dtype=np.float64), axis=0)        # (S, K) sorted per keypoint
    thresholds = np.asarray(thresholds, dtype=np.float64)
    # count of errors <= t per keypoint, by binary search (no (T, S, K) array for 778 vertices)
    counts = np.stack([np.searchsorted(col, thresholds, side="right") for col in errors.T], axis=1)  # (T, K)
    return (counts / errors.shape[0]).mean(axis=1)


def auc(pck: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS_M) -> float:
    """Area under a PCK curve (T,) over thresholds (T,) by the trapezoid rule, divided by the area
    under PCK = 1, so it lies in [0, 1]."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return float(np.trapezoid(pck, thresholds) / np.trapezoid(np.ones_like(thresholds), thresholds))


def fscore(pred_verts: np.ndarray, gt_verts: np.ndarray, threshold_m: float) -> tuple[float, float, float]:
    """F-score of two point sets (V, 3), (V', 3) at a distance threshold (metres) -> (f, precision, recall).

    precision = fraction of predicted points whose nearest ground-truth point is < threshold;
    recall = fraction of ground-truth points whose nearest predicted point is < threshold;
    f = 2 p r / (p + r), 0 when both are 0 or a set is empty. (The official script swaps the
    names precision/recall; f is symmetric, so it is unaffected.)
    """
    pred_verts = np.asarray(pred_verts, dtype=np.float64).reshape(-1, 3)
    gt_verts = np.asarray(gt_verts, dtype=np.float64).reshape(-1, 3)
    if len(pred_verts) == 0 or len(gt_verts) == 0:
        return 0.0, 0.0, 0.0
    d_pred, _ = cKDTree(gt_verts).query(pred_verts)    # (V,) nearest gt for each predicted point
    d_gt, _ = cKDTree(pred_verts).query(gt_verts)      # (V',) nearest prediction for each gt point
    precision = float(np.mean(d_pred < threshold_m))
    recall = float(np.mean(d_gt < threshold_m))
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(f), precision, recall


def evaluate_freihand(gt_xyz: np.ndarray, gt_verts: np.ndarray, pred_xyz: np.ndarray, pred_verts: np.ndarray,
                      with_curves: bool = False) -> dict:
    """All FreiHAND/HO-3D online-evaluation numbers for one set.

    gt_xyz, pred_xyz: (S, 21, 3) metres, same keypoint order and camera frame.
    gt_verts: (S, V, 3); pred_verts: (S, V', 3) metres. If V' != V (not a MANO mesh), the mesh
    errors are undefined (NaN here; the official script writes -1) and the F-scores use the
    keypoint transform (`align_by_keypoint_transform`), as the official script does.
    Returns METRIC_KEYS {pa_mpjpe_cm, auc_j, pa_mpvpe_cm, auc_v, f5, f15} after Procrustes alignment
    (what the paper reports) and UNALIGNED_KEYS, the same without alignment (mpjpe_cm_unaligned,
    auc_j_unaligned, ...); with_curves adds "curves": thresholds in cm
    and the PCK/PCV curves {pck_j, pck_j_unaligned, pck_v, pck_v_unaligned} (lists).
    """
    gt_xyz, pred_xyz = np.asarray(gt_xyz, np.float64), np.asarray(pred_xyz, np.float64)
    gt_verts, pred_verts = np.asarray(gt_verts, np.float64), np.asarray(pred_verts, np.float64)
    s = len(gt_xyz)
    if s == 0 or gt_xyz.shape != pred_xyz.shape or gt_xyz.shape[-1] != 3:
        raise ValueError(f"keypoints: gt {gt_xyz.shape} and prediction {pred_xyz.shape} must be equal (S, K, 3), S > 0")
    if len(gt_verts) != s or len(pred_verts) != s or gt_verts.shape[-1] != 3 or pred_verts.shape[-1] != 3:
        raise ValueError(f"vertices: gt {gt_verts.shape} and prediction {pred_verts.shape} must be (S={s}, V, 3)")
    is_mano = pred_verts.shape[1] == gt_verts.shape[1]

    xyz_al = np.stack([procrustes_align(p, g) for p, g in zip(pred_xyz, gt_xyz)])        # (S, 21, 3)
    if is_mano:
        verts_al = np.stack([procrustes_align(p, g) for p, g in zip(pred_verts, gt_verts)])  # (S, V, 3)
    else:
        verts_al = np.stack([align_by_keypoint_transform(v, p, g)
                             for v, p, g in zip(pred_verts, pred_xyz, gt_xyz)])

    out: dict = {}
    curves: dict = {"thresholds_cm": (AUC_THRESHOLDS_M * 100).tolist()}
    for prefix, suffix, xyz, verts in (("pa_", "", xyz_al, verts_al), ("", "_unaligned", pred_xyz, pred_verts)):
        err_j = point_errors(xyz, gt_xyz)                        # (S, 21)
        pck_j = pck_curve(err_j)
        out[prefix + "mpjpe_cm" + suffix] = float(err_j.mean(axis=0).mean() * 100)
        out["auc_j" + suffix] = auc(pck_j)
        curves["pck_j" + suffix] = pck_j.tolist()
        if is_mano:
            err_v = point_errors(verts, gt_verts)                # (S, V)
            pck_v = pck_curve(err_v)
            out[prefix + "mpvpe_cm" + suffix] = float(err_v.mean(axis=0).mean() * 100)
            out["auc_v" + suffix] = auc(pck_v)
            curves["pck_v" + suffix] = pck_v.tolist()
        else:
            out[prefix + "mpvpe_cm" + suffix] = out["auc_v" + suffix] = float("nan")
            curves["pck_v" + suffix] = None
        for name, th in zip(("f5", "f15"), F_THRESHOLDS_M):
            out[name + suffix] = float(np.mean([fscore(p, g, th)[0] for p, g in zip(verts, gt_verts)]))
    out = {k: out[k] for k in ALL_METRIC_KEYS}
    if with_curves:
        out["curves"] = curves
    return out
