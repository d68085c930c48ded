"""Shared fixtures: the open hand is built once per test session (small PCA samples), a tiny
rendered dataset, and the shrunken params of the training, evaluation and search tests (`tiny_params`)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from s2hand.config import Params, validate_params

torch.set_num_threads(min(2, torch.get_num_threads()))
TEST_SEED = 0

# The shrunken config: a small random-init network on 64 px inputs, 32 px renders, every frame of
# the tiny data kept (no keypoint-count or disagreement filter). Tests merge their own settings in.
TINY_PARAMS: dict = {
    "seed": 0,
    "render": {"size": 32},
    "train": {
        "input_size": 64, "min_keypoints": 0, "max_disagreement": 0.0,
        "model": {"encoder": "lite0", "encoder_init": "random", "hg_feats": 16, "hg_stacks": 2,
                  "hg_modules": 1, "hg_depth": 2},
    },
}


def merged(base: dict, update: dict) -> dict:
    """`base` with `update` merged in: a mapping into a mapping, recursively; other values replace."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tiny_params(**sections: dict) -> Params:
    """TINY_PARAMS with `sections` merged in, validated: tiny_params(train={"runtime": {"max_steps": 2}})."""
    return validate_params(merged(TINY_PARAMS, sections))


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same global random state (torch, numpy, random), whatever ran
    before it: a test that draws unseeded numbers gives the same result alone, in the suite, or shuffled."""
    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    torch.manual_seed(TEST_SEED)  # CPU and every CUDA device


@pytest.fixture(scope="session")
def open_hand() -> dict:
    from s2hand.hand.open_hand import build_open_hand

    return build_open_hand(shape_samples=30, pose_samples=300, seed=0)


@pytest.fixture(scope="session")
def npz_path(request, tmp_path_factory):
    """A MANO-format hand model file: S2HAND_TEST_HAND_MODEL when set (a machine without `anny`,
    e.g. a GPU box running tests/test_gpu.py with the pipeline's outputs/hand_model/MANO_RIGHT.npz),
    else the open hand written by this session."""
    from s2hand.hand.mano_io import write_mano_npz

    given = os.environ.get("S2HAND_TEST_HAND_MODEL")
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(f"S2HAND_TEST_HAND_MODEL={given}: no such file")
        return Path(given)
    path = tmp_path_factory.mktemp("hand") / "MANO_RIGHT.npz"
    write_mano_npz(request.getfixturevalue("open_hand"), path)
    return path


@pytest.fixture(scope="session")
def layer(npz_path):
    from s2hand.hand.layer import HandLayer

    return HandLayer.from_file(npz_path, num_pca_comps=30, flat_hand_mean=False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_training_data(tmp_path_factory, npz_path):
    """A function frames -> (dataset root, keypoints folder, hand model path): a tiny rendered
    dataset (3 sequences, 64 px; train and val, since training validates on val) with simulated
    keypoints, built once per frame count per session."""
    built: dict[int, tuple] = {}

    def make(frames: int):
        if frames not in built:
            from s2hand.config import SyntheticParams
            from s2hand.data.synthetic.generate import generate_dataset
            from s2hand.data.table import load_split
            from s2hand.detect import detect, save_keypoints

            root = tmp_path_factory.mktemp(f"tiny_data_{frames}")
            data = root / "dataset"
            data.mkdir()
            p = SyntheticParams(sequences=3, frames=frames, wild_sequences=0, image_size=64, val_fraction=0.34,
                                test_fraction=0.0, occluder_prob=0.0, photo_backgrounds=False, supersample=1)
            generate_dataset(data, npz_path, p, seed=0, workers=1, progress=False)
            kp_dir = root / "keypoints"
            kp_dir.mkdir()
            for i, split in enumerate(("train", "val")):
                kp = detect(load_split(data, split), data, "simulated", seed=i)
                save_keypoints(kp_dir / f"{split}.json", kp.peaks, kp.conf, kp.names)
            built[frames] = (data, kp_dir, npz_path)
        return built[frames]

    return make
