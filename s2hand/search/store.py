"""The trial log: one JSON line per completed trial, appended as each trial finishes.

A trial is keyed by a stable hash of (phase, step, weights) (`trial_key`): resuming a search
reads the log and runs only the trials whose key is missing. Each record is written with a
single `write` of one line in append mode, then flushed and fsynced, so an interruption leaves
every finished trial on disk and at worst a torn last line, which `load` skips with a warning.

Usage:
    store = TrialStore("outputs/search/trials.jsonl")
    store.get(key)        # a TrialRecord or None
    store.records()       # all, in completion order
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from s2hand.search.plan import canon

log = logging.getLogger(__name__)


def trial_key(phase: str, step: str, weights: Mapping[str, float]) -> str:
    """16 hex digits of sha256 over canonical JSON; weights rounded to 6 significant digits."""
    payload = {"phase": phase, "step": step, "weights": {k: canon(v) for k, v in sorted(weights.items())}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrialRecord:
    """A completed trial. `losses` are the objective's unweighted sub-losses (plan.SUBLOSSES keys);
    `step_loss_sum` is the step's "sum of already-fixed weighted losses" the runner derived."""

    key: str
    phase: str  # phase1 | phase2 | sensitivity
    step: str  # phase1: 'base' or the weight; phase2: the group; sensitivity: 'base' or 'ori*2', 'ori*0.5'
    weights: dict[str, float]
    accuracy_error: float
    fixed_loss_sum: float  # as the objective returned it
    step_loss_sum: float
    losses: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    finished: float = 0.0  # unix time
    vs_mean_pose: dict = field(default_factory=dict)  # runner.TrialScores.vs_mean_pose ({} in older logs)

    @property
    def mean_pose_gap_cm(self) -> float | None:
        """accuracy_error minus the mean pose's on the same frames (cm); None where not measured."""
        return self.vs_mean_pose.get("diff_cm")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(line: str) -> "TrialRecord":
        d = json.loads(line)
        return TrialRecord(**d)


class TrialStore:
    """Append-only JSONL trial log. Not shared between processes: only the runner writes it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._by_key: dict[str, TrialRecord] = {}
        self._order: list[str] = []
        self.load()

    def load(self) -> None:
        self._by_key.clear()
        self._order.clear()
        if not self.path.exists():
            return
        with self.path.open() as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = TrialRecord.from_json(line)
                except (json.JSONDecodeError, TypeError) as err:
                    log.warning("%s:%d: skipping unreadable trial record (%s)", self.path, n, err)
                    continue
                if rec.key not in self._by_key:
                    self._order.append(rec.key)
                self._by_key[rec.key] = rec

    def get(self, key: str) -> TrialRecord | None:
        return self._by_key.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def records(self) -> list[TrialRecord]:
        return [self._by_key[k] for k in self._order]

    def append(self, rec: TrialRecord) -> None:
        """Write one record durably (one line, flush, fsync)."""
        if rec.finished == 0.0:
            rec = TrialRecord(**{**rec.__dict__, "finished": time.time()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = rec.to_json() + "\n"
        # a torn last line (killed mid-write) must not glue onto this record
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if rec.key not in self._by_key:
            self._order.append(rec.key)
        self._by_key[rec.key] = rec
