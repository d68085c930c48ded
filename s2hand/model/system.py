"""The assembled S2HAND training model: network + hand layer + camera + renderer + loss terms.

    system = S2HandSystem.from_params(params, "outputs/hand_model/MANO_RIGHT.npz")
    total, parts, terms = system.training_loss(batch, "finetune")   # batch from s2hand.model.frames.HandFrames
    pred = system.predict(images, K)                                # inference: 3D branch only

Stages (method.md s6): "pretrain_2d" trains the 2D branch with E_2d; "pretrain_3d" the 3D branch
with E_3d = wgeo E_geo + wphoto E_photo + wregu E_regu; "finetune" everything with E_S2HAND (eq. 1,
adding E_2d and E_cons). `terms` holds the unweighted terms, `parts` the weighted ones
(s2hand.losses.total), sum(parts) == total.

Camera composition (method.md s2: M = s M0 R + T). The hand layer poses the mean-shifted MANO
mesh with global_orient = R (axis-angle; smplx turns it about the wrist joint) and the finger pose
theta (PCA) and shape beta; the result is re-centred on the middle-finger MCP joint (keypoint 9,
the released code's manopth centre_idx=9), scaled by |s| and moved by T:
    M = |s| (M_layer - J_layer[9]) + T,   J = |s| (J_layer - J_layer[9]) + T     (metres, OpenCV camera)
so T is the camera-space position of the middle MCP and s scales about it (the released code
also takes |s|). The heads start at s = 0.95, T = (0, 0, 0.65) and R = init_rot = 120 degrees about
(1, 1, 1)/sqrt(3) (s2hand.nets.heads: fingers image-up, palm towards the camera, thumb right for
this layer's v_cam = R v convention): the initial hand is centred in the image, 65 cm away.
Projection j_pro = camera.project(J, K) with the batch's K (input pixels).

Photometric terms compare the input resized (bilinear, anti-aliased) to the render size with the
rendering. The renderer draws on a black background so that E_SSIM's paper form 1 - SSIM(I S_re,
I_re) compares like with like outside the hand (I S_re is black there too); E_pixel only looks
inside the silhouette. Precision: with bf16 autocast (CUDA) only the network runs in bf16; the
hand layer, renderer and losses run in float32.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2hand.config import LossWeights, Params, TrainLossParams, VideoParams
from s2hand.hand.convention import detector_keypoints
from s2hand.hand.layer import HandLayer
from s2hand.losses import (
    bone_orientation_loss,
    branch2d_loss,
    consistency_loss,
    joint_angle_loss,
    location_loss,
    pixel_loss,
    pseudo_label_loss,
    s2hand_loss,
    scale_loss,
    shape_loss,
    ssim_loss,
    texture_loss,
    texture_shape_loss,
    video_loss,
    video_temporal_loss,
)
from s2hand.losses.supervised import supervised_3d_loss
from s2hand.nets import EncoderSpec, S2HandNet, axis_angle_facing_camera
from s2hand.render import HandRenderer, RenderOutput, project

Stage = Literal["pretrain_2d", "pretrain_3d", "finetune", "finetune_video"]
STAGES: tuple[Stage, ...] = ("pretrain_2d", "pretrain_3d", "finetune", "finetune_video")
Energy = Callable[[dict[str, Tensor], LossWeights], tuple[Tensor, dict[str, Tensor]]]  # terms -> (total, parts)


@dataclasses.dataclass(frozen=True)
class StageEnergy:
    """What a stage's energy is made of (module docstring): the network branch it runs, whether
    its batches are S2HAND(V) windows of video.n frames (adding E_quat and E_T&S), and the
    weighted sum of its terms (s2hand.losses.total)."""
    branch: Literal["2d", "3d", "all"]
    energy: Energy
    video: bool = False

    @property
    def runs_3d(self) -> bool:
        """Whether the stage runs the 3D branch (a hand: keypoint convention and pseudo labels apply)."""
        return self.branch != "2d"


STAGE_ENERGY: dict[Stage, StageEnergy] = {
    "pretrain_2d": StageEnergy("2d", s2hand_loss),
    "pretrain_3d": StageEnergy("3d", s2hand_loss),
    "finetune": StageEnergy("all", s2hand_loss),
    "finetune_video": StageEnergy("all", video_loss, video=True),
}
STAGE_BRANCH = {stage: e.branch for stage, e in STAGE_ENERGY.items()}
CENTRE_JOINT = 9  # middle-finger MCP (OpenPose order)


class HandPrediction(NamedTuple):
    verts: Tensor  # (B, V, 3) camera space, metres
    joints: Tensor  # (B, 21, 3) camera space, metres, OpenPose order
    full_pose: Tensor  # (B, 48) global R + 45 finger axis-angle
    j_pro: Tensor  # (B, 21, 2) projected joints, input px


class PosedHand(NamedTuple):
    """The hand layer's output re-centred on the middle MCP (before scale and translation)."""
    verts: Tensor  # (B, V, 3) metres, J_layer[9] at the origin
    joints: Tensor  # (B, 21, 3)
    full_pose: Tensor  # (B, 48)


