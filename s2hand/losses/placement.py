"""The rigid placement that best fits a posed hand to 2D keypoints: E_loc and E_ori at their optimum
over global rotation, scale and translation, for the articulation alone.

    rot, scale, trans = fit_placement(posed, kp, conf, K, init=(rot0, scale0, trans0), iters=20)
    joints = place_rigid(posed, rot, scale, trans)       # (B, 21, 3) camera space

posed (B, 21, 3): the hand's keypoints with no global rotation, centred on the middle MCP
(s2hand.train.system.pose_hand with rot = 0). A global rotation R about the wrist followed by the
re-centring is the same as R about the middle MCP, so the camera-space keypoints of the code
(R, s, T) are s R posed + T (tested against the hand layer).

Why (train.loss.keypoint_placement, docs/training.md "Articulation at the fitted placement"): with
the paper's E_loc and E_ori the finger pose is scored at the network's own global rotation, which
on the embedded default stays 50-60 degrees off for the whole CPU budget; the 2D error of a wrong
rotation is then absorbed by bending the fingers, and the articulation learns the wrong thing. Here
the articulation is scored at the rigid placement that fits it best (found per sample by a few
Adam steps on 21 points, no gradient through the search: at the optimum the derivative of the
minimised energy with respect to the articulation is the partial derivative at fixed placement),
while the network's rotation, scale and translation learn, from the same terms with the
articulation held fixed, to predict that placement.
"""
from __future__ import annotations

import roma
import torch
from torch import Tensor

from s2hand.hand.convention import detector_keypoints
from s2hand.render import project

from .keypoints2d import bone_orientation_loss, location_loss

# Adam step sizes of the search: radians, scale (unitless, about 1), metres
ROT_LR, SCALE_LR, TRANS_LR = 0.05, 0.02, 0.01


def place_rigid(posed: Tensor, rot: Tensor, scale: Tensor, trans: Tensor) -> Tensor:
    """posed (B, P, 3) centred hand, rot (B, 3) axis-angle, scale (B, 1), trans (B, 3) -> (B, P, 3)
    camera space: |s| R posed + T (s2hand.train.system.place_posed's M = |s| M_posed + T)."""
    R = roma.rotvec_to_rotmat(rot)  # (B, 3, 3)
    return scale.abs()[:, :, None] * (posed @ R.transpose(1, 2)) + trans[:, None, :]


def fit_placement(posed: Tensor, kp: Tensor, conf: Tensor, K: Tensor, init: tuple[Tensor, Tensor, Tensor],
                  iters: int, w_ori: float, image_size: float, offsets: Tensor | None = None,
                  orthographic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """The (rot (B, 3), scale (B, 1), trans (B, 3)) minimising E_loc + w_ori E_ori of each sample
    (kp (B, 21, 2) px, conf (B, 21), K (B, 3, 3)), searched from `init` by `iters` Adam steps; all
    returned detached. posed is detached here: the search moves only the placement."""
    posed = posed.detach()
    rot, scale, trans = (v.detach().clone().requires_grad_(True) for v in init)
    opt = torch.optim.Adam([{"params": [rot], "lr": ROT_LR}, {"params": [scale], "lr": SCALE_LR},
                            {"params": [trans], "lr": TRANS_LR}])
    n = posed.shape[0]
    with torch.enable_grad():
        for _ in range(iters):
            j_pro = project(detector_keypoints(place_rigid(posed, rot, scale, trans), offsets), K, orthographic)
            e = location_loss(j_pro, kp, conf, "paper", image_size=image_size) + w_ori * bone_orientation_loss(j_pro, kp, conf)
            opt.zero_grad(set_to_none=True)
            (n * e).backward()  # each sample's own gradient
            opt.step()
    return rot.detach(), scale.detach(), trans.detach()
