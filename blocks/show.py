"""Showing samples: a grid of matplotlib axes, and each part of a sample drawn onto one."""
from __future__ import annotations

import math
from typing import Any

__all__ = ['get_grid', 'show_sample']


def get_grid(n: int, nrows: int | None = None, ncols: int | None = None, figsize: tuple | None = None,
             title: str | None = None, imsize: float = 3., return_fig: bool = False) -> Any:
    """`n` axes laid out in a grid (square-ish unless `nrows`/`ncols` say otherwise), extra axes hidden."""
    import matplotlib.pyplot as plt  # plotting is optional at import time: only loaded to draw
    n = max(n, 1)
    if nrows is None and ncols is None:
        ncols = int(math.ceil(math.sqrt(n)))
    if nrows is None:
        nrows = int(math.ceil(n / ncols))
    if ncols is None:
        ncols = int(math.ceil(n / nrows))
    figsize = figsize or (ncols * imsize, nrows * imsize)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    axs = [ax for row in axs for ax in row]
    for ax in axs[n:]:
        ax.set_axis_off()
    if title is not None:
        fig.suptitle(title, weight='bold', size=14)
    return (fig, axs[:n]) if return_fig else axs[:n]


def show_sample(sample: tuple, ctx: Any = None, **kwargs) -> Any:
    """Draw each part of `sample` that can show itself (an image, then its label as the title) on `ctx`."""
    for part in sample:
        show = getattr(part, 'show', None)
        if callable(show):
            ctx = show(ctx=ctx, **kwargs) or ctx
        elif ctx is not None:
            ctx.set_title(str(part))
    return ctx
