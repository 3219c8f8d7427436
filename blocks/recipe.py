"""Recipes: transforms, losses and their arguments as plain JSON, rebuilt without unpickling any code.

A class or function is written as a reference `module:qualname`, and read back only as an object registered for
recipes (blocks/registry.py) or trusted for one load. Everything else in a recipe is data, checked as it is read.
"""
from __future__ import annotations

import enum
import inspect
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from .categories import CategoryMap
from .registry import RecipeError, RecipeKind, lookup, ref_of, trusted_refs
from .transform import Transform

__all__ = ['RecipeError', 'Trusted', 'TENSOR_DTYPES', 'MAX_TENSOR_ELEMENTS', 'to_ref', 'from_ref', 'encode_value',
           'decode_value', 'tfm_recipe', 'tfm_from_recipe', 'loss_recipe', 'loss_from_recipe']

# The objects a caller trusts for one load, or their `{ref: obj}` map from `trusted_refs`.
Trusted = Iterable[Any] | dict[str, Any]

# The dtypes a recipe's tensors may have, by the name `encode_value` writes.
TENSOR_DTYPES: dict[str, torch.dtype] = {
    name: getattr(torch, name) for name in ('float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32', 'int16',
                                            'int8', 'uint8', 'bool')}
# A recipe holds settings (stats, vocabs), not weights: a tensor past this many numbers is refused.
MAX_TENSOR_ELEMENTS = 4_000_000

# The keys each tagged value holds besides its tag.
_TAGS: dict[str, frozenset[str]] = {'__tensor__': frozenset({'dtype'}), '__enum__': frozenset({'value'}),
                                    **{tag: frozenset() for tag in ('__tuple__', '__vocab__', '__dict__', '__path__',
                                                                    '__tfm__', '__ref__')}}


def to_ref(obj: Any, what: str = 'object') -> str:
    """`module:qualname` for an importable class or function; RecipeError for lambdas and `__main__` code."""
    return ref_of(obj, what)


def from_ref(ref: str, kind: RecipeKind | None = None, trusted: Trusted = ()) -> Any:
    """The object registered as `kind` (any kind when None) under `ref`, or in `trusted`; RecipeError otherwise."""
    return lookup(ref, kind, _refs(trusted))


def encode_value(v: Any) -> Any:
    """`v` as JSON-ready data: tensors, tuples, paths, enums, classes/functions (as refs) and transforms tagged."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, enum.Enum):
        return {'__enum__': to_ref(type(v), 'enum'), 'value': encode_value(v.value)}
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, CategoryMap):
        return {'__vocab__': [encode_value(o) for o in v]}
    if isinstance(v, torch.Tensor):
        return {'__tensor__': v.detach().cpu().tolist(), 'dtype': str(v.dtype).removeprefix('torch.')}
    if isinstance(v, tuple):
        return {'__tuple__': [encode_value(o) for o in v]}
    if isinstance(v, list):
        return [encode_value(o) for o in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {'__dict__': {k: encode_value(o) for k, o in v.items()}}
    if isinstance(v, Path):
        return {'__path__': str(v)}
    if isinstance(v, Transform):
        return {'__tfm__': tfm_recipe(v)}
    if isinstance(v, type) or inspect.isroutine(v):
        return {'__ref__': to_ref(v, 'argument')}
    raise RecipeError(f'{type(v).__name__} value {v!r} has no plain form (numbers, strings, tensors, tuples, '
                      f'lists, dicts, paths, enums, classes and functions do).')


def decode_value(v: Any, trusted: Trusted = ()) -> Any:
    """Undo `encode_value`: data stays data; a class or function only if registered or in `trusted`."""
    return _decode(v, _refs(trusted))


def _decode(v: Any, refs: dict[str, Any]) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [_decode(o, refs) for o in v]
    tag = next((k for k in v if k in _TAGS), None) if isinstance(v, dict) else None
    if tag is None or set(v) != {tag, *_TAGS[tag]}:
        raise RecipeError(f'Unknown value in recipe: {_short(v)}.')
    body = v[tag]
    if tag == '__tensor__':
        return _tensor(body, v['dtype'])
    if tag == '__tuple__':
        return tuple(_decode(_expect(body, list, tag), refs))
    if tag == '__vocab__':
        return CategoryMap(_decode(_expect(body, list, tag), refs), strict=True)
    if tag == '__dict__':
        body = _expect(body, dict, tag)
        return {k: _decode(o, refs) for k, o in body.items()}
    if tag == '__path__':
        return Path(_expect(body, str, tag))
    if tag == '__enum__':
        return _enum_member(body, _decode(v['value'], refs), refs)
    if tag == '__tfm__':
        return _tfm(_expect(body, dict, tag), refs)
    return lookup(body, None, refs)


def tfm_recipe(t: Transform) -> dict[str, Any]:
    """A transform as `{'func': ref}` (a wrapped function) or `{'cls', 'args', 'kwargs', 'state'}`."""
    if type(t) is Transform:
        if t.func is None:
            raise RecipeError(f'Transform {t.name} wraps no function a recipe can name.')
        return {'func': to_ref(t.func, f'Transform {t.name}'), 'split_idx': t.split_idx, 'order': t.order}
    args, kwargs = getattr(t, '_init_args', ((), {}))
    what = f'Transform {type(t).__qualname__}'
    try:
        return {'cls': to_ref(type(t), what), 'args': encode_value(list(args)),
                'kwargs': encode_value(dict(kwargs)),
                'state': encode_value({k: getattr(t, k) for k in type(t)._recipe_state})}
    except RecipeError as e:
        raise RecipeError(f'{what}: {e}') from None


def tfm_from_recipe(r: dict[str, Any], trusted: Trusted = ()) -> Transform:
    """Rebuild a transform from `tfm_recipe`'s output: a registered (or trusted) class or wrapped function only."""
    return _tfm(r, _refs(trusted))


