"""Atomic outputs: a stage never leaves half an output that looks complete.

    with atomic_dir("outputs/dataset") as tmp:   # write everything under tmp
        ...
    # on success tmp is renamed to outputs/dataset (the old one replaced); on error it is removed

A process killed outright (kill -9, power loss) cannot remove its tmp folder: the next atomic_dir
of the same target removes the ones whose writer (the pid in their name) is no longer running.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_tmp(target: Path) -> list[Path]:
    """Remove the leftovers of earlier atomic_dir calls on `target` whose process is gone:
    .<name>.tmp-<pid>-* and .<name>.old-<pid> (a name without a pid: an older version's, stale)."""
    removed = []
    for kind in ("tmp", "old"):
        for p in target.parent.glob(f".{glob.escape(target.name)}.{kind}-*"):
            pid = p.name[len(f".{target.name}.{kind}-"):].split("-")[0]
            if p.is_dir() and not p.is_symlink() and not (pid.isdigit() and _running(int(pid))):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: str | Path, mode: str = "w") -> Iterator:
    """Open a temporary file beside `target`; rename it over `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: object) -> None:
    with atomic_file(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_npz(file, **arrays) -> None:
    """np.savez with fixed zip timestamps, so equal arrays give byte-identical files (DVC hashes
    outputs: a rerun that changes nothing must not change them). `file`: a path or binary file."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def sha256sum(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def code_digest() -> str:
    """16 hex digits over the s2hand package's Python sources (relative paths and bytes): state
    kept across runs (resume checkpoints, the grid search's trial log) carries it, so a run of
    edited code never continues or reuses what older code computed."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
