"""Small functions every layer uses: `listify`, `noop`, and the course's `first`."""
from __future__ import annotations

from typing import Any, Callable, Iterable

__all__ = ['listify', 'noop', 'first']


def listify(o: Any) -> list:
    """`o` as a list: None -> [], a list or tuple -> a list of its items, anything else -> [o]."""
    if o is None:
        return []
    if isinstance(o, (list, tuple)):
        return list(o)
    return [o]


def noop(x: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Return `x` unchanged, ignoring anything else: the identity getter, and the logger that prints nothing."""
    return x


def first(x: Iterable, f: Callable[[Any], Any] | None = None, negate: bool = False) -> Any:
    """The first item of `x` (for which `f` is true, false with `negate`), or None if there is none.

    `first(dl)` is one batch of a DataLoader, as fastbook uses it."""
    items = iter(x) if f is None else (o for o in x if bool(f(o)) != negate)
    return next(items, None)
