"""GradientAccumulation: the optimizer steps once every `n_acc` samples, as with a batch of `n_acc`."""
from __future__ import annotations

from blocklearn.callbacks.core import Callback, CancelBatchException
from blocklearn.callbacks.recorder import batch_size

__all__ = ['GradientAccumulation']


class GradientAccumulation(Callback):
    """Sum gradients over batches until `n_acc` samples were seen, then step: a large batch in a small memory.

    Each batch's loss is scaled by its share of `n_acc` before backward, so the summed gradient is the gradient of
    the mean loss over those samples; the recorded loss stays the batch's own."""
    order = 6  # before MixedPrecision (10): a skipped step must skip its scaler step too
    run_valid = False

    def __init__(self, n_acc: int = 32):
        self.n_acc = n_acc
        self.count = 0

    def before_fit(self) -> None:
        self.count = 0

    def after_loss(self) -> None:
        # A new tensor, not in place: `learn.loss` (what the Recorder logs) shares the original's memory.
        if self.learn.loss_grad is not None:
            self.learn.loss_grad = self.learn.loss_grad * (batch_size(self.learn) / self.n_acc)

    def before_step(self) -> None:
        self.count += batch_size(self.learn)
        if self.count < self.n_acc:
            raise CancelBatchException()  # skips the step and the zero_grad: the gradients add up
        self.count = 0
