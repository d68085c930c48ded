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
pretrain_2d's and trains everything with E_S2HAND. Adam (0.9, 0.999), lr = lr0 * gamma **
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
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from s2hand.config import Params
from s2hand.data.table import load_split
from s2hand.detect.keypoint_file import load_keypoints
from s2hand.hand.convention import load_offsets
from s2hand.io import code_digest, sha256sum
from s2hand.model.baseline import baseline_comparison, baseline_metrics, has_mean_pose_baseline, mean_pose_predictions
from s2hand.model.device import pick_device as device_named
from s2hand.model.files import model_record
from s2hand.model.frames import HandFrames, training_rows
from s2hand.model.predict import predict
from s2hand.model.scores import frame_values, validation_metrics, video_metrics
from s2hand.model.system import STAGE_BRANCH, STAGES, S2HandSystem, Stage

from .batches import collate_skipping, epoch_batches, video_epoch_batches, video_training_frames
from .graphs import capture_network
from .pictures import picture_grid, save_png
from .pseudo_labels import load_pseudo_labels

log = logging.getLogger("s2hand.train")
BRANCH_PREFIXES = {"2d": ("hourglass.",), "3d": ("encoder.", "geometry.", "texture_light.")}
INIT_SOURCES = {"pretrain_3d": BRANCH_PREFIXES["3d"], "pretrain_2d": BRANCH_PREFIXES["2d"]}


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


def pick_device(params: Params, local_rank: int) -> torch.device:
    """This process's device: train.runtime.device (s2hand.model.device), CUDA device local_rank."""
    return device_named(params.train.runtime.device, local_rank)


# ----------------------------------------------------------------------------- checkpoints
def run_fingerprint(params: Params, stage: Stage, world: int, files: list[Path]) -> str:
    """What a resume checkpoint must agree with: the params the stage reads, world size, inputs, code."""
    p = params.model_dump()
    keys = {"seed": p["seed"], "hand": p["hand"], "render": p["render"], "weights": p["weights"],
            "train": {k: v for k, v in p["train"].items() if k not in STAGES or k == stage}}
    if stage == "finetune_video":
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
    prefixes = {"pretrain_2d": BRANCH_PREFIXES["2d"], "pretrain_3d": BRANCH_PREFIXES["3d"],
                "finetune": BRANCH_PREFIXES["2d"] + BRANCH_PREFIXES["3d"],
                "finetune_video": BRANCH_PREFIXES["2d"] + BRANCH_PREFIXES["3d"]}[stage]
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


