"""The training loop of the three S2HAND stages: resumable, deterministic on the CPU, DDP-capable.

    from s2hand.train import StagePaths, train_stage
    paths = StagePaths(dataset="outputs/dataset", keypoints="outputs/keypoints",
                       hand_model="outputs/hand_model/MANO_RIGHT.npz",
                       model_out="outputs/checkpoints/finetune/model.pt",
                       resume_dir="outputs/.resume/finetune", pictures_dir="reports/train")
    summary = train_stage(params, "finetune", paths, init_from={"pretrain_2d": p2d, "pretrain_3d": p3d},
                          logger=my_logger)

Stages (method.md s6): pretrain_2d trains only the 2D branch (hourglass) with E_2d, pretrain_3d only
the 3D branch (encoder + heads) with E_3d, each from ImageNet init (the other branch is frozen and
not run); finetune loads the 3D branch from pretrain_3d's model and the hourglass from
pretrain_2d's and trains everything with E_S2HAND; finetune_video (S2HAND(V)) starts from
finetune's model and trains everything on windows of video.n frames with E_S2HAND(V). These
differences are data, not branches: STAGE_TRAINING (what a stage trains and loads) and
s2hand.train.system.STAGE_ENERGY (the branch it runs, its energy, whether it is a video stage).
train_stage assembles the steps build_data, build_system (+ build_optimiser), resume, fit and
summarise around one StageRun, the state they share. Adam (0.9, 0.999), lr = lr0 * gamma **
(epoch // lr_step), batches of `batch_size` per process; train frames with fewer than
`train.min_keypoints` detected keypoints are left out (they carry no keypoint signal; E_pixel
weighs them 0 too), and so are those whose best keypoint confidence is below
`train.min_confidence` (for MediaPipe the palm detector's score) or, in videos, whose detection
disagrees with its neighbours' by more than `train.max_disagreement` (s2hand.detect.temporal): on
the embedded data a quarter of the hands MediaPipe finds are grossly wrong, and the temporal test
finds them better than the score does (docs/training.md).

Resume. Every `checkpoint_every` steps and after every epoch, rank 0 writes
`resume_dir/last.pt` (network, optimiser, epoch, position in the epoch, step, torch RNG, history,
a fingerprint of everything the run depends on) atomically. A new call finds it, checks the
fingerprint (params of the run, world size, the training table and keypoints, init checkpoints,
the s2hand sources: `s2hand.io.code_digest`; a mismatch starts afresh) and continues at the next
batch of that epoch. Since the order and the augmentation of every sample depend only on (seed,
epoch, index) (s2hand.model.frames), a resumed run takes exactly the steps an uninterrupted one
takes (tests/test_train.py checks equal weights).
On success the final model is written to `model_out` and the resume folder is removed. The
resume folder lives outside DVC's outs on purpose: DVC deletes declared outs before rerunning a
stage, which would delete the checkpoint to resume from.

Weight averaging. With the stage's `ema` > 0 an exponential moving average of the network's
weights and BatchNorm statistics (torch.optim.swa_utils.AveragedModel, updated after every
optimiser step: avg = ema * avg + (1 - ema) * live) is kept; validation, the pictures and the
model file use the average, training continues on the live weights, and the resume checkpoint
holds both.

Determinism. The network is built after torch.manual_seed(seed); nothing else draws from torch's
generators (its state is saved anyway). Same seed, same thread count, same machine: same weights.

Distributed data parallel: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; the process group uses
NCCL on CUDA, gloo on the CPU; the network is wrapped in DistributedDataParallel; each process
takes every world-th batch of the epoch's permutation; rank 0 validates, logs and writes
checkpoints (multi-node runs need `resume_dir` and `model_out` on a shared file system).
    torchrun --standalone --nproc_per_node=8 -m pipeline.finetune
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --master_addr=HOST --master_port=29500 -m pipeline.finetune
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from s2hand.config import Params, StageSchedule
from s2hand.data.table import FrameTable, load_split
from s2hand.detect.keypoint_file import Keypoints, load_keypoints
from s2hand.hand.convention import load_offsets
from s2hand.io import code_digest, sha256sum
from s2hand.model.baseline import baseline_comparison, baseline_metrics, has_mean_pose_baseline, mean_pose_predictions
from s2hand.model.device import pick_device
from s2hand.model.files import model_record
from s2hand.model.frames import HandFrames, training_rows
from s2hand.model.predict import predict
from s2hand.model.scores import frame_values, validation_metrics, video_metrics
from s2hand.model.system import STAGE_ENERGY, STAGES, S2HandSystem, Stage, StageEnergy

from .batches import collate_skipping, epoch_batches, video_epoch_batches, video_training_frames
from .graphs import capture_network
from .pictures import picture_grid, save_png
from .pseudo_labels import load_pseudo_labels, propagate_labels

log = logging.getLogger("s2hand.train")
BRANCH_PREFIXES = {"2d": ("hourglass.",), "3d": ("encoder.", "geometry.", "texture_light.")}
BOTH_BRANCHES = BRANCH_PREFIXES["2d"] + BRANCH_PREFIXES["3d"]


@dataclasses.dataclass(frozen=True)
class StageTraining:
    """What a stage trains: the prefixes of the parameters it trains (the others are frozen), and
    the branches it starts from, as (earlier stage, prefixes loaded from its model file) in load order."""
    trains: tuple[str, ...]
    init_from: tuple[tuple[Stage, tuple[str, ...]], ...] = ()


STAGE_TRAINING: dict[Stage, StageTraining] = {
    "pretrain_2d": StageTraining(BRANCH_PREFIXES["2d"]),
    "pretrain_3d": StageTraining(BRANCH_PREFIXES["3d"]),
    "finetune": StageTraining(BOTH_BRANCHES, (("pretrain_3d", BRANCH_PREFIXES["3d"]),
                                              ("pretrain_2d", BRANCH_PREFIXES["2d"]))),
    "finetune_video": StageTraining(BOTH_BRANCHES, (("finetune", BOTH_BRANCHES),)),
}


class TrainLogger(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...


class NullLogger:
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass


class TrainingInterrupted(RuntimeError):
    """Raised by `interrupt_at_step` (tests simulate a kill with it)."""


@dataclasses.dataclass
class StagePaths:
    dataset: Path
    keypoints: Path  # folder with <split>.json
    hand_model: Path
    model_out: Path  # final model file
    resume_dir: Path  # in-progress checkpoint folder (not a DVC out)
    pictures_dir: Path | None = None
    wild_stretches: Path | None = None  # finetune_video with video.extra_wild: the yt3d filter's stretches.json
    convention: Path | None = None  # train.keypoint_convention calibrated: the keypoint_convention stage's file
    pseudo_labels: Path | None = None  # train.pseudo_labels.weight > 0: the pseudo_labels stage's train.npz

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None:
                setattr(self, f.name, Path(v))


# ----------------------------------------------------------------------------- distributed
def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


# ----------------------------------------------------------------------------- checkpoints
def run_fingerprint(params: Params, stage: Stage, world: int, files: list[Path]) -> str:
    """What a resume checkpoint must agree with: the params the stage reads, world size, inputs, code."""
    p = params.model_dump()
    keys = {"seed": p["seed"], "hand": p["hand"], "render": p["render"], "weights": p["weights"],
            "train": {k: v for k, v in p["train"].items() if k not in STAGES or k == stage}}
    if STAGE_ENERGY[stage].video:
        keys["video"] = p["video"]
    keys["train"]["runtime"] = {k: v for k, v in p["train"]["runtime"].items()
                                if k not in ("num_workers", "val_every", "log_every", "pictures", "checkpoint_every")}
    blob = json.dumps({"stage": stage, "world": world, "params": keys, "code": code_digest(),
                       "files": [sha256sum(f)[:16] for f in files]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_resume_checkpoint(path: Path) -> dict | None:
    """A resume checkpoint read with weights_only=True (tensors, containers and numbers only: a
    planted file cannot run code), or None (with a warning) when it cannot be read that way."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable or unsafe file: start afresh
        log.warning("%s: not a resume checkpoint that loads safely (%s); starting afresh",
                    path, str(e).splitlines()[0] if str(e) else type(e).__name__)
        return None
    return ck if isinstance(ck, dict) else None