def pose_hand(layer: HandLayer, rot: Tensor, pose_pca: Tensor, shape: Tensor) -> PosedHand:
    """rot (B, 3) axis-angle, pose_pca (B, P), shape (B, 10) -> M_layer - J_layer[9], J_layer - J_layer[9]."""
    hand = layer(rot, pose_pca, shape)
    centre = hand.joints[:, CENTRE_JOINT : CENTRE_JOINT + 1]  # (B, 1, 3)
    return PosedHand(hand.verts - centre, hand.joints - centre, hand.full_pose)


def place_posed(posed: PosedHand, scale: Tensor, trans: Tensor, K: Tensor, orthographic: bool = False
                ) -> HandPrediction:
    """Scale (B, 1) and translation (B, 3) m applied to a posed hand, projected with K (B, 3, 3)."""
    s = scale.abs()[:, :, None]  # (B, 1, 1)
    T = trans[:, None, :]  # (B, 1, 3)
    verts = s * posed.verts + T
    joints = s * posed.joints + T
    return HandPrediction(verts, joints, posed.full_pose, project(joints, K, orthographic))


def place_hand(layer: HandLayer, rot: Tensor, pose_pca: Tensor, shape: Tensor, scale: Tensor, trans: Tensor,
               K: Tensor, orthographic: bool = False) -> HandPrediction:
    """Codes -> camera-space hand (module docstring): M = |s| (M_layer - J_layer[9]) + T.
    rot (B, 3) axis-angle, pose_pca (B, P), shape (B, 10), scale (B, 1), trans (B, 3) m, K (B, 3, 3)."""
    return place_posed(pose_hand(layer, rot, pose_pca, shape), scale, trans, K, orthographic)


def build_net(params: Params, num_faces: int, encoder_spec: EncoderSpec | None = None) -> S2HandNet:
    """The network `params` describe; encoder_spec: restore a trained one (S2HandNet)."""
    m = params.train.model
    return S2HandNet(m.encoder, m.encoder_init, m.encoder_weights, num_faces=num_faces,
                     num_pose=params.hand.num_pca_comps, num_shape=10, init_rot=axis_angle_facing_camera(),
                     color_activation=m.color_activation, camera_init=m.camera_init, use_2d_branch=True, hg_stacks=m.hg_stacks,
                     hg_feats=m.hg_feats, hg_modules=m.hg_modules, hg_depth=m.hg_depth, hg_beta=m.hg_beta,
                     encoder_spec=encoder_spec)


