"""Transforms that dispatch on the annotated type of their argument, and pipelines of them."""
from __future__ import annotations

import inspect
import random
import types
import typing
from typing import Any, Callable, Iterable, Iterator

import torch

__all__ = ['Transform', 'ItemTransform', 'RandTransform', 'Pipeline', 'retain_type']

_DISPATCHED = ('encodes', 'decodes')


class _TypeDispatch:
    """Functions keyed by the type of their first data argument; the most specific class wins."""

    def __init__(self, parent: _TypeDispatch | None = None):
        self.funcs: dict[type, tuple[Callable, type | None]] = dict(parent.funcs) if parent else {}
        self.cache: dict[type, tuple[Callable, type | None] | None] = {}

    def add(self, f: Callable, bound: bool) -> None:
        arg_types, ret = _signature_types(f, bound)
        for t in arg_types:
            self.funcs[t] = (f, ret)
        self.cache.clear()

    def lookup(self, t: type) -> tuple[Callable, type | None] | None:
        """The function for `t` found along its MRO, cached so a call costs one dict read."""
        try:
            return self.cache[t]
        except KeyError:
            pass
        found = next((self.funcs[c] for c in t.__mro__ if c in self.funcs), None)
        self.cache[t] = found
        return found

    def __bool__(self) -> bool:
        return bool(self.funcs)


def _signature_types(f: Callable, bound: bool) -> tuple[list[type], type | None]:
    """The types the data argument of `f` is annotated with, and its return class (if a class)."""
    params = list(inspect.signature(f).parameters.values())
    idx = 1 if bound else 0
    ann = params[idx].annotation if len(params) > idx else inspect.Parameter.empty
    ret = inspect.signature(f).return_annotation
    ann, ret = (_resolve(a, f) for a in (ann, ret))
    arg_types = _flatten_types(ann)
    # since Python 3.11 `typing.Any` is a class, yet nothing is an instance of it: no type to cast to
    return arg_types, ret if isinstance(ret, type) and ret is not Any else None


def _resolve(ann: Any, f: Callable) -> Any:
    if ann is inspect.Parameter.empty or ann is inspect.Signature.empty:
        return object
    if isinstance(ann, str):
        try:
            return eval(ann, getattr(f, '__globals__', {}))
        except NameError:  # a forward reference we cannot see yet: do not cast to it
            return object
    return ann


def _flatten_types(ann: Any) -> list[type]:
    if isinstance(ann, tuple):
        return [t for a in ann for t in _flatten_types(a)]
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
        return [t for a in typing.get_args(ann) for t in _flatten_types(a)]
    if ann is Any or ann is None:
        return [object]
    return [ann]


class _Namespace(dict):
    """Class body namespace that keeps every `encodes`/`decodes` definition, not just the last."""

    def __init__(self):
        super().__init__()
        self.dispatched: dict[str, list[Callable]] = {n: [] for n in _DISPATCHED}

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _DISPATCHED and callable(value):
            self.dispatched[key].append(value)
        super().__setitem__(key, value)


class _TransformMeta(type):
    @classmethod
    def __prepare__(mcls, name, bases, **kwargs):
        return _Namespace()

    def __new__(mcls, name, bases, ns, **kwargs):
        cls = super().__new__(mcls, name, bases, dict(ns), **kwargs)
        for meth in _DISPATCHED:
            parent = next((b.__dict__[f'_{meth}'] for b in cls.__mro__[1:] if f'_{meth}' in b.__dict__), None)
            disp = _TypeDispatch(parent)
            for f in ns.dispatched[meth]:
                disp.add(f, bound=True)
            setattr(cls, f'_{meth}', disp)
        return cls


def retain_type(res: Any, x: Any, ret: type | None = None) -> Any:
    """Give `res` the type of `x` (or `ret`) when an op returned a plainer tensor."""
    if ret is not None and ret is not object:
        if isinstance(res, ret):
            return res
        if isinstance(res, torch.Tensor) and issubclass(ret, torch.Tensor):
            return res.as_subclass(ret)
        return ret(res)
    tx = type(x)
    if type(res) is not tx and isinstance(res, torch.Tensor) and isinstance(x, type(res)):
        return res.as_subclass(tx)
    return res


class Transform(metaclass=_TransformMeta):
    """A function with a type-dispatched `encodes`, an inverse `decodes`, and optional `setups`.

    Applied to a tuple it maps over the elements; `split_idx` limits it to the train (0) or valid (1) split.
    """
    order: int = 0
    split_idx: int | None = None
    _recipe_state: tuple[str, ...] = ()  # attributes `setup` fills in, kept by an export's recipe

    def __new__(cls, *args: Any, **kwargs: Any) -> Transform:
        self = super().__new__(cls)
        self._init_args = (args, kwargs)  # what built it, so an export can write a recipe instead of a pickle
        return self

    def __init__(self, enc: Callable | None = None, dec: Callable | None = None,
                 split_idx: int | None = None, order: int | None = None):
        self.func = enc if enc is not None else dec
        if split_idx is not None:
            self.split_idx = split_idx
        if order is not None:
            self.order = order
        self._name = None
        if enc is not None or dec is not None:
            self._encodes, self._decodes = _TypeDispatch(self._encodes), _TypeDispatch(self._decodes)
            for disp, f in ((self._encodes, enc), (self._decodes, dec)):
                if f is not None:
                    disp.add(_as_bound(f), bound=True)
            self._name = _func_name(enc if enc is not None else dec)

    @property
    def name(self) -> str:
        return self._name or type(self).__name__

    def __call__(self, x: Any, split_idx: int | None = None) -> Any:
        if self.split_idx is not None and self.split_idx != split_idx:
            return x
        return self._apply(self._encodes, x)

    def decode(self, x: Any, split_idx: int | None = None) -> Any:
        """Undo `encodes` (for display); identity where no `decodes` matches."""
        if self.split_idx is not None and self.split_idx != split_idx:
            return x
        return self._apply(self._decodes, x)

    def setup(self, items: Any = None, train_setup: bool = False) -> None:
        """Prepare state from the (training) items, e.g. a vocab; runs `setups`."""
        self.setups(items)

    def setups(self, items: Any) -> None:
        return None

    def _apply(self, disp: _TypeDispatch, x: Any) -> Any:
        if isinstance(x, tuple):
            return tuple([self._apply_one(disp, o) for o in x])
        return self._apply_one(disp, x)

    def _apply_one(self, disp: _TypeDispatch, x: Any) -> Any:
        found = disp.cache.get(type(x), 0)
        if found == 0:
            found = disp.lookup(type(x))
        if found is None:
            return x
        f, ret = found
        res = f(self, x)
        if ret is None and type(res) is type(x):
            return res
        return retain_type(res, x, ret)

    def __repr__(self) -> str:
        return self.name