def load_branch_weights(net: torch.nn.Module, path: Path, prefixes: tuple[str, ...]) -> int:
    """Copy the tensors whose names start with `prefixes` from a model file into `net`; refuses a
    file whose encoder spec (architecture, input statistics) differs from `net`'s."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    sd = ck["net"]
    spec = net.encoder.spec.as_dict()
    if any(p.startswith("encoder") for p in prefixes) and ck.get("encoder", spec) != spec:
        raise ValueError(f"{path}: its encoder is {ck['encoder']}, this network's {spec} "
                         "(train.model.encoder / encoder_init / encoder_weights changed between stages?)")
    pick = {k: v for k, v in sd.items() if k.startswith(prefixes)}
    if not pick:
        raise ValueError(f"{path}: no weights under {prefixes}")
    missing = [k for k in net.state_dict() if k.startswith(prefixes) and k not in pick]
    if missing:
        raise ValueError(f"{path}: lacks {missing[:3]} (a different network configuration?)")
    net.load_state_dict(pick, strict=False)
    return len(pick)


def set_trainable(system: S2HandSystem, stage: Stage) -> list[torch.nn.Parameter]:
    """Freeze what `stage` does not train; return the trained parameters."""
    prefixes = STAGE_TRAINING[stage].trains
    trained = []
    for name, prm in system.net.named_parameters():
        prm.requires_grad_(name.startswith(prefixes))
        if prm.requires_grad:
            trained.append(prm)
    return trained


def param_groups(system: S2HandSystem, trained: list[torch.nn.Parameter], encoder_lr_factor: float) -> list[dict]:
    """Adam's parameter groups: the encoder's trained parameters at `encoder_lr_factor` x the stage's
    learning rate, the rest (heads, hourglass) at 1 x; each group carries its `lr_factor`."""
    enc = {id(p) for p in system.net.encoder.parameters()}
    groups = [{"params": [p for p in trained if id(p) in enc], "lr_factor": float(encoder_lr_factor)},
              {"params": [p for p in trained if id(p) not in enc], "lr_factor": 1.0}]
    return [g for g in groups if g["params"]]


def weight_average(net: torch.nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of `net`'s weights and buffers (module docstring); None when decay is 0."""
    if decay <= 0:
        return None
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@contextlib.contextmanager
def averaged_weights(system: S2HandSystem, average: AveragedModel | None):
    """Within: `system.net` is the averaged network (if any); the live one is restored after."""
    if average is None:
        yield system
        return
    live = system.net
    system.net = average.module
    try:
        yield system
    finally:
        system.net = live


