"""vision_learner and unet_learner: a Learner for a pretrained (or fresh) vision body with a new head (a classifier,
or a U-Net decoder), frozen and normalised."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch.nn as nn

from blocklearn.blocks.recipe import RecipeError
from blocklearn.learner.export import model_recipe
from blocklearn.learner.learner import Learner
from blocklearn.learner.optimizer import Adam

from .models import Arch, Cut, Weights, arch_meta, create_vision_model
from .normalize import Normalize
from .timm_models import create_timm_model, timm_meta
from .unet import create_unet_model

__all__ = ['vision_learner', 'cnn_learner', 'unet_learner']


def vision_learner(dls: Any, arch: Arch | str, normalize: bool = True, n_out: int | None = None,
                   pretrained: bool = True, weights: Weights = None, loss_func: Callable | None = None,
                   opt_func: Callable = Adam, lr: float | slice = 1e-3, splitter: Callable | None = None,
                   cbs: Iterable | None = None,
                   metrics: Iterable | Callable | None = None, path: str | Path | None = None,
                   model_dir: str | Path = 'models', wd: float | None = None, wd_bn_bias: bool = False,
                   train_bn: bool = True, moms: tuple[float, ...] = (0.95, 0.85, 0.95), cut: Cut = None,
                   init: Callable | None = nn.init.kaiming_normal_, custom_head: nn.Module | None = None,
                   concat_pool: bool = True, lin_ftrs: Sequence[int] | None = None,
                   ps: float | Sequence[float] = 0.5, first_bn: bool = True, bn_final: bool = False,
                   lin_first: bool = False, y_range: tuple[float, float] | None = None, n_in: int = 3) -> Learner:
    """A Learner on `arch`'s body and a new head with `n_out` (default `dls.c`) outputs; frozen when pretrained.

    With pretrained weights (`pretrained` or `weights=`) and `normalize`, the arch's stats are added once to `dls`.
    `arch` is a model function (resnet34) or the name of a timm model ('convnext_tiny', with `blocklearn[timm]`).
    """
    # A name is timm's: its body, its stats, its weights; the recipe keeps the name as data.
    factory = create_timm_model if isinstance(arch, str) else create_vision_model
    return _learner('vision_learner', dls, arch, factory, n_out, normalize, pretrained, weights, splitter,
                    dict(loss_func=loss_func, opt_func=opt_func, lr=lr, cbs=cbs, metrics=metrics, path=path,
                         model_dir=model_dir, wd=wd, wd_bn_bias=wd_bn_bias, train_bn=train_bn, moms=moms),
                    cut=cut, n_in=n_in, init=init, custom_head=custom_head, concat_pool=concat_pool,
                    lin_ftrs=lin_ftrs, ps=ps, first_bn=first_bn, bn_final=bn_final, lin_first=lin_first,
                    y_range=y_range)


# fastai's name before 2.7; the same function, so course code runs unchanged.
cnn_learner = vision_learner


def unet_learner(dls: Any, arch: Arch | str, normalize: bool = True, n_out: int | None = None,
                 pretrained: bool = True, weights: Weights = None, config: dict | None = None,
                 loss_func: Callable | None = None, opt_func: Callable = Adam, lr: float | slice = 1e-3,
                 splitter: Callable | None = None, cbs: Iterable | None = None,
                 metrics: Iterable | Callable | None = None, path: str | Path | None = None,
                 model_dir: str | Path = 'models', wd: float | None = None, wd_bn_bias: bool = False,
                 train_bn: bool = True, moms: tuple[float, ...] = (0.95, 0.85, 0.95), **kwargs: Any) -> Learner:
    """A Learner on a DynamicUnet of `arch` with `n_out` (default `dls.c`, the mask codes) output channels.

    Frozen (only the decoder trains) and normalised as vision_learner. `kwargs` go to create_unet_model (img_size,
    cut, n_in, y_range, last_cross, blur, blur_final, self_attention); img_size defaults to one batch's size, and the
    model takes inputs of any size whatever it is."""
    if config:
        warnings.warn('unet_learner: config= is deprecated (as in fastai); pass its keys as arguments.',
                      DeprecationWarning, stacklevel=2)
        kwargs = {**config, **kwargs}
    if kwargs.get('img_size') is None:
        kwargs['img_size'] = _batch_size(dls)
    return _learner('unet_learner', dls, arch, create_unet_model, n_out, normalize, pretrained, weights, splitter,
                    dict(loss_func=loss_func, opt_func=opt_func, lr=lr, cbs=cbs, metrics=metrics, path=path,
                         model_dir=model_dir, wd=wd, wd_bn_bias=wd_bn_bias, train_bn=train_bn, moms=moms),
                    **kwargs)


def _learner(who: str, dls: Any, arch: Arch | str, factory: Callable, n_out: int | None, normalize: bool,
             pretrained: bool, weights: Weights, splitter: Callable | None, learner_kwargs: dict,
             **model_kwargs: Any) -> Learner:
    """What vision_learner and unet_learner share: size the model from `dls.c`, build it with `factory`, add the
    weights' stats, wrap it in a Learner split as the arch says, record the export recipe, freeze if pretrained."""
    meta = timm_meta(arch) if isinstance(arch, str) else arch_meta(arch)
    if n_out is None:
        n_out = getattr(dls, 'c', None)
        if n_out is None:
            raise ValueError(f'{who}: `dls` has no `c` (the number of classes, or of mask codes) to size the model '
                             f'with; pass n_out=<number of outputs>.')
    model = factory(arch, n_out, pretrained=pretrained, weights=weights, **model_kwargs)
    has_weights = pretrained or weights is not None
    if normalize and has_weights:
        _add_norm(dls, meta['stats'], model_kwargs.get('n_in', 3), caller=who)
    learn = Learner(dls, model, splitter=meta['split'] if splitter is None else splitter, **learner_kwargs)
    try:
        # The weights travel in the export: the recipe rebuilds the same shapes with no download and no init.
        learn.model_recipe = model_recipe(factory, arch=arch, n_out=n_out, pretrained=False,
                                          **{**model_kwargs, 'init': None})
    except RecipeError:
        learn.model_recipe = None  # a custom head or cut from __main__: load_learner(..., model=...) rebuilds it
    if has_weights:
        learn.freeze()
    return learn


