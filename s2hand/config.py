"""One validated schema for `params.yaml`.

Every stage calls `load_params()` once at start. An unknown key, a wrong type or an
out-of-range value raises `ParamsError` whose message names the offending key, e.g.

    params.yaml: weights.quat: Input should be greater than or equal to 0 (got -1)

Usage:
    from s2hand.config import load_params
    p = load_params("params.yaml")
    p.weights.quat, p.data.synthetic.image_size
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable, numbers are numbers
    (strict: no '0.1' strings or true/false for a float) and finite (no .inf / .nan)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class OpenHandParams(Section):
    """How the open (anny-derived) MANO-format hand is built (docs/hand_model.md)."""

    shape_samples: int = Field(300, ge=20, le=5000)  # anny phenotypes sampled for the shape PCA
    pose_samples: int = Field(4000, ge=100, le=100000)  # synthetic natural poses for the pose PCA


class HandParams(Section):
    model: Literal["open", "mano"] = "open"
    mano_path: str = "data/mano/MANO_RIGHT.pkl"  # used when model == mano
    tip_ids: Literal["code", "smplx"] = "code"  # fingertip vertex ids for real MANO (method.md s2)
    num_pca_comps: int = Field(30, ge=1, le=45)
    flat_hand_mean: bool = False
    open: OpenHandParams = OpenHandParams()


class RenderParams(Section):
    """Differentiable renderer; its resolution is independent of the network input size."""

    size: int = Field(64, ge=16, le=1024)
    # soft-rasteriser sigma (NDC^2 units) and faces kept per pixel: 1e-4 / 4 leaves holes in the
    # silhouette of a dense hand mesh (s2hand/render/renderer.py); 1e-5 / 8 does not
    blur_sigma: float = Field(1e-5, gt=0, le=1e-1)
    faces_per_pixel: int = Field(8, ge=1, le=32)
    # which faces each pixel sees: auto and torch = the vectorised torch selection on any device
    # (s2hand/render/raster.py; faster than pytorch3d on a GPU too); pytorch3d = its rasteriser
    face_selection: Literal["auto", "torch", "pytorch3d"] = "auto"


class SyntheticParams(Section):
    """The embedded synthetic hand-video dataset (data.name == synthetic)."""

    sequences: int = Field(1000, ge=3, le=100000)
    frames: int = Field(10, ge=2, le=10000)
    image_size: int = Field(128, ge=32, le=1024)
    fps: float = Field(30.0, gt=0)
    val_fraction: float = Field(0.05, ge=0, lt=0.5)
    test_fraction: float = Field(0.05, ge=0, lt=0.5)
    occluder_prob: float = Field(0.3, ge=0, le=1)  # fraction of sequences with a held object
    grasp_prob: float = Field(0.15, ge=0, le=1)  # share of finger keyframes that are grasps (else relaxed)
    gesture_prob: float = Field(0.5, ge=0, le=1)  # share of finger keyframes that are gestures (point, peace, ...)
    wild_sequences: int = Field(20, ge=0, le=100000)  # YT-3D stand-in: edited videos with cuts
    wild_frames: int = Field(60, ge=16, le=10000)
    wild_max_shots: int = Field(6, ge=2, le=100)  # 2 to this many shots (of >= 8 frames) per wild sequence
    photo_backgrounds: bool = True  # scikit-image's sample photographs; else procedural
    supersample: int = Field(2, ge=1, le=4)  # anti-aliasing factor of the data renderer
    forearm: bool = True  # draw a forearm out of the wrist opening (not part of the hand model or its mask)


class DataParams(Section):
    name: Literal["synthetic", "freihand", "ho3d", "stb", "yt3d"] = "synthetic"
    raw_dir: str = "data"  # user-supplied archives and files (tracked by data.dvc)
    # an archive that unpacks to more than this, or to more than this ratio of its size, is refused
    extract_max_gb: float = Field(200.0, gt=0)
    extract_max_ratio: float = Field(100.0, ge=1)
    synthetic: SyntheticParams = SyntheticParams()


class MediapipeParams(Section):
    """MediaPipe Hands (s2hand/detect/mediapipe_backend.py explains the derived confidence)."""

    model_complexity: Literal[0, 1] = 1
    min_detection_confidence: float = Field(0.2, ge=0, le=1)
    min_presence_confidence: float = Field(0.2, ge=0, le=1)
    upscale: float = Field(1.0, gt=0, le=8)
    # paddings (fraction of the image side) tried in turn until a hand is found
    pad: tuple[Annotated[float, Field(ge=0, le=2)], ...] = Field((0.5, 0.0, 1.0), min_length=1, max_length=6,
                                                                 strict=False)  # a YAML list; items strict
    border_margin: float = Field(0.05, ge=0, le=1)
    # a result whose hands are all of the other side: keep its best hand, or drop it (next padding)
    wrong_side: Literal["keep", "drop"] = "keep"
    workers: int = Field(2, ge=1, le=64)


class OpenposeParams(Section):
    model_folder: str = "data/openpose/models"  # OpenPose's models/ folder (needs a pyopenpose build)
    hand: Literal["right", "left", "any"] = "right"


class SimulatedDetectorParams(Section):
    """Noise model of the simulated detector (s2hand/detect/simulated_backend.py)."""

    sigma: float = Field(0.02, ge=0)
    sigma_hard: float = Field(0.08, ge=0)
    outlier_prob: float = Field(0.01, ge=0, le=1)
    conf_max: float = Field(0.9, gt=0, le=1)
    conf_decay: float = Field(1.2, ge=0)
    keypoint_miss_prob: float = Field(0.1, ge=0, le=1)
    frame_miss_prob: float = Field(0.02, ge=0, le=1)


class DetectParams(Section):
    backend: Literal["mediapipe", "openpose", "simulated", "ground_truth"] = "mediapipe"
    mediapipe: MediapipeParams = MediapipeParams()
    openpose: OpenposeParams = OpenposeParams()
    simulated: SimulatedDetectorParams = SimulatedDetectorParams()


class FilterParams(Section):
    """YT-3D filtering: continuous stretches by detected keypoints (s2hand/filter/yt3d_filter.py)."""

    split: str = "wild"  # the split holding in-the-wild videos (yt3d: train)
    jump_threshold: float = Field(0.35, gt=0)  # keypoint jump / hand size that is a cut
    min_jump: float = Field(0.12, ge=0)
    motion_ratio: float | None = Field(4.0, gt=1)  # sudden against the video's own motion; null: off
    scale_ratio_threshold: float = Field(1.5, ge=1)
    min_mean_conf: float = Field(0.2, ge=0, le=1)  # frames below: confidence collapse, dropped
    kp_conf: float = Field(0.1, ge=0, le=1)
    min_common: int = Field(5, ge=1, le=21)
    max_gap: int = Field(3, ge=1)
    lookahead: int = Field(2, ge=0)  # frames looked ahead to tell a one-off glitch from a cut
    motion_window: int = Field(10, ge=1)
    min_stretch: int = Field(8, ge=1)  # shorter stretches are dropped
    min_video_frames: int = Field(1, ge=1)
    # cuts from the images: the mean change of a thumb_size x thumb_size colour thumbnail (0-1) from the
    # previous frame above image_change and above image_ratio x the median change of the motion_window pairs on
    # either side (camera motion); image_change null (the paper: cuts are keypoint jumps): cuts by the keypoint
    # rules alone (which also fire on the detector's multi-frame glitches)
    image_change: float | None = Field(None, gt=0, le=1)
    image_ratio: float | None = Field(3.0, gt=1)
    thumb_size: int = Field(4, ge=1, le=64)
    cut_tolerance: int = Field(1, ge=0)  # frames, when scoring detected cuts against known ones


class ConventionParams(Section):
    """Stage keypoint_convention (s2hand/hand/convention.py): where the detector puts the wrist and the
    fingertips on the hand model, fitted to the detections of kept train frames (no ground truth)."""

    frames: int = Field(600, ge=8, le=100000)  # kept train frames drawn (seeded) for the fit
    iters: int = Field(600, ge=3, le=100000)  # Adam iterations (the offsets move after the first third)


class LossWeights(Section):
    """The paper's thirteen loss weights (method.md s6), paper values as defaults."""

    branch3d: float = Field(1.0, ge=0)  # w3d
    branch2d: float = Field(0.001, ge=0)  # w2d
    cons: float = Field(0.0002, ge=0)  # wcons: 2D-3D consistency
    geo: float = Field(0.001, ge=0)  # wgeo
    photo: float = Field(0.005, ge=0)  # wphoto
    regu: float = Field(0.01, ge=0)  # wregu
    ori: float = Field(100.0, ge=0)  # wori: bone orientation inside E_geo
    ssim: float = Field(0.2, ge=0)  # wssim inside E_photo
    tex: float = Field(0.5, ge=0)  # wC: texture regulariser
    scale: float = Field(10.0, ge=0)  # ws: scale regulariser
    joint: float = Field(10.0, ge=0)  # wJ: joint-angle regulariser
    quat: float = Field(0.05, ge=0)  # wquat: S2HAND(V) quaternion loss
    ts: float = Field(0.01, ge=0)  # wts: S2HAND(V) texture-and-shape loss


