"""Schedules: functions of training progress `pos` in [0, 1], and their combinations."""
from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from typing import Callable, Sequence

import numpy as np

__all__ = ['Schedule', 'SchedLin', 'SchedCos', 'SchedNo', 'SchedExp', 'SchedPoly', 'combine_scheds',
           'combined_cos']


class Schedule(ABC):
    """A value going from `start` (pos 0) to `end` (pos 1); `start`/`end` may be per-group arrays."""

    def __init__(self, start, end):
        self.start, self.end = _as_value(start), _as_value(end)

    @abstractmethod
    def __call__(self, pos: float) -> float | np.ndarray:
        """The value at `pos` (0 = start of training, 1 = end)."""

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.start}, {self.end})'


class SchedLin(Schedule):
    """Linear from `start` to `end`."""

    def __call__(self, pos: float) -> float | np.ndarray:
        return self.start + pos * (self.end - self.start)


class SchedCos(Schedule):
    """Half a cosine from `start` to `end`: flat at both ends, steepest in the middle."""

    def __call__(self, pos: float) -> float | np.ndarray:
        return self.start + (1 + math.cos(math.pi * (1 - pos))) * (self.end - self.start) / 2


class SchedNo(Schedule):
    """Constant `start` (`end` is ignored)."""

    def __call__(self, pos: float) -> float | np.ndarray:
        return self.start


class SchedExp(Schedule):
    """Exponential (geometric) from `start` to `end`; both must be positive."""

    def __call__(self, pos: float) -> float | np.ndarray:
        return self.start * (self.end / self.start) ** pos


class SchedPoly(Schedule):
    """`start + (end - start) * pos**power`."""

    def __init__(self, start, end, power: float):
        super().__init__(start, end)
        self.power = power

    def __call__(self, pos: float) -> float | np.ndarray:
        return self.start + (self.end - self.start) * pos ** self.power


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Callable[[float], object]]) -> Callable[[float], object]:
    """One schedule made of `scheds[i]` over consecutive fractions `pcts[i]` of training (summing to 1)."""
    if len(pcts) != len(scheds):
        raise ValueError(f'combine_scheds needs one pct per schedule: got {len(pcts)} pcts, {len(scheds)} scheds.')
    if any(p < 0 for p in pcts) or not math.isclose(sum(pcts), 1.0, abs_tol=1e-6):
        raise ValueError(f'combine_scheds: pcts must be >= 0 and sum to 1, got {list(pcts)}.')
    bounds = [0.0]
    for p in pcts:
        bounds.append(bounds[-1] + p)

    def combined(pos: float) -> object:
        if pos >= 1:
            return scheds[-1](1.0)
        i = min(bisect.bisect_right(bounds, pos) - 1, len(scheds) - 1)
        width = bounds[i + 1] - bounds[i]
        return scheds[i]((pos - bounds[i]) / width if width > 0 else 1.0)
    return combined


def combined_cos(pct: float, start, middle, end) -> Callable[[float], object]:
    """Cosine from `start` up to `middle` over the first `pct` of training, then cosine down to `end`."""
    return combine_scheds([pct, 1 - pct], [SchedCos(start, middle), SchedCos(middle, end)])


def _as_value(v):
    # Per-group values become arrays so schedules broadcast; scalars stay plain floats.
    if isinstance(v, (list, tuple, np.ndarray)):
        return np.asarray(v, dtype=float)
    return v
