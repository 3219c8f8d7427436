"""TrainEvalCallback: counts the training progress (`train_iter`, `pct_train`, `epoch`) that schedules read."""
from __future__ import annotations

from blocklearn.callbacks.core import Callback

__all__ = ['TrainEvalCallback']


class TrainEvalCallback(Callback):
    """Count `train_iter` and `pct_train` over the fit (from `start_epoch` when resuming); the loop sets the modes."""
    order = -10

    def before_fit(self) -> None:
        learn = self.learn
        self._total = max(1, learn.n_epoch * len(learn.dls.train))
        learn.train_iter = learn.start_epoch * len(learn.dls.train)
        learn.pct_train = learn.train_iter / self._total
        learn.epoch = learn.start_epoch

    def after_batch(self) -> None:
        learn = self.learn
        if learn.training:
            learn.train_iter += 1
            # A ratio of integers, not a running sum, so schedule boundaries land exactly.
            learn.pct_train = learn.train_iter / self._total