class S2HandSystem(nn.Module):
    """Network + hand layer + renderer; loss terms of each stage (module docstring)."""

    def __init__(self, net: S2HandNet, layer: HandLayer, renderer: HandRenderer, weights: LossWeights,
                 loss: TrainLossParams, input_size: int, video: VideoParams | None = None,
                 orthographic: bool = False, supervision: str = "self", full3d_weight: float = 1.0,
                 keypoint_offsets: Tensor | None = None, pseudo_weight: float = 0.0, pseudo_shape_weight: float = 0.1):
        """keypoint_offsets (21,): the detector's keypoint convention (s2hand.hand.convention) the
        keypoint terms compare the detections with; None: the model's own keypoints (the paper).
        pseudo_weight: weight of E_pseudo (s2hand.losses.pseudo) on batches that carry the
        pseudo_labels stage's fits ("pseudo_pose", "pseudo_shape", "pseudo_mask"); 0: the paper."""
        super().__init__()
        self.net = net
        self.layer = layer
        self.renderer = renderer
        self.weights = weights
        self.loss_cfg = loss
        self.input_size = int(input_size)
        self.video = video if video is not None else VideoParams()
        self.orthographic = bool(orthographic)  # projection and renderer (S2HAND(V) Table 8 variant)
        self.supervision = supervision  # "full3d": upper-bound ablation (s2hand.losses.supervised)
        self.full3d_weight = float(full3d_weight)
        self.pseudo_weight, self.pseudo_shape_weight = float(pseudo_weight), float(pseudo_shape_weight)
        self.register_buffer("keypoint_offsets", None if keypoint_offsets is None
                             else torch.as_tensor(keypoint_offsets, dtype=torch.float32))  # (21,)
        self.autocast_dtype: torch.dtype | None = None  # set to torch.bfloat16 for CUDA autocast
        self.ddp: nn.Module | None = None  # DistributedDataParallel(net) when training with DDP

    @classmethod
    def from_params(cls, params: Params, hand_model: str | Path, orthographic: bool = False,
                    encoder_spec: EncoderSpec | None = None, keypoint_offsets: Tensor | None = None
                    ) -> "S2HandSystem":
        """orthographic: project and render with u = fx X + cx (the finetune_video stage sets it
        from video.camera; the S2HAND stages always use the perspective camera). encoder_spec:
        restoring a model file (build_net). keypoint_offsets: the detector's convention (__init__)."""
        layer = HandLayer.from_file(hand_model, params.hand.num_pca_comps, params.hand.flat_hand_mean)
        net = build_net(params, int(layer.faces.shape[0]), encoder_spec)
        r = params.render
        renderer = HandRenderer(layer.faces, r.size, params.train.input_size, blur_sigma=r.blur_sigma,
                                faces_per_pixel=r.faces_per_pixel, background=(0.0, 0.0, 0.0),
                                orthographic=orthographic, face_selection=r.face_selection)
        return cls(net, layer, renderer, params.weights, params.train.loss, params.train.input_size,
                   video=params.video, orthographic=orthographic, supervision=params.train.supervision,
                   full3d_weight=params.train.full3d_weight, keypoint_offsets=keypoint_offsets,
                   pseudo_weight=params.train.pseudo_labels.weight,
                   pseudo_shape_weight=params.train.pseudo_labels.shape_weight)

    # ----------------------------------------------------------------------------- forward
    def run_net(self, images: Tensor, branch: str, ddp: bool = True) -> dict:
        """The network (through its DDP wrapper if any and `ddp`), under autocast if set."""
        net = self.ddp if (ddp and self.ddp is not None) else self.net
        if self.autocast_dtype is not None and images.is_cuda:
            with torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False):  # CUDA graphs need it off
                out = net(images, branch=branch)
            return {k: (None if v is None else [t.float() for t in v] if isinstance(v, list) else v.float())
                    for k, v in out.items()}
        return net(images, branch=branch)

    def decode(self, out: dict, K: Tensor) -> HandPrediction:
        """Network codes -> camera-space mesh and joints (module docstring), projected joints."""
        return place_hand(self.layer, out["rot"], out["pose_pca"], out["shape"], out["scale"], out["trans"], K,
                          self.orthographic)

    @torch.no_grad()
    def predict(self, images: Tensor, K: Tensor) -> tuple[dict, HandPrediction]:
        """3D branch inference (eval mode is the caller's business)."""
        out = self.run_net(images, "3d", ddp=False)
        return out, self.decode(out, K)

    def render(self, pred: HandPrediction, out: dict, K: Tensor) -> RenderOutput:
        return self.renderer(pred.verts, out["face_colors"], out["light"], K)

    # ----------------------------------------------------------------------------- losses
    def loss_terms(self, batch: dict[str, Tensor], stage: Stage, photometric: bool | None = None
                   ) -> tuple[dict[str, Tensor], dict]:
        """Unweighted loss terms of `stage` (keys of s2hand.losses.S2HAND_TERMS) and the raw
        network output plus decoded prediction (for pictures). photometric: render and compute
        E_pixel / E_SSIM; None: only when weights.photo > 0 (True reports them at weight 0, as
        the weight search needs)."""
        images, K, kp, conf = batch["image"], batch["K"], batch["kp"], batch["conf"]
        S = float(self.input_size)
        lc = self.loss_cfg
        out = self.run_net(images, STAGE_BRANCH[stage])
        terms: dict[str, Tensor] = {}
        extra: dict = {"out": out}
        if out["kp2d"] is not None:
            terms["2d"] = branch2d_loss(out["kp2d"], kp, conf, lc.branch2d, image_size=S)
        if out["pose_pca"] is not None:
            posed = pose_hand(self.layer, out["rot"], out["pose_pca"], out["shape"])
            pred = place_posed(posed, out["scale"], out["trans"], K, self.orthographic)
            extra["pred"] = pred
            j_det = self.detector_projection(pred, K)  # (B, 21, 2) where the detector would put them
            terms["loc"] = location_loss(j_det, kp, conf, lc.location, image_size=S)
            terms["ori"] = bone_orientation_loss(j_det, kp, conf)
            if ((self.weights.photo > 0) if photometric is None else photometric) and self.supervision == "self":
                rend = self.render(self._photometric_geometry(pred, posed, out, K), out, K)
                extra["render"] = rend
                small = F.interpolate(images, size=rend.image.shape[-2:], mode="bilinear", align_corners=False,
                                      antialias=True)
                terms["pixel"] = pixel_loss(small, rend.image, rend.silhouette, conf, lc.pixel)
                if lc.ssim:
                    terms["ssim"] = ssim_loss(small, rend.image, rend.silhouette)
            terms["beta"] = shape_loss(out["shape"], lc.shape)
            terms["tex"] = texture_loss(out["face_colors"])
            terms["scale"] = scale_loss(pred.joints)
            terms["joint"] = joint_angle_loss(pred.full_pose[:, 3:])
            if out["kp2d"] is not None:
                terms["cons"] = consistency_loss(j_det, out["kp2d"], image_size=S)
            if STAGE_ENERGY[stage].video:
                terms.update(self.video_terms(out, pred))
            if self.pseudo_weight > 0 and self.supervision == "self" and "pseudo_pose" in batch:
                terms["pseudo"] = pseudo_label_loss(out["pose_pca"], out["shape"], batch["pseudo_pose"],
                                                    batch["pseudo_shape"], batch["pseudo_mask"],
                                                    self.pseudo_shape_weight)
            if self.supervision == "full3d":  # ground truth in place of E_loc, E_ori (and E_photo above)
                del terms["loc"], terms["ori"]
                terms["sup3d"] = self.full3d_term(batch, pred)
        return terms, extra

    def detector_projection(self, pred: HandPrediction, K: Tensor) -> Tensor:
        """(B, 21, 2) the predicted keypoints in the detector's convention, projected (input px); the
        model's own projections pred.j_pro without a calibrated convention."""
        if self.keypoint_offsets is None:
            return pred.j_pro
        return project(detector_keypoints(pred.joints, self.keypoint_offsets), K, self.orthographic)

    def _photometric_geometry(self, pred: HandPrediction, posed: PosedHand, out: dict, K: Tensor) -> HandPrediction:
        """The hand E_pixel / E_SSIM see: `pred` (loss.photo_placement 'paper'); under 'detach' the same
        posed mesh placed with gradients blocked at the scale and translation outputs; under
        'appearance' the mesh with no gradient at all, so that the photometric terms train only the
        texture and light (and, through them, the encoder)."""
        mode = self.loss_cfg.photo_placement
        if mode == "paper":
            return pred
        if mode == "appearance":
            return pred._replace(verts=pred.verts.detach())
        return place_posed(posed, out["scale"].detach(), out["trans"].detach(), K, self.orthographic)

    def video_terms(self, out: dict, pred: HandPrediction) -> dict[str, Tensor]:
        """S2HAND(V) terms of a batch of m windows x n frames (indices window by window, as
        s2hand.data.sampler.SequenceBatchSampler yields them): "quat" the motion term chosen by
        video.temporal_loss over the 16 rotations (global R + 15 finger joints), "ts" E_T&S."""
        v = self.video
        B = pred.full_pose.shape[0]
        if B % v.n:
            raise ValueError(f"finetune_video: batch of {B} frames is not m windows of n = {v.n}")
        m = B // v.n
        kw = {"threshold": v.smooth_threshold} if v.temporal_loss == "smooth" else {}
        terms = {"quat": video_temporal_loss(v.temporal_loss, pred.full_pose.reshape(m, v.n, 16, 3), **kw)}
        if v.ts:
            fc = out["face_colors"]
            terms["ts"] = texture_shape_loss(fc.reshape(m, v.n, *fc.shape[1:]),
                                             out["light"].reshape(m, v.n, -1),
                                             out["shape"].reshape(m, v.n, -1),
                                             self.layer.canonical_face_normals().to(fc))
        return terms

    def full3d_term(self, batch: dict[str, Tensor], pred: HandPrediction) -> Tensor:
        """E_sup3d of the upper-bound ablation against the batch's (augmented) ground truth."""
        if "joints3d" not in batch or "verts" not in batch:
            raise ValueError("train.supervision: full3d needs ground-truth joints3d and verts in the training data")
        return supervised_3d_loss(pred.joints, pred.verts, batch["joints3d"], batch["verts"])

    def training_loss(self, batch: dict[str, Tensor], stage: Stage, photometric: bool = True
                      ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """(total, weighted parts, unweighted terms) of `stage`'s energy; photometric False leaves
        E_pixel and E_SSIM out whatever weights.photo says (train.<stage>.photometric)."""
        terms, _ = self.loss_terms(batch, stage, photometric=None if photometric else False)
        # full3d's E_sup3d and E_pseudo: weighted outside eq. 1
        sup = {k: terms.pop(k) for k in ("sup3d", "pseudo") if k in terms}
        total, parts = STAGE_ENERGY[stage].energy(terms, self.weights)
        for k, v in sup.items():
            parts[k] = (self.full3d_weight if k == "sup3d" else self.pseudo_weight) * v
            total, terms[k] = total + parts[k], v
        return total, parts, terms
