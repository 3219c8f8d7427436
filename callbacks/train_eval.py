"""TrainEvalCallback: keeps the model's train/eval mode and the training counters up to date."""
from __future__ import annotations

import torch.nn as nn

from blocklearn.callbacks.core import Callback

__all__ = ['TrainEvalCallback']


class TrainEvalCallback(Callback):
    """Switch the model between `train()` and `eval()` and count `train_iter`, `pct_train`, `epoch`."""
    order = -10

    def before_fit(self) -> None:
        learn = self.learn
        device = getattr(learn.dls, 'device', None)
        if device is not None:
            learn.model.to(device)
            if isinstance(learn.loss_func, nn.Module):
                learn.loss_func.to(device)
        self._total = max(1, learn.n_epoch * len(learn.dls.train))
        learn.train_iter = learn.start_epoch * len(learn.dls.train)
        learn.pct_train = learn.train_iter / self._total
        learn.epoch = learn.start_epoch

    def before_train(self) -> None:
        self.learn.training = True
        self.learn.model.train()

    def before_validate(self) -> None:
        self.learn.training = False
        self.learn.model.eval()

    def after_batch(self) -> None:
        learn = self.learn
        if learn.training:
            learn.train_iter += 1
            # A ratio of integers, not a running sum, so schedule boundaries land exactly.
            learn.pct_train = learn.train_iter / self._total
