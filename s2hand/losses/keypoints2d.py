"""2D keypoint losses of S2HAND (method.md s4; paper eq. 3, 4, 10, 11).

    e_loc = location_loss(j_pro, j_de, conf)            # eq. 3, E_loc
    e_ori = bone_orientation_loss(j_pro, j_de, conf)    # eq. 4, E_ori
    e_2d = branch2d_loss([j_2d_stack1, j_2d_stack2], j_de, conf)  # eq. 10, E_2d
    e_cons = consistency_loss(j_pro, j_2d)              # eq. 11, E_cons

Keypoints are (B, 21, 2) pixel coordinates in the OpenPose order (s2hand.hand.keypoints), conf
(B, 21) (or (B, 21, 1)) the detector's confidences in [0, 1].

SmoothL1. The paper writes SmoothL1(j_de, j_pro) without a threshold; the released code applies
d -> d^2 / 10 if d < 5 px else d - 2.5 to the Euclidean distance d of each joint, which is exactly
the Huber / SmoothL1 function 0.5 d^2 / beta (d < beta), d - 0.5 beta (else) with beta = 5 px.
Both variants here use it (on the Euclidean distance, beta = SMOOTH_L1_BETA = 5 px); they differ
only in the weighting, as the two texts do.

Pixel normalisation. Distances are measured in pixels of a REFERENCE_SIZE = 224 input, the paper's
crop: coordinates given for an `image_size`-pixel input are scaled by 224 / image_size first, so
beta, the loss magnitude and hence the paper's weights keep their meaning at other input sizes.
Pass image_size=224 (the default) for coordinates already in 224-px units.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from s2hand.hand.keypoints import BONES, FINGERTIPS, WRIST

REFERENCE_SIZE = 224.0  # px: the paper's input side; distances are expressed in these pixels
SMOOTH_L1_BETA = 5.0  # px of the 224 input: the released code's d^2/10 | d-2.5 switch point
CODE_KEYPOINT_WEIGHTS = torch.ones(21)  # released code: 2 for the wrist, 1.5 for fingertips
CODE_KEYPOINT_WEIGHTS[WRIST] = 2.0
CODE_KEYPOINT_WEIGHTS[list(FINGERTIPS)] = 1.5
_EPS = 1e-8


def _conf(conf: Tensor) -> Tensor:
    """(B, 21) or (B, 21, 1) -> (B, 21)."""
    return conf.reshape(conf.shape[0], -1)


def _sq_distance(a: Tensor, b: Tensor, image_size: float) -> Tensor:
    """(B, 21, 2), (B, 21, 2) -> (B, 21) squared distance in 224-px units."""
    s = REFERENCE_SIZE / float(image_size)
    return ((a - b) * s).pow(2).sum(-1)


def smooth_l1_distance(d2: Tensor, beta: float = SMOOTH_L1_BETA) -> Tensor:
    """SmoothL1 (Huber) of a Euclidean distance given its square d2 (any shape):
    0.5 d^2 / beta if d < beta else d - 0.5 beta. Finite gradient at d = 0 (no sqrt there)."""
    quad = 0.5 * d2 / beta
    lin = d2.clamp(min=beta * beta).sqrt() - 0.5 * beta  # constant (zero gradient) where d < beta
    return torch.where(d2 < beta * beta, quad, lin)


def _safe_norm(d2: Tensor) -> Tensor:
    """sqrt with a zero (not NaN) gradient at 0."""
    pos = d2 > 0
    return torch.where(pos, torch.where(pos, d2, torch.ones_like(d2)).sqrt(), torch.zeros_like(d2))


def location_loss(
    j_pro: Tensor, j_de: Tensor, conf: Tensor, variant: str = "paper",
    image_size: float = REFERENCE_SIZE, beta: float = SMOOTH_L1_BETA,
) -> Tensor:
    """E_loc (eq. 3): projected j_pro (B, 21, 2) against detected j_de (B, 21, 2), conf (B, 21).

    paper: mean over the batch of 1/k sum_i con_i * SmoothL1(d_i)                   (k = 21)
    code:  sum_{b,i} w_bi SmoothL1(d_bi) / sum_{b,i} w_bi, w = (con * kw)^2 with kw = 2 for the
           wrist, 1.5 for the tips, 1 else (the released code squares con * kw; the batch is
           normalised as a whole). All-zero confidences give 0.
    """
    l = smooth_l1_distance(_sq_distance(j_pro, j_de, image_size), beta)  # (B, 21)
    c = _conf(conf)  # (B, 21)
    if variant == "paper":
        return (c * l).mean()
    if variant == "code":
        w = (c * CODE_KEYPOINT_WEIGHTS.to(c)).pow(2)  # (B, 21)
        return (w * l).sum() / w.sum().clamp(min=_EPS)
    raise ValueError(f"location_loss: variant must be 'paper' or 'code', got {variant!r}")


def _unit_bones(j: Tensor, eps: float = 1e-4) -> Tensor:
    """(B, 21, 2) -> (B, 20, 2) unit bone vectors child - parent; a zero-length bone gives 0."""
    parent = torch.tensor([p for p, _ in BONES], device=j.device)
    child = torch.tensor([c for _, c in BONES], device=j.device)
    v = j[:, child] - j[:, parent]  # (B, 20, 2)
    return v / (v.pow(2).sum(-1, keepdim=True) + eps * eps).sqrt()


def bone_orientation_loss(j_pro: Tensor, j_de: Tensor, conf: Tensor) -> Tensor:
    """E_ori (eq. 4): 1/m sum_bones conf_bone * ||nu_de - nu_pro||^2 (m = 20), mean over the batch.

    nu are unit 2D bone vectors (child - parent over s2hand.hand.keypoints.BONES), normalised with
    sqrt(|v|^2 + 1e-4^2) as the released code's |v| + 1e-4 so a zero-length bone gives a zero
    vector and finite gradients; conf_bone = con_parent * con_child. Scale-free: no image_size.
    """
    c = _conf(conf)  # (B, 21)
    parent = torch.tensor([p for p, _ in BONES], device=c.device)
    child = torch.tensor([ch for _, ch in BONES], device=c.device)
    conf_bone = c[:, parent] * c[:, child]  # (B, 20)
    diff = (_unit_bones(j_de) - _unit_bones(j_pro)).pow(2).sum(-1)  # (B, 20)
    return (conf_bone * diff).mean()


def branch2d_loss(
    j_2d: Tensor | Sequence[Tensor], j_de: Tensor, conf: Tensor, variant: str = "paper",
    image_size: float = REFERENCE_SIZE, beta: float = SMOOTH_L1_BETA,
) -> Tensor:
    """E_2d (eq. 10): the 2D branch's keypoints j_2d (B, 21, 2), or a list with one (B, 21, 2) per
    hourglass stack, against the detections j_de (B, 21, 2) with conf (B, 21).

    paper: location_loss(j_2d, j_de, conf, 'paper') per stack (1/k sum con_i SmoothL1).
    code:  per stack sum_{b,i} con^2 d / sum con^2 with the plain Euclidean distance d (the
           released code's hm_integral loss: no robust function, no keypoint weights).
    A list is summed over its stacks (intermediate supervision, as the released code does).
    """
    stacks = [j_2d] if isinstance(j_2d, Tensor) else list(j_2d)
    if not stacks:
        raise ValueError("branch2d_loss: no predictions")
    total = j_de.new_zeros(())
    for j in stacks:
        if variant == "paper":
            total = total + location_loss(j, j_de, conf, "paper", image_size, beta)
        elif variant == "code":
            w = _conf(conf).pow(2)  # (B, 21)
            d = _safe_norm(_sq_distance(j, j_de, image_size))  # (B, 21)
            total = total + (w * d).sum() / w.sum().clamp(min=_EPS)
        else:
            raise ValueError(f"branch2d_loss: variant must be 'paper' or 'code', got {variant!r}")
    return total


def consistency_loss(
    j_pro: Tensor, j_2d: Tensor | Sequence[Tensor],
    image_size: float = REFERENCE_SIZE, beta: float = SMOOTH_L1_BETA,
) -> Tensor:
    """E_cons (eq. 11): 1/k sum_i SmoothL1(j_pro_i, j_2d_i), mean over the batch; j_pro, j_2d
    (B, 21, 2). Gradients reach both branches. For a list of stacks the last (final) stack is used,
    as in the released code (paper and code agree on this term otherwise)."""
    j = j_2d if isinstance(j_2d, Tensor) else list(j_2d)[-1]
    return smooth_l1_distance(_sq_distance(j_pro, j, image_size), beta).mean()
