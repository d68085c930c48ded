"""Where does a fist's closure get lost? Finger straightness (s2hand.metrics.articulation) along
the chain from the hand to the network, on the embedded data's ground truth:

    python -m s2hand.evaluate.closure                                   # labels and filter only (~1 min)
    python -m s2hand.evaluate.closure --model outputs/checkpoints/finetune/model.pt --out closure.json

Rows, each with the correlation r of predicted and true straightness, the closed-to-open gap
ratio (1: the predictions open and close as much as the hands; 0: a constant hand) and its 95 %
sequence-bootstrap interval:
1. **labels:** per-frame fits (s2hand.evaluate.keypoint_fit.fit_codes, the pseudo_labels stage's
   energy, convention, iterations and learning rate) on `--frames` kept train frames, to the
   exact 2D keypoints (the 2D ambiguity and the fit's convergence) and to the detections (plus
   the detector's own error);
2. **filter:** the share of the train frames the training filters keep (s2hand.model.frames.training_rows)
   among the most closed quarter and the most open half of the hands;
3. **network** (with `--model`): the model's predictions on kept train frames, and on all the val
   and test frames (the evaluate stage's `articulation` row), then split into those the filters
   would keep and the rest.

Ground truth is read for scoring only. docs/training.md ("Closed hands") gives the measurements.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from s2hand.config import load_params
from s2hand.data.table import FrameTable, load_meta, load_split
from s2hand.detect.keypoint_file import load_keypoints
from s2hand.hand.convention import load_offsets
from s2hand.hand.layer import HandLayer
from s2hand.metrics.articulation import articulation_agreement, straightness
from s2hand.model.files import load_system
from s2hand.model.frames import HandFrames, training_rows
from s2hand.model.predict import predict

from .keypoint_fit import fit_to_keypoints

log = logging.getLogger("closure")


def agreement_row(name: str, pred_joints: np.ndarray, table: FrameTable) -> dict:
    """{"row", "frames", "r", "gap_ratio", "gap_lo", "gap_hi", "closed_pred", "closed_gt"} of
    predicted joints (N, 21, 3) against the table's ground truth."""
    a = articulation_agreement(straightness(pred_joints), straightness(table.joints3d), table.seq, n_resamples=500)
    return {"row": name, "frames": a["frames"], "r": a["r"], "gap_ratio": a["gap_ratio"], "gap_lo": a["gap_lo"],
            "gap_hi": a["gap_hi"], "closed_pred": a["closed"]["pred"], "closed_gt": a["closed"]["gt"]}


def filter_bias(s_gt: np.ndarray, kept: np.ndarray) -> dict:
    """Share kept (kept (N,) bool) among the most closed quarter and the most open half of the
    hands by true straightness s_gt (N,): a filter blind to articulation keeps both alike."""
    lo, mid = np.quantile(s_gt, [0.25, 0.5])
    return {"row": "filter: share kept", "closed_quarter": float(kept[s_gt <= lo].mean()),
            "open_half": float(kept[s_gt >= mid].mean()), "all": float(kept.mean())}


def label_rows(params, layer: HandLayer, table: FrameTable, kp, rows: np.ndarray, dataset: Path,
               convention: Path) -> list[dict]:
    """The labels' rows (module docstring) on the kept train frames `rows`."""
    pl = params.train.pseudo_labels
    kept = table.subset(rows)
    size = float(load_meta(dataset)["image_size"])
    offsets = load_offsets(convention) if params.train.keypoint_convention == "calibrated" else None
    out = []
    for name, k, c, off in (("labels: fit to exact 2D", kept.joints2d, np.ones((len(rows), 21), np.float32), None),
                            ("labels: fit to detections", kp.peaks[rows], kp.conf[rows], offsets)):
        fit = fit_to_keypoints(layer, k, c, kept.K, params.weights, size, iters=pl.iters, lr=pl.lr, offsets=off)
        out.append(agreement_row(name, fit.joints, kept))
    return out


def network_rows(model: Path, hand_model: Path, params, dataset: Path, keypoints: Path, train_rows: np.ndarray,
                 batch_size: int = 32, splits: Sequence[str] = ("train", "val", "test")) -> list[dict]:
    """The network's rows (module docstring); a row needs at least 8 frames."""
    system, info = load_system(model, hand_model)
    out = []
    for split in splits:
        table = load_split(dataset, split)
        kept = np.zeros(len(table), bool)
        if split == "train":
            table, kept = table.subset(train_rows), np.ones(len(train_rows), bool)
        else:
            kept[training_rows(table, load_keypoints(keypoints / f"{split}.json").reorder(table.image), params.train)] = True
        joints = predict(system, HandFrames(table, dataset, None, info["input_size"]), batch_size, "cpu")["joints"]
        subsets = (("kept", kept),) if split == "train" else (("all", np.ones_like(kept)), ("kept", kept), ("not kept", ~kept))
        for name, sel in subsets:
            if sel.sum() >= 8:
                out.append(agreement_row(f"network: {split}, {name}", joints[sel], table.subset(np.flatnonzero(sel))))
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m s2hand.evaluate.closure", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a model file: add the network's rows")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--dataset", type=Path, default=Path("outputs/dataset"))
    ap.add_argument("--keypoints", type=Path, default=Path("outputs/keypoints"))
    ap.add_argument("--hand-model", type=Path, default=Path("outputs/hand_model/MANO_RIGHT.npz"))
    ap.add_argument("--convention", type=Path, default=Path("outputs/convention/convention.json"),
                    help="the keypoint_convention stage's file (train.keypoint_convention: calibrated)")
    ap.add_argument("--frames", type=int, default=600, help="kept train frames fitted and scored (0: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = load_params(a.params)
    table = load_split(a.dataset, "train")
    kp = load_keypoints(a.keypoints / "train.json").reorder(table.image)
    kept = np.zeros(len(table), bool)
    kept[training_rows(table, kp, params.train)] = True
    rows = np.flatnonzero(kept)
    if a.frames and a.frames < len(rows):
        rows = np.sort(np.random.default_rng(params.seed).choice(rows, a.frames, replace=False))
    layer = HandLayer.from_file(a.hand_model, params.hand.num_pca_comps, params.hand.flat_hand_mean)
    result = [filter_bias(straightness(table.joints3d), kept)]
    result += label_rows(params, layer, table, kp, rows, a.dataset, a.convention)
    if a.model is not None:
        result += network_rows(a.model, a.hand_model, params, a.dataset, a.keypoints, rows)
    for r in result:
        log.info("%s", "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
    return {"rows": result}


if __name__ == "__main__":
    main()
