"""The whole evaluation of the `evaluate` stage, as a library call (no DVC or MLflow here).

    paths = EvaluatePaths(dataset="outputs/dataset", keypoints="outputs/keypoints",
                          hand_model="outputs/hand_model/MANO_RIGHT.npz",
                          checkpoints={"s2hand": ".../finetune/model.pt", "s2hand_v": ".../finetune_video/model.pt"},
                          reports="reports")
    summary = run_evaluation(params.evaluate, params.video, paths)

Evaluates every checkpoint (S2HAND(V)'s camera from video.camera) and the mean-pose baseline on
`evaluate.split` and writes
    reports/metrics.json            numbers only (DVC metrics; keypoint_fit: s2hand.evaluate.keypoint_fit;
                                    vs_mean_pose: each model against the baseline, frame by frame;
                                    s2hand_v_vs_s2hand: S2HAND(V) against S2HAND)
    reports/verdicts.json           the same comparisons, each with its "verdict" on the paper's
                                    direction: held / reversed / not measurable (the README's data)
    reports/README.md               tables of the paper's kind (s2hand.evaluate.report)
    reports/evaluate/pck_joints.csv, pck_verts.csv, within_2d.csv   curves (DVC plots)
    reports/evaluate/pck.png, qualitative.png
Everything is computed first and written last: reports/evaluate/ is replaced as one folder
(s2hand.io.atomic_dir), metrics.json and README.md each atomically, so a failure leaves the old
report in place, never half a new one.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from s2hand.config import EvaluateParams, LossWeights, TrainParams, VideoParams
from s2hand.data.table import load_split
from s2hand.hand.layer import HandLayer
from s2hand.io import atomic_dir, atomic_file
from s2hand.metrics.articulation import articulation_agreement, straightness
from s2hand.metrics.compare import paired_comparison, verdict
from s2hand.metrics.video import frame_accelerations
from s2hand.model.baseline import baseline_comparison
from s2hand.model.device import pick_device
from s2hand.model.files import load_system
from s2hand.model.frames import HandFrames, training_rows
from s2hand.model.scores import time_runs

from .figures import hand_rows, pck_figure, png_bytes, qualitative_figure
from .report import MODEL_LABELS, metrics_json, numbers_only, readme, write_curves
from .run import (
    EvalResult,
    describe_split,
    evaluate_detector,
    evaluate_keypoint_fit,
    evaluate_mean_pose,
    evaluate_model,
    ground_truth_smoothness,
    load_eval_split,
)


def judged(c: dict, paper_lower: bool = True) -> dict:
    """A paired comparison (keys "lo"/"hi" or "lo_cm"/"hi_cm") with its "verdict" on the paper's
    direction (s2hand.metrics.compare.verdict): paper_lower, the paper's method has the lower value."""
    lo, hi = c.get("lo_cm", c.get("lo")), c.get("hi_cm", c.get("hi"))
    return {**c, "verdict": verdict({"lo": lo, "hi": hi}, paper_lower)}


def video_vs_image(joints_v: np.ndarray, joints: np.ndarray, table) -> dict[str, dict]:
    """S2HAND(V) minus S2HAND on the same frames, each with its 95 % sequence-bootstrap interval
    (s2hand.metrics.compare): "pa_mpjpe" frame by frame (cm), "acc_mm_frame2" per inner frame of
    each time run (s2hand.metrics.video.frame_accelerations)."""
    order, run = time_runs(table)
    a_v, groups = frame_accelerations(joints_v[order], run)
    a, _ = frame_accelerations(joints[order], run)
    seq_of_run = dict(zip(run.tolist(), np.asarray(table.seq)[order].tolist()))
    acc = paired_comparison(a_v, a, np.asarray([seq_of_run[r] for r in groups.tolist()]))  # resampling sequences
    return {"pa_mpjpe": judged(baseline_comparison(joints_v, joints, table)),  # the paper: S2HAND(V) lower on both
            "acc_mm_frame2": judged({**acc, "s2hand_v": float(a_v.mean()), "s2hand": float(a.mean())})}


SUBDIR = "evaluate"
CURVE_FILES = ("pck_joints.csv", "pck_verts.csv", "within_2d.csv")


@dataclasses.dataclass
class EvaluatePaths:
    dataset: Path
    keypoints: Path | None
    hand_model: Path
    checkpoints: dict[str, Path]  # model name ("s2hand", "s2hand_v") -> model.pt
    reports: Path  # folder of metrics.json, README.md and evaluate/

    def __post_init__(self) -> None:
        self.dataset, self.hand_model, self.reports = Path(self.dataset), Path(self.hand_model), Path(self.reports)
        self.keypoints = None if self.keypoints is None else Path(self.keypoints)
        self.checkpoints = {k: Path(v) for k, v in self.checkpoints.items()}


def qualitative_indices(n_frames: int, count: int, order_by: np.ndarray | None = None) -> np.ndarray:
    """`count` frames spread evenly over the split (the middle of each of `count` equal parts); with
    order_by (N,), the ground truth's finger straightness, the frames at evenly spaced ranks of it,
    from the most closed hand to the most open one."""
    count = min(count, n_frames)
    if order_by is None:
        return ((np.arange(count) + 0.5) * n_frames / max(count, 1)).astype(int)
    ranks = np.round(np.linspace(0, n_frames - 1, count)).astype(int)
    return np.argsort(np.asarray(order_by), kind="stable")[ranks]


