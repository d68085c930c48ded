"""The autouse fixture in conftest.py: every test starts from the same global random state."""
import random

import numpy as np
import torch

from tests.conftest import TEST_SEED


def _draw() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()


def _reference() -> tuple:
    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    torch.manual_seed(TEST_SEED)
    return _draw()


def test_first_test_starts_seeded():
    drawn = _draw()
    assert drawn == _reference()


def test_second_test_starts_seeded_after_the_first_drew():
    drawn = _draw()
    assert drawn == _reference()
