"""`filter_yt3d` stage: keep the continuous stretches of in-the-wild videos (method.md s8).

Reads the frames and detected keypoints of the split `filter.split` (the embedded 'wild'
videos, or YouTube-3D-Hands' train split), cuts each video where the picture changes at once
(a shot cut) and breaks it where keypoints jump or confidence collapses, drops short stretches
and unavailable videos, and writes outputs/yt3d_filter/stretches.json (kept stretches and row
indices). Where the cut positions are known (the embedded data), reports/filter_yt3d.json
gives precision and recall of cut detection.

    python -m pipeline.filter_yt3d
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.common import DATASET, KEYPOINTS, stage_params
from s2hand.data.table import load_meta, load_split
from s2hand.detect import load_keypoints
from s2hand.filter.yt3d_filter import cut_detection_scores, filter_table, stretches_across_cuts, true_cuts
from s2hand.io import atomic_dir, write_json

OUT = Path("outputs/yt3d_filter")
REPORT = Path("reports/filter_yt3d.json")
log = logging.getLogger("filter_yt3d")


def main() -> None:
    p = stage_params()
    f = p.filter
    meta = load_meta(DATASET)
    if f.split not in meta["splits"]:
        result = {"skipped": f"dataset {meta['name']!r} has no split {f.split!r} (splits: {sorted(meta['splits'])})",
                  "stretches": [], "rows": []}
        log.warning(result["skipped"])
        report = {"skipped": result["skipped"]}
    else:
        table = load_split(DATASET, f.split)
        kp = load_keypoints(KEYPOINTS / f"{f.split}.json")
        thresholds = f.model_dump(exclude={"split", "cut_tolerance", "thumb_size"})
        res = filter_table(table, kp, image_root=DATASET, thumb_size=f.thumb_size, **thresholds)
        summary = res.summary()
        result = {"split": f.split, **summary, "rows": np.flatnonzero(res.keep).tolist()}
        report = {k: v for k, v in summary.items() if k not in ("stretches", "cuts", "jumps")}
        report["frames_in"] = len(table)
        if table.cut is not None and table.cut.any():
            known = true_cuts(table.seq, table.frame, table.cut)
            across = stretches_across_cuts(res.stretches, known)
            report["cut_detection"] = {
                "tolerance_frames": f.cut_tolerance, "true_cuts": len(known),
                **cut_detection_scores(res.cuts, known, tolerance=f.cut_tolerance),
                "kept_stretches_across_cuts": len(across), "kept_frames_across_cuts": sum(s.n for s in across),
            }
            log.info("cut detection: precision %.2f recall %.2f (%d true cuts)",
                     report["cut_detection"]["precision"], report["cut_detection"]["recall"], len(known))
        log.info("kept %d of %d frames in %d stretches of %d videos", summary["n_kept_frames"], len(table),
                 summary["n_kept_stretches"], summary["n_kept_videos"])
    with atomic_dir(OUT) as tmp:
        write_json(tmp / "stretches.json", result)
    write_json(REPORT, {"thresholds": f.model_dump(), **report})


if __name__ == "__main__":
    main()
