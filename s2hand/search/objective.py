"""The overfit objective of the loss-weight search (supplementary s1.1; method.md s7 step 1).

One trial = train the network on a small fixed subset of the training split with the trial's 13
loss weights, then score it:

    objective = OverfitObjective.from_params(params, "outputs/dataset", "outputs/keypoints",
                                             "outputs/hand_model/MANO_RIGHT.npz")
    scores = objective({"branch3d": 1.0, "geo": 1.0, "ori": 100.0, ...})   # runner.TrialScores

Protocol (supplementary: 30 HO-3D samples, 10 epochs, Adam (0.9, 0.999), lr 1e-3, batch 10; here
`grid_search.subset_size / epochs / lr / batch_size`):
- Subset: `subset_size` train frames with at least `train.min_keypoints` (>= 1) detected
  keypoints, kept by training's other filters (`train.min_confidence`, `train.max_disagreement`),
  and 3D ground truth, drawn once from `seed`. S2HAND(V) (`variant: s2hand_v`): subset_size //
  video.n disjoint windows of video.n frames video.interval apart, and batches of batch_size // n
  windows, so E_quat and E_T&S see sequences as in finetune_video.
- Start: the ImageNet encoder and the heads' initialisation (`train.model`, built after
  torch.manual_seed(seed)), the same for every trial. Not the pretrain checkpoints: the
  supplementary selects the weights *before* training (those checkpoints were trained with
  params.yaml's weights, which would bias the search towards them), and the search then depends
  on nothing but the data, so it can run beside the training stages.
- Training: everything (both branches) with E_S2HAND ("finetune" terms), or E_V for s2hand_v
  ("finetune_video" terms), no augmentation, epoch order drawn from (seed, epoch). A non-finite
  loss stops the trial: it scores inf (a weight that large is never selected).
- Scores, in eval mode over the subset (one pass, no gradients): accuracy_error = 3D PA-MPJPE
  in cm against the ground truth (Tables 11/12 rank by MPJPE); losses = the unweighted
  sub-losses keyed as plan.SUBLOSSES, E_pixel / E_SSIM included while w_photo is 0 (phase 1 needs
  them to start photo at the matched value); quat, ts only for s2hand_v; fixed_loss_sum = the
  total weighted loss sum_X phi_X E_X; vs_mean_pose = the trial's gap to the mean pose
  (s2hand.model.baseline's constant mean-pose hand) on the same subset frames, paired frame by
  frame with its sequence-bootstrap interval: a trial that does not end measurably below the
  mean pose did not overfit, and ranking such trials ranks noise.
Input and render sizes come from `grid_search.input_size / render_size` (search-only, small on
a CPU); the rest of the network, hand, renderer and loss variants from params.yaml.

Process pools: the instance holds plain data only (params, paths, numbers) and pickles; each
worker builds the system, the initial state and the subset tensors once (`_context`, cached per
process) and resets the network to that state for every trial. Deterministic per seed (same
machine, same thread count).
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from s2hand.config import LossWeights, Params, validate_params
from s2hand.data.sampler import sequence_windows
from s2hand.data.table import FrameTable, load_split
from s2hand.detect.keypoint_file import load_keypoints
from s2hand.hand.convention import load_offsets
from s2hand.io import code_digest, sha256sum
from s2hand.metrics.compare import paired_comparison, per_frame_pa_mpjpe, verdict
from s2hand.model.baseline import has_mean_pose_baseline, mean_pose_predictions
from s2hand.model.device import pick_device
from s2hand.model.frames import HandFrames, training_rows
from s2hand.model.scores import validation_metrics
from s2hand.model.system import S2HandSystem
from s2hand.search.plan import SUBLOSSES, weighted_losses
from s2hand.search.runner import TrialScores
from s2hand.train.loop import set_trainable

log = logging.getLogger(__name__)
STAGE = {"s2hand": "finetune", "s2hand_v": "finetune_video"}  # whose loss terms a trial trains on


def search_params(params: Params) -> Params:
    """params with the search's input and render sizes, self-supervised terms (never the full3d
    ablation's), validated again."""
    raw = params.model_dump()
    gs = params.grid_search
    raw["train"]["input_size"] = gs.input_size
    raw["render"]["size"] = gs.render_size
    if "supervision" in raw["train"]:
        raw["train"]["supervision"] = "self"
    return validate_params(raw, "params (grid search)")


