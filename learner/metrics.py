"""Metrics: batch functions averaged over a phase, and class metrics (F1, precision, recall) that accumulate."""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

from blocklearn.callbacks.recorder import batch_size

__all__ = ['Metric', 'AvgMetric', 'ConfusionMetric', 'F1Score', 'Precision', 'Recall', 'accuracy', 'error_rate',
           'top_k_accuracy', 'as_metric', 'precision_recall_f1']


class Metric(ABC):
    """What the Recorder needs from a metric: `reset()`, `accumulate(learn)` per batch, `value`, `name`."""

    @abstractmethod
    def reset(self) -> None:
        """Start a new phase (called before each training or validation pass)."""

    @abstractmethod
    def accumulate(self, learn: Any) -> None:
        """Take in the learner's current `pred` and `yb`."""

    @property
    @abstractmethod
    def value(self) -> float | None:
        """The metric over everything accumulated since `reset`."""

    @property
    def name(self) -> str:
        return type(self).__name__.lower()


class AvgMetric(Metric):
    """A function `func(pred, *targets)` of one batch, averaged over batches weighted by their size."""

    def __init__(self, func: Callable):
        self.func = func
        self.reset()

    def reset(self) -> None:
        self._values, self._counts = [], []

    def accumulate(self, learn: Any) -> None:
        self._values.append(self.func(learn.pred, *learn.yb))
        self._counts.append(batch_size(learn))

    @property
    def value(self) -> float | None:
        if not self._counts:
            return None
        # Summed at the end, so the per-batch work stays on the device without a sync.
        total = sum(v.double() * n if isinstance(v, torch.Tensor) else float(v) * n
                    for v, n in zip(self._values, self._counts))
        return float(total) / sum(self._counts)

    @property
    def name(self) -> str:
        func = self.func.func if isinstance(self.func, functools.partial) else self.func
        return getattr(func, '__name__', type(func).__name__)


def as_metric(m: Any) -> Metric:
    """`m` itself if it is a metric object, else `AvgMetric(m)` for a plain function."""
    return m if hasattr(m, 'accumulate') else AvgMetric(m)


def accuracy(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Fraction of predictions (argmax over `axis`) equal to the targets."""
    pred = inp.argmax(dim=axis)
    return (pred.reshape(-1) == targ.reshape(-1)).float().mean()


def error_rate(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """1 - accuracy."""
    return 1 - accuracy(inp, targ, axis=axis)


def top_k_accuracy(inp: torch.Tensor, targ: torch.Tensor, k: int = 5, axis: int = -1) -> torch.Tensor:
    """Fraction of targets among the `k` highest-scored classes."""
    top = inp.topk(k=k, dim=axis).indices
    return (top == targ.unsqueeze(axis)).any(dim=axis).float().mean()


class ConfusionMetric(Metric):
    """Accumulates a confusion matrix of argmax predictions; subclasses read a score from it."""

    def __init__(self, average: str | None = 'macro', axis: int = -1):
        if average not in ('macro', 'micro', 'weighted', None):
            raise ValueError(f"average={average!r}: use 'macro', 'micro', 'weighted' or None (one value per class).")
        self.average, self.axis = average, axis
        self.reset()

    def reset(self) -> None:
        self.cm: torch.Tensor | None = None

    def accumulate(self, learn: Any) -> None:
        pred, targ = learn.pred, learn.yb[0]
        n = pred.shape[self.axis]
        pred = pred.argmax(dim=self.axis).reshape(-1)
        targ = targ.reshape(-1).long()
        cm = torch.bincount(targ * n + pred, minlength=n * n).reshape(n, n)
        self.cm = cm if self.cm is None else self.cm + cm

    @property
    def value(self) -> float | list[float] | None:
        if self.cm is None:
            return None
        score = precision_recall_f1(self.cm, self.average)[self._which]
        return score.tolist() if self.average is None else score.item()

    @property
    @abstractmethod
    def _which(self) -> int:
        """Which of `precision_recall_f1`'s (precision, recall, f1) this metric reports."""


class Precision(ConfusionMetric):
    """Precision, tp / predicted, per class then averaged (`average='macro'` by default)."""
    name = 'precision_score'
    _which = 0


class Recall(ConfusionMetric):
    """Recall, tp / actual, per class then averaged (`average='macro'` by default)."""
    name = 'recall_score'
    _which = 1


class F1Score(ConfusionMetric):
    """F1, 2 tp / (actual + predicted), per class then averaged (`average='macro'` by default)."""
    name = 'f1_score'
    _which = 2


def precision_recall_f1(cm: torch.Tensor | Any, average: str | None = 'macro'
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision, recall and F1 from a confusion matrix `cm[actual, predicted]`, per class or averaged.

    The one implementation behind `Precision`, `Recall`, `F1Score` and the classification report of
    `ClassificationInterpretation`, so the two always agree. A score whose denominator is 0 (a class never
    predicted has no precision, one absent from the targets no recall) counts as 0, like sklearn's
    `zero_division=0`. `average=None`: one value per class; 'macro': the mean over the classes that occur in the
    targets or the predictions (sklearn's default: a class absent from both has no score at all, so it takes no
    part); 'weighted': the mean weighted by each class's count in the targets; 'micro': from the pooled counts.
    """
    if average not in ('macro', 'micro', 'weighted', None):
        raise ValueError(f"average={average!r}: use 'macro', 'micro', 'weighted' or None (one value per class).")
    cm = torch.as_tensor(cm).double().cpu()
    tp, actual, predicted = cm.diag(), cm.sum(1), cm.sum(0)
    if average == 'micro':
        tp, actual, predicted = tp.sum(), actual.sum(), predicted.sum()
    scores = (_ratio(tp, predicted), _ratio(tp, actual), _ratio(2 * tp, actual + predicted))
    if average in (None, 'micro'):
        return scores
    weights = actual if average == 'weighted' else ((actual + predicted) > 0).double()
    total = weights.sum()
    return tuple((s * weights).sum() / total if total > 0 else torch.zeros((), dtype=torch.float64) for s in scores)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """`num / den`, and 0 where `den` is 0."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))
