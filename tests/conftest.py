"""Shared fixtures: the open hand is built once per test session (small PCA samples)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def open_hand() -> dict:
    from s2hand.hand.open_hand import build_open_hand

    return build_open_hand(shape_samples=30, pose_samples=300, seed=0)


@pytest.fixture(scope="session")
def npz_path(open_hand, tmp_path_factory):
    from s2hand.hand.mano_io import write_mano_npz

    path = tmp_path_factory.mktemp("hand") / "MANO_RIGHT.npz"
    write_mano_npz(open_hand, path)
    return path


@pytest.fixture(scope="session")
def layer(npz_path):
    from s2hand.hand.layer import HandLayer

    return HandLayer.from_file(npz_path, num_pca_comps=30, flat_hand_mean=False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
