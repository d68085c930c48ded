"""CPU threads when DVC's queue runs several experiments at once.

    n = cpu_share(torch.get_num_threads(), queue_jobs())   # threads of one of `dvc queue start -j N`'s jobs

`dvc queue start -j N` runs N experiments at once, each in a `dvc exp queue-worker` process, and
every stage would start as many threads as the machine has cores: N x cores threads on cores
cores, which spin against each other (finetune_video took 366 s in each of two workers against
40 s alone on 2 cores). The stages count the queue's workers and take their share
(pipeline.common.share_threads; the detector's processes and the grid search's workers too).
"""
from __future__ import annotations

from pathlib import Path


def queue_jobs(proc: str | Path = "/proc") -> int:
    """How many experiments DVC's queue runs at once on this machine: the number of live
    `dvc exp queue-worker` processes (one per `-j`), at least 1 (also where /proc does not exist)."""
    root = Path(proc)
    if not root.is_dir():
        return 1
    n = 0
    for cmdline in root.glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
        if b"queue-worker" in args and b"exp" in args:
            n += 1
    return max(1, n)


def cpu_share(threads: int, jobs: int) -> int:
    """Threads for one of `jobs` experiments running at once on a machine where one alone would use
    `threads`: an equal share, at least 1."""
    return max(1, int(threads) // max(1, int(jobs)))