class MlflowParams(Section):
    """Where training runs are logged. Listed in no stage's params: changing them reruns nothing."""

    experiment: str = Field("s2hand", min_length=1)
    tags: dict[str, str] = {}  # added to every run (the ablations set ablation_<table>: <row>)


class StageSchedule(Section):
    """One training stage's schedule (method.md s6): Adam(0.9, 0.999), lr multiplied by lr_gamma
    every lr_step epochs. Paper: pretrain 90 epochs, 1e-3, x0.5 every 30; finetune 60 epochs,
    2.5e-4, x1/3 every 20; batch 64. The defaults keep that shape with fewer epochs (CPU budget)."""

    epochs: int = Field(ge=0, le=100000)
    lr: float = Field(gt=0)
    lr_step: int = Field(ge=1)  # epochs
    lr_gamma: float = Field(gt=0, le=1)
    batch_size: int = Field(8, ge=2, le=4096)  # per process; BatchNorm1d needs >= 2
    # exponential moving average of the weights (and BatchNorm statistics), decay per step; when on,
    # validation, pictures and the model file use the average (s2hand/train/loop.py); 0: off
    ema: float = Field(0.0, ge=0, lt=1)
    # the encoder's learning rate as a multiple of lr (paper: 1, one rate for the whole network)
    encoder_lr_factor: float = Field(1.0, gt=0, le=1)
    # E_pixel and E_SSIM in this stage's energy (paper: true; weights.photo weighs them where on)
    photometric: bool = True


