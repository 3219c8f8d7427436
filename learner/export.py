"""Export a Learner as its weights plus a JSON recipe of the model, data transforms and loss; `load_learner`
(learner/load.py) reads it back. The recipe names classes and functions, never pickles them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from blocklearn.blocks.datasets import Datasets
from blocklearn.blocks.recipe import RecipeError, encode_value, loss_recipe, tfm_recipe, to_ref
from blocklearn.blocks.safe_io import atomic_save
from blocklearn.blocks.transform import Transform

__all__ = ['export_learner', 'model_recipe', 'ExportError', 'EXPORT_FORMAT', 'EXPORT_VERSION']

EXPORT_FORMAT = 'blocklearn.export'
EXPORT_VERSION = 1


class ExportError(RecipeError):
    """The learner cannot be exported, or a file is not an export this version can read."""


def model_recipe(factory: Callable[..., nn.Module], **kwargs: Any) -> dict[str, Any]:
    """How to rebuild a model: `factory(**kwargs)`, written as a ref and JSON arguments (what vision_learner records)."""
    return {'factory': to_ref(factory, 'model factory'), 'kwargs': encode_value(kwargs)}


def export_learner(learn: Any, fname: str | Path = 'export.pkl') -> Path:
    """Write `learn`'s weights and a JSON recipe of its model, data and loss to `learn.path/fname`, atomically."""
    recipe = {'model': getattr(learn, 'model_recipe', None), 'model_class': _class_name(learn.model),
              'data': _data_recipe(learn.dls), 'loss': _loss_or_error(learn.loss_func)}
    state = {'format': EXPORT_FORMAT, 'version': EXPORT_VERSION, 'recipe': json.dumps(recipe),
             'model': {k: v.detach().cpu() for k, v in learn.model.state_dict().items()}}
    file = Path(learn.path) / fname
    file.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(state, file)


def _data_recipe(dls: Any) -> dict[str, Any]:
    loaders = list(getattr(dls, 'loaders', []))
    if len(loaders) < 2 or not isinstance(getattr(loaders[1], 'dataset', None), Datasets):
        raise ExportError('export needs DataLoaders built from Datasets (a DataBlock or ImageDataLoaders), '
                          'so the item and batch transforms can be written down.')
    ds = loaders[1].dataset
    tls, dropped = [], []
    for k, tl in enumerate(ds.tls):
        kept = []
        for t in tl.tfms.fs:
            try:
                kept.append(tfm_recipe(t))
            except RecipeError as e:
                # Getters (get_x/get_y, often lambdas) only read raw items; inference starts from the item.
                if not getattr(t, 'is_getter', False):
                    raise ExportError(f'export: {e}') from None
                dropped.append({'input': k < ds.n_inp, 'name': t.name})
        tls.append(kept)
    return {'n_inp': ds.n_inp, 'tls': tls, 'dropped': dropped,
            'loaders': [{'bs': dl.bs, **{event: [_tfm_or_error(t) for t in getattr(dl, event)]
                                         for event in ('after_item', 'before_batch', 'after_batch')}}
                        for dl in loaders[:2]]}


def _tfm_or_error(t: Transform) -> dict[str, Any]:
    try:
        return tfm_recipe(t)
    except RecipeError as e:
        raise ExportError(f'export: {e}') from None


def _loss_or_error(loss: Callable) -> dict[str, Any]:
    try:
        return loss_recipe(loss)
    except RecipeError as e:
        raise ExportError(f'export: {e}') from None


def _class_name(model: nn.Module) -> str:
    return f'{type(model).__module__}.{type(model).__qualname__}'