def _tfm(r: dict[str, Any], refs: dict[str, Any]) -> Transform:
    if not isinstance(r, dict):
        raise RecipeError(f'The recipe has {_short(r)} where a transform belongs.')
    if 'func' in r:
        _check_keys(r, {'func', 'split_idx', 'order'}, 'transform')
        f = lookup(r['func'], 'function', refs)
        if not callable(f) or isinstance(f, type) and issubclass(f, Transform):
            raise RecipeError(f"The recipe's '{r['func']}' is not a function.")
        split_idx, order = r.get('split_idx'), r.get('order')
        for name, value in (('split_idx', split_idx), ('order', order)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise RecipeError(f"The recipe's transform '{r['func']}' has {name}={_short(value)}, not an int.")
        return Transform(f, split_idx=split_idx, order=order)
    _check_keys(r, {'cls', 'args', 'kwargs', 'state'}, 'transform')
    cls = lookup(r.get('cls'), 'transform', refs)
    if not (isinstance(cls, type) and issubclass(cls, Transform)):
        raise RecipeError(f"The recipe's '{r['cls']}' is not a Transform class.")
    args, kwargs = _args(r, refs, f"transform '{r['cls']}'")
    state = _expect(_decode(r.get('state', {'__dict__': {}}), refs), dict, f"state of '{r['cls']}'")
    extra = sorted(set(state) - set(cls._recipe_state))
    if extra:
        raise RecipeError(f"The recipe sets {extra} on transform '{r['cls']}', which keeps only "
                          f"{list(cls._recipe_state)} from its setup.")
    t = cls(*args, **kwargs)
    for k, v in state.items():
        setattr(t, k, v)
    return t


def loss_recipe(loss: Callable) -> dict[str, Any]:
    """A loss as a recipe: a BaseLoss or torch loss module with its arguments, or a loss function's ref."""
    if inspect.isroutine(loss):
        return {'func': to_ref(loss, 'loss function')}
    cls = type(loss)
    if hasattr(loss, '_init_args'):
        args, kwargs = loss._init_args
    elif isinstance(loss, nn.Module):
        # torch's losses keep their constructor arguments as attributes of the same name
        params = [p for p in inspect.signature(cls.__init__).parameters if p not in ('self', 'size_average', 'reduce')]
        args, kwargs = (), {p: getattr(loss, p) for p in params if hasattr(loss, p)}
    else:
        raise RecipeError(f'loss {cls.__qualname__} is neither a function nor a class that records its arguments.')
    try:
        return {'cls': to_ref(cls, 'loss'), 'args': encode_value(list(args)), 'kwargs': encode_value(dict(kwargs))}
    except RecipeError as e:
        raise RecipeError(f'loss {cls.__qualname__}: {e}') from None


def loss_from_recipe(r: dict[str, Any], trusted: Trusted = ()) -> Callable:
    """Rebuild a loss from `loss_recipe`'s output: a registered (or trusted) loss class or function only."""
    refs = _refs(trusted)
    if not isinstance(r, dict):
        raise RecipeError(f'The recipe has {_short(r)} where the loss belongs.')
    if 'func' in r:
        _check_keys(r, {'func'}, 'loss')
        f = lookup(r['func'], 'loss', refs)
        if not callable(f):
            raise RecipeError(f"The recipe's loss '{r['func']}' is not a function.")
        return f
    _check_keys(r, {'cls', 'args', 'kwargs'}, 'loss')
    cls = lookup(r.get('cls'), 'loss', refs)
    if not isinstance(cls, type):
        raise RecipeError(f"The recipe's loss '{r['cls']}' is not a class.")
    args, kwargs = _args(r, refs, f"loss '{r['cls']}'")
    return cls(*args, **kwargs)


def _refs(trusted: Trusted) -> dict[str, Any]:
    return trusted if isinstance(trusted, dict) else trusted_refs(trusted)


def _args(r: dict[str, Any], refs: dict[str, Any], what: str) -> tuple[list, dict[str, Any]]:
    """The decoded `args` (a list) and `kwargs` (a dict) of a class in a recipe."""
    args = _expect(_decode(r.get('args', []), refs), list, f'args of {what}')
    kwargs = _expect(_decode(r.get('kwargs', {'__dict__': {}}), refs), dict, f'kwargs of {what}')
    return args, kwargs


def _tensor(data: Any, dtype: Any) -> torch.Tensor:
    """A tensor from nested lists of numbers, of an allowed dtype and at most MAX_TENSOR_ELEMENTS numbers."""
    if not isinstance(dtype, str) or dtype not in TENSOR_DTYPES:
        raise RecipeError(f'The recipe holds a tensor of dtype {_short(dtype)}; a recipe tensor is one of '
                          f'{sorted(TENSOR_DTYPES)}.')
    count, todo = 0, [data]
    while todo:
        o = todo.pop()
        if isinstance(o, list):
            todo.extend(o)
        elif not isinstance(o, (bool, int, float)):
            raise RecipeError(f'The recipe holds a tensor with {_short(o)} in it; a recipe tensor is nested lists '
                              f'of numbers.')
        count += 1
        if count > MAX_TENSOR_ELEMENTS:
            raise RecipeError(f'The recipe holds a tensor of more than {MAX_TENSOR_ELEMENTS:,} numbers; a recipe '
                              f'keeps settings (stats, vocabs), while the weights travel beside it.')
    try:
        return torch.tensor(data, dtype=TENSOR_DTYPES[dtype])
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise RecipeError(f'The recipe holds a tensor that is not a rectangular array of {dtype} ({e}).') from None


def _enum_member(ref: Any, value: Any, refs: dict[str, Any]) -> enum.Enum:
    """The member of value `value` of the registered (or trusted) Enum class `ref`, found without calling it."""
    cls = lookup(ref, 'enum', refs)
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise RecipeError(f"The recipe's enum '{ref}' is not an Enum class.")
    for member in cls.__members__.values():
        if type(member.value) is type(value) and member.value == value:
            return member
    raise RecipeError(f"The recipe's enum '{ref}' has no member of value {_short(value)}.")


def _check_keys(r: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(r) - allowed)
    if extra:
        raise RecipeError(f'The recipe of a {what} holds {extra}, which no {what} recipe has (a newer blocklearn?).')


def _expect(v: Any, typ: type, what: str) -> Any:
    if not isinstance(v, typ) or typ is dict and not all(isinstance(k, str) for k in v):
        raise RecipeError(f'The recipe has {_short(v)} as {what}, where a {typ.__name__} belongs.')
    return v


def _short(v: Any, n: int = 80) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n] + '...'

