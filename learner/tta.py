"""Test-time augmentation, a function of a learner: predictions averaged over passes with the training augmentations."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from blocklearn.blocks.basics import listify
from blocklearn.blocks.datablock import merge_tfms
from blocklearn.learner.predict import get_preds

__all__ = ['tta']


def tta(learn: Any, ds_idx: int = 1, dl: Any = None, n: int = 4,
        item_tfms: Callable | Sequence[Callable] | None = None, batch_tfms: Callable | Sequence[Callable] | None = None, beta: float | None = 0.25,
        use_max: bool = False) -> tuple[Any, torch.Tensor | None]:
    """`(preds, targs)` over `dl` (default `dls[ds_idx]`), in the loader's order, blending augmented passes.

    `aug` is the mean (the max if `use_max`) of `n` passes with the training-split transforms (random crops,
    flips, lighting ...); `plain` is one pass with the validation transforms. The result is
    `torch.lerp(aug, plain, beta) = (1 - beta) * aug + beta * plain`; with `beta=None` it is the pair
    `(aug, plain)`; with `use_max` it is `max(aug, plain)` and `beta` is ignored (as in fastai).
    `item_tfms`/`batch_tfms` join the loader's transforms for every pass, replacing any of the same class
    (fastai replaces the whole pipeline, which drops `ToTensor` and `Normalize`). The loaders are not modified.
    """
    if n < 1:
        raise ValueError(f'tta: n={n} augmented passes; use n >= 1 (plain predictions are get_preds()).')
    dl = learn.dls[ds_idx] if dl is None else dl
    if not hasattr(dl, 'new'):
        raise TypeError(f'tta needs a DataLoader that can re-run its transforms on the training split, got '
                        f'{type(dl).__name__}; pass dl=learn.dls.test_dl(items, with_labels=True), '
                        f'or use get_preds.')
    plain_dl = _tta_loader(dl, item_tfms, batch_tfms)
    # split_idx 0 turns on every transform restricted to training (RandTransform) and the random crops.
    aug_dl = plain_dl.new(split_idx=0)
    passes = torch.stack([get_preds(learn, dl=aug_dl)[0] for _ in range(n)])
    aug = passes.max(0)[0] if use_max else passes.mean(0)
    plain, targs = get_preds(learn, dl=plain_dl)
    if use_max:
        return torch.maximum(aug, plain), targs
    return ((aug, plain) if beta is None else torch.lerp(aug, plain, beta)), targs


def _tta_loader(dl: Any, item_tfms: Any, batch_tfms: Any) -> Any:
    """`dl` itself when it already reads the items in order with the validation transforms, else such a copy."""
    if item_tfms is None and batch_tfms is None and not dl.shuffle and not dl.drop_last and dl.split_idx == 1:
        return dl  # reuse it, and the worker processes it may already have running
    kwargs: dict[str, Any] = dict(shuffle=False, drop_last=False, split_idx=1)
    if item_tfms is not None:
        kwargs['after_item'] = merge_tfms(dl.after_item.fs, listify(item_tfms))
    if batch_tfms is not None:
        kwargs['after_batch'] = merge_tfms(dl.after_batch.fs, listify(batch_tfms))
    return dl.new(**kwargs)

