"""What training sees in which batch: the epoch plans of the S2HAND and S2HAND(V) stages, the
frames S2HAND(V) trains on, and the collation that drops bad frames.

    batches = epoch_batches(n, batch_size, seed, epoch, rank, world)   # lists of (index, epoch)
    batches = video_epoch_batches(table, batch_size, n, interval, seed, epoch, rank, world)
    batch = collate_skipping([dataset[key] for key in batches[0]])

The order of every epoch is drawn from (seed, epoch) alone (s2hand.model.frames draws each
sample's augmentation from (seed, epoch, index)): the data a step sees depends on nothing else,
which makes resume and DDP exact.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import default_collate

from s2hand.data.sampler import SequenceBatchSampler
from s2hand.data.table import FrameTable
from s2hand.detect.keypoint_file import Keypoints


def collate_skipping(items: list[dict[str, torch.Tensor] | None], window: int = 1) -> dict[str, torch.Tensor]:
    """default_collate of a batch without its bad frames (None items): the whole window of
    `window` consecutive items (S2HAND(V)'s n frames) holding one is dropped, so the batch still
    reshapes to (m, n, ...). "skipped" () counts the bad frames; "image" is absent when nothing is left."""
    windows = [items[i:i + window] for i in range(0, len(items), window)]
    good = [it for w in windows if all(x is not None for x in w) for it in w]
    out = default_collate(good) if good else {}
    out["skipped"] = torch.tensor(sum(x is None for x in items))
    return out


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                  subset: np.ndarray | None = None) -> list[list[tuple[int, int]]]:
    """This process's batches of one epoch: a permutation drawn from (seed, epoch) of `subset`
    (default all n rows), cut into world-sized groups of full batches (the tail that does not
    fill one batch per process is dropped); rank r takes every world-th batch."""
    rows = np.arange(n) if subset is None else np.asarray(subset)
    perm = rows[np.random.default_rng([seed, epoch]).permutation(len(rows))]
    per_step = batch_size * world
    steps = len(perm) // per_step
    return [[(int(i), epoch) for i in perm[(s * world + rank) * batch_size:(s * world + rank + 1) * batch_size]]
            for s in range(steps)]


def video_epoch_batches(table: FrameTable, batch_size: int, n: int, interval: int, seed: int, epoch: int,
                        rank: int = 0, world: int = 1, subset: np.ndarray | None = None,
                        max_batches: int = 0) -> list[list[tuple[int, int]]]:
    """S2HAND(V)'s batches of one epoch (the batch hook of train_stage for finetune_video): a
    SequenceBatchSampler over the rows `subset` (default all) of `table`, seeded by (seed, epoch):
    m = batch_size // n windows of n frames `interval` apart, window by window, so a batch reshapes
    to (m, n, ...). Rows left out of `subset` are gaps no window crosses. Rank r takes every
    world-th batch; at most max_batches per process (0: all)."""
    rows = np.arange(len(table)) if subset is None else np.asarray(subset)
    cut = None if table.cut is None else np.asarray(table.cut)[rows]
    sampler = SequenceBatchSampler(np.asarray(table.seq)[rows], np.asarray(table.frame)[rows], batch_size,
                                   n=n, interval=interval, cut=cut, seed=seed)
    sampler.set_epoch(epoch)
    batches = [[int(rows[i]) for i in b] for b in sampler]
    steps = len(batches) // world
    if max_batches:
        steps = min(steps, max_batches)
    return [[(i, epoch) for i in batches[s * world + rank]] for s in range(steps)]


def video_training_frames(train: FrameTable, train_kp: Keypoints, wild: FrameTable | None = None,
                          wild_kp: Keypoints | None = None, wild_rows: np.ndarray | None = None
                          ) -> tuple[FrameTable, Keypoints]:
    """The train split plus (extra_wild, paper Table 8) the kept rows of the wild split as extra
    sequences (their ids shifted past the train split's). Ground truth is dropped: training reads
    images, K and detected keypoints only."""
    if wild is None:
        return train, train_kp
    rows = np.asarray(wild_rows, np.int64)
    w, wkp = wild.subset(rows), wild_kp.subset(rows)
    offset = int(np.max(train.seq)) + 1 - int(np.min(w.seq)) if len(w) else 0
    cut = lambda t: np.zeros(len(t), bool) if t.cut is None else np.asarray(t.cut, bool)  # noqa: E731
    table = FrameTable(image=np.concatenate([train.image, w.image]), K=np.concatenate([train.K, w.K]),
                       seq=np.concatenate([train.seq, w.seq + offset]),
                       frame=np.concatenate([train.frame, w.frame]), cut=np.concatenate([cut(train), cut(w)]))
    kp = Keypoints(np.concatenate([train_kp.peaks, wkp.peaks]), np.concatenate([train_kp.conf, wkp.conf]),
                   list(train_kp.names) + list(wkp.names))
    return table, kp
