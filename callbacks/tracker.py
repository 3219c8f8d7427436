"""Callbacks that watch a recorded value each epoch: save the best model, stop or lower the lr when it stalls."""
from __future__ import annotations

import math
import operator
from typing import Callable

from blocklearn.blocks.console import logger
from blocklearn.callbacks.core import Callback, CancelFitException

__all__ = ['TrackerCallback', 'SaveModelCallback', 'EarlyStoppingCallback', 'ReduceLROnPlateau']


class TrackerCallback(Callback):
    """Track `monitor` (a Recorder column such as 'valid_loss' or 'accuracy') and flag each new best."""
    order = 60

    def __init__(self, monitor: str = 'valid_loss', comp: Callable | None = None, min_delta: float = 0.0,
                 reset_on_fit: bool = True):
        if comp is None:
            comp = operator.lt if ('loss' in monitor or 'error' in monitor) else operator.gt
        self.monitor, self.comp, self.min_delta, self.reset_on_fit = monitor, comp, abs(min_delta), reset_on_fit
        self.best: float | None = None
        self.new_best = False

    def before_fit(self) -> None:
        recorder = getattr(self.learn, 'recorder', None)
        if recorder is None:
            raise ValueError(f"{type(self).__name__} reads the Recorder's values: keep the default callbacks.")
        names = recorder.metric_names[1:]
        if self.monitor not in names:
            raise ValueError(f"{type(self).__name__}: monitor={self.monitor!r} is not recorded; "
                             f"pick one of {[n for n in names if n != 'time']}.")
        self.idx = names.index(self.monitor)
        if self.reset_on_fit or self.best is None:
            self.best = math.inf if self.comp(0, 1) else -math.inf

    def after_epoch(self) -> None:
        value = self.learn.recorder.values[-1][self.idx]
        # min_delta is a margin the value must beat the best by, in the improving direction.
        margin = -self.min_delta if self.comp(0, 1) else self.min_delta
        self.new_best = value is not None and bool(self.comp(value, self.best + margin))
        if self.new_best:
            self.best = value


class SaveModelCallback(TrackerCallback):
    """Save the model whenever `monitor` improves (and load the best at the end), or every epoch.

    `every_epoch=True` (or n: every n-th epoch) writes checkpoints `{fname}_{epoch}` to resume from: after
    `learn.load('model_1')`, `learn.fit_one_cycle(n, start_epoch=2)` finishes the run `fit_one_cycle(n)` began.
    `with_opt` defaults to True for those (resuming needs the optimizer's moments and step counts) and to
    False for best-model saves, as in fastai."""

    def __init__(self, monitor: str = 'valid_loss', comp: Callable | None = None, min_delta: float = 0.0,
                 fname: str = 'model', every_epoch: bool | int = False, at_end: bool = False,
                 with_opt: bool | None = None, reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        with_opt = bool(every_epoch) if with_opt is None else with_opt
        self.fname, self.every_epoch, self.at_end, self.with_opt = fname, every_epoch, at_end, with_opt
        self.saved = False

    def before_fit(self) -> None:
        self.saved = False
        super().before_fit()

    def after_epoch(self) -> None:
        epoch = self.learn.epoch
        if self.every_epoch:
            if epoch % int(self.every_epoch) == 0:
                self.learn.save(f'{self.fname}_{epoch}', with_opt=self.with_opt)
            return
        super().after_epoch()
        if self.new_best:
            logger.info(f'Better model found at epoch {epoch} with {self.monitor} value: {self.best}.')
            self.learn.save(self.fname, with_opt=self.with_opt)
            self.saved = True

    def after_fit(self) -> None:
        if self.at_end:
            self.learn.save(self.fname, with_opt=self.with_opt)
        elif self.saved:
            # The best weights, not the random numbers of that epoch: rewinding them would replay its draws.
            self.learn.load(self.fname, with_opt=self.with_opt, with_rng=False)


class _PatienceCallback(TrackerCallback):
    """Count the epochs since `monitor` last improved; call `on_plateau` once they reach `patience`."""

    def __init__(self, monitor: str = 'valid_loss', comp: Callable | None = None, min_delta: float = 0.0,
                 patience: int = 1, reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        self.patience = patience
        self.wait = 0

    def before_fit(self) -> None:
        self.wait = 0
        super().before_fit()

    def after_epoch(self) -> None:
        super().after_epoch()
        self.wait = 0 if self.new_best else self.wait + 1
        if self.wait >= self.patience:
            self.on_plateau()

    def on_plateau(self) -> None:
        raise NotImplementedError


class EarlyStoppingCallback(_PatienceCallback):
    """Stop fitting once `monitor` has not improved by `min_delta` for `patience` epochs."""

    def on_plateau(self) -> None:
        logger.info(f'No improvement since epoch {self.learn.epoch - self.wait}: early stopping')
        raise CancelFitException()


class ReduceLROnPlateau(_PatienceCallback):
    """Divide every group's lr by `factor` (not below `min_lr`) once `monitor` has not improved for `patience` epochs.

    For `fit` at a constant lr: a schedule such as `fit_one_cycle`'s sets the lr again at every batch."""
    order = TrackerCallback.order + 2

    def __init__(self, monitor: str = 'valid_loss', comp: Callable | None = None, min_delta: float = 0.0,
                 patience: int = 1, factor: float = 10.0, min_lr: float = 0, reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, patience, reset_on_fit)
        self.factor, self.min_lr = factor, min_lr

    def on_plateau(self) -> None:
        self.wait = 0
        opt = self.learn.opt
        old = opt.hyper('lr')
        opt.set_hyper('lr', [max(h['lr'] / self.factor, self.min_lr) for h in opt.hypers])
        if opt.hyper('lr') < old:
            logger.info(f"Epoch {self.learn.epoch}: reducing lr to {opt.hyper('lr')}")
