"""The global random number generators (torch, CUDA, numpy, random): seed them all, save and restore their states."""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ['set_seed', 'get_rng_state', 'set_rng_state']


def set_seed(s: int, reproducible: bool = False) -> None:
    """Seed `random`, numpy and torch (CPU and every GPU) with `s`; `reproducible` also makes cuDNN deterministic.

    Deterministic cuDNN picks the same convolution algorithms on every run, at some cost in speed."""
    torch.manual_seed(s)  # seeds the CUDA generators too, without initialising CUDA
    np.random.seed(s % (2 ** 32 - 1))
    random.seed(s)
    if reproducible:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def get_rng_state() -> dict:
    """The states of torch's CPU (and initialised CUDA) generators, numpy's and Python's `random`.

    Tensors, numbers and None only, so `torch.load(weights_only=True)` reads them back."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    state = {'torch': torch.get_rng_state(),
             'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                       'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
             'python': {'version': version, 'state': torch.tensor(mt, dtype=torch.int64), 'gauss_next': gauss_next}}
    # Asking for CUDA states would initialise CUDA; a process that never used it has nothing to save.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `get_rng_state` returned; generators missing from `state` are left as they are."""
    if 'torch' in state:
        torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        # A file saved on more GPUs than this machine has restores the devices that exist.
        for i, s in enumerate(state['cuda'][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
    if 'numpy' in state:
        s = state['numpy']
        np.random.set_state(('MT19937', s['keys'].cpu().numpy().astype(np.uint32), s['pos'], s['has_gauss'],
                             s['cached_gaussian']))
    if 'python' in state:
        s = state['python']
        random.setstate((s['version'], tuple(s['state'].tolist()), s['gauss_next']))
