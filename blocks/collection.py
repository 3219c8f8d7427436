"""`L`: the list the course types (fastcore's), indexable by a list of indices or a mask, with `map`/`sorted`.

A `list` subclass, so everything that takes a list takes an `L`. Named `collection` (not `collections`) so running a
script from inside blocks/ never shadows the standard library's module.
"""
from __future__ import annotations

import operator
import random
from typing import Any, Callable, Iterable

__all__ = ['L']


class L(list):
    """A list with fastcore's conveniences: `L(1, 2)`, `L(range(3))`, `t[[0, 2]]`, `t[mask]`, `t.map(f)`."""

    def __init__(self, items: Any = None, *rest: Any):
        super().__init__(_listify(items) if not rest else [items, *rest])

    @classmethod
    def range(cls, a: int, b: int | None = None, step: int = 1) -> L:
        """`L(range(a, b, step))`, or `L(range(a))` with only `a`."""
        return cls(range(a) if b is None else range(a, b, step))

    # -- indexing and operators --------------------------------------------------------------------------
    def __getitem__(self, idx: Any) -> Any:
        """An item for an int; an `L` for a slice, a list or array of indices, or a boolean mask."""
        if isinstance(idx, int) or (not isinstance(idx, slice) and getattr(idx, 'ndim', 1) == 0):
            return super().__getitem__(int(idx))
        if isinstance(idx, slice):
            return self._new(super().__getitem__(idx))
        idxs = list(idx.tolist() if hasattr(idx, 'tolist') else idx)
        if idxs and all(isinstance(i, bool) for i in idxs):
            if len(idxs) != len(self):
                raise IndexError(f'A boolean mask of {len(idxs)} values for an L of {len(self)} items: '
                                 'give one value per item.')
            idxs = [i for i, keep in enumerate(idxs) if keep]
        return self._new(super(L, self).__getitem__(int(i)) for i in idxs)

    def __add__(self, other: Iterable) -> L:
        return self._new([*self, *_listify(other)])

    def __radd__(self, other: Iterable) -> L:
        return self._new([*_listify(other), *self])

    def __mul__(self, n: int) -> L:
        return self._new(list(self) * n)

    def __repr__(self) -> str:
        # The book's form: the length, then at most 10 items.
        shown = ','.join(repr(o) for o in list.__getitem__(self, slice(10)))
        return f"(#{len(self)}) [{shown}{',...' if len(self) > 10 else ''}]"

    def copy(self) -> L:
        return self._new(self)

    # -- transforming ------------------------------------------------------------------------------------
    def map(self, f: Callable, *args: Any, **kwargs: Any) -> L:
        """`f(o, *args, **kwargs)` for each item."""
        return self._new(f(o, *args, **kwargs) for o in self)

    def filter(self, f: Callable | None = None, negate: bool = False) -> L:
        """The items for which `f` is true (false with `negate`); truthy items without `f`."""
        f = bool if f is None else f
        return self._new(o for o in self if bool(f(o)) != negate)

    def argwhere(self, f: Callable, negate: bool = False) -> L:
        """The indices of the items for which `f` is true (false with `negate`)."""
        return self._new(i for i, o in enumerate(self) if bool(f(o)) != negate)

    def sorted(self, key: Callable | str | int | None = None, reverse: bool = False) -> L:
        """A sorted copy; `key` may be a function, an attribute name or an item index."""
        if isinstance(key, str):
            key = operator.attrgetter(key)
        elif isinstance(key, int):
            key = operator.itemgetter(key)
        return self._new(sorted(self, key=key, reverse=reverse))

    def unique(self) -> L:
        """The distinct items, in the order they first appear."""
        return self._new(dict.fromkeys(self))

    def itemgot(self, *idxs: Any) -> L:
        """`o[i]` for each item (`o[i][j]` for `itemgot(i, j)`)."""
        res = self
        for i in idxs:
            res = res.map(operator.itemgetter(i))
        return res

    def attrgot(self, name: str, default: Any = None) -> L:
        """`o.name` for each item (`o[name]` for dicts), `default` where it is missing."""
        return self.map(lambda o: o.get(name, default) if isinstance(o, dict) else getattr(o, name, default))

    def enumerate(self) -> L:
        """`L` of `(index, item)` pairs."""
        return self._new(enumerate(self))

    def zip(self) -> L:
        """The items (themselves sequences) zipped together: `L([(1, 'a'), (2, 'b')]).zip() == [(1, 2), ('a', 'b')]`."""
        return self._new(zip(*self))

    def concat(self) -> L:
        """The items (themselves iterables) joined into one `L`."""
        return self._new(o for item in self for o in _listify(item))

    def shuffle(self) -> L:
        """A copy in random order (Python's `random`, so `random.seed` repeats it)."""
        items = list(self)
        random.shuffle(items)
        return self._new(items)

    def sum(self) -> Any:
        return sum(self)

    def _new(self, items: Iterable) -> L:
        return type(self)(list(items))


def _listify(o: Any) -> list:
    # fastcore's rule: None is empty; a string, a dict or an array-like (tensor, ndarray, DataFrame) is ONE item;
    # any other iterable gives its items; anything else is one item.
    if o is None:
        return []
    if isinstance(o, list):
        return list(o)
    if isinstance(o, (str, bytes, dict)) or hasattr(o, '__array__') or hasattr(o, 'iloc'):
        return [o]
    try:
        return list(o)
    except TypeError:
        return [o]
