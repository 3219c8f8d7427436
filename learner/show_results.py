"""`show_results`, a function of a learner: a batch of inputs drawn with their actual and predicted labels."""
from __future__ import annotations

from typing import Any

import torch

from blocklearn.blocks.show import get_grid, show_sample
from blocklearn.learner.predict import decode_target, get_preds

__all__ = ['show_results']


def show_results(learn: Any, ds_idx: int = 1, dl: Any = None, max_n: int = 9, shuffle: bool = True,
                 nrows: int | None = None, ncols: int | None = None, figsize: tuple | None = None,
                 **kwargs) -> list:
    """Draw up to `max_n` items of one batch of `dl` (default `dls[ds_idx]`), titled `actual` over `predicted`.

    The prediction is green when it equals the category target, red when not. Returns the axes."""
    dl = learn.dls[ds_idx] if dl is None else dl
    b = dl.new(shuffle=shuffle).one_batch()
    b = tuple(o[:max_n] for o in b)  # predict only what will be drawn
    n_inp = getattr(dl, 'n_inp', 1)
    _, _, decoded = get_preds(learn, dl=[b], with_decoded=True)
    samples = dl.decode_batch(b, max_n=max_n)
    targs = b[n_inp] if len(b) > n_inp else None
    axs = get_grid(len(samples), nrows=nrows, ncols=ncols, figsize=figsize)
    for i, (sample, ax) in enumerate(zip(samples, axs)):
        show_sample(sample[:n_inp], ctx=ax, **kwargs)
        pred = decode_target(learn, decoded[i])
        if targs is None:
            ax.set_title(str(pred))
            continue
        actual = sample[n_inp]
        color = None if torch.is_floating_point(targs) else ('green' if str(pred) == str(actual) else 'red')
        ax.set_title(f'{actual}\n{pred}', color=color)
    return axs
