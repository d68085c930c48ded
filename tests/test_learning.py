"""Learning sanity: the paper's losses, on the embedded world, overfit a handful of training frames.

A guard for the learning machinery as a whole (rendering, detection, crops, projection, losses,
optimiser): eight training frames of a small rendering of the embedded dataset (40 sequences at
128 px, the network's input at 64 px), the network trained on them alone for 80 steps with
E_S2HAND at the paper's weights and the paper's 30 pose components (the grid search's overfit
objective, s2hand.search.objective: no pseudo labels, no calibrated convention), then scored on
those frames against the mean pose. With exact 2D keypoints the 3D error must end below 80 % of
the mean pose's; with MediaPipe's, on frames that training's filters keep, below 90 %. If a change
breaks learning anywhere, this fails within a minute.
"""
from __future__ import annotations

import numpy as np
import pytest

from s2hand.config import DetectParams, SyntheticParams, validate_params

FRAMES = 8
STEPS = 80
INPUT = 64  # network input px (the images are rendered at 128): a quarter of the encoder's cost
SEQUENCES = 40  # rendered; 8 gave too few frames the filters keep to draw a representative handful
BOUND = {"exact": 0.8, "mediapipe": 0.9}  # PA-MPJPE after training, as a share of the mean pose's


@pytest.fixture(scope="module")
def embedded(npz_path, tmp_path_factory):
    """A small rendering of the embedded dataset (128 px, photographs, as the default) and two
    keypoint folders: MediaPipe's detections and the exact 2D keypoints (weak supervision)."""
    from s2hand.data.synthetic.generate import generate_dataset
    from s2hand.data.table import load_split
    from s2hand.detect import detect, save_keypoints

    root = tmp_path_factory.mktemp("learning")
    data = root / "dataset"
    data.mkdir()
    p = SyntheticParams(sequences=SEQUENCES, frames=10, wild_sequences=0, val_fraction=0.125, test_fraction=0.0)
    generate_dataset(data, npz_path, p, seed=0, workers=1, progress=False)
    train = load_split(data, "train")
    mp = DetectParams().mediapipe.model_dump()
    for name, backend, options in (("mediapipe", "mediapipe", {**mp, "workers": 1}), ("exact", "ground_truth", {})):
        kp = detect(train, data, backend, **options)
        (root / name).mkdir()
        save_keypoints(root / name / "train.json", kp.peaks, kp.conf, kp.names)
    return data, root, npz_path


def overfit(embedded, keypoints: str):
    """(PA-MPJPE on the frames, the mean pose's there), cm, after STEPS steps on FRAMES frames."""
    from s2hand.data.table import load_split
    from s2hand.search.objective import OverfitObjective
    from s2hand.model.baseline import mean_pose_baseline

    data, root, hand = embedded
    params = validate_params({"train": {"keypoint_convention": "model"}, "grid_search": {
        "subset_size": FRAMES, "epochs": STEPS, "batch_size": FRAMES, "lr": 1e-3, "input_size": INPUT,
        "render_size": 32}})
    objective = OverfitObjective.from_params(params, data, root / keypoints, hand)
    scores = objective(params.weights.model_dump())
    ctx = objective._context()
    base = mean_pose_baseline(ctx.system.layer, load_split(data, "train"), ctx.table)["pa_mpjpe_cm"]
    return scores.accuracy_error, base


@pytest.mark.parametrize("keypoints", ["exact", "mediapipe"])
def test_the_paper_losses_overfit_a_handful_of_frames(embedded, keypoints):
    acc, base = overfit(embedded, keypoints)
    assert np.isfinite(acc)
    print(f"{keypoints}: PA-MPJPE {acc:.3f} cm on the {FRAMES} frames after {STEPS} steps, mean pose {base:.3f} cm")
    assert acc < BOUND[keypoints] * base, f"{keypoints}: PA-MPJPE {acc:.3f} cm on the {FRAMES} frames, mean pose {base:.3f} cm"
