"""get_rng_state / set_rng_state: every global generator replays, through a weights_only file."""
import random

import numpy as np
import torch

from blocklearn.blocks.rng import get_rng_state, set_rng_state
from blocklearn.blocks.safe_io import atomic_save, safe_load


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), [random.random() for _ in range(3)], \
        random.gauss(0, 1)


def test_restored_state_replays_every_generator(tmp_path):
    np.random.randn(), random.gauss(0, 1)          # leave cached gaussians in both states
    state = get_rng_state()
    first = draws()
    atomic_save(state, tmp_path / 'rng.pth')
    set_rng_state(safe_load(tmp_path / 'rng.pth'))
    assert draws() == first


def test_missing_generators_are_left_alone():
    torch.manual_seed(0)
    state = {'torch': get_rng_state()['torch']}
    expected = torch.rand(2)
    before = random.getstate()
    set_rng_state(state)
    assert torch.equal(torch.rand(2), expected)
    assert random.getstate() == before
