"""Metrics: batch functions averaged over a phase, and class metrics (F1, precision, recall) that accumulate,
for single-label (argmax) and multi-label (threshold) targets; segmentation overlaps (Dice, Jaccard) accumulate
over every pixel of the phase."""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

from blocklearn.callbacks.recorder import batch_size

__all__ = ['Metric', 'AvgMetric', 'ConfusionMetric', 'F1Score', 'Precision', 'Recall', 'accuracy', 'error_rate',
           'top_k_accuracy', 'as_metric', 'precision_recall_f1', 'accuracy_multi', 'MultiLabelMetric',
           'F1ScoreMulti', 'PrecisionMulti', 'RecallMulti', 'foreground_acc', 'Dice', 'JaccardCoeff', 'DiceMulti']


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
    """A function `func(pred, *targets)` of one batch, averaged over batches weighted by their size.

    Named after the function (a partial's too); a lambda, which has no name, is called 'metric' unless `name` is
    given (fastai shows '<lambda>')."""

    def __init__(self, func: Callable, name: str | None = None):
        self.func, self._name = func, name
        self.reset()

    def reset(self) -> None:
        self._values, self._counts = [], []

    def accumulate(self, learn: Any) -> None:
        value = self.func(learn.pred, *learn.yb)
        # Detached: a metric of training predictions (train_metrics=True) must not keep each batch's graph alive.
        self._values.append(value.detach() if isinstance(value, torch.Tensor) else value)
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
        if self._name is not None:
            return self._name
        func = self.func.func if isinstance(self.func, functools.partial) else self.func
        name = getattr(func, '__name__', type(func).__name__)
        return 'metric' if name == '<lambda>' else name


def as_metric(m: Any) -> Metric:
    """`m` itself if it is a metric object, else `AvgMetric(m)` for a plain function (or partial)."""
    if hasattr(m, 'accumulate'):
        return m
    if not callable(m):
        raise TypeError(f'metrics takes functions of (preds, targets), such as accuracy or partial(accuracy_multi, '
                        f'thresh=0.2), and Metric objects such as F1Score(); got {m!r}.')
    if type(m).__module__.split('.')[0] == 'torchmetrics':
        # Called per batch it would give an average of batch values: wrong for AUROC, F1, ...
        raise TypeError(f'metrics: wrap the torchmetrics metric {type(m).__name__} in TorchMetric, e.g. '
                        f'metrics=TorchMetric({type(m).__name__}(...)), so it accumulates over the whole pass.')
    return AvgMetric(m)


