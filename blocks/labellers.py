"""Labellers and getters: functions from an item to its label or input."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

from .registry import register_for_recipes

__all__ = ['RegexLabeller', 'using_attr', 'parent_label', 'ColReader', 'ItemGetter', 'AttrGetter']


def parent_label(o: str | Path) -> str:
    """The name of the folder holding `o`: `train/cats/1.jpg` -> 'cats'."""
    return Path(o).parent.name


class RegexLabeller:
    """Label from the first group of `pat` searched (or matched, `match=True`) in the item."""

    def __init__(self, pat: str, match: bool = False):
        self.pat = re.compile(pat)
        self.matcher = self.pat.match if match else self.pat.search

    def __call__(self, o: Any) -> str:
        m = self.matcher(str(o))
        if m is None:
            raise ValueError(f"RegexLabeller: pattern r'{self.pat.pattern}' does not match '{o}'. "
                             'Fix the pattern, or filter such items out in get_items.')
        return m.group(1)

    def __repr__(self) -> str:
        return f"RegexLabeller(r'{self.pat.pattern}')"


class using_attr:
    """Apply `f` to attribute `attr` of the item: `using_attr(f, 'name')(path) == f(path.name)`."""

    def __init__(self, f: Callable, attr: str):
        self.f, self.attr = f, attr

    def __call__(self, o: Any) -> Any:
        return self.f(getattr(o, self.attr))

    def __repr__(self) -> str:
        return f'using_attr({self.f!r}, {self.attr!r})'


class ItemGetter:
    """`o[i]`."""

    def __init__(self, i: Any):
        self.i = i

    def __call__(self, o: Any) -> Any:
        return o[self.i]


class AttrGetter:
    """`getattr(o, name, default)`."""

    def __init__(self, name: str, default: Any = None):
        self.name, self.default = name, default

    def __call__(self, o: Any) -> Any:
        return getattr(o, self.name, self.default)


class ColReader:
    """Read `cols` of a DataFrame row, adding `pref`/`suff` to strings and splitting on `label_delim`."""

    def __init__(self, cols: int | str | Sequence[int | str], pref: str | Path = '', suff: str = '',
                 label_delim: str | None = None):
        self.cols = list(cols) if isinstance(cols, (list, tuple)) else [cols]
        self.pref = str(pref) + ('/' if isinstance(pref, Path) else '')
        self.suff, self.label_delim = suff, label_delim

    def _read(self, row: Any, col: int | str) -> Any:
        o = row.iloc[col] if isinstance(col, int) else row[col]
        if isinstance(o, str):
            o = f'{self.pref}{o}{self.suff}'
            if self.label_delim is not None:
                return o.split(self.label_delim) if o else []
        return o

    def __call__(self, row: Any) -> Any:
        vals = [self._read(row, c) for c in self.cols]
        return vals[0] if len(vals) == 1 else vals


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('function', parent_label)
