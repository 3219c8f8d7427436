"""`plot_function`: the graph of a function of one variable, as fastbook draws x**2 and the sigmoid."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

__all__ = ['plot_function']


def plot_function(f: Callable[[torch.Tensor], Any], tx: str | None = None, ty: str | None = None,
                  title: str | None = None, min: float = -2, max: float = 2, figsize: tuple = (6, 4)) -> None:
    """Draw `f` over 100 points from `min` to `max` on a new figure, with axis labels `tx`, `ty` and `title`.

    `f` gets the points as one float tensor (`torch.sigmoid`, `lambda x: x**2`); returns None as fastai does, so a
    notebook cell shows the plot alone (`plt.gca()` is its Axes)."""
    import matplotlib.pyplot as plt  # imported on first use: training never needs it
    x = torch.linspace(min, max, 100)
    y = f(x)
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu()  # a function of parameters being trained carries their graph
    y = np.asarray(y, dtype=np.float64)
    if y.size not in (1, x.numel()):
        raise ValueError(f'plot_function: {_name(f)} gave shape {tuple(y.shape)} for the {x.numel()} points x; it must '
                         f'give one value per point (or one number), e.g. lambda x: x**2.')
    # a constant function (`lambda x: 1`) gives one number: draw it over every x
    y = np.broadcast_to(y.reshape(-1) if y.size > 1 else y, x.shape)
    _, ax = plt.subplots(figsize=figsize)
    ax.plot(x.numpy(), y)
    if tx is not None:
        ax.set_xlabel(tx)
    if ty is not None:
        ax.set_ylabel(ty)
    if title is not None:
        ax.set_title(title)


def _name(f: Callable) -> str:
    return getattr(f, '__qualname__', None) or getattr(f, '__name__', None) or repr(f)