def accuracy(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Fraction of predictions (argmax over `axis`) equal to the targets."""
    pred = inp.argmax(dim=axis)
    return (pred.reshape(-1) == targ.reshape(-1)).float().mean()


def error_rate(inp: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """1 - accuracy."""
    return 1 - accuracy(inp, targ, axis=axis)


def accuracy_multi(inp: torch.Tensor, targ: torch.Tensor, thresh: float = 0.5, sigmoid: bool = True) -> torch.Tensor:
    """Fraction of labels, over every sample, where `inp > thresh` (after a sigmoid, unless `sigmoid=False`)
    agrees with the 0/1 target."""
    if inp.numel() != targ.numel():
        raise ValueError(f'accuracy_multi: predictions of shape {tuple(inp.shape)} and targets of shape '
                         f'{tuple(targ.shape)} differ; it needs one score per label (multi-label targets).')
    if sigmoid:
        inp = inp.sigmoid()
    return ((inp > thresh).reshape(-1) == targ.bool().reshape(-1)).float().mean()


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


class MultiLabelMetric(Metric):
    """Counts per label of `pred > thresh` (after a sigmoid unless `sigmoid=False`) against 0/1 targets; subclasses
    read a score from them. `>` as accuracy_multi and predict decide (fastai's sklearn-based metrics use `>=`).

    `average`: 'macro' (mean over every label, one never predicted nor present scoring 0, as sklearn does for
    multi-label targets), 'micro' (pooled counts), 'weighted' (by each label's count in the targets), 'samples'
    (the score of each sample's labels, averaged over samples) or None (one value per label)."""

    def __init__(self, thresh: float = 0.5, sigmoid: bool = True, average: str | None = 'macro'):
        if average not in ('macro', 'micro', 'weighted', 'samples', None):
            raise ValueError(f"average={average!r}: use 'macro', 'micro', 'weighted', 'samples' or None "
                             '(one value per label).')
        self.thresh, self.sigmoid, self.average = thresh, sigmoid, average
        self.reset()

    def reset(self) -> None:
        self._counts: list[torch.Tensor] | None = None  # tp, actual, predicted per label
        self._sample_sums: torch.Tensor | None = None   # precision, recall, F1 summed over samples
        self._n = 0

    def accumulate(self, learn: Any) -> None:
        pred, targ = learn.pred, learn.yb[0]
        if pred.shape != targ.shape:
            raise ValueError(f'{type(self).__name__}: predictions of shape {tuple(pred.shape)} and targets of shape '
                             f'{tuple(targ.shape)} differ; it needs one score per label (multi-label targets).')
        if self.sigmoid:
            pred = pred.sigmoid()
        pred, targ = (pred > self.thresh).reshape(-1, pred.shape[-1]), targ.bool().reshape(-1, targ.shape[-1])
        tp = pred & targ
        if self.average == 'samples':
            sums = torch.stack([s.sum() for s in _scores(tp.sum(1), targ.sum(1), pred.sum(1), None)])
            self._sample_sums = sums if self._sample_sums is None else self._sample_sums + sums
            self._n += len(pred)
            return
        counts = [tp.sum(0), targ.sum(0), pred.sum(0)]
        self._counts = counts if self._counts is None else [a + b for a, b in zip(self._counts, counts)]

    @property
    def value(self) -> float | list[float] | None:
        if self.average == 'samples':
            return None if not self._n else (self._sample_sums[self._which] / self._n).item()
        if self._counts is None:
            return None
        score = _scores(*self._counts, self.average)[self._which]
        return score.tolist() if self.average is None else score.item()

    @property
    @abstractmethod
    def _which(self) -> int:
        """Which of (precision, recall, f1) this metric reports."""


class PrecisionMulti(MultiLabelMetric):
    """Multi-label precision: of the labels predicted (`> thresh`), the fraction that are targets."""
    name = 'precision_score'
    _which = 0


class RecallMulti(MultiLabelMetric):
    """Multi-label recall: of the target labels, the fraction predicted (`> thresh`)."""
    name = 'recall_score'
    _which = 1


class F1ScoreMulti(MultiLabelMetric):
    """Multi-label F1, 2 tp / (actual + predicted), with predictions `> thresh`."""
    name = 'f1_score'
    _which = 2


def foreground_acc(inp: torch.Tensor, targ: torch.Tensor, bkg_idx: int = 0, axis: int = 1) -> torch.Tensor:
    """Pixel accuracy of a segmentation (argmax over `axis`) over the pixels whose target is not `bkg_idx`
    (NaN for a batch with none)."""
    pred, targ = _codes(inp, targ, axis, 'foreground_acc')
    keep = targ != bkg_idx
    return (pred[keep] == targ[keep]).float().mean()


class Dice(Metric):
    """Dice coefficient 2|P&T| / (|P|+|T|) of a binary segmentation, over every pixel of the phase: P the pixels
    whose argmax over `axis` is a code > 0 (foreground), T those whose target is. None before any foreground."""
    name = 'dice'

    def __init__(self, axis: int = 1):
        self.axis = axis
        self.reset()

    def reset(self) -> None:
        self.inter: torch.Tensor | None = None  # |P&T| and |P|+|T| so far, kept on the device (no sync per batch)
        self.union: torch.Tensor | None = None

    def accumulate(self, learn: Any) -> None:
        pred, targ = _codes(learn.pred, learn.yb[0], self.axis, type(self).__name__)
        pred, targ = pred > 0, targ > 0
        inter, union = (pred & targ).sum(), pred.sum() + targ.sum()
        self.inter = inter if self.inter is None else self.inter + inter
        self.union = union if self.union is None else self.union + union

    @property
    def value(self) -> float | None:
        if self.union is None or int(self.union) == 0:
            return None
        return 2. * int(self.inter) / int(self.union)


class JaccardCoeff(Dice):
    """Jaccard index (intersection over union) |P&T| / |P or T| of a binary segmentation, over every pixel of the phase,
    foreground as for `Dice`."""
    name = 'jaccard_coeff'

    @property
    def value(self) -> float | None:
        if self.union is None or int(self.union) == 0:
            return None
        return int(self.inter) / (int(self.union) - int(self.inter))


class DiceMulti(Metric):
    """Dice coefficient of each code (the argmax over `axis` against the target) over every pixel of the phase,
    averaged over the codes that occur in the predictions or the targets (background included, as in fastai)."""
    name = 'dice_multi'

    def __init__(self, axis: int = 1):
        self.axis = axis
        self.reset()

    def reset(self) -> None:
        self.inter: torch.Tensor | None = None  # per code: pixels where prediction and target agree on it
        self.union: torch.Tensor | None = None  # per code: pixels predicted as it plus pixels labelled it

    def accumulate(self, learn: Any) -> None:
        pred, targ = _codes(learn.pred, learn.yb[0], self.axis, type(self).__name__)
        n = learn.pred.shape[self.axis]
        pred, targ = pred.reshape(-1), targ.reshape(-1)
        targ = torch.where((targ >= 0) & (targ < n), targ, n)  # codes the model has no output for: one bin, unused
        inter = torch.bincount(targ[pred == targ], minlength=n + 1)[:n]
        union = (torch.bincount(pred, minlength=n + 1) + torch.bincount(targ, minlength=n + 1))[:n]
        self.inter = inter if self.inter is None else self.inter + inter
        self.union = union if self.union is None else self.union + union

    @property
    def value(self) -> float | None:
        if self.union is None or not bool((self.union > 0).any()):
            return None
        seen = self.union > 0
        return (2. * self.inter[seen].double() / self.union[seen].double()).mean().item()


def _codes(inp: torch.Tensor, targ: torch.Tensor, axis: int, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted codes (argmax over `axis`) and target codes, checked to be one per pixel."""
    pred = inp.argmax(dim=axis)
    if pred.numel() != targ.numel():
        raise ValueError(f'{who}: predictions of shape {tuple(inp.shape)} give {pred.numel()} codes over axis {axis}, '
                         f'but the targets have shape {tuple(targ.shape)}; it needs activations (B, c, H, W) and masks '
                         f'(B, H, W).')
    return pred.reshape(targ.shape), targ.long()


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
    return _scores(tp, actual, predicted, average, counted=(actual + predicted) > 0)


def _scores(tp: torch.Tensor, actual: torch.Tensor, predicted: torch.Tensor, average: str | None,
            counted: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(precision, recall, F1) from per-class counts of true positives, targets and predictions: per class, or
    averaged ('macro' over the classes `counted`, default all; 'weighted' by `actual`; 'micro' pooled)."""
    tp, actual, predicted = tp.double(), actual.double(), predicted.double()
    if average == 'micro':
        tp, actual, predicted = tp.sum(), actual.sum(), predicted.sum()
    scores = (_ratio(tp, predicted), _ratio(tp, actual), _ratio(2 * tp, actual + predicted))
    if average in (None, 'micro'):
        return scores
    weights = actual if average == 'weighted' else (
        counted.double() if counted is not None else torch.ones_like(actual))
    total = weights.sum()
    return tuple((s * weights).sum() / total if total > 0 else torch.zeros((), dtype=torch.float64,
                                                                           device=s.device) for s in scores)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """`num / den`, and 0 where `den` is 0."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))
