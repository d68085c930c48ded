"""What would exact labels buy at the same budget? pretrain_3d distilling the ground truth's own
pose codes instead of the pseudo labels' fits. A diagnostic: ground truth never trains the default.

    python -m s2hand.evaluate.oracle --frames kept --out outputs/oracle_kept   # the filters' frames, ~6 min
    python -m s2hand.evaluate.oracle --frames all --out outputs/oracle_all     # every train frame, ~11 min

The true finger pose of every train frame is projected onto the network's PCA basis (least
squares: the codes whose pose is nearest the truth) and written, with the true shape, in the
pseudo_labels stage's format; pretrain_3d then trains exactly as the stage does (params.yaml:
E_pseudo at `train.pseudo_labels.weight`, the keypoint energy on the detections, the same
schedule), on the frames the training filters keep (`kept`: only the labels change) or on every
train frame (`all`: the filters off, so the frames the detector misses or jitters on train too).
It prints the val PA-MPJPE and, for val and test, how far the predicted hands open and close with
the true ones (s2hand.evaluate.closure's agreement rows); the JSON goes to <out>/oracle.json.
docs/training.md ("Closed hands") compares them with the default and the ground-truth-3D reference.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import yaml

from s2hand.config import Params, validate_params
from s2hand.data.table import FrameTable, load_split
from s2hand.hand.layer import HandLayer
from s2hand.model.files import load_system
from s2hand.model.frames import HandFrames
from s2hand.model.predict import predict

from .closure import agreement_row

log = logging.getLogger("oracle")


def ground_truth_codes(layer: HandLayer, finger_pose: np.ndarray) -> np.ndarray:
    """(N, 45) true axis-angle finger pose -> (N, P) PCA codes c minimising |mean + c C - pose| (the
    layer's basis C (P, 45) and mean; exact for poses that lie in the basis)."""
    comps = layer.hand_components.double().cpu().numpy()  # (P, 45)
    mean = layer.hand_mean.double().cpu().numpy()  # (45,)
    pose = np.asarray(finger_pose, np.float64)
    if pose.ndim != 2 or pose.shape[1] != comps.shape[1]:
        raise ValueError(f"expected (N, {comps.shape[1]}) finger poses, got {pose.shape}")
    codes, *_ = np.linalg.lstsq(comps.T, (pose - mean).T, rcond=None)  # (P, N)
    return codes.T.astype(np.float32)


def write_oracle_labels(path: Path, table: FrameTable, layer: HandLayer) -> float:
    """The table's true codes and shapes as a pseudo-labels file (s2hand.train.pseudo_labels
    format: image, pose (N, P), shape (N, 10)) -> the rms (rad) of the pose the basis cannot hold."""
    if table.pose is None or table.shape is None:
        raise ValueError("oracle labels need ground-truth pose and shape (a split with 3D ground truth)")
    codes = ground_truth_codes(layer, table.pose[:, 3:])
    with torch.no_grad():
        back = layer.finger_pose(torch.as_tensor(codes)).double().cpu().numpy()  # (N, 45)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=np.asarray(table.image), pose=codes, shape=np.asarray(table.shape, np.float32))
    return float(np.sqrt(((back - table.pose[:, 3:]) ** 2).mean()))


def oracle_params(raw: dict, frames: str) -> Params:
    """params.yaml's content for the run: as it is (`kept`), or with the training filters off (`all`)."""
    if frames not in ("kept", "all"):
        raise ValueError(f"frames must be 'kept' or 'all', got {frames!r}")
    raw = json.loads(json.dumps(raw))
    if frames == "all":
        raw["train"].update(max_disagreement=0.0, min_keypoints=0, min_confidence=0.0)
    return validate_params(raw, "oracle")


def main(argv: Sequence[str] | None = None) -> dict:
    from s2hand.train import StagePaths, train_stage

    ap = argparse.ArgumentParser(prog="python -m s2hand.evaluate.oracle", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", choices=("kept", "all"), default="kept")
    ap.add_argument("--out", type=Path, required=True, help="folder for the labels, the model and oracle.json")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--dataset", type=Path, default=Path("outputs/dataset"))
    ap.add_argument("--keypoints", type=Path, default=Path("outputs/keypoints"))
    ap.add_argument("--hand-model", type=Path, default=Path("outputs/hand_model/MANO_RIGHT.npz"))
    ap.add_argument("--convention", type=Path, default=Path("outputs/convention/convention.json"))
    ap.add_argument("--splits", nargs="+", default=["val", "test"], help="splits the closure rows score")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = oracle_params(yaml.safe_load(a.params.read_text()), a.frames)
    torch.manual_seed(params.seed)
    layer = HandLayer.from_file(a.hand_model, params.hand.num_pca_comps, params.hand.flat_hand_mean)
    residual = write_oracle_labels(a.out / "labels.npz", load_split(a.dataset, "train"), layer)
    log.info("oracle labels: pose the %d-component basis cannot hold, rms %.3f rad", params.hand.num_pca_comps, residual)
    paths = StagePaths(dataset=a.dataset, keypoints=a.keypoints, hand_model=a.hand_model, model_out=a.out / "model.pt",
                       resume_dir=a.out / "resume", convention=a.convention, pseudo_labels=a.out / "labels.npz")
    summary = train_stage(params, "pretrain_3d", paths)
    system, info = load_system(a.out / "model.pt", a.hand_model)
    rows = []
    for split in a.splits:
        table = load_split(a.dataset, split)
        joints = predict(system, HandFrames(table, a.dataset, None, info["input_size"]), 32, "cpu")["joints"]
        rows.append(agreement_row(f"oracle ({a.frames}): {split}", joints, table))
    result = {"frames": a.frames, "residual_rad": residual, "train_frames": summary.get("train_frames"),
              "val": summary.get("val"), "baseline_mean_pose": summary.get("baseline_mean_pose"),
              "vs_baseline": summary.get("vs_baseline"), "closure": rows}
    for r in rows:
        log.info("%s", "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    (a.out / "oracle.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