# ----------------------------------------------------------------------------- the steps' state
@dataclasses.dataclass(frozen=True)
class Process:
    """This process in its (torchrun / DDP) group and the device it trains on."""
    rank: int
    world: int
    device: torch.device
    channels_last: bool  # images and network channels-last (train.runtime.channels_last)

    @property
    def main(self) -> bool:
        """Rank 0: validates, logs and writes the checkpoints."""
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def barrier(self) -> None:
        """Wait for the group's other processes (nothing to wait for alone)."""
        if self.world > 1:
            dist.barrier()


@dataclasses.dataclass
class StageData:
    """The frames a stage trains and validates on, and the input files its fingerprint covers."""
    train_ds: HandFrames  # the train split (+ extra_wild's kept stretches), augmented, bad frames skipped
    rows: np.ndarray  # (R,) rows of train_ds trained on (training_rows)
    baseline_table: FrameTable  # the train split alone: the mean-pose baseline's
    val_ds: HandFrames
    val_joints2d: np.ndarray | None  # (N, 21, 2) val ground truth, input px
    plan: Callable[[int], list[list[tuple[int, int]]]]  # the batch hook: epoch -> this process's (index, epoch) batches
    window: int  # consecutive items a bad frame drops whole (collate_skipping): video.n for S2HAND(V), else 1
    files: list[Path]

    @property
    def val_table(self) -> FrameTable:
        return self.val_ds.table


@dataclasses.dataclass
class Progress:
    """Where a stage stands: what a resume checkpoint restores besides the weights."""
    epoch: int = 0
    batch: int = 0  # batches of `epoch` done
    step: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)  # validation points: epoch, step, images, metrics


@dataclasses.dataclass(frozen=True)
class ValPredictions:
    """What the summary keeps of the last validation that predicted joints."""
    step: int
    joints: np.ndarray  # (N, 21, 3) val joints
    frames: dict[str, np.ndarray]  # per-frame values (frame_values)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The mean-pose baseline on val (rank 0, where the ground truth allows one)."""
    metrics: dict[str, float]
    joints: np.ndarray | None  # (N, 21, 3)


@dataclasses.dataclass
class StageRun:
    """One stage's training as the steps of train_stage share it."""
    params: Params
    stage: Stage
    proc: Process
    data: StageData
    system: S2HandSystem
    optimizer: torch.optim.Optimizer
    average: AveragedModel | None
    logger: TrainLogger
    resume_path: Path
    fingerprint: str
    progress: Progress = dataclasses.field(default_factory=Progress)
    resumed: bool = False
    skipped_frames: int = 0  # bad images (missing, truncated, undecodable) left out of their batches
    images_seen: int = 0
    train_seconds: float = 0.0  # in the training steps
    last_val: ValPredictions | None = None

    @property
    def energy(self) -> StageEnergy:
        return STAGE_ENERGY[self.stage]

    @property
    def sched(self) -> StageSchedule:
        return getattr(self.params.train, self.stage)

    def checkpoint(self) -> None:
        """Rank 0 writes the resume checkpoint (module docstring), atomically."""
        if not self.proc.main:
            return
        p = self.progress
        save_atomic({"net": self.system.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "epoch": p.epoch, "batch": p.batch, "step": p.step, "history": p.history,
                     "torch_rng": torch.get_rng_state(), "fingerprint": self.fingerprint, "stage": self.stage,
                     "average": None if self.average is None else self.average.state_dict()}, self.resume_path)

    def validate(self) -> dict[str, float]:
        """The validation metrics of the (averaged) network; keeps the joints for the summary."""
        rt, vp, val_table = self.params.train.runtime, self.params.video, self.data.val_table
        with averaged_weights(self.system, self.average):
            preds = predict(self.system, self.data.val_ds, rt.val_batch_size, self.proc.device,
                            branch=self.energy.branch, num_workers=rt.num_workers, video=self.energy.video)
        self.last_val = (ValPredictions(self.progress.step, preds["joints"], frame_values(preds, val_table))
                         if "joints" in preds else None)
        m = validation_metrics(preds, val_table, self.data.val_joints2d)
        if self.energy.video:
            m.update(video_metrics(preds, val_table, vp.n, vp.interval))
        return m

    def validation_point(self) -> dict[str, float]:
        """Validate and add the point (epoch, step, images seen, metrics) to the history."""
        vm = self.validate()
        p = self.progress
        p.history.append({"epoch": p.epoch, "step": p.step,
                          "images": p.step * self.sched.batch_size * self.proc.world, **vm})
        return vm

    def has_val_joints(self) -> bool:
        """Whether the last validation predicted joints at the current step."""
        return self.last_val is not None and self.last_val.step == self.progress.step