# ----------------------------------------------------------------------------- the loop
def _batch_to(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def train_stage(params: Params, stage: Stage, paths: StagePaths, init_from: dict[str, Path] | None = None,
                logger: TrainLogger | None = None, interrupt_at_step: int | None = None) -> dict:
    """Train one stage (module docstring); returns a summary (final validation metrics, baseline,
    timings). Runs as one process or as every process of a torchrun / DDP group."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    tp, rt, sched = params.train, params.train.runtime, getattr(params.train, stage)
    rank, world, local_rank = distributed_env()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if pick_device(params, local_rank).type == "cuda" else "gloo")
    main = rank == 0
    logger = logger if (logger is not None and main) else NullLogger()
    if rt.num_threads:
        torch.set_num_threads(rt.num_threads)
    device = pick_device(params, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    cuda = device.type == "cuda"
    channels_last = rt.channels_last  # CPU too: 15-30 % faster encoder steps there (docs/training.md)

    # data
    video = stage == "finetune_video"
    vp = params.video
    train_table = load_split(paths.dataset, "train")
    train_kp = load_keypoints(paths.keypoints / "train.json").reorder(train_table.image)
    fingerprint_files = [paths.dataset / "train.npz", paths.keypoints / "train.json"]
    baseline_train_table = train_table
    if video and vp.extra_wild:
        if paths.wild_stretches is None or not paths.wild_stretches.is_file():
            raise FileNotFoundError(f"video.extra_wild needs the filter's stretches.json, got {paths.wild_stretches}")
        stretches = json.loads(paths.wild_stretches.read_text())
        wild_split = stretches.get("split", "wild")
        wild_table = load_split(paths.dataset, wild_split)
        wild_kp = load_keypoints(paths.keypoints / f"{wild_split}.json").reorder(wild_table.image)
        train_table, train_kp = video_training_frames(train_table, train_kp, wild_table, wild_kp,
                                                      np.asarray(stretches["rows"], np.int64))
        fingerprint_files += [paths.dataset / f"{wild_split}.npz", paths.keypoints / f"{wild_split}.json",
                              paths.wild_stretches]
        log.info("%s: %d train + %d wild frames (%d kept stretches)", stage, len(baseline_train_table),
                 len(stretches["rows"]), len(stretches.get("stretches", [])))
    rows = training_rows(train_table, train_kp, tp)

    def plan(ep: int) -> list[list[tuple[int, int]]]:
        """The batch hook: this process's batches of epoch `ep` as (index, epoch) lists."""
        if video:
            return video_epoch_batches(train_table, sched.batch_size, vp.n, vp.interval, params.seed, ep,
                                       rank, world, subset=rows, max_batches=vp.max_batches)
        return epoch_batches(len(train_ds), sched.batch_size, params.seed, ep, rank, world, subset=rows)

    targets = None
    if tp.pseudo_labels.weight > 0 and stage != "pretrain_2d" and tp.supervision == "self":
        if paths.pseudo_labels is None or not paths.pseudo_labels.is_file():
            raise FileNotFoundError(f"train.pseudo_labels.weight > 0 needs the pseudo_labels stage's file, "
                                    f"got {paths.pseudo_labels}")
        targets = load_pseudo_labels(paths.pseudo_labels, train_table, params.hand.num_pca_comps)
        fingerprint_files.append(paths.pseudo_labels)
        log.info("%s: pseudo labels for %d of %d train frames (%d kept by the filters)", stage,
                 int(targets["pseudo_mask"].sum()), len(train_table), int(targets["pseudo_mask"][rows].sum()))
    train_ds = HandFrames(train_table, paths.dataset, train_kp, tp.input_size, tp.augment, params.seed, targets,
                          skip_bad=True)
    val_table = load_split(paths.dataset, "val")
    val_kp_path = paths.keypoints / "val.json"
    val_kp = load_keypoints(val_kp_path).reorder(val_table.image) if val_kp_path.is_file() else None
    val_ds = HandFrames(val_table, paths.dataset, val_kp, tp.input_size, None, params.seed)
    src_size = val_ds.read(0).shape[1]
    val_joints2d = None if val_table.joints2d is None else val_table.joints2d * (tp.input_size / src_size)
    steps_per_epoch = len(plan(0)) if video else len(rows) // (sched.batch_size * world)
    if steps_per_epoch == 0 and video:
        raise ValueError(f"{stage}: the train sequences give no batch of {sched.batch_size // vp.n} windows of "
                         f"{vp.n} frames {vp.interval} apart per process")
    if steps_per_epoch == 0:
        raise ValueError(f"{len(rows)} usable training frames (train.min_keypoints {tp.min_keypoints}, "
                         f"min_confidence {tp.min_confidence}, max_disagreement {tp.max_disagreement}) cannot "
                         f"fill one batch of {sched.batch_size} x {world} processes")

    # model
    offsets = None
    if tp.keypoint_convention == "calibrated" and stage != "pretrain_2d":
        if paths.convention is None:
            raise ValueError("train.keypoint_convention: calibrated needs the convention file (StagePaths.convention)")
        offsets = torch.as_tensor(load_offsets(paths.convention), dtype=torch.float32)
        fingerprint_files.append(paths.convention)
    torch.manual_seed(params.seed)
    system = S2HandSystem.from_params(params, paths.hand_model,
                                      orthographic=video and vp.camera == "orthographic", keypoint_offsets=offsets)
    init_files: list[Path] = []
    if video:
        path = (init_from or {}).get("finetune")
        if path is None:
            raise ValueError("finetune_video needs init_from['finetune'] (S2HAND's finetuned model file)")
        n = load_branch_weights(system.net, Path(path), BRANCH_PREFIXES["2d"] + BRANCH_PREFIXES["3d"])
        init_files.append(Path(path))
        log.info("finetune_video: %d tensors from %s", n, path)
    if stage == "finetune":
        for source, prefixes in INIT_SOURCES.items():
            path = (init_from or {}).get(source)
            if path is None:
                raise ValueError(f"finetune needs init_from[{source!r}] (that stage's model file)")
            n = load_branch_weights(system.net, Path(path), prefixes)
            init_files.append(Path(path))
            log.info("finetune: %d tensors from %s", n, path)
    system.to(device)
    if channels_last:
        system.net.to(memory_format=torch.channels_last)
    if cuda and rt.precision == "bf16":
        system.autocast_dtype = torch.bfloat16
    trained = set_trainable(system, stage)
    optimizer = torch.optim.Adam(param_groups(system, trained, sched.encoder_lr_factor), lr=sched.lr,
                                 betas=(0.9, 0.999), fused=True if cuda else None)
    average = weight_average(system.net, sched.ema)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        system.ddp = DDP(system.net, device_ids=[device.index] if cuda else None, find_unused_parameters=True)

    # resume
    fingerprint = run_fingerprint(params, stage, world, [*fingerprint_files, *init_files])
    ckpt_path = paths.resume_dir / "last.pt"
    epoch, batch_in_epoch, step, history = 0, 0, 0, []
    resumed = False
    ck = read_resume_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    if ck is not None:
        if ck.get("fingerprint") == fingerprint:
            system.net.load_state_dict(ck["net"])
            optimizer.load_state_dict(ck["optimizer"])
            if average is not None:
                average.load_state_dict(ck["average"])
            epoch, batch_in_epoch, step, history = ck["epoch"], ck["batch"], ck["step"], ck["history"]
            torch.set_rng_state(ck["torch_rng"])
            resumed = True
            log.info("%s: resumed from %s at epoch %d, batch %d, step %d", stage, ckpt_path, epoch, batch_in_epoch, step)
        else:
            log.warning("%s: %s belongs to another run (fingerprint differs); starting afresh", stage, ckpt_path)
    if world > 1:
        dist.barrier()

    def checkpoint(next_epoch: int, next_batch: int) -> None:
        if main:
            save_atomic({"net": system.net.state_dict(), "optimizer": optimizer.state_dict(),
                         "epoch": next_epoch, "batch": next_batch, "step": step, "history": history,
                         "torch_rng": torch.get_rng_state(), "fingerprint": fingerprint, "stage": stage,
                         "average": None if average is None else average.state_dict()}, ckpt_path)

    last_joints: dict[int, np.ndarray] = {}  # step -> (N, 21, 3) val joints of that step's validation
    last_frames: dict[int, dict[str, np.ndarray]] = {}  # step -> that validation's frame_values

    def validate() -> dict[str, float]:
        with averaged_weights(system, average):
            preds = predict(system, val_ds, rt.val_batch_size, device, branch=STAGE_BRANCH[stage],
                            num_workers=rt.num_workers, video=video)
        last_joints.clear()
        last_frames.clear()
        if "joints" in preds:
            last_joints[step] = preds["joints"]
            last_frames[step] = frame_values(preds, val_table)
        m = validation_metrics(preds, val_table, val_joints2d)
        if video:
            m.update(video_metrics(preds, val_table, vp.n, vp.interval))
        return m

    # the mean-pose baseline (rank 0, where the ground truth allows): its metrics and its joints for vs_baseline
    baseline_preds = (mean_pose_predictions(system.layer, baseline_train_table, val_table)
                      if main and has_mean_pose_baseline(baseline_train_table, val_table) else None)
    baseline = baseline_metrics(baseline_preds, val_table) if baseline_preds is not None else {}
    baseline_joints = baseline_preds["joints"] if baseline_preds is not None else None
    if main and not resumed:
        logger.log_metrics({f"baseline/{k}": v for k, v in baseline.items()}, step=0)
        init_metrics = validate()
        history.append({"epoch": 0, "step": 0, "images": 0, **init_metrics})
        logger.log_metrics({f"val/{k}": v for k, v in init_metrics.items()}, step=0)
        log.info("%s: before training %s; mean-pose baseline %s", stage, _fmt(init_metrics), _fmt(baseline))

    if cuda and rt.cuda_graphs and world > 1:
        log.warning("%s: train.runtime.cuda_graphs is not supported with DDP; the network runs eagerly", stage)
    elif cuda and rt.cuda_graphs:
        names = capture_network(system, sched.batch_size, tp.input_size, STAGE_BRANCH[stage], channels_last)
        log.info("%s: CUDA graphs of %s for batches of %d", stage, ", ".join(names), sched.batch_size)

    # train
    max_steps = rt.max_steps or None
    t_start, images_seen, t_train = time.perf_counter(), 0, 0.0
    skipped_frames = 0  # bad images (missing, truncated, undecodable) left out of their batches
    system.train()
    done = max_steps is not None and step >= max_steps
    while epoch < sched.epochs and not done:
        lr = sched.lr * sched.lr_gamma ** (epoch // sched.lr_step)
        for g in optimizer.param_groups:
            g["lr"] = lr * g["lr_factor"]
        batches = plan(epoch)
        loader = DataLoader(train_ds, batch_sampler=batches[batch_in_epoch:], num_workers=rt.num_workers,
                            pin_memory=cuda, persistent_workers=False,
                            collate_fn=functools.partial(collate_skipping, window=vp.n if video else 1))
        for batch in loader:
            t0 = time.perf_counter()
            skipped_frames += int(batch.pop("skipped"))
            if "image" not in batch:  # every frame of the batch was bad: nothing to learn from
                batch_in_epoch += 1
                continue
            batch = _batch_to(batch, device, channels_last)
            total, parts, terms = system.training_loss(batch, stage, sched.photometric)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(system.net)
            t_train += time.perf_counter() - t0
            images_seen += len(batch["image"]) * world
            step += 1
            batch_in_epoch += 1
            # every value read back at once: on CUDA one device sync per step instead of one per term
            values = torch.stack([t.detach().float() for t in (total, *terms.values(), *parts.values())]).tolist()
            total_value, term_values = values[0], dict(zip(terms, values[1:1 + len(terms)]))
            if not math.isfinite(total_value):
                raise FloatingPointError(f"{stage}: non-finite loss at step {step}: {term_values}")
            if step % rt.log_every == 0:
                m = {"train/total": total_value, "train/lr": lr, "train/epoch": epoch}
                m.update({f"train/{k}": v for k, v in term_values.items()})
                m.update({f"train/weighted_{k}": v for k, v in zip(parts, values[1 + len(terms):])})
                logger.log_metrics(m, step=step)
            if main and rt.val_every_steps and step % rt.val_every_steps == 0 and batch_in_epoch < len(batches):
                vm = validate()  # a point of the learning curve inside an epoch (the epoch's end validates anyway)
                history.append({"epoch": epoch, "step": step, "images": step * sched.batch_size * world, **vm})
                logger.log_metrics({f"val/{k}": v for k, v in vm.items()}, step=step)
                system.train()
            if step % rt.checkpoint_every == 0:
                checkpoint(epoch, batch_in_epoch)
            if interrupt_at_step is not None and step == interrupt_at_step:
                raise TrainingInterrupted(f"interrupted at step {step}")
            if max_steps is not None and step >= max_steps:
                done = True
                break
        finished_epoch = batch_in_epoch >= len(batches)
        if finished_epoch:
            epoch, batch_in_epoch = epoch + 1, 0
        if main and (epoch % rt.val_every == 0 or epoch == sched.epochs or done):
            vm = validate()
            history.append({"epoch": epoch, "step": step, "images": step * sched.batch_size * world, **vm})
            logger.log_metrics({f"val/{k}": v for k, v in vm.items()}, step=step)
            log.info("%s: epoch %d step %d lr %.2e: %s", stage, epoch, step, lr, _fmt(vm))
        checkpoint(epoch, batch_in_epoch)
        if world > 1:
            dist.barrier()

    # finish
    summary: dict = {}
    if main:
        final = next((h for h in reversed(history) if h["step"] == step), None)
        if final is None or (baseline_joints is not None and STAGE_BRANCH[stage] != "2d" and step not in last_joints):
            # no validation at this step yet, or a resumed run whose last one's predictions are gone
            final = {"epoch": epoch, "step": step, "images": step * sched.batch_size * world, **validate()}
            history.append(final)
        vs_baseline = (baseline_comparison(last_joints[step], baseline_joints, val_table)
                       if baseline_joints is not None and step in last_joints else {})
        if vs_baseline:
            logger.log_metrics({f"val/vs_baseline_{k}": float(v) for k, v in vs_baseline.items()
                                if k in ("diff_cm", "lo_cm", "hi_cm") and v is not None}, step=step)
        paths.model_out.parent.mkdir(parents=True, exist_ok=True)
        with averaged_weights(system, average):
            save_atomic(model_record(system, params, stage, step), paths.model_out)
            logger.log_artifact(paths.model_out, "checkpoint")
            if paths.pictures_dir is not None and rt.pictures > 0:
                idx = np.linspace(0, len(val_ds) - 1, min(rt.pictures, len(val_ds))).round().astype(int)
                png = save_png(picture_grid(system, val_ds, idx, device), paths.pictures_dir / f"{stage}.png")
                logger.log_artifact(png, "pictures")
        if skipped_frames:
            log.warning("%s: %d bad training frames skipped (missing, truncated or undecodable images)",
                        stage, skipped_frames)
        seconds = time.perf_counter() - t_start
        summary = {
            "stage": stage, "steps": step, "epochs": epoch, "train_frames": int(len(rows)), "world_size": world,
            "train_seconds": round(seconds, 2),
            "images_per_second": round(images_seen / t_train, 2) if t_train > 0 else None,
            "resumed": resumed, "skipped_frames": skipped_frames, "val": {k: v for k, v in final.items() if k not in ("epoch", "step")},
            "baseline_mean_pose": baseline, "vs_baseline": vs_baseline, "history": history,
            "frames": last_frames.get(step, {}),  # per-frame values of the final validation (frame_values)
        }
        if video:
            summary["comparison"] = video_comparison(history[0] if history[0]["step"] == 0 else {}, summary["val"])
        shutil.rmtree(paths.resume_dir, ignore_errors=True)
    if world > 1:
        dist.barrier()
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