def select_subset(table: FrameTable, conf: np.ndarray, variant: str, size: int, n: int, interval: int,
                  min_keypoints: int, seed: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the overfit subset: (size,) for s2hand, (size // n, n) windows for s2hand_v.

    Candidates: frames with >= max(1, min_keypoints) detected keypoints, among the rows `allowed`
    if given (training's choice: s2hand.model.frames.training_rows); windows only of such frames,
    pairwise disjoint. Raises if the split cannot supply them."""
    usable = np.flatnonzero((conf > 0).sum(axis=1) >= max(1, min_keypoints))
    if allowed is not None:
        usable = np.intersect1d(usable, allowed)
    rng = np.random.default_rng(seed)
    if variant == "s2hand":
        if len(usable) < size:
            raise ValueError(f"grid_search.subset_size {size}: only {len(usable)} train frames have keypoints")
        return np.sort(rng.choice(usable, size=size, replace=False))
    k = size // n
    if k < 1:
        raise ValueError(f"grid_search.subset_size {size} < video.n {n}: no window fits (s2hand_v)")
    cut = None if table.cut is None else np.asarray(table.cut)[usable]
    windows = usable[sequence_windows(np.asarray(table.seq)[usable], np.asarray(table.frame)[usable], n, interval, cut)]
    taken: set[int] = set()
    chosen = []
    for w in windows[rng.permutation(len(windows))]:
        if taken.isdisjoint(w.tolist()):
            chosen.append(w)
            taken.update(w.tolist())
            if len(chosen) == k:
                break
    if len(chosen) < k:
        raise ValueError(f"grid_search.subset_size {size}: only {len(chosen)} disjoint windows of {n} frames "
                         f"{interval} apart in the train split, {k} needed")
    return np.stack(sorted(chosen, key=lambda w: int(w[0])))


def subset_batches(units: int, per_batch: int, epoch: int | None, seed: int) -> list[np.ndarray]:
    """Batches of unit positions (frames, or windows for s2hand_v): the order drawn from
    (seed, epoch), or in order for epoch None; a last batch of one unit is merged into the one
    before (BatchNorm needs two samples)."""
    order = np.arange(units) if epoch is None else np.random.default_rng([seed, epoch]).permutation(units)
    chunks = [order[i:i + per_batch] for i in range(0, units, per_batch)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2:] = [np.concatenate(chunks[-2:])]
    return chunks


def mean_pose_gap(joints: np.ndarray, ctx: "_Context") -> dict:
    """A trial's per-frame PA-MPJPE (joints (N, 21, 3)) minus the mean pose's on the same subset
    frames, with its sequence-bootstrap interval, in cm, and the verdict on "the trial ends below
    the mean pose" (s2hand.metrics.compare.verdict); {} without the baseline."""
    if ctx.mean_pose_frames is None:
        return {}
    trial = per_frame_pa_mpjpe(joints, ctx.table.joints3d)
    c = paired_comparison(trial, ctx.mean_pose_frames, ctx.table.seq)
    cm = {f"{k}_cm": (None if c[k] is None else 100 * float(c[k])) for k in ("diff", "lo", "hi")}
    return {**cm, "groups": c["groups"], "frames": c["frames"], "mean_pose_cm": 100 * float(ctx.mean_pose_frames.mean()),
            "verdict": verdict(c, paper_lower=True)}


@dataclass
class _Context:
    """What a worker builds once per objective: the system, its initial state, the subset."""

    system: S2HandSystem
    init_state: dict
    data: dict[str, torch.Tensor]  # (N, ...) subset tensors on the device, N = frames
    table: FrameTable  # the subset's rows (ground truth)
    joints2d: np.ndarray | None  # (N, 21, 2) ground truth in input px
    units: int  # frames (s2hand) or windows (s2hand_v)
    unit_size: int  # frames per unit
    mean_pose_frames: np.ndarray | None = None  # (N,) the mean pose's PA-MPJPE per subset frame, metres


_CONTEXTS: dict[str, _Context] = {}


@dataclass(frozen=True)
class OverfitObjective:
    """Callable weights -> TrialScores (module docstring). Build with `from_params`."""

    params: Params  # search_params(...) of the pipeline's params
    dataset: str
    keypoints: str  # folder with train.json
    hand_model: str
    threads: int = 0  # torch threads in the calling process; 0: leave as is
    convention: str | None = None  # the keypoint_convention stage's file, read when train.keypoint_convention is calibrated

    @classmethod
    def from_params(cls, params: Params, dataset: str | Path, keypoints: str | Path, hand_model: str | Path,
                    threads: int = 0, convention: str | Path | None = None) -> "OverfitObjective":
        return cls(search_params(params), str(dataset), str(keypoints), str(hand_model), int(threads),
                   None if convention is None else str(convention))

    def offsets(self) -> torch.Tensor | None:
        """The detector's keypoint convention the trials train with (None: the model's keypoints)."""
        if self.params.train.keypoint_convention != "calibrated":
            return None
        if self.convention is None:
            raise ValueError("train.keypoint_convention: calibrated needs the convention file (OverfitObjective.convention)")
        return torch.as_tensor(load_offsets(self.convention), dtype=torch.float32)

    @property
    def variant(self) -> str:
        return self.params.grid_search.variant

    @property
    def stage(self) -> str:
        return STAGE[self.variant]

    def settings(self) -> dict:
        """Everything a trial's result depends on, but the weights and the input files."""
        p = self.params.model_dump()
        gs = p["grid_search"]
        out = {"seed": p["seed"], "hand": p["hand"], "render": p["render"],
               "train": {k: p["train"][k] for k in ("input_size", "min_keypoints", "min_confidence", "max_disagreement",
                                                     "model", "loss", "keypoint_convention")},
               "overfit": {k: gs[k] for k in ("variant", "subset_size", "epochs", "lr", "batch_size")}}
        if self.variant == "s2hand_v":
            out["video"] = {k: p["video"][k] for k in ("temporal_loss", "ts", "n", "interval", "smooth_threshold", "camera")}
        return out

    def fingerprint(self) -> str:
        """16 hex digits over settings(), the digests of the input files and of the code: a trial
        log made under another fingerprint belongs to another objective."""
        files = [Path(self.dataset) / "train.npz", Path(self.keypoints) / "train.json", Path(self.hand_model)]
        if self.params.train.keypoint_convention == "calibrated" and self.convention is not None:
            files.append(Path(self.convention))
        blob = json.dumps({"settings": self.settings(), "files": [sha256sum(f)[:16] for f in files],
                           "code": code_digest()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------------- per process
    def _context(self) -> _Context:
        key = json.dumps([self.settings(), self.dataset, self.keypoints, self.hand_model], sort_keys=True, default=str)
        if key not in _CONTEXTS:
            _CONTEXTS[key] = self._build()
        return _CONTEXTS[key]

    def _build(self) -> _Context:
        p, gs = self.params, self.params.grid_search
        table = load_split(self.dataset, "train")
        if table.joints3d is None:
            raise ValueError(f"{self.dataset}: the train split has no 3D ground truth; the overfit accuracy needs it")
        kp = load_keypoints(Path(self.keypoints) / "train.json").reorder(table.image)
        n = p.video.n if self.variant == "s2hand_v" else 1
        rows = select_subset(table, kp.conf, self.variant, gs.subset_size, n, p.video.interval,
                             p.train.min_keypoints, p.seed, training_rows(table, kp, p.train))
        flat = rows.reshape(-1)
        ds = HandFrames(table, self.dataset, kp, p.train.input_size, None, p.seed)
        items = [ds[int(i)] for i in flat]
        device = pick_device(p.train.runtime.device, 0)
        data = {k: torch.stack([it[k] for it in items]).to(device) for k in ("image", "K", "kp", "conf")}
        sub = table.subset(flat)
        src = ds.read(int(flat[0])).shape[1]
        joints2d = None if sub.joints2d is None else sub.joints2d * (p.train.input_size / src)
        torch.manual_seed(p.seed)
        system = S2HandSystem.from_params(p, self.hand_model, orthographic=(
            self.variant == "s2hand_v" and p.video.camera == "orthographic"), keypoint_offsets=self.offsets()).to(device)
        log.info("overfit objective: %d frames (%s), %s, input %d px, render %d px", len(flat), self.variant,
                 device, p.train.input_size, p.render.size)
        base = (per_frame_pa_mpjpe(mean_pose_predictions(system.layer, table, sub)["joints"], sub.joints3d)
                if has_mean_pose_baseline(table, sub) else None)
        return _Context(system, copy.deepcopy(system.net.state_dict()), data, sub, joints2d, len(rows), n, base)

    # ------------------------------------------------------------------------- one trial
    def _batch(self, ctx: _Context, units: np.ndarray) -> dict[str, torch.Tensor]:
        idx = (units[:, None] * ctx.unit_size + np.arange(ctx.unit_size)).reshape(-1)  # window by window
        idx = torch.as_tensor(idx, device=ctx.data["image"].device)
        return {k: v[idx] for k, v in ctx.data.items()}

    def __call__(self, weights: dict[str, float]) -> TrialScores:
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        ctx = self._context()
        p, gs = self.params, self.params.grid_search
        system = ctx.system
        system.weights = LossWeights(**weights)
        system.net.load_state_dict(ctx.init_state)
        torch.manual_seed(p.seed)
        trained = set_trainable(system, self.stage)
        optimizer = torch.optim.Adam(trained, lr=gs.lr, betas=(0.9, 0.999))
        per_batch = max(1, gs.batch_size // ctx.unit_size)
        system.train()
        for epoch in range(gs.epochs):
            for units in subset_batches(ctx.units, per_batch, epoch, p.seed):
                total, _, terms = system.training_loss(self._batch(ctx, units), self.stage)
                if not torch.isfinite(total):
                    log.warning("overfit diverged at epoch %d with weights %s: %s", epoch, weights,
                                {k: float(v) for k, v in terms.items()})
                    return TrialScores(math.inf, math.inf, {s: math.inf for s in self._reported()})
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
        return self._score(ctx, weights, per_batch)

    def _reported(self) -> tuple[str, ...]:
        skip = ("quat", "ts") if self.variant == "s2hand" else () if self.params.video.ts else ("ts",)
        return tuple(s for s in SUBLOSSES if s not in skip)

    @torch.no_grad()
    def _score(self, ctx: _Context, weights: dict[str, float], per_batch: int) -> TrialScores:
        system = ctx.system
        system.eval()
        sums: dict[str, float] = {}
        preds: dict[str, list[np.ndarray]] = {"joints": [], "verts": [], "j_pro": []}
        frames = 0
        for units in subset_batches(ctx.units, per_batch, None, self.params.seed):
            batch = self._batch(ctx, units)
            terms, extra = system.loss_terms(batch, self.stage, photometric=True)
            b = len(batch["image"])
            frames += b
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            pred = extra["pred"]
            for k in preds:
                preds[k].append(getattr(pred, k).float().cpu().numpy())
        losses = {k: sums[k] / frames for k in self._reported() if k in sums}
        missing = set(self._reported()) - set(losses)
        if missing:
            raise RuntimeError(f"overfit objective: the {self.stage} terms lack {sorted(missing)}")
        joints = np.concatenate(preds["joints"])
        m = validation_metrics({k: np.concatenate(v) for k, v in preds.items()}, ctx.table, ctx.joints2d)
        acc = m["pa_mpjpe_cm"]
        total = float(sum(weighted_losses(weights, losses).values()))
        if not (math.isfinite(acc) and math.isfinite(total)):
            return TrialScores(math.inf, math.inf, {s: math.inf for s in self._reported()})
        return TrialScores(accuracy_error=float(acc), fixed_loss_sum=total, losses=losses,
                           vs_mean_pose=mean_pose_gap(joints, ctx))