# ----------------------------------------------------------------------------- the steps
def train_stage(params: Params, stage: Stage, paths: StagePaths, init_from: dict[str, Path] | None = None,
                logger: TrainLogger | None = None, interrupt_at_step: int | None = None) -> dict:
    """Train one stage (module docstring); returns a summary (final validation metrics, baseline,
    timings). Runs as one process or as every process of a torchrun / DDP group."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    proc = join_process_group(params)
    logger = logger if (logger is not None and proc.main) else NullLogger()
    data = build_data(params, stage, paths, proc)
    system, model_files = build_system(params, stage, paths, init_from or {}, proc)
    optimizer, average = build_optimiser(system, params, stage, proc)
    run = StageRun(params, stage, proc, data, system, optimizer, average, logger, paths.resume_dir / "last.pt",
                   run_fingerprint(params, stage, proc.world, [*data.files, *model_files]))
    resume(run)
    baseline = mean_pose_baseline(run)
    start(run, baseline)
    t_start = time.perf_counter()
    fit(run, interrupt_at_step)
    summary = summarise(run, baseline, paths, t_start) if proc.main else {}
    proc.barrier()
    return summary


def join_process_group(params: Params) -> Process:
    """This process: joins torchrun's group if any (NCCL on CUDA, gloo on the CPU), sets the
    thread count and the device."""
    rank, world, local_rank = distributed_env()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if pick_device(params.train.runtime.device, local_rank).type == "cuda" else "gloo"
        dist.init_process_group(backend)
    rt = params.train.runtime
    if rt.num_threads:
        torch.set_num_threads(rt.num_threads)
    device = pick_device(params.train.runtime.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Process(rank, world, device, rt.channels_last)  # CPU too: 15-30 % faster encoder steps (docs/training.md)


def build_data(params: Params, stage: Stage, paths: StagePaths, proc: Process) -> StageData:
    """The step "build data": train frames (filtered: module docstring), pseudo labels, val
    frames, the batch plan; refuses a stage whose epoch gives this process no batch."""
    tp = params.train
    train_table, train_kp, baseline_table, files = _train_frames(params, stage, paths)
    rows = training_rows(train_table, train_kp, tp)
    targets, target_files = _pseudo_targets(params, stage, paths, train_table, rows)
    if targets is not None and tp.pseudo_labels.propagate > 0:
        rows, train_kp = _lend_labels(targets, train_table, train_kp, rows, tp.pseudo_labels.propagate, stage)
    plan = _batch_plan(params, stage, train_table, rows, proc)
    train_ds = HandFrames(train_table, paths.dataset, train_kp, tp.input_size, tp.augment, params.seed, targets,
                          skip_bad=True)
    val_ds, val_joints2d = _val_frames(params, paths)
    window = params.video.n if STAGE_ENERGY[stage].video else 1
    data = StageData(train_ds, rows, baseline_table, val_ds, val_joints2d, plan, window, files + target_files)
    _check_batches(params, stage, data, proc)
    return data


def _train_frames(params: Params, stage: Stage, paths: StagePaths
                  ) -> tuple[FrameTable, Keypoints, FrameTable, list[Path]]:
    """(frames, their keypoints, the train split alone, the files read): the train split, joined
    under video.extra_wild (a video stage) by the wild split's stretches the yt3d filter kept."""
    train_table = load_split(paths.dataset, "train")
    train_kp = load_keypoints(paths.keypoints / "train.json").reorder(train_table.image)
    files = [paths.dataset / "train.npz", paths.keypoints / "train.json"]
    if not (STAGE_ENERGY[stage].video and params.video.extra_wild):
        return train_table, train_kp, train_table, files
    if paths.wild_stretches is None or not paths.wild_stretches.is_file():
        raise FileNotFoundError(f"video.extra_wild needs the filter's stretches.json, got {paths.wild_stretches}")
    stretches = json.loads(paths.wild_stretches.read_text())
    wild_split = stretches.get("split", "wild")
    wild_table = load_split(paths.dataset, wild_split)
    wild_kp = load_keypoints(paths.keypoints / f"{wild_split}.json").reorder(wild_table.image)
    table, kp = video_training_frames(train_table, train_kp, wild_table, wild_kp,
                                      np.asarray(stretches["rows"], np.int64))
    files += [paths.dataset / f"{wild_split}.npz", paths.keypoints / f"{wild_split}.json", paths.wild_stretches]
    log.info("%s: %d train + %d wild frames (%d kept stretches)", stage, len(train_table),
             len(stretches["rows"]), len(stretches.get("stretches", [])))
    return table, kp, train_table, files


