"""A real dataset's raw files -> the prepared layout (s2hand.data.table): <split>.npz + meta.json.

    meta = prepare_real("freihand", Path("data"), Path("outputs/dataset"))

For every file the manifest (sources.yaml) lists: use the folder the user unpacked by hand
under <raw_dir>/<name>/<extract_to>/ if there is one, else a finished extraction in
`extract_dir`, else fetch the archive (verify its checksum, or download it where that is
allowed) and unpack it safely into `extract_dir`. Then load every split and write out_dir
atomically: it appears complete or not at all.

Images are not copied. The image paths in the tables are relative to out_dir and point into
the unpacked dataset, e.g. "../extracted/freihand/FreiHAND_pub_v2/training/rgb/00000000.jpg",
so out_dir and the unpacked data must keep their relative position; meta.json also records
the absolute `source_root`. `extract_dir` defaults to <out_dir>/../extracted/<name>: outside
raw_dir (the user's files, which DVC may track) and outside out_dir (a stage output DVC
caches, and which would otherwise hold gigabytes), and reused by later runs.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from s2hand.data import freihand, ho3d, stb, yt3d
from s2hand.data.download import MARKER, FetchError, Source, fetch, find_root, load_manifest, safe_extract
from s2hand.data.table import FrameTable, save_meta
from s2hand.io import atomic_dir

log = logging.getLogger(__name__)

DATASETS = ("freihand", "ho3d", "stb", "yt3d")
OPTIONS = {  # keyword options prepare_real passes on, per dataset
    "freihand": {"versions", "val_fraction", "seed", "train_verts"},
    "ho3d": {"keep_unannotated"},
    "stb": {"wrist"},
    "yt3d": {"include_left", "joint_regressor", "tip_ids", "keep_vertices"},
}


def materialise(source: Source, raw_dir: Path, extract_dir: Path, limits: tuple[float, float] | None = None) -> Path:
    """The usable form of one manifest file: a plain file, or the folder its archive unpacks to."""
    if source.extract_to is None:
        return fetch(source, raw_dir)
    by_hand = source.unpacked(raw_dir)
    if by_hand is not None and by_hand.is_dir():
        log.info("%s: using the folder unpacked by hand (no checksum checked)", by_hand)
        return by_hand
    dest = extract_dir / source.extract_to
    if (dest / MARKER).is_file():
        log.info("%s: already extracted", dest)
        return dest
    return safe_extract(fetch(source, raw_dir), dest, *(limits or ()))  # limits: (max bytes, max ratio)


def gather(name: str, raw_dir: Path, extract_dir: Path,
           limits: tuple[float, float] | None = None) -> dict[str, Path | None]:
    """file name -> usable path for every manifest file of `name`; None for absent optional ones."""
    sources = load_manifest()[name]
    found: dict[str, Path | None] = {}
    errors = []
    for src in sources.files:
        try:
            found[src.file] = materialise(src, raw_dir, extract_dir, limits)
        except FetchError as err:
            if src.required:
                raise
            found[src.file] = None
            errors.append(str(err))
            log.info("optional %s/%s not used: %s", name, src.file, err)
    if sources.need == "any" and not any(found.values()):
        raise FetchError(f"{name}: none of its files is available; one is enough:\n  " + "\n  ".join(errors))
    return found


def _rebase(table: FrameTable, root: Path, out_dir: Path) -> FrameTable:
    prefix = Path(os.path.relpath(root.resolve(), out_dir.resolve())).as_posix()
    table.image = np.array([f"{prefix}/{p}" for p in table.image])
    return table


def _describe(options: dict) -> dict:
    return {k: (f"array {tuple(np.shape(v))}" if isinstance(v, np.ndarray) else v) for k, v in options.items()}


def load_splits(name: str, found: dict[str, Path | None], raw_dir: Path, options: dict) -> tuple[Path, dict, dict]:
    """(dataset root, {split: FrameTable}, extra meta) for dataset `name`."""
    if name == "freihand":
        root = find_root(found["FreiHAND_pub_v2.zip"], ("training_K.json", "training"))
        eval_root = None
        if found.get("FreiHAND_pub_v2_eval.zip") is not None:
            try:
                eval_root = find_root(found["FreiHAND_pub_v2_eval.zip"], ("evaluation_xyz.json",))
            except FileNotFoundError as err:
                log.warning("FreiHAND evaluation archive: %s", err)
        kw = {k: options[k] for k in ("versions", "val_fraction", "seed") if k in options}
        splits = ["train", "val", "test"] if kw.get("val_fraction", 0.05) > 0 else ["train", "test"]
        tables = {
            s: freihand.load_freihand(root, s, eval_root=eval_root, **kw,
                                      with_verts=(s != "train" or options.get("train_verts", False)))
            for s in splits
        }
        return root, tables, {}
    if name == "ho3d":
        usable = [p for f, p in found.items() if p is not None]  # manifest order: v2 first
        root = find_root(usable[0], ("train.txt", "train"))
        if len(usable) > 1:
            log.info("HO-3D: several versions present, using %s", root)
        tables = {s: ho3d.load_ho3d(root, s, **options) for s in ("train", "val", "test")}
        return root, tables, {"sequences": ho3d.sequence_names(root), "val_sequences": list(ho3d.VAL_SEQUENCES)}
    if name == "stb":
        root = find_root(found["STB.zip"], ("images", "labels"))
        tables = {s: stb.load_stb(root, s, **options) for s in ("train", "test")}
        return root, tables, {"sequences": list(stb.SEQUENCES), "test_sequences": list(stb.TEST_SEQUENCES)}
    if name == "yt3d":
        root = raw_dir / "yt3d"
        splits = [s for s in yt3d.SPLITS if found.get(f"youtube_{s}.json") is not None]
        tables = {s: yt3d.load_yt3d(root, s, **options) for s in splits}
        extra = {"sequences": yt3d.video_ids(root), "unavailable_videos": yt3d.unavailable_videos(root)}
        if options.get("keep_vertices"):
            extra["verts_units"] = "image-aligned: x, y in pixels, z on the same scale (not metres)"
        return root, tables, extra
    raise ValueError(f"unknown dataset {name!r}; real datasets: {DATASETS}")


def prepare_real(name: str, raw_dir: str | Path, out_dir: str | Path, *, extract_dir: str | Path | None = None,
                 extract_limits: tuple[float, float] | None = None, **options) -> dict:
    """Fetch, verify and unpack dataset `name`, then write <out_dir>/<split>.npz and meta.json.
    extract_limits: (max bytes, max ratio) an archive may unpack to (download.safe_extract).

    Returns the meta dict written. `options` go to the dataset's loader (OPTIONS lists them).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; real datasets: {DATASETS}")
    unknown = set(options) - OPTIONS[name]
    if unknown:
        raise TypeError(f"prepare_real({name!r}): unknown options {sorted(unknown)}; allowed: {sorted(OPTIONS[name])}")
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    extract_dir = Path(extract_dir) if extract_dir is not None else out_dir.parent / "extracted" / name
    found = gather(name, raw_dir, extract_dir, extract_limits)
    root, tables, extra = load_splits(name, found, raw_dir, options)
    module = {"freihand": freihand, "ho3d": ho3d, "stb": stb, "yt3d": yt3d}[name]
    sources = load_manifest()[name]
    meta = {
        "name": name,
        "title": sources.title,
        "image_size": module.META["image_size"],
        "fps": module.META["fps"],
        "splits": {s: len(t) for s, t in tables.items()},
        "source_root": str(root.resolve()),
        "source_files": {f: (None if p is None else str(p.resolve())) for f, p in found.items()},
        "images": "paths relative to this folder, pointing into the unpacked dataset (nothing copied)",
        "units": "metres, OpenCV camera frame (x right, y down, z forward); 2D in pixels",
        "keypoints": "openpose",
        "hand_side": module.META["hand_side"],
        "pose": module.META["pose"],
        "licence": " ".join(sources.licence.split()),
        "options": _describe(options),
        **({"camera": module.META["camera"]} if "camera" in module.META else {}),
        **extra,
    }
    with atomic_dir(out_dir) as tmp:
        for split, table in tables.items():
            _rebase(table, root, out_dir).save(tmp / f"{split}.npz")
        save_meta(tmp, meta)
    log.info("%s prepared in %s: %s", name, out_dir, meta["splits"])
    return meta
