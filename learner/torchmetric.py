"""TorchMetric: any torchmetrics metric (optional extra `blocklearn[metrics]`) as a metric of the Recorder's table.

It takes an instance, so this module never imports torchmetrics: without it installed nothing here breaks."""
from __future__ import annotations

import re
from typing import Any, Callable

import torch

from blocklearn.blocks.tensors import TensorMultiCategory, as_plain
from blocklearn.learner.metrics import Metric
from blocklearn.learner.predict import pred_activation

__all__ = ['TorchMetric']


class TorchMetric(Metric):
    """`metric` (a torchmetrics instance) reset before each pass, updated with each batch's `(preds, targets)`,
    computed at the end: the value over the whole pass, not an average of batch values (so AUROC is right).

    `preds` are the model's outputs through `act`: by default (`'auto'`) the activation `get_preds` applies
    (softmax for single-label targets, sigmoid for multi-label, the loss's own if it has one, none for regression),
    so the metric sees the probabilities `learn.get_preds()` returns. `act=None` passes the raw outputs (logits,
    which torchmetrics' classification metrics turn into probabilities themselves, but only for a batch with a
    value outside [0, 1]); any function of the outputs may be given too. Targets are the batch's own, multi-label
    one-hot targets as integers (torchmetrics' multi-label metrics want them so). The metric moves to the batch's
    device. Named after its class in snake case (`MulticlassAUROC` -> `multiclass_auroc`) unless `name` is given."""

    def __init__(self, metric: Any, name: str | None = None, act: Callable | str | None = 'auto'):
        if isinstance(metric, type):
            raise TypeError(f'TorchMetric takes a metric object, not the class {metric.__name__}: pass '
                            f'TorchMetric({metric.__name__}(...)), e.g. MulticlassAUROC(num_classes=5).')
        missing = [m for m in ('update', 'compute', 'reset') if not callable(getattr(metric, m, None))]
        if missing:
            raise TypeError(f'TorchMetric takes a torchmetrics metric (with update, compute and reset); '
                            f'{type(metric).__name__} has no {", ".join(missing)}. For a function of (preds, targets) '
                            f'pass it to metrics= directly.')
        if isinstance(act, str) and act != 'auto':
            raise ValueError(f"act={act!r}: use 'auto' (the activation get_preds applies), None (raw outputs) or "
                             f'a function of the outputs.')
        self.metric, self.act, self._name = metric, act, name
        self.reset()

    def reset(self) -> None:
        self.metric.reset()
        self._updates = 0
        self._act: Callable | None = None  # 'auto' is resolved from the learner at the first batch

    def accumulate(self, learn: Any) -> None:
        pred, targ = as_plain(learn.pred).detach(), learn.yb[0]
        if self._act is None:
            self._act = pred_activation(learn) if self.act == 'auto' else self.act or _identity
        if self.act == 'auto':
            pred = pred.float()  # as get_preds gathers them: an fp16 softmax would differ in the last digits
        pred = self._act(pred)
        if _is_one_hot(learn, targ):
            targ = targ.long()
        device = getattr(self.metric, 'device', None)
        if device is not None and device != pred.device and hasattr(self.metric, 'to'):
            self.metric.to(pred.device)
        self.metric.update(pred, as_plain(targ).detach())
        self._updates += 1

    @property
    def value(self) -> float | list | None:
        if not self._updates:
            return None  # a pass with no batch: torchmetrics would warn and compute on empty state
        res = self.metric.compute()
        if isinstance(res, torch.Tensor):
            return res.item() if res.numel() == 1 else res.tolist()
        return res

    @property
    def name(self) -> str:
        return self._name if self._name is not None else _snake_case(type(self.metric).__name__)


def _snake_case(name: str) -> str:
    """`MulticlassAUROC` -> `multiclass_auroc`, `MulticlassF1Score` -> `multiclass_f1_score`."""
    return re.sub(r'(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])', '_', name).lower()


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _is_one_hot(learn: Any, targ: Any) -> bool:
    # The loader's typed batch says what the plain target in `yb` is.
    b, n_inp = getattr(learn, 'b', ()), len(getattr(learn, 'xb', ()))
    typed = b[n_inp] if len(b) > n_inp else targ
    return isinstance(typed, TensorMultiCategory) and isinstance(targ, torch.Tensor) and targ.is_floating_point()