def _batch_plan(params: Params, stage: Stage, table: FrameTable, rows: np.ndarray, proc: Process
                ) -> Callable[[int], list[list[tuple[int, int]]]]:
    """The batch hook: epoch -> this process's batches of `rows` as (index, epoch) lists; a video
    stage's are S2HAND(V)'s windows (video_epoch_batches)."""
    batch_size, vp = getattr(params.train, stage).batch_size, params.video
    if STAGE_ENERGY[stage].video:
        return functools.partial(video_epoch_batches, table, batch_size, vp.n, vp.interval, params.seed,
                                 rank=proc.rank, world=proc.world, subset=rows, max_batches=vp.max_batches)
    return functools.partial(epoch_batches, len(table), batch_size, params.seed, rank=proc.rank, world=proc.world,
                             subset=rows)


def _pseudo_targets(params: Params, stage: Stage, paths: StagePaths, table: FrameTable, rows: np.ndarray
                    ) -> tuple[dict[str, np.ndarray] | None, list[Path]]:
    """(the pseudo_labels stage's fits per row of `table`, the files read) where E_pseudo applies:
    train.pseudo_labels.weight > 0, self-supervision, a stage that runs the 3D branch."""
    tp = params.train
    if not (tp.pseudo_labels.weight > 0 and STAGE_ENERGY[stage].runs_3d and tp.supervision == "self"):
        return None, []
    if paths.pseudo_labels is None or not paths.pseudo_labels.is_file():
        raise FileNotFoundError(f"train.pseudo_labels.weight > 0 needs the pseudo_labels stage's file, "
                                f"got {paths.pseudo_labels}")
    targets = load_pseudo_labels(paths.pseudo_labels, table, params.hand.num_pca_comps)
    log.info("%s: pseudo labels for %d of %d train frames (%d kept by the filters)", stage,
             int(targets["pseudo_mask"].sum()), len(table), int(targets["pseudo_mask"][rows].sum()))
    return targets, [paths.pseudo_labels]


def _lend_labels(targets: dict[str, np.ndarray], table: FrameTable, kp: Keypoints, rows: np.ndarray, radius: int,
                 stage: Stage) -> tuple[np.ndarray, Keypoints]:
    """train.pseudo_labels.propagate: targets updated in place with the lent fits
    (s2hand.train.pseudo_labels.propagate_labels) -> (rows plus the frames that got one, the
    keypoints with those frames' detections removed: only E_pseudo and the image terms see them)."""
    lent, source = propagate_labels(targets, table.seq, table.frame, table.cut, radius)
    borrowed = np.flatnonzero((source >= 0) & (source != np.arange(len(source))))
    targets.update(lent)
    conf = kp.conf.copy()
    conf[borrowed] = 0.0
    log.info("%s: %d more frames trained on with a neighbour's fit (train.pseudo_labels.propagate %d)",
             stage, len(borrowed), radius)
    return np.union1d(rows, borrowed), Keypoints(kp.peaks, conf, kp.names, list(kp.failures))


def _val_frames(params: Params, paths: StagePaths) -> tuple[HandFrames, np.ndarray | None]:
    """The val frames (unaugmented) and their ground-truth 2D joints (N, 21, 2) in input px, if any."""
    input_size = params.train.input_size
    val_table = load_split(paths.dataset, "val")
    val_kp_path = paths.keypoints / "val.json"
    val_kp = load_keypoints(val_kp_path).reorder(val_table.image) if val_kp_path.is_file() else None
    val_ds = HandFrames(val_table, paths.dataset, val_kp, input_size, None, params.seed)
    src_size = val_ds.read(0).shape[1]
    val_joints2d = None if val_table.joints2d is None else val_table.joints2d * (input_size / src_size)
    return val_ds, val_joints2d


def _check_batches(params: Params, stage: Stage, data: StageData, proc: Process) -> None:
    """Refuse a stage whose epoch gives this process no batch."""
    tp, batch_size, vp = params.train, getattr(params.train, stage).batch_size, params.video
    if STAGE_ENERGY[stage].video:
        if not data.plan(0):
            raise ValueError(f"{stage}: the train sequences give no batch of {batch_size // vp.n} windows of "
                             f"{vp.n} frames {vp.interval} apart per process")
    elif len(data.rows) // (batch_size * proc.world) == 0:
        raise ValueError(f"{len(data.rows)} usable training frames (train.min_keypoints {tp.min_keypoints}, "
                         f"min_confidence {tp.min_confidence}, max_disagreement {tp.max_disagreement}) cannot "
                         f"fill one batch of {batch_size} x {proc.world} processes")


def build_system(params: Params, stage: Stage, paths: StagePaths, init_from: dict[str, Path], proc: Process
                 ) -> tuple[S2HandSystem, list[Path]]:
    """The step "build system": the network built after torch.manual_seed(seed), the branches
    STAGE_TRAINING loads from earlier stages, on the device. -> (system, the files read)"""
    offsets, files = _keypoint_offsets(params, stage, paths)
    torch.manual_seed(params.seed)
    system = S2HandSystem.from_params(params, paths.hand_model, keypoint_offsets=offsets,
                                      orthographic=STAGE_ENERGY[stage].video and params.video.camera == "orthographic")
    files += _load_init_weights(system.net, stage, init_from)
    system.to(proc.device)
    if proc.channels_last:
        system.net.to(memory_format=torch.channels_last)
    if proc.cuda and params.train.runtime.precision == "bf16":
        system.autocast_dtype = torch.bfloat16
    return system, files


