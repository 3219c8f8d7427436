"""GatherPreds: keep each batch's predictions (and inputs, targets, per-item losses) during an inference pass."""
from __future__ import annotations

from typing import Any

import torch

from blocklearn.callbacks.core import Callback

__all__ = ['GatherPreds']


class GatherPreds(Callback):
    """Collect, on the CPU, what `get_preds` returns: predictions, targets, and with the flags inputs and losses.

    Inputs and targets are kept as the loader typed them (TensorImage, TensorCategory), so they still decode."""
    order = 90
    run_train = False

    def __init__(self, with_input: bool = False, with_loss: bool = False):
        self.with_input, self.with_loss = with_input, with_loss
        self.inputs: list[tuple] = []
        self.preds: list[torch.Tensor] = []
        self.targs: list[Any] = []
        self.losses: list[torch.Tensor] = []

    def before_validate(self) -> None:
        self.inputs, self.preds, self.targs, self.losses = [], [], [], []

    def after_batch(self) -> None:
        learn = self.learn
        if learn.pred is None:  # a batch cancelled before the model ran
            return
        n_inp = len(learn.xb)
        self.preds.append(learn.pred.detach().float().cpu())
        if self.with_input:
            self.inputs.append(tuple(_cpu(x) for x in learn.b[:n_inp]))
        if len(learn.b) > n_inp:
            self.targs.append(_cpu(learn.b[n_inp]))
            if self.with_loss and learn.loss is not None:
                self.losses.append(_per_item(learn.loss, len(learn.pred)).float().cpu())


def _cpu(o: Any) -> Any:
    return o.detach().cpu() if isinstance(o, torch.Tensor) else o


def _per_item(loss: torch.Tensor, n: int) -> torch.Tensor:
    # A loss without `reduction` gives one value per batch: each item gets it.
    if loss.dim() == 0:
        return loss.expand(n)
    return loss.reshape(n, -1).mean(1)  # segmentation-style losses: one mean per item
