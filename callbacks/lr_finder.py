"""LRFinder: raise the lr exponentially batch by batch, then put the model and optimizer back exactly."""
from __future__ import annotations

import copy
import math

import numpy as np

from blocklearn.callbacks.core import Callback, CancelFitException, CancelValidException

__all__ = ['LRFinder']


class LRFinder(Callback):
    """Train `num_it` batches at lr `start_lr*(end_lr/start_lr)**(i/num_it)`; stop early once the loss diverges."""
    order = 60
    run_valid = False

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True):
        if num_it < 1:
            raise ValueError(f"LRFinder needs num_it >= 1 (got {num_it}): it is the number of batches to try.")
        self.start_lr, self.end_lr = np.asarray(start_lr, dtype=float), np.asarray(end_lr, dtype=float)
        self.num_it, self.stop_div = num_it, stop_div
        self.best_loss = math.inf

    def before_fit(self) -> None:
        learn = self.learn
        # In memory, deep-copied: put back bit for bit after the search, no file involved.
        self._model_state = copy.deepcopy(learn.model.state_dict())
        self._opt_state = copy.deepcopy(learn.opt.state_dict())
        self.best_loss = math.inf

    def before_batch(self) -> None:
        pct = self.learn.train_iter / self.num_it
        lr = self.start_lr * (self.end_lr / self.start_lr) ** pct
        self.learn.opt.set_hyper('lr', lr.tolist())

    def after_batch(self) -> None:
        smooth = self.learn.smooth_loss
        if smooth < self.best_loss:
            self.best_loss = smooth
        if self.stop_div and (smooth > 4 * self.best_loss or math.isnan(smooth)):
            raise CancelFitException()
        if self.learn.train_iter >= self.num_it:
            raise CancelFitException()

    def before_validate(self) -> None:
        raise CancelValidException()

    def cleanup_fit(self) -> None:
        # In cleanup, so an error or Ctrl-C mid-search also puts back the weights of before the search.
        learn = self.learn
        if not hasattr(self, '_model_state'):
            return
        learn.opt.zero_grad()
        learn.model.load_state_dict(self._model_state)
        learn.opt.load_state_dict(self._opt_state)
        del self._model_state, self._opt_state
