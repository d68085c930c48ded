"""`download` stage: prepare the configured dataset in `outputs/dataset/`.

data.name == synthetic renders the embedded hand-video dataset; freihand, ho3d, stb and yt3d
fetch or find the user's archives under data/, verify and extract them, and convert them to
the project's frame-table layout (s2hand.data.table). Writes reports/dataset_contact_sheet.png.

    python -m pipeline.download
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.common import DATASET, HAND_MODEL, stage_params
from s2hand.io import atomic_dir, write_json

SHEET = Path("reports/dataset_contact_sheet.png")
SUMMARY = Path("reports/dataset.json")
log = logging.getLogger("download")


def main() -> None:
    p = stage_params()
    if p.data.name == "synthetic":
        from s2hand.data.synthetic.generate import generate_dataset

        if not HAND_MODEL.is_file():
            raise SystemExit(f"{HAND_MODEL}: missing; run the hand_model stage first (dvc repro hand_model)")
        workers = min(os.cpu_count() or 1, 8)
        with atomic_dir(DATASET) as tmp:
            meta = generate_dataset(tmp, HAND_MODEL, p.data.synthetic, seed=p.seed, workers=workers)
        log.info("rendered %s frames in %.1f s (%.1f frames/s, %d workers)", meta["splits"], meta["render_seconds"],
                 meta["frames_per_second"], workers)
    else:
        from s2hand.data.prepare import prepare_real

        meta = prepare_real(p.data.name, Path(p.data.raw_dir), DATASET,
                            extract_limits=(p.data.extract_max_gb * 1e9, p.data.extract_max_ratio))
    from s2hand.data.contact_sheet import contact_sheet

    contact_sheet(DATASET, SHEET)
    size = sum(f.stat().st_size for f in DATASET.rglob("*") if f.is_file())
    write_json(SUMMARY, {"name": p.data.name, "splits": meta["splits"], "bytes": size,
                         **{k: meta[k] for k in ("render_seconds", "frames_per_second") if k in meta}})
    log.info("wrote %s (%.1f MB) and %s", DATASET, size / 1e6, SHEET)


if __name__ == "__main__":
    main()
