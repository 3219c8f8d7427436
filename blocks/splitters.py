"""Splitters: functions from a list of items to `(train_idxs, valid_idxs)`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch

__all__ = ['RandomSplitter', 'IndexSplitter', 'GrandparentSplitter', 'FuncSplitter', 'MaskSplitter',
           'ColSplitter', 'EndSplitter', 'FileSplitter']

Splits = tuple[list[int], list[int]]


class RandomSplitter:
    """A random `valid_pct` of the items for validation; `seed` gives the same split every time."""

    def __init__(self, valid_pct: float = 0.2, seed: int | None = None):
        if not 0 <= valid_pct < 1:
            raise ValueError(f'RandomSplitter: valid_pct must be in [0, 1), got {valid_pct}.')
        self.valid_pct, self.seed = valid_pct, seed

    def __call__(self, items: Sequence) -> Splits:
        # A local generator: seeding must not reset the user's global torch RNG.
        gen = torch.Generator().manual_seed(self.seed) if self.seed is not None else None
        idxs = torch.randperm(len(items), generator=gen).tolist()
        cut = int(self.valid_pct * len(items))
        return idxs[cut:], idxs[:cut]


class IndexSplitter:
    """The items at `valid_idx` for validation, the rest for training."""

    def __init__(self, valid_idx: Sequence[int]):
        self.valid_idx = list(valid_idx)

    def __call__(self, items: Sequence) -> Splits:
        valid = set(self.valid_idx)
        return [i for i in range(len(items)) if i not in valid], list(self.valid_idx)


class FuncSplitter:
    """Items for which `func(item)` is true go to validation."""

    def __init__(self, func: Callable[[Any], bool]):
        self.func = func

    def __call__(self, items: Sequence) -> Splits:
        return MaskSplitter([bool(self.func(o)) for o in items])(items)


class MaskSplitter:
    """Validation where `mask` is true."""

    def __init__(self, mask: Sequence[bool]):
        self.mask = list(mask)

    def __call__(self, items: Sequence) -> Splits:
        if len(self.mask) != len(items):
            raise ValueError(f'MaskSplitter: the mask has {len(self.mask)} values for {len(items)} items.')
        return [i for i, m in enumerate(self.mask) if not m], [i for i, m in enumerate(self.mask) if m]


class GrandparentSplitter:
    """Split on the folder two levels up: `train/<label>/x.jpg` vs `valid/<label>/x.jpg`."""

    def __init__(self, train_name: str = 'train', valid_name: str = 'valid'):
        self.train_name, self.valid_name = train_name, valid_name

    def __call__(self, items: Sequence) -> Splits:
        names = [Path(o).parent.parent.name for o in items]
        train = [i for i, n in enumerate(names) if n == self.train_name]
        valid = [i for i, n in enumerate(names) if n == self.valid_name]
        for kind, name, idxs in (('train', self.train_name, train), ('valid', self.valid_name, valid)):
            if not idxs:
                seen = ', '.join(sorted(set(names))[:10]) or 'none'
                raise ValueError(f"GrandparentSplitter: no items in a '{name}' folder for the {kind} split "
                                 f"(grandparent folders found: {seen}). Pass {kind}_name= with the right folder name.")
        return train, valid


class ColSplitter:
    """Split a DataFrame on a boolean column (`True` = validation)."""

    def __init__(self, col: str | int = 'is_valid'):
        self.col = col

    def __call__(self, df: Any) -> Splits:
        col = df.iloc[:, self.col] if isinstance(self.col, int) else df[self.col]
        return MaskSplitter(col.astype(bool).tolist())(df)


class EndSplitter:
    """The last (or first) `valid_pct` of the items, in order, for validation."""

    def __init__(self, valid_pct: float = 0.2, valid_last: bool = True):
        self.valid_pct, self.valid_last = valid_pct, valid_last

    def __call__(self, items: Sequence) -> Splits:
        n = len(items)
        cut = int(self.valid_pct * n)
        idxs = list(range(n))
        return (idxs[:n - cut], idxs[n - cut:]) if self.valid_last else (idxs[cut:], idxs[:cut])


class FileSplitter:
    """Validation items are the file names listed (one a line) in `fname`."""

    def __init__(self, fname: str | Path):
        self.fname = Path(fname)

    def __call__(self, items: Sequence) -> Splits:
        names = set(self.fname.read_text().split())
        return FuncSplitter(lambda o: Path(o).name in names)(items)
