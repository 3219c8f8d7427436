"""ParamScheduler: set optimizer hyper-parameters from schedules of the training progress."""
from __future__ import annotations

from typing import Callable, Mapping

from blocklearn.callbacks.core import Callback

__all__ = ['ParamScheduler']


class ParamScheduler(Callback):
    """Before each training batch set each hyper-parameter to `sched(pct_train)`, e.g. `{'lr': ..., 'mom': ...}`."""
    order = 60
    run_valid = False

    def __init__(self, scheds: Mapping[str, Callable[[float], object]]):
        self.scheds = dict(scheds)
        self.hps: dict[str, list] = {name: [] for name in self.scheds}

    def before_fit(self) -> None:
        self.hps = {name: [] for name in self.scheds}

    def before_batch(self) -> None:
        opt, pct = self.learn.opt, self.learn.pct_train
        for name, sched in self.scheds.items():
            opt.set_hyper(name, sched(pct))

    def after_batch(self) -> None:
        opt = self.learn.opt
        for name, values in self.hps.items():
            values.append(opt.hyper(name))

    def after_fit(self) -> None:
        recorder = getattr(self.learn, 'recorder', None)
        if recorder is not None:
            recorder.hps = self.hps
