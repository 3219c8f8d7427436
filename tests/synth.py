"""Tiny synthetic DataLoaders and learners for the learner and callback tests, and a segmentation set on disk."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from blocklearn.learner.learner import Learner

__all__ = ['SynthDataLoaders', 'regression_dls', 'classification_dls', 'synth_learner', 'three_group_learner',
           'three_group_splitter', 'SEG_CODES', 'write_segmentation_set']


class SynthDataLoaders:
    """The DataLoaders duck type: `train`/`valid` lists of batches, `n_inp`, `loss_func`, `device`."""

    def __init__(self, train: list, valid: list, loss_func: Callable, n_inp: int = 1, c: int | None = None):
        self.train, self.valid, self.loss_func, self.n_inp, self.c = train, valid, loss_func, n_inp, c
        self.device = None

    def __getitem__(self, i: int) -> list:
        return (self.train, self.valid)[i]


def regression_dls(n_train: int = 10, n_valid: int = 2, bs: int = 16, seed: int = 0) -> SynthDataLoaders:
    """y = 2x + 3 + noise/10 on x ~ N(0, 1), as `n_train` training batches of `bs`."""
    g = torch.Generator().manual_seed(seed)

    def batches(n: int) -> list:
        out = []
        for _ in range(n):
            x = torch.randn(bs, 1, generator=g)
            out.append((x, 2 * x + 3 + 0.1 * torch.randn(bs, 1, generator=g)))
        return out
    return SynthDataLoaders(batches(n_train), batches(n_valid), loss_func=F.mse_loss)


def classification_dls(n_train: int = 10, n_valid: int = 2, bs: int = 16, n_classes: int = 3, n_features: int = 4,
                       seed: int = 0) -> SynthDataLoaders:
    """Gaussian blobs around `n_classes` well separated centres; targets are class indices."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(n_classes, n_features, generator=g)

    def batches(n: int) -> list:
        out = []
        for _ in range(n):
            y = torch.randint(0, n_classes, (bs,), generator=g)
            out.append((centres[y] + torch.randn(bs, n_features, generator=g), y))
        return out
    return SynthDataLoaders(batches(n_train), batches(n_valid), loss_func=F.cross_entropy, c=n_classes)


def synth_learner(n_train: int = 10, lr: float = 1e-3, n_valid: int = 2, **kwargs) -> Learner:
    """A linear-regression Learner with `n_train` batches an epoch (no progress bar output to clutter tests)."""
    torch.manual_seed(0)
    return Learner(regression_dls(n_train, n_valid), nn.Linear(1, 1), lr=lr, **kwargs)


def three_group_splitter(model: nn.Sequential) -> list[list[nn.Parameter]]:
    """Body, middle and head of `three_group_learner`'s model as three parameter groups."""
    return [list(model[0].parameters()) + list(model[1].parameters()), list(model[3].parameters()),
            list(model[5].parameters())]


def three_group_learner(n_train: int = 10, **kwargs) -> Learner:
    """A classifier with a BatchNorm and three parameter groups, for freezing and discriminative lrs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    return Learner(classification_dls(n_train), model, splitter=three_group_splitter, **kwargs)


SEG_CODES = np.array(['background', 'square', 'disc'])  # as np.loadtxt(path/'codes.txt', dtype=str) gives them
_SEG_COLOURS = np.array([[0, 0, 0], [230, 20, 20], [20, 20, 230]], np.int16)  # background is noise below 60


def write_segmentation_set(root: Path, n: int = 16, seed: int = 0, size: tuple[int, int] = (48, 64)) -> Path:
    """`n` noise images (h, w = `size`) with a red 20x26 rectangle (code 1) and a blue disc (code 2), their masks
    labels/{stem}_P.png and codes.txt, laid out as CamVid; returns `root`."""
    h, w = size
    rng = np.random.default_rng(seed)
    (root / 'images').mkdir(parents=True)
    (root / 'labels').mkdir()
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        m = np.zeros((h, w), np.uint8)
        y0, x0 = rng.integers(2, h - 24), rng.integers(2, w - 30)
        m[y0:y0 + 20, x0:x0 + 26] = 1
        cy, cx, r = rng.integers(10, h - 10), rng.integers(10, w - 10), rng.integers(6, 10)
        m[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2
        img = np.where(m[..., None] > 0, _SEG_COLOURS[m] + rng.integers(-15, 15, (h, w, 3)),
                       rng.integers(0, 60, (h, w, 3)))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / 'images' / f'scene{i:02d}.png')
        Image.fromarray(m).save(root / 'labels' / f'scene{i:02d}_P.png')
    (root / 'codes.txt').write_text('\n'.join(SEG_CODES) + '\n')
    return root
