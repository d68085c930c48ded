"""How much articulation do an encoder's features carry? A ridge probe with 3D ground truth.

    python -m s2hand.evaluate.probe                                   # ImageNet Lite0, input 128
    python -m s2hand.evaluate.probe --model outputs/checkpoints/pretrain_3d/model.pt
    python -m s2hand.evaluate.probe --input-size 224 --out probe.json

The encoder is frozen (eval mode, no augmentation); its pooled feature (B, C), the one the geometry
head reads, is computed for every train and val frame. A ridge regression (scikit-learn) maps the
standardised features to the ground-truth finger pose (45 axis-angle numbers) and shape (10); its
strength is chosen by grouped cross-validation on the train split (whole sequences per fold, as
frames of one video are correlated), never on val. The prediction is posed by the hand layer and
scored like the training stages: PA-MPJPE on val, against the mean-pose baseline
(s2hand.model.baseline), with the same sequence-bootstrap interval.

What the number means: the probe reads articulation with exact 3D labels from every train frame,
which the self-supervised stages never see; it is a ceiling for a linear read-out of these features
and a yardstick for the heads, not a method. If even it barely beats the mean pose, the features,
not the losses, limit what any head can learn from them (docs/training.md, "Fifth session").

    python -m s2hand.evaluate.probe --heads --model outputs/checkpoints/finetune/model.pt
    python -m s2hand.evaluate.probe --heads --rotation ground_truth --keypoints outputs/kpgt

`--heads` asks the other question: with the same frozen features, does S2HAND's own keypoint
energy (E_loc, E_ori and the regularisers, the per-frame fits' energy: s2hand.evaluate.keypoint_fit)
teach a fresh geometry head articulation? It trains the head alone, on the training stages' frames
(the `train` filters) and their detected keypoints, features computed once, and scores val after
every epoch. `--rotation ground_truth` hands the head each frame's true global rotation instead of
its own, which separates what the labels teach about the fingers from what they teach about the
hand's orientation.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import roma
import torch
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from s2hand.config import LossWeights, load_params
from s2hand.data.table import FrameTable, load_meta, load_split
from s2hand.detect.keypoint_file import load_keypoints
from s2hand.hand.layer import HandLayer
from s2hand.metrics.compare import per_frame_pa_mpjpe
from s2hand.model.baseline import baseline_comparison, mean_pose_predictions
from s2hand.model.files import load_system
from s2hand.model.frames import HandFrames, apply_affine, frame_affine, training_rows
from s2hand.nets.encoder import Encoder, build_encoder, imagenet_normalize
from s2hand.nets.heads import GeometryHead, axis_angle_facing_camera

from .keypoint_fit import decode, keypoint_energy

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = (1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6)


@torch.no_grad()
def pooled_features(encoder: Encoder, dataset: HandFrames, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """The encoder's pooled feature of every frame of `dataset`, eval mode -> (N, C) float32."""
    was_training = encoder.training
    encoder.eval().to(device)
    out = []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            images = batch["image"].to(device)
            feat, _ = encoder(imagenet_normalize(images, encoder.mean, encoder.std))  # (B, C)
            out.append(feat.float().cpu().numpy())
    finally:
        encoder.train(was_training)
    return np.concatenate(out)


def pose_targets(table: FrameTable) -> np.ndarray:
    """(N, 55): ground-truth finger pose (45, axis-angle) and shape (10) of a split."""
    if table.pose is None or table.shape is None:
        raise ValueError("the probe needs ground-truth pose and shape (a split with 3D ground truth)")
    return np.concatenate([table.pose[:, 3:], table.shape], axis=1).astype(np.float64)


def fit_probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS,
              folds: int = 5) -> tuple[GridSearchCV, dict[float, float]]:
    """Ridge x (N, C) -> y (N, D) on standardised features, alpha by GroupKFold over `groups` (N,)
    (mean squared error in y). -> (fitted search, {alpha: cross-validated MSE})."""
    if len(np.unique(groups)) < folds:
        raise ValueError(f"grouped cross-validation needs at least {folds} groups, got {len(np.unique(groups))}")
    search = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": list(alphas)},
                          cv=GroupKFold(n_splits=folds), scoring="neg_mean_squared_error", refit=True)
    search.fit(x, y, groups=groups)
    cv = {float(a): float(-s) for a, s in zip(search.cv_results_["param_ridge__alpha"],
                                             search.cv_results_["mean_test_score"])}
    return search, cv