def articulation_metrics(joints: dict[str, np.ndarray], table) -> dict[str, dict]:
    """Does each model's articulation follow the hands (s2hand.metrics.articulation)? joints: model
    name -> (N, 21, 3) predictions on `table`'s frames -> {name: articulation_agreement's dict}."""
    gt = straightness(table.joints3d)
    return {name: articulation_agreement(straightness(j), gt, np.asarray(table.seq)) for name, j in joints.items()}


def run_evaluation(ep: EvaluateParams, video: VideoParams, paths: EvaluatePaths,
                   weights: LossWeights | None = None, train_params: TrainParams | None = None,
                   offsets: np.ndarray | None = None) -> dict:
    """Evaluate, then write the report files (module docstring). -> {"metrics", "setup", "files"}.
    weights: the energy of the keypoint fits (evaluate.keypoint_fit_iters > 0; default LossWeights());
    train_params: training's frame filters, which split the fits to the detections into the frames
    they keep and those they drop (None: no split); offsets: the detector's keypoint convention
    those fits use (s2hand.hand.convention; None: the model's keypoints)."""
    t0 = time.perf_counter()
    device = pick_device(ep.device)
    split = load_eval_split(paths.dataset, ep.split, paths.keypoints)
    results: dict[str, EvalResult] = {}
    blocks: dict[str, np.ndarray] = {}
    checkpoints: dict[str, tuple[str, int]] = {}
    layer = None
    has_3d = split.table.joints3d is not None
    idx = qualitative_indices(len(split.table), ep.qualitative_frames,
                              straightness(split.table.joints3d) if has_3d else None)
    for name, path in paths.checkpoints.items():
        ortho = name == "s2hand_v" and video.camera == "orthographic"
        system, info = load_system(path, paths.hand_model, orthographic=ortho, device=device)
        results[name] = evaluate_model(system, split, ep.batch_size, video.n, video.interval, device)
        if len(idx):
            ds = HandFrames(split.table, split.root, None, system.input_size)
            blocks[name] = hand_rows(system, ds, idx, ep.qualitative_size, MODEL_LABELS.get(name, name), device)
        checkpoints[name] = (path.as_posix(), info["step"])
        layer = system.layer
    if layer is None:
        layer = HandLayer.from_file(paths.hand_model)
    train = load_split(paths.dataset, "train")
    results["mean_pose"] = evaluate_mean_pose(layer.cpu(), train, split)
    detector = evaluate_detector(split)
    kept = (training_rows(split.table, split.keypoints, train_params)
            if train_params is not None and split.keypoints is not None else None)
    fits = (evaluate_keypoint_fit(layer.cpu(), train, split, weights or LossWeights(), ep.keypoint_fit_iters,
                                  kept, offsets) if ep.keypoint_fit_iters else {})
    base_joints = results["mean_pose"].preds["joints"]
    vs_mean_pose = {name: judged(baseline_comparison(results[name].preds["joints"], base_joints, split.table))
                    for name in paths.checkpoints}
    metrics = metrics_json(results, detector, ground_truth_smoothness(split), len(split.table), fits, vs_mean_pose)
    if has_3d:
        metrics["articulation"] = articulation_metrics({k: r.preds["joints"] for k, r in results.items()}, split.table)
    verdicts: dict = {"vs_mean_pose": vs_mean_pose}  # the comparisons with their verdicts: reports/verdicts.json
    if {"s2hand", "s2hand_v"} <= set(results):
        verdicts["s2hand_v_vs_s2hand"] = video_vs_image(results["s2hand_v"].preds["joints"],
                                                        results["s2hand"].preds["joints"], split.table)
        metrics["s2hand_v_vs_s2hand"] = {k: numbers_only(c) for k, c in verdicts["s2hand_v_vs_s2hand"].items()}
    setup = {**describe_split(split), "checkpoints": checkpoints, "temporal_loss": video.temporal_loss,
             "ts": video.ts, "camera": video.camera}

    # everything computed: now write
    curves = {k: r.curves for k, r in results.items()}
    pck_png = pck_figure(curves, split.px_thresholds, None if detector is None else detector.curves["within_px"],
                         MODEL_LABELS)
    out_dir = paths.reports / SUBDIR
    with atomic_dir(out_dir) as tmp:
        write_curves(tmp, results, detector, split.px_thresholds)
        (tmp / "pck.png").write_bytes(pck_png)
        if blocks:
            (tmp / "qualitative.png").write_bytes(png_bytes(qualitative_figure(blocks)))
        for f in (tmp, *tmp.iterdir()):  # mkdtemp / mkstemp make them private; reports are for reading
            f.chmod(0o755 if f.is_dir() else 0o644)
    seconds = time.perf_counter() - t0
    setup["seconds"] = seconds
    with atomic_file(paths.reports / "metrics.json") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")
    with atomic_file(paths.reports / "verdicts.json") as f:
        json.dump(verdicts, f, indent=2, sort_keys=True)
        f.write("\n")
    with atomic_file(paths.reports / "README.md") as f:
        f.write(readme({**metrics, **verdicts}, setup))
    files = [paths.reports / "metrics.json", paths.reports / "verdicts.json", paths.reports / "README.md",
             *sorted(out_dir.iterdir())]
    return {"metrics": metrics, "verdicts": verdicts, "setup": setup, "files": files}
