"""Metrics: batch functions averaged over a phase, and class metrics (F1, precision, recall) that accumulate."""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

from blocklearn.callbacks.recorder import batch_size

__all__ = ['Metric', 'AvgMetric', 'ConfusionMetric', 'F1Score', 'Precision', 'Recall', 'accuracy', 'error_rate',
           'top_k_accuracy', 'as_metric']


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
        cm = self.cm.double().cpu()
        tp, actual, predicted = cm.diag(), cm.sum(1), cm.sum(0)
        # As sklearn: classes that never occur in targets or predictions take no part in the average.
        present = (actual + predicted) > 0
        if self.average == 'micro':
            return self._score(tp.sum(), actual.sum(), predicted.sum()).item()
        scores = self._score(tp, actual, predicted)
        if self.average is None:
            return scores.tolist()
        if self.average == 'weighted':
            return (scores * actual).sum().item() / max(actual.sum().item(), 1.0)
        return scores[present].mean().item() if present.any() else 0.0

    @abstractmethod
    def _score(self, tp: torch.Tensor, actual: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
        """Per-class score from true positives, actual counts and predicted counts (0 where undefined)."""


class Precision(ConfusionMetric):
    """Precision, tp / predicted, per class then averaged (`average='macro'` by default)."""
    name = 'precision_score'

    def _score(self, tp, actual, predicted):
        return torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))


class Recall(ConfusionMetric):
    """Recall, tp / actual, per class then averaged (`average='macro'` by default)."""
    name = 'recall_score'

    def _score(self, tp, actual, predicted):
        return torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))


class F1Score(ConfusionMetric):
    """F1, 2 tp / (actual + predicted), per class then averaged (`average='macro'` by default)."""
    name = 'f1_score'

    def _score(self, tp, actual, predicted):
        total = actual + predicted
        return torch.where(total > 0, 2 * tp / total.clamp(min=1), torch.zeros_like(tp))