def _as_bound(f: Callable) -> _BoundFunction:
    return _BoundFunction(f)


class _BoundFunction:
    """A plain function `f(x)` shaped like a method `(self, x)`, keeping `f`'s annotations for dispatch."""

    def __init__(self, f: Callable):
        self.f = f
        self.__globals__ = getattr(f, '__globals__', {})
        params = list(inspect.signature(f).parameters.values())[:1]
        self_param = inspect.Parameter('self', inspect.Parameter.POSITIONAL_ONLY)
        self.__signature__ = inspect.signature(f).replace(parameters=[self_param] + params)

    def __call__(self, _self: Any, x: Any) -> Any:
        return self.f(x)

    def __reduce__(self) -> tuple:
        # rebuilt from `f` alone: its globals hold modules, which a spawned worker's pickle cannot carry
        return type(self), (self.f,)


def _func_name(f: Callable) -> str:
    owner = getattr(f, '__self__', None)
    if isinstance(owner, type):  # a classmethod is named after the class it is called on: PILImageBW.create
        return f'{owner.__name__}.{f.__name__}'
    return getattr(f, '__qualname__', None) or getattr(f, '__name__', None) or type(f).__name__


class ItemTransform(Transform):
    """A transform that receives the whole sample tuple instead of each element."""

    def _apply(self, disp: _TypeDispatch, x: Any) -> Any:
        return self._apply_one(disp, x)


class RandTransform(Transform):
    """A transform applied with probability `p`, decided once per call (a sample's parts share it); train only."""
    split_idx = 0

    def __init__(self, p: float = 1., **kwargs):
        super().__init__(**kwargs)
        self.p, self.do = p, True

    def before_call(self, b: Any, split_idx: int | None) -> None:
        """Draw this call's random state; subclasses draw their parameters here."""
        self.do = self.p >= 1. or random.random() < self.p

    def __call__(self, x: Any, split_idx: int | None = None) -> Any:
        if self.split_idx is not None and self.split_idx != split_idx:
            return x
        self.before_call(x, split_idx)
        return self._apply(self._encodes, x) if self.do else x


class Pipeline:
    """Transforms sorted (stably) by `order`, applied in turn; `decode` runs them backwards."""

    def __init__(self, funcs: Iterable[Callable] | Callable | None = None, split_idx: int | None = None):
        if funcs is None:
            funcs = []
        elif callable(funcs) and not isinstance(funcs, (list, tuple)):
            funcs = [funcs]
        self.split_idx = split_idx
        self.fs: list[Transform] = sorted((_as_transform(f) for f in funcs), key=lambda t: t.order)

    def setup(self, items: Any = None, train_setup: bool = False) -> None:
        """Set up each transform in turn on `items`, with `self.fs` holding only those set up so far.

        A view of the items through this very pipeline (`TfmdLists.setup` passes one) thus shows each transform
        the items as transformed by the ones before it, as in fastai.
        """
        tfms, self.fs = self.fs, []
        try:
            for t in tfms:
                t.setup(items, train_setup)
                self.fs.append(t)
        finally:
            self.fs = tfms

    def __call__(self, x: Any) -> Any:
        for f in self.fs:
            x = f(x, split_idx=self.split_idx)
        return x

    def steps(self, x: Any) -> Iterator[tuple[Transform, Any]]:
        """Apply the transforms in turn as `__call__` does, yielding each one with what it gives (for `summary`)."""
        for f in self.fs:
            x = f(x, split_idx=self.split_idx)
            yield f, x

    def decode(self, x: Any, full: bool = True) -> Any:
        for f in reversed(self.fs):
            x = f.decode(x, split_idx=self.split_idx)
        return x

    def add(self, tfms: Iterable[Callable]) -> None:
        self.fs = sorted(self.fs + [_as_transform(t) for t in tfms], key=lambda t: t.order)

    def __getitem__(self, i: int) -> Transform:
        return self.fs[i]

    def __len__(self) -> int:
        return len(self.fs)

    def __iter__(self):
        return iter(self.fs)

    def __repr__(self) -> str:
        return 'Pipeline: ' + ' -> '.join(f.name for f in self.fs)


def _as_transform(f: Callable) -> Transform:
    return f if isinstance(f, Transform) else Transform(f)