def _add_norm(dls: Any, stats: tuple[Sequence[float], Sequence[float]] | None, n_in: int,
              caller: str = 'vision_learner') -> None:
    """Add `Normalize.from_stats(*stats)` to each loader's batch transforms that has no Normalize yet."""
    if stats is None or len(stats[0]) != n_in:
        # Pretrained stats are per input channel: with other channels there is nothing faithful to add.
        return
    loaders = [dl for dl in getattr(dls, 'loaders', []) if hasattr(getattr(dl, 'after_batch', None), 'add')]
    if not loaders:
        warnings.warn(f'{caller}: these dls have no batch-transform pipeline to add the pretrained '
                      "weights' Normalize to; normalise the inputs yourself or pass normalize=False.",
                      stacklevel=3)
        return
    norm = Normalize.from_stats(*stats)
    for dl in loaders:
        if not any(isinstance(t, Normalize) for t in dl.after_batch):
            dl.add_tfms([norm], 'after_batch')


def _batch_size(dls: Any) -> tuple[int, int] | None:
    """The height and width of one training batch's inputs (fastai's img_size); None for dls that cannot give one."""
    one_batch = getattr(getattr(dls, 'train', None), 'one_batch', None)
    if one_batch is None:
        return None
    x = one_batch()[0]
    return (int(x.shape[-2]), int(x.shape[-1])) if getattr(x, 'ndim', 0) >= 3 else None
