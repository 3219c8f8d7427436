"""Recipes: transforms, losses and their arguments as plain JSON, rebuilt without unpickling any code.

A class or function is written as a reference `module:qualname` and read back only from trusted packages.
"""
from __future__ import annotations

import enum
import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from .categories import CategoryMap
from .transform import Transform

__all__ = ['RecipeError', 'TRUSTED_PACKAGES', 'to_ref', 'from_ref', 'encode_value', 'decode_value',
           'tfm_recipe', 'tfm_from_recipe', 'loss_recipe', 'loss_from_recipe']

TRUSTED_PACKAGES: tuple[str, ...] = ('blocklearn', 'torch', 'torchvision')


class RecipeError(ValueError):
    """Something cannot be written as a recipe (a lambda, a class from `__main__`) or read back from one."""


def to_ref(obj: Any, what: str = 'object') -> str:
    """`module:qualname` for an importable class or function; RecipeError for lambdas and `__main__` code."""
    owner = getattr(obj, '__self__', None)
    if inspect.ismethod(obj) and isinstance(owner, type):  # a classmethod such as PILImage.create
        module, qualname = owner.__module__, f'{owner.__qualname__}.{obj.__name__}'
    elif inspect.isbuiltin(obj) and getattr(obj, '__module__', None):  # torch.sigmoid: found by name in its module
        module, qualname = obj.__module__, obj.__name__
    else:
        module, qualname = getattr(obj, '__module__', None), getattr(obj, '__qualname__', None)
    if not module or not qualname or '<' in qualname or module == '__main__':
        where = 'a lambda or local function' if qualname and '<' in qualname else f"defined in '{module}'"
        raise RecipeError(f"{what} {qualname or obj!r} is {where}, so no other process can import it; "
                          f"define it in a module (a .py file) and import it from there.")
    return f'{module}:{qualname}'


def from_ref(ref: str, trusted: Iterable[str] = ()) -> Any:
    """The class or function a `to_ref` string names, imported only from TRUSTED_PACKAGES or `trusted`."""
    module, _, qualname = ref.partition(':')
    allowed = set(TRUSTED_PACKAGES) | set(trusted)
    if module.split('.')[0] not in allowed or not qualname:
        raise RecipeError(f"The recipe names '{ref}', outside the trusted packages {sorted(allowed)}; if you "
                          f"trust it, pass trusted=['{module.split('.')[0]}'] to load_learner.")
    obj: Any = importlib.import_module(module)
    for name in qualname.split('.'):
        if name.startswith('__'):
            raise RecipeError(f"The recipe names '{ref}': dunder attributes are never followed.")
        obj = getattr(obj, name, None)
        if obj is None:
            raise RecipeError(f"The recipe names '{ref}', which '{module}' does not define (a different version?).")
    return obj


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


def decode_value(v: Any, trusted: Iterable[str] = ()) -> Any:
    """Undo `encode_value`."""
    if isinstance(v, list):
        return [decode_value(o, trusted) for o in v]
    if not isinstance(v, dict):
        return v
    if '__tensor__' in v:
        return torch.tensor(v['__tensor__'], dtype=getattr(torch, v['dtype']))
    if '__tuple__' in v:
        return tuple(decode_value(o, trusted) for o in v['__tuple__'])
    if '__vocab__' in v:
        return CategoryMap(v['__vocab__'], strict=True)
    if '__dict__' in v:
        return {k: decode_value(o, trusted) for k, o in v['__dict__'].items()}
    if '__path__' in v:
        return Path(v['__path__'])
    if '__enum__' in v:
        return from_ref(v['__enum__'], trusted)(decode_value(v['value'], trusted))
    if '__tfm__' in v:
        return tfm_from_recipe(v['__tfm__'], trusted)
    if '__ref__' in v:
        return from_ref(v['__ref__'], trusted)
    raise RecipeError(f'Unknown value in recipe: {v!r}.')


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


def tfm_from_recipe(r: dict[str, Any], trusted: Iterable[str] = ()) -> Transform:
    """Rebuild a transform from `tfm_recipe`'s output."""
    if 'func' in r:
        f = from_ref(r['func'], trusted)
        if not callable(f) or isinstance(f, type) and issubclass(f, Transform):
            raise RecipeError(f"The recipe's '{r['func']}' is not a function.")
        return Transform(f, split_idx=r.get('split_idx'), order=r.get('order'))
    cls = from_ref(r['cls'], trusted)
    if not (isinstance(cls, type) and issubclass(cls, Transform)):
        raise RecipeError(f"The recipe's '{r['cls']}' is not a Transform class.")
    t = cls(*decode_value(r['args'], trusted), **decode_value(r['kwargs'], trusted))
    for k, v in decode_value(r['state'], trusted).items():
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


def loss_from_recipe(r: dict[str, Any], trusted: Iterable[str] = ()) -> Callable:
    """Rebuild a loss from `loss_recipe`'s output."""
    if 'func' in r:
        return from_ref(r['func'], trusted)
    cls = from_ref(r['cls'], trusted)
    if not isinstance(cls, type):
        raise RecipeError(f"The recipe's loss '{r['cls']}' is not a class.")
    return cls(*decode_value(r['args'], trusted), **decode_value(r['kwargs'], trusted))

