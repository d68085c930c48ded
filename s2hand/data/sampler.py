"""Sequence sampling for S2HAND(V) (method.md s5): each batch is m sequences x n frames.

A window is n frames of one sequence, `interval` frames apart (frame f, f+i, ..., f+(n-1)i),
never crossing a cut or a gap in the frame numbers. A batch holds m = batch_size // n windows
from different sequences where possible; its indices come window by window, so a batch
reshapes to (m, n, ...).

    sampler = SequenceBatchSampler(table.seq, table.frame, batch_size=12, n=3, interval=3, cut=table.cut)
    loader = DataLoader(dataset, batch_sampler=sampler)      # batch tensors (12, ...) -> view(4, 3, ...)
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def shot_ids(seq: np.ndarray, frame: np.ndarray, cut: np.ndarray | None = None) -> np.ndarray:
    """(N,) shot index of each frame within its sequence: 0 at the first frame, +1 at every cut
    (frames in frame order); frames of the same sequence and shot are continuous footage."""
    seq = np.asarray(seq)
    cut = np.zeros(len(seq), bool) if cut is None else np.asarray(cut, bool)
    order = np.lexsort((np.asarray(frame), seq))
    shot = np.zeros(len(seq), np.int64)
    current, last_seq = 0, None
    for i in order:
        if seq[i] != last_seq:
            current, last_seq = 0, seq[i]
        elif cut[i]:
            current += 1
        shot[i] = current
    return shot


def sequence_windows(seq: np.ndarray, frame: np.ndarray, n: int, interval: int,
                     cut: np.ndarray | None = None) -> np.ndarray:
    """(W, n) row indices of every valid window: same sequence, frame numbers f + k*interval
    all present, no cut strictly after the window's first frame up to its last."""
    seq = np.asarray(seq)
    frame = np.asarray(frame)
    if n < 1 or interval < 1:
        raise ValueError(f"need n >= 1 and interval >= 1, got n={n}, interval={interval}")
    row_of = {(int(s), int(f)): i for i, (s, f) in enumerate(zip(seq, frame))}
    shot = shot_ids(seq, frame, cut)
    order = np.lexsort((frame, seq))
    windows = []
    for i in order:
        rows = [row_of.get((int(seq[i]), int(frame[i]) + k * interval)) for k in range(n)]
        if any(r is None for r in rows) or len({shot[r] for r in rows}) > 1:
            continue
        windows.append(rows)
    return np.asarray(windows, np.int64).reshape(-1, n)


class SequenceBatchSampler(Sampler[list[int]]):
    """Batches of m = batch_size // n windows of n frames, `interval` apart; seeded per epoch."""

    def __init__(self, seq: np.ndarray, frame: np.ndarray, batch_size: int, n: int = 3, interval: int = 3,
                 cut: np.ndarray | None = None, seed: int = 0, drop_last: bool = True):
        if batch_size < n:
            raise ValueError(f"batch_size {batch_size} is smaller than n = {n} frames per sequence")
        self.windows = sequence_windows(seq, frame, n, interval, cut)
        if len(self.windows) == 0:
            raise ValueError(f"no sequence has {n} frames {interval} apart without a cut")
        self.win_seq = np.asarray(seq)[self.windows[:, 0]]
        self.m = batch_size // n
        self.n = n
        self.seed = seed
        self.epoch = 0
        self.drop_last = drop_last

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.windows), self.m)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.windows))
        # interleave sequences so that a batch draws its windows from different sequences
        by_seq: dict[int, list[int]] = {}
        for w in order:
            by_seq.setdefault(int(self.win_seq[w]), []).append(int(w))
        queues = [by_seq[s] for s in rng.permutation(sorted(by_seq))]
        interleaved = []
        while any(queues):
            for q in queues:
                if q:
                    interleaved.append(q.pop())
        for b in range(len(self)):
            chosen = interleaved[b * self.m:(b + 1) * self.m]
            yield [int(r) for w in chosen for r in self.windows[w]]
