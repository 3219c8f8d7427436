"""Showing samples: a grid of matplotlib axes, and each part of a sample drawn onto one."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .printable import printable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ['subplots', 'get_grid', 'show_sample']

# Height added for a title over a figure of small cells, which would otherwise crowd the top row.
_TITLE_ROOM = 0.6


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple | None = None, imsize: float = 3,
             suptitle: str | None = None, **kwargs) -> tuple[Figure, np.ndarray]:
    """`plt.subplots` for images: `(fig, axs)` with cells of `imsize` inches unless `figsize` is given.

    `axs` is always an array, even of one Axes (so `axs[0]` works); `kwargs` go to `plt.subplots` (`squeeze=False`
    for a 2-d array whatever the shape)."""
    import matplotlib.pyplot as plt  # imported on first use: training never needs it
    if figsize is None:
        room = _TITLE_ROOM if suptitle is not None and imsize <= 2 else 0
        figsize = (ncols * imsize, nrows * imsize + room)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize, **kwargs)
    if suptitle is not None:
        fig.suptitle(printable(suptitle))
    if not isinstance(axs, np.ndarray):
        axs = np.array([axs], dtype=object)
    return fig, axs


def get_grid(n: int, nrows: int | None = None, ncols: int | None = None, figsize: tuple | None = None,
             double: bool = False, title: str | None = None, return_fig: bool = False, imsize: float = 3.,
             **kwargs) -> Any:
    """A figure with a grid for `n` images (about square unless `nrows`/`ncols` say); unused cells are hidden.

    `double` gives each image two side-by-side cells (image and prediction); `imsize` inches per cell by default.
    """
    if nrows:
        ncols = ncols or math.ceil(n / nrows)
    elif ncols:
        nrows = math.ceil(n / ncols)
    else:
        nrows = max(1, int(math.sqrt(n)))
        ncols = math.ceil(n / nrows)
    ncols = max(1, ncols)
    if double:
        ncols, n = ncols * 2, n * 2
    fig, axs = subplots(nrows, ncols, figsize=figsize, imsize=imsize, squeeze=False, **kwargs)
    axs = list(axs.flatten())
    for ax in axs[n:]:
        ax.set_axis_off()
    if title is not None:
        fig.suptitle(printable(title), weight='bold', size=14)
    return (fig, axs[:n]) if return_fig else axs[:n]


def show_sample(sample: tuple, ctx: Any = None, **kwargs) -> Any:
    """Draw each part of `sample` that can show itself (an image, then its label as the title) on `ctx`."""
    for part in sample:
        show = getattr(part, 'show', None)
        if callable(show):
            ctx = show(ctx=ctx, **kwargs) or ctx
        elif ctx is not None:
            ctx.set_title(printable(part))
    return ctx
