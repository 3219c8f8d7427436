"""Export a Learner as weights plus a JSON recipe, and load it back for inference without unpickling code."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from blocklearn.blocks.datasets import Datasets, TfmdLists
from blocklearn.blocks.loader import DataLoader, DataLoaders
from blocklearn.blocks.recipe import (RecipeError, decode_value, encode_value, from_ref, loss_from_recipe, loss_recipe,
                           tfm_from_recipe, tfm_recipe, to_ref)
from blocklearn.blocks.safe_io import atomic_save, safe_load
from blocklearn.blocks.transform import Pipeline, Transform

__all__ = ['ExportMixin', 'load_learner', 'model_recipe', 'ExportError', 'EXPORT_FORMAT']

EXPORT_FORMAT = 'blocklearn.export'
_VERSION = 1


class ExportError(RecipeError):
    """The learner cannot be exported, or a file is not an export this version can read."""


def model_recipe(factory: Callable[..., nn.Module], **kwargs: Any) -> dict[str, Any]:
    """How to rebuild a model: `factory(**kwargs)`, written as a ref and JSON arguments (what vision_learner records)."""
    return {'factory': to_ref(factory, 'model factory'), 'kwargs': encode_value(kwargs)}


class ExportMixin:
    """`learn.export(fname)`: the weights and a JSON recipe of the model, data transforms and loss, in one file."""
    model: nn.Module
    dls: Any
    loss_func: Callable
    path: Path

    def export(self, fname: str | Path = 'export.pkl') -> Path:
        """Write an inference-ready export to `path/fname` atomically; `load_learner` reads it back."""
        recipe = {'model': getattr(self, 'model_recipe', None), 'model_class': _class_name(self.model),
                  'data': _data_recipe(self.dls), 'loss': _loss_or_error(self.loss_func)}
        state = {'format': EXPORT_FORMAT, 'version': _VERSION, 'recipe': json.dumps(recipe),
                 'model': {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}
        file = self.path / fname
        file.parent.mkdir(parents=True, exist_ok=True)
        return atomic_save(state, file)


def load_learner(fname: str | Path, cpu: bool = True, model: nn.Module | None = None,
                 trusted: Iterable[str] = ()) -> Any:
    """The Learner `export` wrote, ready for `predict`/`get_preds`/`tta`; no code in the file is ever run.

    `model` rebuilds a model the recipe cannot (one built by hand); `trusted` names more packages to import from."""
    from blocklearn.learner.learner import Learner  # learner.py builds Learner from ExportMixin: imported when called
    fname = Path(fname)
    if not fname.exists():
        raise FileNotFoundError(f"load_learner: no export at {fname}; write one with learn.export({fname.name!r}).")
    state = safe_load(fname, map_location='cpu')
    if not isinstance(state, dict) or state.get('format') != EXPORT_FORMAT:
        raise ExportError(f"load_learner: {fname} is not a blocklearn export (saved by learn.save? then use "
                          f"learn.load(name) on a Learner built the same way).")
    if state.get('version', 0) > _VERSION:
        raise ExportError(f"load_learner: {fname} is export version {state['version']}; this blocklearn reads "
                          f"up to {_VERSION}: upgrade blocklearn.")
    recipe = json.loads(state['recipe'])
    trusted = tuple(trusted)
    net = model if model is not None else _build_model(recipe, fname, trusted)
    try:
        net.load_state_dict(state['model'])
    except RuntimeError as e:
        raise ExportError(f"load_learner: the weights in {fname} do not fit the model "
                          f"({str(e).splitlines()[0]}).") from None
    dls = _build_dls(recipe['data'], fname.parent, trusted)
    learn = Learner(dls, net, loss_func=loss_from_recipe(recipe['loss'], trusted), path=fname.parent)
    learn.model_recipe = recipe['model']
    device = 'cpu' if cpu or not torch.cuda.is_available() else 'cuda'
    learn.model.to(device).eval()
    return learn


def _build_model(recipe: dict[str, Any], fname: Path, trusted: tuple[str, ...]) -> nn.Module:
    r = recipe.get('model')
    if r is None:
        raise ExportError(f"load_learner: {fname} holds the weights of a {recipe.get('model_class', 'model')} "
                          f"built by hand, with no recipe to rebuild it: pass load_learner(..., model=<the same "
                          f"model, freshly built>).")
    factory = from_ref(r['factory'], trusted)
    if not callable(factory):
        raise ExportError(f"load_learner: the recipe's model factory {r['factory']} is not callable.")
    return factory(**decode_value(r['kwargs'], trusted))


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


def _build_dls(r: dict[str, Any], path: Path, trusted: tuple[str, ...]) -> DataLoaders:
    skipped = [d['name'] for d in r['dropped'] if d['input']]
    if skipped:
        warnings.warn(f"load_learner: the input getter {', '.join(skipped)} was not exported (a lambda or an "
                      f"object with no recipe): pass predict() what it returned, e.g. the file path.", stacklevel=3)
    tls = [TfmdLists([], Pipeline([tfm_from_recipe(t, trusted) for t in fs]), do_setup=False) for fs in r['tls']]
    loaders = []
    for split_idx, lr in enumerate(r['loaders']):
        tfms = {e: [tfm_from_recipe(t, trusted) for t in lr[e]] for e in ('after_item', 'before_batch', 'after_batch')}
        split = Datasets([], [], n_inp=r['n_inp'],
                         tls=[TfmdLists([], Pipeline(tl.tfms.fs, split_idx=split_idx), do_setup=False) for tl in tls])
        loaders.append(DataLoader(split, bs=lr['bs'], shuffle=split_idx == 0, drop_last=split_idx == 0,
                                  split_idx=split_idx, num_workers=0, **tfms))
    return DataLoaders(*loaders, path=path)


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
