"""TerminateOnNaNCallback: stop fitting as soon as the loss is NaN or infinite."""
from __future__ import annotations

import torch

from blocklearn.callbacks.core import Callback, CancelFitException

__all__ = ['TerminateOnNaNCallback']


class TerminateOnNaNCallback(Callback):
    """Raise CancelFitException when a training loss is not finite (checks each batch: one sync)."""
    order = -9
    run_valid = False

    def after_batch(self) -> None:
        loss = self.learn.loss
        if loss is not None and not bool(torch.isfinite(loss).all()):
            print(f"Loss is {loss.mean().item()} at epoch {self.learn.epoch}, batch {self.learn.iter}: "
                  "stopping the fit.")
            raise CancelFitException()