def _keypoint_offsets(params: Params, stage: Stage, paths: StagePaths) -> tuple[torch.Tensor | None, list[Path]]:
    """(the detector's keypoint convention (21,), the files read) under train.keypoint_convention
    calibrated for a stage that runs the 3D branch; (None, []) otherwise."""
    if not (params.train.keypoint_convention == "calibrated" and STAGE_ENERGY[stage].runs_3d):
        return None, []
    if paths.convention is None:
        raise ValueError("train.keypoint_convention: calibrated needs the convention file (StagePaths.convention)")
    return torch.as_tensor(load_offsets(paths.convention), dtype=torch.float32), [paths.convention]


def _load_init_weights(net: torch.nn.Module, stage: Stage, init_from: dict[str, Path]) -> list[Path]:
    """Load the branches STAGE_TRAINING[stage].init_from names from the earlier stages' model files, in
    its order. -> the files read"""
    files = []
    for source, prefixes in STAGE_TRAINING[stage].init_from:
        path = init_from.get(source)
        if path is None:
            raise ValueError(f"{stage} needs init_from[{source!r}] (that stage's model file)")
        n = load_branch_weights(net, Path(path), prefixes)
        files.append(Path(path))
        log.info("%s: %d tensors from %s", stage, n, path)
    return files


def build_optimiser(system: S2HandSystem, params: Params, stage: Stage, proc: Process
                    ) -> tuple[torch.optim.Adam, AveragedModel | None]:
    """Adam over what the stage trains (module docstring), the weight average if the stage's ema
    asks for one; wraps the network in DistributedDataParallel in a group."""
    sched = getattr(params.train, stage)
    trained = set_trainable(system, stage)
    optimizer = torch.optim.Adam(param_groups(system, trained, sched.encoder_lr_factor), lr=sched.lr,
                                 betas=(0.9, 0.999), fused=True if proc.cuda else None)
    average = weight_average(system.net, sched.ema)
    if proc.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        system.ddp = DDP(system.net, device_ids=[proc.device.index] if proc.cuda else None, find_unused_parameters=True)
    return optimizer, average


def resume(run: StageRun) -> None:
    """The step "resume": continue from the resume checkpoint if its fingerprint is this run's
    (module docstring); a checkpoint of another run is ignored."""
    path = run.resume_path
    ck = read_resume_checkpoint(path) if path.is_file() else None
    if ck is not None and ck.get("fingerprint") == run.fingerprint:
        run.system.net.load_state_dict(ck["net"])
        run.optimizer.load_state_dict(ck["optimizer"])
        if run.average is not None:
            run.average.load_state_dict(ck["average"])
        run.progress = Progress(ck["epoch"], ck["batch"], ck["step"], ck["history"])
        torch.set_rng_state(ck["torch_rng"])
        run.resumed = True
        log.info("%s: resumed from %s at epoch %d, batch %d, step %d", run.stage, path, ck["epoch"], ck["batch"],
                 ck["step"])
    elif ck is not None:
        log.warning("%s: %s belongs to another run (fingerprint differs); starting afresh", run.stage, path)
    run.proc.barrier()


def mean_pose_baseline(run: StageRun) -> Baseline:
    """The mean-pose baseline's val metrics and joints (for vs_baseline): rank 0, where the ground truth allows."""
    d = run.data
    if not (run.proc.main and has_mean_pose_baseline(d.baseline_table, d.val_table)):
        return Baseline({}, None)
    preds = mean_pose_predictions(run.system.layer, d.baseline_table, d.val_table)
    return Baseline(baseline_metrics(preds, d.val_table), preds["joints"])


def start(run: StageRun, baseline: Baseline) -> None:
    """Before the first step: a fresh run logs the baseline and validates (rank 0); the network's
    CUDA graphs are captured (train.runtime.cuda_graphs)."""
    if run.proc.main and not run.resumed:
        run.logger.log_metrics({f"baseline/{k}": v for k, v in baseline.metrics.items()}, step=0)
        init_metrics = _logged_validation(run)
        log.info("%s: before training %s; mean-pose baseline %s", run.stage, _fmt(init_metrics), _fmt(baseline.metrics))
    rt = run.params.train.runtime
    if run.proc.cuda and rt.cuda_graphs and run.proc.world > 1:
        log.warning("%s: train.runtime.cuda_graphs is not supported with DDP; the network runs eagerly", run.stage)
    elif run.proc.cuda and rt.cuda_graphs:
        names = capture_network(run.system, run.sched.batch_size, run.params.train.input_size, run.energy.branch,
                                run.proc.channels_last)
        log.info("%s: CUDA graphs of %s for batches of %d", run.stage, ", ".join(names), run.sched.batch_size)


