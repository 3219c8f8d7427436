"""Showing samples: a grid of matplotlib axes, and each part of a sample drawn onto one."""
from __future__ import annotations

import math
from typing import Any

from .printable import printable

__all__ = ['get_grid', 'show_sample']


def get_grid(n: int, nrows: int | None = None, ncols: int | None = None, figsize: tuple | None = None,
             double: bool = False, title: str | None = None, return_fig: bool = False, imsize: float = 3.,
             **kwargs) -> Any:
    """A figure with a grid for `n` images (about square unless `nrows`/`ncols` say); unused cells are hidden.

    `double` gives each image two side-by-side cells (image and prediction); `imsize` inches per cell by default.
    """
    import matplotlib.pyplot as plt  # imported on first use, like show_image
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
    if figsize is None:
        figsize = (ncols * imsize, nrows * imsize)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kwargs)
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