class TrainModelParams(Section):
    """The network (s2hand.nets.S2HandNet). Paper/GPU: b0 (needs encoder_weights), 2 stacks x 256."""

    encoder: Literal["b0", "lite0", "b3"] = "lite0"
    encoder_init: Literal["imagenet", "random"] = "imagenet"
    encoder_weights: str | None = None  # local state dict; None: lite0's packaged ImageNet weights
    color_activation: Literal["sigmoid", "tanh"] = "sigmoid"
    camera_init: Literal["last", "released"] = "released"  # hidden layers of the scale/rot/trans heads (nets/heads.py)
    hg_stacks: int = Field(2, ge=1, le=8)
    hg_feats: int = Field(32, ge=8, le=1024)
    hg_modules: int = Field(1, ge=1, le=4)
    hg_depth: int = Field(3, ge=1, le=6)
    hg_beta: float = Field(1.0, gt=0)


class TrainLossParams(Section):
    """Paper or released-code variant of each loss (s2hand.losses docstrings)."""

    location: Literal["paper", "code"] = "paper"
    pixel: Literal["paper", "code"] = "paper"
    shape: Literal["paper", "code"] = "paper"
    branch2d: Literal["paper", "code"] = "paper"
    ssim: bool = True
    # paper: E_pixel and E_SSIM reach every geometry output; detach (default): not the hand's scale
    # and translation, whose place then comes from the keypoint terms alone (with the paper's form
    # the photometric terms pushed the hand out of view; docs/training.md, s2hand/model/system.py)
    # appearance: they reach no geometry output at all, only texture and light (s2hand/model/system.py)
    photo_placement: Literal["paper", "detach", "appearance"] = "detach"