@torch.no_grad()
def pose_joints(layer: HandLayer, y: np.ndarray) -> np.ndarray:
    """Targets (N, 55) as pose_targets lays them out -> joints (N, 21, 3) of the posed hand
    (no global rotation; PA-MPJPE ignores it)."""
    dev = layer.hand_mean.device
    y_t = torch.as_tensor(y, dtype=torch.float32, device=dev)
    hand = layer(torch.zeros(len(y), 3, device=dev), y_t[:, :45], y_t[:, 45:], pca=False)
    return hand.joints.cpu().numpy()


@dataclass
class ProbeResult:
    alpha: float  # chosen by grouped cross-validation on train
    cv_mse: dict[float, float]  # alpha -> cross-validated MSE of the targets
    val_pa_mpjpe_cm: float  # the probe's prediction on val
    train_pa_mpjpe_cm: float  # ... on the train frames it was fitted to
    baseline_pa_mpjpe_cm: float  # mean-pose baseline on val
    vs_baseline: dict  # s2hand.model.baseline.baseline_comparison of the probe on val
    features: int
    train_frames: int
    val_frames: int


def run_probe(x_train: np.ndarray, train: FrameTable, x_val: np.ndarray, val: FrameTable, layer: HandLayer,
              alphas: Sequence[float] = DEFAULT_ALPHAS, folds: int = 5) -> ProbeResult:
    """Fit on (x_train, train's ground truth), score on val (module docstring)."""
    if len(x_train) != len(train) or len(x_val) != len(val):
        raise ValueError(f"{len(x_train)} / {len(x_val)} feature rows for {len(train)} / {len(val)} frames")
    search, cv = fit_probe(x_train, pose_targets(train), np.asarray(train.seq), alphas, folds)
    joints_val = pose_joints(layer, search.predict(x_val))
    joints_train = pose_joints(layer, search.predict(x_train))
    base = mean_pose_predictions(layer, train, val)["joints"]
    return ProbeResult(
        alpha=float(search.best_params_["ridge__alpha"]), cv_mse=cv,
        val_pa_mpjpe_cm=100 * float(per_frame_pa_mpjpe(joints_val, val.joints3d).mean()),
        train_pa_mpjpe_cm=100 * float(per_frame_pa_mpjpe(joints_train, train.joints3d).mean()),
        baseline_pa_mpjpe_cm=100 * float(per_frame_pa_mpjpe(base, val.joints3d).mean()),
        vs_baseline=baseline_comparison(joints_val, base, val), features=int(x_train.shape[1]),
        train_frames=len(train), val_frames=len(val))


