"""The classes and functions a recipe may name, registered by the modules that define them.

A reference `module:qualname` resolves only to a registered (or, for one load, trusted) object whose own module
and qualname it is: never by importing a module and following its attributes. Imports nothing of ours, so any
module (transform.py included) can register what it defines.
"""
from __future__ import annotations

import enum
import inspect
import sys
from typing import Any, Callable, Iterable, Literal, TypeVar

__all__ = ['RecipeError', 'RecipeKind', 'RECIPE_KINDS', 'ref_of', 'register_for_recipes', 'for_recipes',
           'registered', 'lookup', 'trusted_refs']

RecipeKind = Literal['model', 'transform', 'function', 'loss', 'enum']
RECIPE_KINDS: tuple[str, ...] = ('model', 'transform', 'function', 'loss', 'enum')
_WHAT = {'model': 'model factory', 'transform': 'Transform class', 'function': 'function a Transform wraps',
         'loss': 'loss', 'enum': 'enum', None: 'argument'}

_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in RECIPE_KINDS}

T = TypeVar('T')


class RecipeError(ValueError):
    """Something cannot be written as a recipe (a lambda, a class from `__main__`) or read back from one."""


def ref_of(obj: Any, what: str = 'object') -> str:
    """`module:qualname` of a class or function (a classmethod: of its class); RecipeError for lambdas, `__main__`."""
    owner = getattr(obj, '__self__', None)
    if inspect.ismethod(obj) and isinstance(owner, type):  # a classmethod such as PILImage.create
        module, qualname = owner.__module__, f'{owner.__qualname__}.{obj.__name__}'
    elif inspect.isbuiltin(obj) and getattr(obj, '__module__', None):  # torch.sigmoid: found by name in its module
        module, qualname = obj.__module__, obj.__name__
    else:
        module, qualname = getattr(obj, '__module__', None), getattr(obj, '__qualname__', None)
    if not isinstance(module, str) or not isinstance(qualname, str) or '<' in qualname or module == '__main__':
        local = isinstance(qualname, str) and '<' in qualname
        where = 'a lambda or local function' if local else f"defined in '{module}'"
        raise RecipeError(f"{what} {qualname or obj!r} is {where}, so no other process can import it; "
                          f"define it in a module (a .py file) and import it from there.")
    return f'{module}:{qualname}'


def register_for_recipes(kind: RecipeKind, *objs: Any) -> None:
    """Let recipes name `objs` as `kind`; the module defining them calls this once, at import."""
    if kind not in _REGISTRY:
        raise ValueError(f'register_for_recipes: kind {kind!r} is not one of {RECIPE_KINDS}.')
    for obj in objs:
        _check_kind(obj, kind)
        _REGISTRY[kind][ref_of(obj, _WHAT[kind])] = obj


def for_recipes(kind: RecipeKind) -> Callable[[T], T]:
    """Decorator form of `register_for_recipes`: `@for_recipes('transform')` above a class."""
    def register(obj: T) -> T:
        register_for_recipes(kind, obj)
        return obj
    return register


def registered(obj: Any, kind: RecipeKind | None = None) -> bool:
    """Whether a recipe may name `obj` (as `kind`, or as any kind when None) without `trusted=`."""
    try:
        ref = ref_of(obj)
    except RecipeError:
        return False
    kinds = RECIPE_KINDS if kind is None else (kind,)
    return any(_REGISTRY[k].get(ref) is obj or _REGISTRY[k].get(ref) == obj for k in kinds)


def lookup(ref: str, kind: RecipeKind | None = None, trusted: dict[str, Any] | None = None) -> Any:
    """The object registered as `kind` (any kind when None) under `ref`, else the one `trusted` maps it to."""
    if not isinstance(ref, str):
        raise RecipeError(f'The recipe has {ref!r} where a reference `module:qualname` belongs.')
    kinds = RECIPE_KINDS if kind is None else (kind,)
    for k in kinds:
        if ref in _REGISTRY[k]:
            return _REGISTRY[k][ref]
    if trusted and ref in trusted:
        return trusted[ref]
    name = ref.rpartition(':')[2].rpartition('.')[2] or ref
    module = ref.partition(':')[0]
    if module.startswith('blocklearn.') and module not in sys.modules:
        package = '.'.join(module.split('.')[:2])
        raise RecipeError(f"The recipe names '{ref}', from {package}, which this process has not imported: "
                          f"import {package} (or `from {package}.all import *`) before load_learner.")
    raise RecipeError(f"The recipe names '{ref}' as {_article(_WHAT[kind])}, which is not registered for "
                      f"recipes; if you trust it, import it and pass load_learner(..., trusted=[{name}]) "
                      f"(or register it with register_for_recipes('{kind or 'function'}', {name}) in its module).")


def trusted_refs(trusted: Iterable[Any]) -> dict[str, Any]:
    """`{ref: obj}` for the objects a caller trusts for one load; TypeError for names given instead of objects."""
    if isinstance(trusted, (str, bytes)):
        trusted = [trusted]
    refs = {}
    for obj in trusted:
        if isinstance(obj, (str, bytes)):
            raise TypeError(f"trusted= takes the classes and functions themselves, not names: got {obj!r}. Import "
                            f"what the recipe names and pass it, e.g. load_learner(..., trusted=[MyTransform]); a "
                            f"name (a package, a module) is never trusted.")
        if inspect.ismodule(obj):
            raise TypeError(f"trusted= takes classes and functions, not the module {obj.__name__!r}: pass the "
                            f"objects of it the recipe names, e.g. trusted=[{obj.__name__}.MyTransform].")
        refs[ref_of(obj, 'trusted object')] = obj
    return refs


def _check_kind(obj: Any, kind: str) -> None:
    if kind == 'enum' and not (isinstance(obj, type) and issubclass(obj, enum.Enum)):
        raise TypeError(f'register_for_recipes: {obj!r} is not an Enum class.')
    if kind == 'transform' and not isinstance(obj, type):
        raise TypeError(f'register_for_recipes: {obj!r} is not a Transform class.')
    if not callable(obj):
        raise TypeError(f'register_for_recipes: {obj!r} is not callable.')


def _article(what: str) -> str:
    return f"{'an' if what[0] in 'aeiou' else 'a'} {what}"
