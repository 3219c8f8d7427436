"""Labellers and getters: functions from an item to its label or input."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

from .registry import register_for_recipes

try:  # the parser `re` compiles with; the module was renamed in Python 3.11
    from re import _parser as _re_parser
except ImportError:
    import sre_parse as _re_parser

_REPEATS = (_re_parser.MAX_REPEAT, _re_parser.MIN_REPEAT)
_POSSESSIVE_REPEAT = getattr(_re_parser, 'POSSESSIVE_REPEAT', None)  # Python 3.11+
_ATOMIC_GROUP = getattr(_re_parser, 'ATOMIC_GROUP', None)

__all__ = ['RegexLabeller', 'using_attr', 'parent_label', 'ColReader', 'ItemGetter', 'AttrGetter']


def parent_label(o: str | Path) -> str:
    """The name of the folder holding `o`: `train/cats/1.jpg` -> 'cats'."""
    return Path(o).parent.name


class RegexLabeller:
    """Label from the first group of `pat` searched (or matched, `match=True`) in the item.

    Beyond fastai: a pattern with no group, or with a nested quantifier such as `(\\w+)+` (which can take longer
    than a lifetime to fail on one long name), is refused when the labeller is made, not hours into labelling."""

    def __init__(self, pat: str, match: bool = False):
        self.pat = re.compile(pat)
        if self.pat.groups < 1:
            raise ValueError(f"RegexLabeller: pattern r'{pat}' has no group to return as the label: put the label "
                             f"part in parentheses, e.g. r'(.+)_\\d+.jpg$'.")
        nested = _nested_quantifier(pat)
        if nested:
            raise ValueError(f"RegexLabeller: pattern r'{pat}' has a nested quantifier ({nested}): on a name it "
                             f"does not match it can backtrack for hours. Remove the inner or outer repeat, or "
                             f"make the inner one possessive (a++) or atomic ((?>...)) on Python 3.11+.")
        self.matcher = self.pat.match if match else self.pat.search

    def __call__(self, o: Any) -> str:
        m = self.matcher(str(o))
        if m is None:
            raise ValueError(f"RegexLabeller: pattern r'{self.pat.pattern}' does not match '{o}'. "
                             'Fix the pattern, or filter such items out in get_items.')
        return m.group(1)

    def __repr__(self) -> str:
        return f"RegexLabeller(r'{self.pat.pattern}')"


def _nested_quantifier(pat: str) -> str:
    """A description of the first repeat inside a repeat in `pat` that can match a varying length, or ''."""
    found = _find_nested(_re_parser.parse(pat).data, outer=None)
    return f"a '{found[1]}' inside a '{found[0]}'" if found else ''


def _find_nested(items: list, outer: str | None) -> tuple[str, str] | None:
    # Catastrophic backtracking needs an inner repeat of varying length under an outer one that repeats: the
    # regex engine then tries every way to split the text between them. Atomic and possessive parts never retry.
    for op, av in items:
        if op in _REPEATS:
            lo, hi, sub = av
            here = _repeat_text(lo, hi)
            if outer is not None and lo != hi:
                return outer, here
            found = _find_nested(sub, here if hi > 1 and outer is None else outer)
        elif op is _re_parser.SUBPATTERN:
            found = _find_nested(av[-1], outer)
        elif op is _re_parser.BRANCH:
            found = next(filter(None, (_find_nested(b, outer) for b in av[1])), None)
        elif op in (_re_parser.ASSERT, _re_parser.ASSERT_NOT):
            found = _find_nested(av[1], outer)
        elif op is _POSSESSIVE_REPEAT:
            found = _find_nested(av[2], None)  # never retried from outside, but may still backtrack within
        elif op is _ATOMIC_GROUP:
            found = _find_nested(av, None)
        else:
            found = None
        if found:
            return found
    return None


def _repeat_text(lo: int, hi: int) -> str:
    hi_text = '' if hi == _re_parser.MAXREPEAT else str(hi)
    return {(0, ''): '*', (1, ''): '+', (0, '1'): '?'}.get((lo, hi_text), f'{{{lo},{hi_text}}}')


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