def fit(run: StageRun, interrupt_at_step: int | None = None) -> None:
    """The step "fit": epoch by epoch from where the run stands, to the stage's epochs or
    train.runtime.max_steps; `interrupt_at_step` raises TrainingInterrupted after that step."""
    max_steps = run.params.train.runtime.max_steps or None
    p = run.progress
    run.system.train()
    done = max_steps is not None and p.step >= max_steps
    while p.epoch < run.sched.epochs and not done:
        lr = _epoch_lr(run)
        batches = run.data.plan(p.epoch)
        done = _train_epoch(run, batches, lr, max_steps, interrupt_at_step)
        _end_epoch(run, len(batches), lr, done)


def _epoch_lr(run: StageRun) -> float:
    """lr0 * gamma ** (epoch // lr_step), set on every parameter group at its lr_factor."""
    s = run.sched
    lr = s.lr * s.lr_gamma ** (run.progress.epoch // s.lr_step)
    for g in run.optimizer.param_groups:
        g["lr"] = lr * g["lr_factor"]
    return lr


def _train_epoch(run: StageRun, batches: list[list[tuple[int, int]]], lr: float, max_steps: int | None,
                 interrupt_at_step: int | None) -> bool:
    """The epoch's batches from progress.batch on: a step each, in-epoch validation and checkpoints
    on their schedules. -> whether max_steps is reached"""
    p, rt = run.progress, run.params.train.runtime
    loader = DataLoader(run.data.train_ds, batch_sampler=batches[p.batch:], num_workers=rt.num_workers,
                        pin_memory=run.proc.cuda, persistent_workers=False,
                        collate_fn=functools.partial(collate_skipping, window=run.data.window))
    for batch in loader:
        if not _train_step(run, batch, lr):
            continue
        if run.proc.main and rt.val_every_steps and p.step % rt.val_every_steps == 0 and p.batch < len(batches):
            _logged_validation(run)  # a point of the learning curve inside an epoch (the epoch's end validates anyway)
            run.system.train()
        if p.step % rt.checkpoint_every == 0:
            run.checkpoint()
        if interrupt_at_step is not None and p.step == interrupt_at_step:
            raise TrainingInterrupted(f"interrupted at step {p.step}")
        if max_steps is not None and p.step >= max_steps:
            return True
    return False


def _train_step(run: StageRun, batch: dict[str, torch.Tensor], lr: float) -> bool:
    """One optimiser step on a collated batch (image (B, 3, S, S), K, kp, conf, ...). -> False
    when every frame of it was bad: nothing to learn from, no step."""
    t0 = time.perf_counter()
    p = run.progress
    run.skipped_frames += int(batch.pop("skipped"))
    if "image" not in batch:
        p.batch += 1
        return False
    batch = _batch_to(batch, run.proc.device, run.proc.channels_last)
    total, parts, terms = run.system.training_loss(batch, run.stage, run.sched.photometric)
    run.optimizer.zero_grad(set_to_none=True)
    total.backward()
    run.optimizer.step()
    if run.average is not None:
        run.average.update_parameters(run.system.net)
    run.train_seconds += time.perf_counter() - t0
    run.images_seen += len(batch["image"]) * run.proc.world
    p.step += 1
    p.batch += 1
    _log_step(run, lr, total, parts, terms)
    return True


def _batch_to(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def _log_step(run: StageRun, lr: float, total: torch.Tensor, parts: dict[str, torch.Tensor],
              terms: dict[str, torch.Tensor]) -> None:
    """Stop on a non-finite loss; log the total, the terms and the weighted terms (scalars) every
    train.runtime.log_every steps."""
    # every value read back at once: on CUDA one device sync per step instead of one per term
    values = torch.stack([t.detach().float() for t in (total, *terms.values(), *parts.values())]).tolist()
    total_value, term_values = values[0], dict(zip(terms, values[1:1 + len(terms)]))
    p = run.progress
    if not math.isfinite(total_value):
        raise FloatingPointError(f"{run.stage}: non-finite loss at step {p.step}: {term_values}")
    if p.step % run.params.train.runtime.log_every == 0:
        m = {"train/total": total_value, "train/lr": lr, "train/epoch": p.epoch}
        m.update({f"train/{k}": v for k, v in term_values.items()})
        m.update({f"train/weighted_{k}": v for k, v in zip(parts, values[1 + len(terms):])})
        run.logger.log_metrics(m, step=p.step)


def _end_epoch(run: StageRun, n_batches: int, lr: float, done: bool) -> None:
    """After an epoch's batches (or max_steps): on to the next epoch if this one is finished,
    validate (rank 0: every train.runtime.val_every epochs, the last, at max_steps), checkpoint."""
    p, rt = run.progress, run.params.train.runtime
    if p.batch >= n_batches:
        p.epoch, p.batch = p.epoch + 1, 0
    if run.proc.main and (p.epoch % rt.val_every == 0 or p.epoch == run.sched.epochs or done):
        vm = _logged_validation(run)
        log.info("%s: epoch %d step %d lr %.2e: %s", run.stage, p.epoch, p.step, lr, _fmt(vm))
    run.checkpoint()
    run.proc.barrier()


def _logged_validation(run: StageRun) -> dict[str, float]:
    """A validation point of the history, logged as val/<metric> at the current step."""
    vm = run.validation_point()
    run.logger.log_metrics({f"val/{k}": v for k, v in vm.items()}, step=run.progress.step)
    return vm


def summarise(run: StageRun, baseline: Baseline, paths: StagePaths, t_start: float) -> dict:
    """The step "summarise" (rank 0): the final validation, the comparison with the baseline, the
    model file and pictures, the summary; the resume folder is removed."""
    final = _final_validation(run, baseline)
    vs_baseline = _vs_baseline(run, baseline)
    _save_model(run, paths)
    if run.skipped_frames:
        log.warning("%s: %d bad training frames skipped (missing, truncated or undecodable images)",
                    run.stage, run.skipped_frames)
    summary = _summary(run, final, baseline, vs_baseline, time.perf_counter() - t_start)
    shutil.rmtree(paths.resume_dir, ignore_errors=True)
    return summary


def _final_validation(run: StageRun, baseline: Baseline) -> dict:
    """The history point of the last step; validated anew when there is none yet, or when a
    resumed run lost the joints of its last validation that the baseline comparison needs."""
    p = run.progress
    final = next((h for h in reversed(p.history) if h["step"] == p.step), None)
    if final is None or (baseline.joints is not None and run.energy.runs_3d and not run.has_val_joints()):
        run.validation_point()
        final = p.history[-1]
    return final


def _vs_baseline(run: StageRun, baseline: Baseline) -> dict:
    """The paired comparison of the final validation's joints with the baseline's, logged (val/vs_baseline_*)."""
    if baseline.joints is None or not run.has_val_joints():
        return {}
    vs = baseline_comparison(run.last_val.joints, baseline.joints, run.data.val_table)
    if vs:
        run.logger.log_metrics({f"val/vs_baseline_{k}": float(v) for k, v in vs.items()
                                if k in ("diff_cm", "lo_cm", "hi_cm") and v is not None}, step=run.progress.step)
    return vs


def _save_model(run: StageRun, paths: StagePaths) -> None:
    """The model file and the validation pictures, of the averaged weights if any; logged as artifacts."""
    rt, val_ds = run.params.train.runtime, run.data.val_ds
    paths.model_out.parent.mkdir(parents=True, exist_ok=True)
    with averaged_weights(run.system, run.average):
        save_atomic(model_record(run.system, run.params, run.stage, run.progress.step), paths.model_out)
        run.logger.log_artifact(paths.model_out, "checkpoint")
        if paths.pictures_dir is not None and rt.pictures > 0:
            idx = np.linspace(0, len(val_ds) - 1, min(rt.pictures, len(val_ds))).round().astype(int)
            grid = picture_grid(run.system, val_ds, idx, run.proc.device)
            png = save_png(grid, paths.pictures_dir / f"{run.stage}.png")
            run.logger.log_artifact(png, "pictures")


def _summary(run: StageRun, final: dict, baseline: Baseline, vs_baseline: dict, seconds: float) -> dict:
    """The stage's summary: counts, timings, final and baseline metrics, history, per-frame values
    of the final validation (frame_values) and, for a video stage, S2HAND vs S2HAND(V)."""
    p = run.progress
    summary = {
        "stage": run.stage, "steps": p.step, "epochs": p.epoch, "train_frames": int(len(run.data.rows)),
        "world_size": run.proc.world, "train_seconds": round(seconds, 2),
        "images_per_second": round(run.images_seen / run.train_seconds, 2) if run.train_seconds > 0 else None,
        "resumed": run.resumed, "skipped_frames": run.skipped_frames,
        "val": {k: v for k, v in final.items() if k not in ("epoch", "step")},
        "baseline_mean_pose": baseline.metrics, "vs_baseline": vs_baseline, "history": p.history,
        "frames": run.last_val.frames if run.has_val_joints() else {},
    }
    if run.energy.video:
        summary["comparison"] = video_comparison(p.history[0] if p.history[0]["step"] == 0 else {}, summary["val"])
    return summary


def _fmt(m: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float) and k in
                     ("pa_mpjpe_cm", "pa_mpvpe_cm", "proj_mpjpe_px", "hg_mpjpe_px"))


COMPARISON_KEYS = ("pa_mpjpe_cm", "pa_mpvpe_cm", "acc_mm_frame2", "quat_loss", "texture_sd", "shape_sd")


def video_comparison(before: dict, after: dict) -> dict:
    """S2HAND (the finetune checkpoint, validated before the first video step) vs S2HAND(V) on
    the val split, and whether each consistency measure went down."""
    pick = lambda m: {k: m[k] for k in COMPARISON_KEYS if k in m}  # noqa: E731
    b, a = pick(before), pick(after)
    return {"s2hand": b, "s2hand_v": a,
            "lower_with_video": {k: bool(a[k] < b[k]) for k in COMPARISON_KEYS if k in a and k in b}}
