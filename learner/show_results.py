"""`show_results`, a function of a learner: a batch of inputs drawn with their actual and predicted labels."""
from __future__ import annotations

from typing import Any

import torch

from blocklearn.blocks.printable import printable
from blocklearn.blocks.show import get_grid, show_sample
from blocklearn.learner.predict import decode_target, get_preds

__all__ = ['show_results']


def show_results(learn: Any, ds_idx: int = 1, dl: Any = None, max_n: int = 9, shuffle: bool = True,
                 nrows: int | None = None, ncols: int | None = None, figsize: tuple | None = None,
                 **kwargs) -> list:
    """Draw up to `max_n` items of one batch of `dl` (default `dls[ds_idx]`), titled `actual` over `predicted`.

    The prediction is green when it equals the category target, red when not. A target that draws itself on the
    image (key points) is shown as fastai does: image and target, then image and prediction. Returns the axes."""
    dl = learn.dls[ds_idx] if dl is None else dl
    b = dl.new(shuffle=shuffle).one_batch()
    b = tuple(o[:max_n] for o in b)  # predict only what will be drawn
    n_inp = getattr(dl, 'n_inp', 1)
    _, _, decoded = get_preds(learn, dl=[b], with_decoded=True)
    samples = dl.decode_batch(b, max_n=max_n)
    targs = b[n_inp] if len(b) > n_inp else None
    if targs is not None and samples and _drawn_on_image(samples[0][n_inp]):
        return _show_on_images(learn, b, samples, decoded, n_inp, nrows, ncols, figsize, **kwargs)
    axs = get_grid(len(samples), nrows=nrows, ncols=ncols, figsize=figsize)
    for i, (sample, ax) in enumerate(zip(samples, axs)):
        show_sample(sample[:n_inp], ctx=ax, **kwargs)
        pred = _title(decode_target(learn, decoded[i]))
        if targs is None:
            ax.set_title(pred)
            continue
        actual = sample[n_inp]
        # a label, or a list of labels (multi-label), can be right or wrong; a regression value is neither
        judged = isinstance(actual, (list, tuple)) or not torch.is_floating_point(targs)
        actual = _title(actual)
        # No color for a regression value: matplotlib refuses color=None.
        ax.set_title(f'{actual}\n{pred}', **({'color': 'green' if pred == actual else 'red'} if judged else {}))
    return axs


def _title(o: Any) -> str:
    """A decoded target as a title: a label list (multi-label) as `label1;label2`, as show_batch writes it."""
    return printable(';'.join(map(str, o)) if isinstance(o, (list, tuple)) else o)  # a non-UTF-8 name can't be drawn


def _drawn_on_image(target: Any) -> bool:
    # A decoded label is text (a title); a decoded tensor that can show itself (points) draws over the image.
    return isinstance(target, torch.Tensor) and callable(getattr(target, 'show', None))


def _show_on_images(learn: Any, b: tuple, samples: list, decoded: torch.Tensor, n_inp: int, nrows: int | None,
                    ncols: int | None, figsize: tuple | None, **kwargs) -> list:
    """Each item twice, side by side: its inputs with the target, then with the prediction, under one title; one
    item a row unless `nrows`/`ncols` say otherwise, as fastai lays out masks and points."""
    if nrows is None and ncols is None:
        ncols = 1
    axs = get_grid(len(samples), nrows=nrows, ncols=ncols, figsize=figsize, double=True, title='Target/Prediction')
    for i, sample in enumerate(samples):
        pred = decode_target(learn, decoded[i], inputs=tuple(x[i:i + 1] for x in b[:n_inp]))
        show_sample(sample[:n_inp + 1], ctx=axs[2 * i], **kwargs)
        show_sample((*sample[:n_inp], pred), ctx=axs[2 * i + 1], **kwargs)
    return axs