def _code(head: GeometryHead, x: torch.Tensor, rot: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The head's code for features x (B, C) in keypoint_fit's layout; rot (B, 3) replaces its rotation."""
    g = head(x)
    return {"rot": g.rot if rot is None else rot, "pose": g.pose_pca, "shape": g.shape, "scale": g.scale,
            "trans": g.trans}


def train_head(head: GeometryHead, layer: HandLayer, weights: LossWeights, x: np.ndarray, K: np.ndarray,
               kp: np.ndarray, conf: np.ndarray, image_size: float, epochs: int, batch_size: int = 64,
               lr: float = 1e-3, seed: int = 0, rot: np.ndarray | None = None,
               on_epoch=None) -> list[float]:
    """Train `head` alone (Adam) on frozen features x (N, C) with the keypoint energy of
    keypoint_fit (kp (N, 21, 2) px and conf (N, 21) in the image of side image_size, K (N, 3, 3));
    rot (N, 3): ground-truth axis-angle used in place of the head's rotation. Batches are a
    permutation per epoch drawn from (seed, epoch); a last partial batch is dropped (BatchNorm).
    on_epoch(epoch) is called after each epoch. -> mean energy per epoch."""
    t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in
         (("x", x), ("K", K), ("kp", kp), ("conf", conf)) + ((("rot", rot),) if rot is not None else ())}
    n = len(t["x"])
    if n < batch_size:
        raise ValueError(f"train_head: {n} frames, fewer than one batch of {batch_size}")
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    energies = []
    for epoch in range(epochs):
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n))
        total = []
        for i in range(0, n - batch_size + 1, batch_size):
            b = order[i:i + batch_size]
            code = _code(head, t["x"][b], t["rot"][b] if rot is not None else None)
            loss = keypoint_energy(layer, code, t["kp"][b], t["conf"][b], t["K"][b], weights, image_size)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total.append(loss.item())
        energies.append(float(np.mean(total)))
        if on_epoch is not None:
            on_epoch(epoch)
    return energies


@torch.no_grad()
def head_joints(head: GeometryHead, layer: HandLayer, x: np.ndarray, K: np.ndarray,
                rot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode joints (N, 21, 3) and rotation (N, 3) the head predicts (rot: given instead)."""
    was = head.training
    head.eval()
    try:
        r = None if rot is None else torch.as_tensor(rot, dtype=torch.float32)
        code = _code(head, torch.as_tensor(x, dtype=torch.float32), r)
        joints = decode(layer, code, torch.as_tensor(K, dtype=torch.float32))[0]
    finally:
        head.train(was)
    return joints.numpy(), code["rot"].numpy()


def rotation_error_deg(rot: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Angle (N,) between axis-angle rotations (N, 3), degrees."""
    a, b = (roma.rotvec_to_rotmat(torch.as_tensor(v, dtype=torch.float64)) for v in (rot, gt))
    return np.degrees(roma.rotmat_geodesic_distance(a, b).numpy())


def _encoder(model: str, hand_model: str) -> Encoder:
    """Lite0 with its packaged ImageNet weights, or a model file's trained encoder."""
    if model == "imagenet":
        return build_encoder("lite0", "imagenet")
    system, _ = load_system(model, hand_model)
    return system.net.encoder


def _log_ridge(r: ProbeResult, model: str, size: int) -> None:
    c = r.vs_baseline
    log.info("ridge probe (%s, %d px; alpha %g by grouped CV): val PA-MPJPE %.3f cm, mean-pose baseline %.3f cm, "
             "difference %+.3f cm (%s); on its own train frames %.3f cm", model, size, r.alpha, r.val_pa_mpjpe_cm,
             r.baseline_pa_mpjpe_cm, c["diff_cm"], _interval(c), r.train_pa_mpjpe_cm)


def _interval(c: dict) -> str:
    return ("no interval: fewer than 8 sequences" if c["lo_cm"] is None
            else f"95% interval {c['lo_cm']:+.3f} to {c['hi_cm']:+.3f} over {c['groups']} sequences")


def unaugmented_inputs(K: np.ndarray, src_size: int, input_size: int, peaks: np.ndarray | None = None,
                       conf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """K (N, 3, 3) and keypoints (N, 21, 2) of images of side src_size as HandFrames gives them
    unaugmented at input_size (s2hand.model.frames.frame_affine); undetected keypoints (conf 0) -> 0."""
    out_K, out_kp = np.empty_like(K), None if peaks is None else np.zeros_like(peaks, dtype=np.float64)
    for i in range(len(K)):
        M, out_K[i] = frame_affine(K[i], src_size, input_size)
        if peaks is not None:
            out_kp[i] = np.where(conf[i][:, None] > 0, apply_affine(peaks[i].astype(np.float64), M), 0.0)
    return out_K, out_kp


def run_head_probe(encoder: Encoder, params_path: str, dataset: str, keypoints: str, layer: HandLayer,
                   input_size: int, epochs: int, batch_size: int, lr: float, rotation: str,
                   features_batch: int = 64) -> list[dict]:
    """The --heads question (module docstring) -> one record per epoch (epoch 0: before training)."""
    params = load_params(params_path)
    train, val = load_split(dataset, "train"), load_split(dataset, "val")
    kp = load_keypoints(Path(keypoints) / "train.json").reorder(train.image)
    rows = training_rows(train, kp, params.train)
    sub = train.subset(rows)
    x = pooled_features(encoder, HandFrames(sub, dataset, None, input_size), features_batch)
    xv = pooled_features(encoder, HandFrames(val, dataset, None, input_size), features_batch)
    src = int(load_meta(dataset)["image_size"])
    K, peaks = unaugmented_inputs(sub.K, src, input_size, kp.peaks[rows], kp.conf[rows])
    Kv, _ = unaugmented_inputs(val.K, src, input_size)
    given = rotation == "ground_truth"
    if given and (train.pose is None or val.pose is None):
        raise ValueError("--rotation ground_truth needs the splits' ground-truth poses")
    torch.manual_seed(params.seed)
    m = params.train.model
    head = GeometryHead(x.shape[1], num_pose=layer.num_pca_comps, init_rot=axis_angle_facing_camera(),
                        camera_init=m.camera_init)
    base = mean_pose_predictions(layer, train, val)["joints"]
    records: list[dict] = []

    def score(epoch: int) -> None:
        joints, rot = head_joints(head, layer, xv, Kv, val.pose[:, :3] if given else None)
        c = baseline_comparison(joints, base, val)
        rec = {"epoch": epoch, "val_pa_mpjpe_cm": 100 * float(per_frame_pa_mpjpe(joints, val.joints3d).mean()),
               "vs_baseline": c}
        if val.pose is not None and not given:
            rec["rotation_error_deg_median"] = float(np.median(rotation_error_deg(rot, val.pose[:, :3])))
        records.append(rec)
        log.info("epoch %d: val PA-MPJPE %.3f cm, minus the baseline's %+.3f cm (%s)%s", epoch, rec["val_pa_mpjpe_cm"],
                 c["diff_cm"], _interval(c), "" if "rotation_error_deg_median" not in rec
                 else f"; global rotation {rec['rotation_error_deg_median']:.1f} degrees off (median)")

    log.info("head probe: %d train frames (%s), rotation %s", len(rows), keypoints, rotation)
    score(0)
    energies = train_head(head, layer, params.weights, x, K, peaks, kp.conf[rows], input_size, epochs, batch_size,
                          lr, params.seed, train.pose[rows, :3] if given else None, on_epoch=lambda e: score(e + 1))
    for rec, e in zip(records[1:], energies):
        rec["energy"] = e
    return records


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m s2hand.evaluate.probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="imagenet",
                    help="a model file (outputs/checkpoints/<stage>/model.pt) or 'imagenet' (Lite0's packaged weights)")
    ap.add_argument("--dataset", default="outputs/dataset")
    ap.add_argument("--hand-model", default="outputs/hand_model/MANO_RIGHT.npz")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--train-frames", type=int, default=0, help="ridge: use the first N train frames (0: all)")
    ap.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--heads", action="store_true", help="train a geometry head with the keypoint energy instead")
    ap.add_argument("--keypoints", default="outputs/keypoints", help="--heads: the detections to train on")
    ap.add_argument("--params", default="params.yaml", help="--heads: loss weights, frame filters, seed")
    ap.add_argument("--rotation", choices=("predicted", "ground_truth"), default="predicted")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    encoder = _encoder(a.model, a.hand_model)
    layer = HandLayer.from_file(a.hand_model)
    if a.heads:
        result = {"model": a.model, "input_size": a.input_size, "rotation": a.rotation, "keypoints": a.keypoints,
                  "epochs": run_head_probe(encoder, a.params, a.dataset, a.keypoints, layer, a.input_size, a.epochs,
                                           a.batch_size, a.lr, a.rotation)}
    else:
        train, val = load_split(a.dataset, "train"), load_split(a.dataset, "val")
        if a.train_frames:
            train = train.subset(np.arange(min(a.train_frames, len(train))))
        t = time.time()
        feats = [pooled_features(encoder, HandFrames(s, a.dataset, None, a.input_size), a.batch_size)
                 for s in (train, val)]
        log.info("features of %d + %d frames at %d px: %.0f s", len(train), len(val), a.input_size, time.time() - t)
        r = run_probe(feats[0], train, feats[1], val, layer, a.alphas)
        _log_ridge(r, a.model, a.input_size)
        result = {"model": a.model, "input_size": a.input_size, **asdict(r)}
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1, default=float))
    return result


if __name__ == "__main__":
    main()
