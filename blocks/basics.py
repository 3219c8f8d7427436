"""Two small functions every layer uses: `listify` and `noop`."""
from __future__ import annotations

from typing import Any

__all__ = ['listify', 'noop']


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