class AugmentParams(Section):
    """Training-time crop and in-plane rotation; K and keypoints follow (s2hand/model/frames.py)."""

    scale: float = Field(0.1, ge=0, lt=1)  # crop side jitter, fraction (uniform +-)
    shift: float = Field(0.05, ge=0, le=0.5)  # crop centre jitter, fraction of the image side
    rotation_deg: float = Field(0.0, ge=0, le=180)  # uniform in +- this (released FreiHAND: 180)


class TrainRuntimeParams(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["32", "bf16"] = "bf16"  # bf16 autocast on CUDA only; the CPU runs float32
    channels_last: bool = True  # network and inputs in channels-last memory format (CPU and CUDA)
    # CUDA only: replay the encoder, heads and hourglass as CUDA graphs (s2hand/train/graphs.py);
    # DDP runs eagerly
    cuda_graphs: bool = True
    num_workers: int = Field(0, ge=0, le=64)
    num_threads: int = Field(0, ge=0, le=256)  # torch CPU threads; 0: torch's default
    val_every: int = Field(1, ge=1)  # epochs
    val_every_steps: int = Field(0, ge=0)  # also validate every this many steps (learning curves; 0: off)
    val_batch_size: int = Field(32, ge=1)
    checkpoint_every: int = Field(25, ge=1)  # steps between resume checkpoints
    log_every: int = Field(1, ge=1)  # steps between loss logs
    max_steps: int = Field(0, ge=0)  # stop a stage after this many steps (0: no cap; smoke tests)
    pictures: int = Field(4, ge=0, le=64)  # validation frames drawn per picture


class PseudoLabelParams(Section):
    """Distillation of per-frame keypoint fits (s2hand/losses/pseudo.py; not in the paper, whose
    value is weight 0: no such term). The pseudo_labels stage fits the hand (hand.num_pca_comps
    pose components) to each kept train frame's detections; every stage that trains the 3D branch
    adds weight x E_pseudo to its energy."""

    weight: float = Field(0.0, ge=0)  # 0: off (the paper)
    shape_weight: float = Field(0.1, ge=0)  # the shape part of E_pseudo, relative to the pose part
    iters: int = Field(100, ge=1, le=100000)  # Adam steps of each frame's fit
    lr: float = Field(0.05, gt=0)  # Adam learning rate of the fits
    propagate: int = Field(0, ge=0, le=100)  # frames: unfitted frames this close to a fitted one (same shot)
    # are trained on with its fit and without their own detection (s2hand.train.pseudo_labels.propagate_labels)


class TrainParams(Section):
    """Training stages pretrain_2d, pretrain_3d, finetune (s2hand/train, method.md s6)."""

    input_size: int = Field(128, ge=32, le=1024)  # network input side, px (paper 224); multiple of 4
    min_keypoints: int = Field(1, ge=0, le=21)  # train frames with fewer detected keypoints are left out
    min_confidence: float = Field(0.0, ge=0, le=1)  # ... and those whose best keypoint confidence is lower
    # ... and video frames whose detection disagrees with its neighbours' by more than this
    # (s2hand.detect.temporal; 0: off; video frames it cannot judge are left out, still images pass)
    max_disagreement: float = Field(0.2, ge=0)
    # self: the paper's self-supervised terms; full3d: the upper-bound ablation, ground-truth 3D joints
    # and vertices (s2hand.losses.supervised) in place of E_loc, E_ori, E_pixel, E_SSIM
    supervision: Literal["self", "full3d"] = "self"
    full3d_weight: float = Field(1.0, gt=0)  # weight of E_sup3d (metres) under full3d
    # model: E_loc / E_ori / E_cons compare the detections with the model's own keypoints (the paper);
    # calibrated: with the model's keypoints moved to where the detector puts them, fitted to the
    # detections alone by the keypoint_convention stage (s2hand/hand/convention.py)
    keypoint_convention: Literal["model", "calibrated"] = "model"
    pseudo_labels: PseudoLabelParams = PseudoLabelParams()
    model: TrainModelParams = TrainModelParams()
    loss: TrainLossParams = TrainLossParams()
    augment: AugmentParams = AugmentParams()
    runtime: TrainRuntimeParams = TrainRuntimeParams()
    pretrain_2d: StageSchedule = StageSchedule(epochs=1, lr=1e-3, lr_step=1, lr_gamma=0.5)
    pretrain_3d: StageSchedule = StageSchedule(epochs=3, lr=1e-3, lr_step=1, lr_gamma=0.5)
    finetune: StageSchedule = StageSchedule(epochs=1, lr=2.5e-4, lr_step=1, lr_gamma=1 / 3)
    # S2HAND(V) (video section): paper like finetune; CPU default one short epoch (~90 s on 2 cores)
    finetune_video: StageSchedule = StageSchedule(epochs=1, lr=2.5e-4, lr_step=1, lr_gamma=1 / 3, batch_size=9)

    @model_validator(mode="after")
    def _input_multiple_of_4(self) -> "TrainParams":
        if self.input_size % 4:
            raise ValueError(f"train.input_size must be a multiple of 4, got {self.input_size}")
        return self


class VideoParams(Section):
    """S2HAND(V) (method.md s5; stage finetune_video): E_V = E_S2HAND + wquat E_motion + wts E_T&S.
    Batches are m = batch_size // n windows of n frames `interval` apart (s2hand.data.sampler)."""

    temporal_loss: Literal["quaternion", "temporal", "smooth", "none"] = "quaternion"  # weighed by weights.quat
    ts: bool = True  # E_T&S on/off (weighed by weights.ts)
    n: int = Field(3, ge=2, le=64)  # frames per sampled window
    interval: int = Field(3, ge=1, le=1000)  # frames between the window's frames
    smooth_threshold: float = Field(0.1, ge=0)  # rad, the smooth baseline's threshold
    camera: Literal["perspective", "orthographic"] = "perspective"  # orthographic: u = fx X + cx
    extra_wild: bool = False  # also train on the kept wild stretches (outputs/yt3d_filter, Table 8)
    max_batches: int = Field(60, ge=0)  # batches per epoch (0: every window once); CPU budget cap


class EvaluateParams(Section):
    """Stage evaluate (s2hand/evaluate, docs/evaluation.md): S2HAND, S2HAND(V) and the mean-pose
    baseline on one split; ACC windows and quaternion-loss windows follow video.n / video.interval."""

    split: str = Field("test", min_length=1)  # a split of outputs/dataset with 3D ground truth
    batch_size: int = Field(32, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    qualitative_frames: int = Field(4, ge=0, le=32)  # test frames in reports/evaluate/qualitative.png
    qualitative_size: int = Field(192, ge=64, le=1024)  # px per panel of that figure
    keypoint_fit_iters: int = Field(300, ge=0, le=100000)  # per-frame fits to 2D keypoints (0: none)


# ----------------------------------------------------------------------------- grid_search section
# The loss-weight search's vocabulary that the section is checked against. The search itself
# (s2hand/search/plan.py) imports it from here: only the grid_search stage depends on that code.
WeightName = Literal[
    "branch3d", "branch2d", "cons", "geo", "photo", "regu", "ori", "ssim", "tex", "scale", "joint", "quat", "ts"
]
WEIGHT_NAMES: tuple[str, ...] = get_args(WeightName)  # LossWeights' fields, in their order
# the supplementary's phase-2 groups, in its order (their weights: s2hand/search/plan.py GROUPS)
GroupName = Literal["loc", "regu", "ori", "2d_cons", "photo", "quat", "ts"]
TEMPORAL = ("quat", "ts")  # S2HAND(V) only; 0 in S2HAND searches
ANCHOR = "geo"  # the location weight, fixed in phase 1
PARENT: dict[str, str] = {"ori": "geo", "ssim": "photo", "tex": "regu", "scale": "regu", "joint": "regu"}


def searched_weights(variant: str) -> tuple[str, ...]:
    """The weights a search may change: all but branch3d (and quat, ts for S2HAND)."""
    drop = {"branch3d"} | (set(TEMPORAL) if variant == "s2hand" else set())
    return tuple(w for w in WEIGHT_NAMES if w not in drop)


class GridSearchParams(Section):
    """`grid_search:` section of params.yaml (the loss-weight search: s2hand/search/plan.py, which
    resolves it with `build_plan`; docs/grid_search.md). Fields left null take the profile's value.

    profile reduced (default): phase 1 over plan.REDUCED[variant] with 1 x10 step each side, phase 2
    on 2 groups, sensitivity on 3 weights (26 trials S2HAND, 29 S2HAND(V)). profile full: every
    weight, 4 steps each side at most, all groups (105 / 111 phase-2 runs), sensitivity on all
    searched weights but the anchor (as Table 10).
    """

    profile: Literal["reduced", "full"] = "reduced"
    variant: Literal["s2hand", "s2hand_v"] = "s2hand"
    phase1_weights: tuple[WeightName, ...] | None = Field(None, strict=False)  # in this order (a parent before its children); null: the profile's
    phase1_steps: int | None = Field(None, ge=1, le=8)  # x10 steps each side at most; null: 1 / 4
    # keep stepping while accuracy AND fixed loss sum improve (method.md s7), or EITHER (the
    # supplementary's "until the sum no longer decreases and the performance no longer improves")
    phase1_rule: Literal["either", "both"] = "either"
    phase2_groups: tuple[GroupName, ...] | None = Field(None, strict=False)  # in GroupName order; null: the profile's
    factors: tuple[float, ...] = Field((0.5, 1.0, 2.0), min_length=1, max_length=9, strict=False)
    sensitivity_weights: tuple[WeightName, ...] | None = Field(None, strict=False)  # null: the profile's
    sensitivity_factors: tuple[float, ...] = Field((0.5, 2.0), min_length=1, max_length=6, strict=False)
    anchor: float = Field(1.0, gt=0)  # geo during the search (the paper's phi_loc = 1)
    output_geo: float | None = Field(0.001, gt=0)  # geo in selected_weights.yaml (rescaled); null: as searched
    # the overfit protocol, read by the objective (objective.py; supplementary: 30 samples, 10
    # epochs, Adam 1e-3, batch 10, at the training resolution). Defaults: the CPU budget, full
    # batches for 60 steps, so that the trials end below the mean pose (docs/grid_search.md)
    subset_size: int = Field(30, ge=2)  # train frames (s2hand_v: // video.n windows)
    epochs: int = Field(60, ge=1)  # supplementary: 10
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(30, ge=2)  # frames (s2hand_v: // video.n windows); supplementary: 10
    input_size: int = Field(64, ge=32, le=1024)  # network input px during the search (multiple of 4)
    render_size: int = Field(32, ge=16, le=1024)  # differentiable render px during the search
    workers: int = Field(2, ge=1, le=256)  # CPU processes (1: serial, in-process)
    threads: int = Field(0, ge=0, le=256)  # torch threads per worker; 0: CPU cores // workers
    gpus: tuple[int, ...] = Field((), strict=False)  # GPU ids: one worker per GPU (CUDA_VISIBLE_DEVICES), overrides workers

    @model_validator(mode="after")
    def _consistent(self) -> "GridSearchParams":
        allowed = searched_weights(self.variant)
        for field in ("phase1_weights", "sensitivity_weights"):
            for w in getattr(self, field) or ():
                if w not in allowed:
                    raise ValueError(f"{field}: {w!r} is not searched for {self.variant} (searched: {allowed})")
        p1 = self.phase1_weights or ()
        if ANCHOR in p1:
            raise ValueError("phase1_weights: geo is the anchor (fixed), it cannot be in phase 1")
        if len(set(p1)) != len(p1):
            raise ValueError("phase1_weights: must be distinct")
        for w in p1:  # a child needs its parent determined first (or preset: not in phase 1)
            parent = PARENT.get(w)
            if parent in p1 and p1.index(parent) > p1.index(w):
                raise ValueError(f"phase1_weights: {w} needs its parent {parent} before it")
        groups = self.phase2_groups or ()
        order = list(get_args(GroupName))
        if list(groups) != sorted(groups, key=order.index) or len(set(groups)) != len(groups):
            raise ValueError(f"phase2_groups: must be distinct and in the order {order}")
        if self.variant == "s2hand" and set(groups) & set(TEMPORAL):
            raise ValueError("phase2_groups: quat/ts groups exist only for variant s2hand_v")
        if any(f <= 0 for f in self.factors + self.sensitivity_factors):
            raise ValueError("factors and sensitivity_factors must be > 0")
        if self.input_size % 4:
            raise ValueError(f"input_size must be a multiple of 4, got {self.input_size}")
        return self


class Params(Section):
    seed: int = Field(0, ge=0)
    hand: HandParams = HandParams()
    render: RenderParams = RenderParams()
    data: DataParams = DataParams()
    detect: DetectParams = DetectParams()
    filter: FilterParams = FilterParams()
    convention: ConventionParams = ConventionParams()
    weights: LossWeights = LossWeights()
    mlflow: MlflowParams = MlflowParams()
    train: TrainParams = TrainParams()
    video: VideoParams = VideoParams()
    evaluate: EvaluateParams = EvaluateParams()
    grid_search: GridSearchParams = GridSearchParams()  # loss-weight search (s2hand/search, docs/grid_search.md)

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> "Params":
        s = self.data.synthetic
        if s.val_fraction + s.test_fraction >= 0.9:
            raise ValueError("data.synthetic: val_fraction + test_fraction must be < 0.9")
        return self


class ParamsError(ValueError):
    """Raised for any invalid params file; the message names every bad key."""


def _format(err: ValidationError, source: str, raw: dict) -> str:
    lines = [f"{source}: invalid parameters"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not in the schema: check its spelling and section)"
        got = f" (got {e['input']!r})" if "input" in e and e["type"] != "extra_forbidden" else ""
        lines.append(f"  {key}: {msg}{got}")
    return "\n".join(lines)


def validate_params(raw: dict, source: str = "params") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format(err, source, raw)) from None


class _Yaml12Loader(yaml.SafeLoader):
    """safe_load, but 1e-5 is a float as in YAML 1.2 (and DVC's `-S`), not the string of YAML 1.1."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def missing_sections(raw: dict, model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Dotted names of the sections (nested schema models) that `raw` leaves out."""
    model = Params if model is None else model
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            if not isinstance(raw.get(name), dict):
                out.append(prefix + name)
            else:
                out += missing_sections(raw[name], sub, f"{prefix}{name}.")
    return out


def load_params(path: str | Path = "params.yaml") -> Params:
    """The params file, validated; every section must be spelt out (a deleted or misspelt section
    is an error, never a silent fall-back to the defaults)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file")
    try:
        raw = yaml.load(path.read_text(), Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ParamsError(f"{where}: YAML syntax error: {e.problem or e.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ParamsError(f"{path}: not a YAML file ({e})") from None
    params = validate_params(raw, str(path))
    missing = missing_sections(raw or {})
    if missing:
        raise ParamsError(f"{path}: missing sections (deleted or misspelt?): {', '.join(missing)}")
    return params


def flatten(params: Params) -> dict[str, object]:
    """`{"weights.quat": 0.05, ...}`: every leaf, dotted, for logging."""
    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = value

    walk("", params.model_dump())
    return out
