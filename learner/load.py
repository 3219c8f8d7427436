"""load_learner: an export read back as a Learner for inference; nothing in the file runs, and only classes and
functions registered for recipes (or trusted for this load) are ever called."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn as nn

# Imported for what they register: the blocks' transforms, getters and losses an export names. Vision's register
# when `blocklearn.vision` is imported (its package does that), as every vision notebook and the CLI do.
from blocklearn.blocks import categories, datablock, labellers, losses  # noqa: F401
from blocklearn.blocks.datasets import Datasets, TfmdLists
from blocklearn.blocks.loader import DataLoader, DataLoaders
from blocklearn.blocks.recipe import RecipeError, decode_value, from_ref, loss_from_recipe, tfm_from_recipe
from blocklearn.blocks.registry import trusted_refs
from blocklearn.blocks.safe_io import CorruptFileError, safe_load
from blocklearn.blocks.transform import Pipeline
from blocklearn.learner.export import EXPORT_FORMAT, EXPORT_VERSION, ExportError
from blocklearn.learner.learner import Learner

__all__ = ['load_learner']

_EVENTS = ('after_item', 'before_batch', 'after_batch')


def load_learner(fname: str | Path, cpu: bool = True, model: nn.Module | None = None,
                 trusted: Iterable[Any] = ()) -> Learner:
    """The Learner `export` wrote, ready for `predict`/`get_preds`/`tta`; no code in the file is ever run.

    `model` rebuilds a model the recipe cannot (one built by hand); `trusted` lists classes and functions of yours
    (the objects, not their names) the recipe may name in this load, e.g. `trusted=[MyTransform]`."""
    refs = trusted_refs(trusted)
    fname = Path(fname)
    if not fname.exists():
        raise FileNotFoundError(f"load_learner: no export at {fname}; write one with learn.export({fname.name!r}).")
    try:
        state = safe_load(fname, map_location='cpu')
    except CorruptFileError as e:
        raise ExportError(f"load_learner: {fname} is not a blocklearn export, or a damaged one. {e}") from None
    if not isinstance(state, dict) or state.get('format') != EXPORT_FORMAT:
        raise ExportError(f"load_learner: {fname} is not a blocklearn export (saved by learn.save? then use "
                          f"learn.load(name) on a Learner built the same way).")
    version = state.get('version', 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ExportError(f"load_learner: {fname} gives its export version as {_short(version)}, where every "
                          f"export writes a whole number: a damaged or hand-edited export; export it again.")
    if version > EXPORT_VERSION:
        raise ExportError(f"load_learner: {fname} is export version {version}; this blocklearn reads "
                          f"up to {EXPORT_VERSION}: upgrade blocklearn.")
    recipe = _read_recipe(state, fname)
    try:
        # The cheap parts first: a recipe naming what is not registered is refused before a model is built.
        dls = _build_dls(recipe['data'], fname.parent, refs)
        loss_func = loss_from_recipe(recipe['loss'], refs)
        net = model if model is not None else _build_model(recipe, fname, refs)
    except ExportError:
        raise
    except RecipeError as e:
        raise RecipeError(f'load_learner: {fname}: {e}') from None
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ExportError(f"load_learner: {fname} holds a recipe this blocklearn cannot rebuild "
                          f"({type(e).__name__}: {e}).") from None
    try:
        net.load_state_dict(state['model'])
    except (RuntimeError, TypeError, KeyError) as e:
        raise ExportError(f"load_learner: the weights in {fname} do not fit the model "
                          f"({str(e).splitlines()[0]}).") from None
    skipped = _dropped_inputs(recipe['data'])
    if skipped:
        warnings.warn(f"load_learner: the input getter {', '.join(skipped)} was not exported (a lambda or an "
                      f"object with no recipe): pass predict() what it returned, e.g. the file path.", stacklevel=2)
    learn = Learner(dls, net, loss_func=loss_func, path=fname.parent)
    learn.model_recipe = recipe['model']
    device = 'cpu' if cpu or not torch.cuda.is_available() else 'cuda'
    learn.model.to(device).eval()
    return learn


def _read_recipe(state: dict[str, Any], fname: Path) -> dict[str, Any]:
    """The export's JSON recipe, with the parts load_learner reads."""
    try:
        recipe = json.loads(state['recipe'])
    except (KeyError, TypeError, ValueError, RecursionError):
        recipe = None
    if not isinstance(recipe, dict) or not {'model', 'data', 'loss'} <= set(recipe) or \
            not isinstance(recipe['data'], dict) or not isinstance(state.get('model'), dict):
        raise ExportError(f"load_learner: {fname} has no recipe this blocklearn can read (a damaged export?); "
                          f"export the learner again.")
    return recipe


def _short(v: Any, n: int = 40) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n] + '...'


def _dropped_inputs(data: dict[str, Any]) -> list[str]:
    """The names of the input getters `export` could not write down."""
    dropped = data.get('dropped')
    return [str(d.get('name')) for d in dropped if isinstance(d, dict) and d.get('input')] \
        if isinstance(dropped, list) else []


def _build_model(recipe: dict[str, Any], fname: Path, refs: dict[str, Any]) -> nn.Module:
    r = recipe.get('model')
    if r is None:
        raise ExportError(f"load_learner: {fname} holds the weights of a {recipe.get('model_class', 'model')} "
                          f"built by hand, with no recipe to rebuild it: pass load_learner(..., model=<the same "
                          f"model, freshly built>).")
    factory = from_ref(r['factory'], 'model', refs)
    if not callable(factory):
        raise ExportError(f"load_learner: the recipe's model factory {r['factory']} is not callable.")
    kwargs = decode_value(r['kwargs'], refs)
    if not isinstance(kwargs, dict):
        raise ExportError(f"load_learner: the recipe's model arguments are {type(kwargs).__name__}, not a dict.")
    net = factory(**kwargs)
    if not isinstance(net, nn.Module):
        raise ExportError(f"load_learner: the recipe's model factory {r['factory']} built a "
                          f"{type(net).__name__}, not a torch module.")
    return net


def _build_dls(r: dict[str, Any], path: Path, refs: dict[str, Any]) -> DataLoaders:
    tls = [TfmdLists([], Pipeline([tfm_from_recipe(t, refs) for t in fs]), do_setup=False) for fs in r['tls']]
    loaders = []
    for split_idx, lr in enumerate(r['loaders'][:2]):
        tfms = {e: [tfm_from_recipe(t, refs) for t in lr[e]] for e in _EVENTS}
        split = Datasets([], [], n_inp=r['n_inp'],
                         tls=[TfmdLists([], Pipeline(tl.tfms.fs, split_idx=split_idx), do_setup=False) for tl in tls])
        loaders.append(DataLoader(split, bs=lr['bs'], shuffle=split_idx == 0, drop_last=split_idx == 0,
                                  split_idx=split_idx, num_workers=0, **tfms))
    return DataLoaders(*loaders, path=path)
