"""The weighted sums of S2HAND (eq. 1, 2, 5, 8, 9) and S2HAND(V) (eq. 23).

    total, parts = s2hand_loss({"loc": e_loc, "ori": e_ori, "pixel": e_pix, "ssim": e_ssim,
                                "regu": e_regu, "2d": e_2d, "cons": e_cons}, params.weights)
    total, parts = video_loss({..., "quat": e_quat, "ts": e_ts}, params.weights)

E = w3d E3d + w2d E2d + wcons Econs,  E3d = wgeo (Eloc + wori Eori) + wphoto (Epixel + wssim Essim)
+ wregu Eregu,  E_V = E + wquat Equat + wts Ets. Terms missing from `terms` are skipped (e.g. the 2D
branch in pretrain_3d). Eregu comes either combined ("regu", from regularization_loss) or as its
parts "beta", "tex", "scale", "joint" (weighted here by 1, wC, ws, wJ), not both. "quat" holds the
motion term whichever kind video_temporal_loss computed (the baselines share w.quat).

`parts` maps each given term to its weighted contribution (the product of every weight above it),
so sum(parts.values()) == total: log it as is.
"""
from __future__ import annotations

from torch import Tensor

from s2hand.config import LossWeights

S2HAND_TERMS = ("loc", "ori", "pixel", "ssim", "regu", "beta", "tex", "scale", "joint", "2d", "cons")
VIDEO_TERMS = ("quat", "ts")


def _effective_weights(w: LossWeights) -> dict[str, float]:
    """Each term's total multiplier in E_V."""
    geo, photo, regu = w.branch3d * w.geo, w.branch3d * w.photo, w.branch3d * w.regu
    return {
        "loc": geo, "ori": geo * w.ori,
        "pixel": photo, "ssim": photo * w.ssim,
        "regu": regu, "beta": regu, "tex": regu * w.tex, "scale": regu * w.scale, "joint": regu * w.joint,
        "2d": w.branch2d, "cons": w.cons,
        "quat": w.quat, "ts": w.ts,
    }


def _weighted(
    terms: dict[str, Tensor], w: LossWeights, allowed: tuple[str, ...],
) -> tuple[Tensor, dict[str, Tensor]]:
    unknown = set(terms) - set(allowed)
    if unknown:
        raise KeyError(f"unknown loss terms {sorted(unknown)}; expected some of {list(allowed)}")
    if "regu" in terms and {"beta", "tex", "scale", "joint"} & set(terms):
        raise KeyError("give E_regu either combined ('regu') or as parts (beta, tex, scale, joint), not both")
    if not terms:
        raise ValueError("no loss terms given")
    k = _effective_weights(w)
    parts = {name: k[name] * value for name, value in terms.items()}
    return sum(parts.values()), parts


def s2hand_loss(terms: dict[str, Tensor], w: LossWeights) -> tuple[Tensor, dict[str, Tensor]]:
    """E_S2HAND (eq. 1): terms among S2HAND_TERMS (scalars) -> (total, weighted terms)."""
    return _weighted(terms, w, S2HAND_TERMS)


def video_loss(terms: dict[str, Tensor], w: LossWeights) -> tuple[Tensor, dict[str, Tensor]]:
    """E_S2HAND(V) (eq. 23) = E_S2HAND + wquat Equat + wts Ets: terms among S2HAND_TERMS and
    "quat", "ts" -> (total, weighted terms)."""
    return _weighted(terms, w, S2HAND_TERMS + VIDEO_TERMS)
