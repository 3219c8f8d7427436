"""TerminateOnNaNCallback: stop fitting as soon as the loss is NaN or infinite, before it reaches the weights."""
from __future__ import annotations

import torch

from blocklearn.blocks.console import logger
from blocklearn.callbacks.core import Callback, CancelFitException

__all__ = ['TerminateOnNaNCallback']


class TerminateOnNaNCallback(Callback):
    """Raise CancelFitException when a training loss is not finite (checks each batch: one sync).

    Beyond fastai, which checks after the step (so every weight is already NaN): the loss is checked before the
    backward pass, so the model keeps the weights of the last finite batch; nothing is restored behind your back."""
    order = -9
    run_valid = False

    def __init__(self):
        self._reason: str | None = None

    def after_loss(self) -> None:
        loss = self.learn.loss
        if self.learn.training and loss is not None and not bool(torch.isfinite(loss).all()):
            self._reason = (f"Loss is {loss.mean().item()} at epoch {self.learn.epoch}, batch {self.learn.iter}: "
                            "stopping the fit before its optimizer step, so the model keeps the weights of the last "
                            "finite batch.")
            raise CancelFitException()

    def after_cancel_fit(self) -> None:
        # Said here, not as it raises: by now the progress bar it cut short has ended its line.
        if self._reason is not None:
            logger.warning(self._reason)
            self._reason = None
