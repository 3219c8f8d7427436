"""lr_find: the learning-rate range test (a function of a learner, `Learner.lr_find` calls it) and the functions
that suggest an lr from its curve."""
from __future__ import annotations

import functools
import keyword
import warnings
from typing import Any, Callable, Sequence

import torch

from blocklearn.callbacks.lr_finder import LRFinder

__all__ = ['lr_find', 'SuggestedLRs', 'minimum', 'steep', 'valley', 'slide', 'suggestion_points']


def minimum(lrs: torch.Tensor, losses: torch.Tensor) -> float:
    """A tenth of the lr at the lowest loss: safely before the loss starts to climb."""
    return lrs[losses.argmin()].item() / 10


def steep(lrs: torch.Tensor, losses: torch.Tensor) -> float:
    """The lr where the loss falls fastest per unit of log(lr) (start of the steepest step)."""
    slopes = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
    return lrs[slopes.argmin()].item()


def valley(lrs: torch.Tensor, losses: torch.Tensor) -> float:
    """The lr halfway along the longest valley: the longest run of points whose loss keeps decreasing."""
    vals = losses.tolist()
    n = len(vals)
    length, start = [1] * n, list(range(n))
    for i in range(1, n):
        # The longest decreasing sequence ending at i extends the longest one ending at a higher earlier loss.
        for j in range(i):
            if vals[j] > vals[i] and length[j] + 1 > length[i]:
                length[i], start[i] = length[j] + 1, start[j]
    end = max(range(n), key=lambda i: (length[i], -i))
    return lrs[start[end] + (end - start[end]) // 2].item()


def slide(lrs: torch.Tensor, losses: torch.Tensor, lr_diff: int = 15, thresh: float = 0.005,
          adjust_value: float = 1.0) -> float:
    """Slide rule: move a window of `lr_diff` points left from the divergent end while the slope still
    differs between its two ends by more than `thresh`; suggest the left end of the last such window."""
    slope = (torch.gradient(losses)[0] if len(losses) > 1 else torch.zeros_like(losses)).tolist()
    right = len(losses) - 1
    left = max(right - lr_diff, 0)
    lr = lrs[left].item()
    while left > 0 and abs(slope[right] - slope[left]) > thresh:
        lr = lrs[left].item()
        right, left = right - 1, left - 1
    return lr * adjust_value


def suggestion_points(lrs: Sequence[float], losses: Sequence[float], num_it: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (lrs, smoothed losses) suggestions use: the first `num_it//10` and last 5 dropped, cut at any NaN."""
    lrs_t = torch.tensor(list(lrs), dtype=torch.float64)
    losses_t = torch.tensor(list(losses), dtype=torch.float64)
    lo, hi = num_it // 10, len(losses_t) - 5
    if hi - lo < 2:
        warnings.warn(f"lr_find recorded only {len(losses_t)} losses: suggestions use them all. Raise num_it, "
                      f"lower start_lr, or pass stop_div=False for a fuller curve.")
        lo, hi = 0, len(losses_t)
    lrs_t, losses_t = lrs_t[lo:hi], losses_t[lo:hi]
    nan = torch.isnan(losses_t).nonzero()
    if len(nan):
        lrs_t, losses_t = lrs_t[:nan[0, 0]], losses_t[:nan[0, 0]]
    if len(losses_t) < 2:
        raise ValueError("lr_find has fewer than 2 finite losses to suggest from: raise num_it or lower start_lr.")
    return lrs_t, losses_t


def lr_find(learn: Any, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True,
            show_plot: bool = True, suggest_funcs: Sequence[Callable] = (minimum, steep)) -> SuggestedLRs:
    """Train `num_it` batches at exponentially growing lrs, restore the model, return suggested lrs.

    The result unpacks as `suggest_funcs` (so the course's `lr_min, lr_steep = learn.lr_find()` works) and has
    `.minimum`, `.steep`, `.valley` and `.slide` whatever was asked (fastai 2.8's `learn.lr_find().valley`).
    The default stays fastbook's (minimum, steep), where fastai 2.8's is (valley,)."""
    if getattr(learn, 'recorder', None) is None:
        raise ValueError("lr_find reads the Recorder's losses: create the Learner with default_cbs=True.")
    learn.check_trainable()
    n_epoch = num_it // len(learn.dls.train) + 1
    with learn.no_logging():
        learn.fit(n_epoch, cbs=LRFinder(start_lr, end_lr, num_it, stop_div))
    lrs, losses = suggestion_points(learn.recorder.lrs, learn.recorder.losses, num_it)
    names = _field_names([_func_name(f) for f in suggest_funcs])
    asked = {name: float(f(lrs, losses)) for name, f in zip(names, suggest_funcs)}
    # The standard four are cheap (at most num_it points), so every result has them all.
    others = {_func_name(f): float(f(lrs, losses)) for f in _STANDARD_SUGGESTIONS if _func_name(f) not in asked}
    result = SuggestedLRs(asked, others)
    if show_plot:
        learn.recorder.plot_lr_find(suggestions=asked)
    return result


_STANDARD_SUGGESTIONS: tuple[Callable, ...] = (minimum, steep, valley, slide)


class SuggestedLRs(tuple):
    """The lrs `lr_find` suggests: a tuple of those asked for (`_fields` names them), and an attribute for each
    of those and of the standard four, e.g. `SuggestedLRs(minimum=1.20e-03, steep=2.75e-04, valley=..., slide=...)`.
    """

    def __new__(cls, asked: dict[str, float], others: dict[str, float] | None = None) -> SuggestedLRs:
        self = super().__new__(cls, asked.values())
        self._fields = tuple(asked)
        self._lrs = {**asked, **(others or {})}
        return self

    def __getattr__(self, name: str) -> float:
        lrs = self.__dict__.get('_lrs', {})
        if name in lrs:
            return lrs[name]
        raise AttributeError(f"SuggestedLRs has no {name!r}; it has {', '.join(lrs)}.")

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._lrs]

    def __getnewargs__(self) -> tuple:
        # copy and pickle rebuild it through __new__, which takes the two dicts.
        asked = dict(zip(self._fields, self))
        return asked, {k: v for k, v in self._lrs.items() if k not in asked}

    def _asdict(self) -> dict[str, float]:
        """The suggestions asked for, by name."""
        return dict(zip(self._fields, self))

    def __repr__(self) -> str:
        return 'SuggestedLRs(' + ', '.join(f'{k}={v:.2e}' for k, v in self._lrs.items()) + ')'


def _field_names(names: list[str]) -> list[str]:
    """`names`, with a name that is no identifier, a keyword, private or already taken replaced by `_<i>`."""
    out: list[str] = []
    for i, name in enumerate(names):
        ok = name.isidentifier() and not keyword.iskeyword(name) and not name.startswith('_') and name not in out
        out.append(name if ok else f'_{i}')
    return out


def _func_name(f: Callable) -> str:
    f = f.func if isinstance(f, functools.partial) else f
    return getattr(f, '__name__', type(f).__name__)
