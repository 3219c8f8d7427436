"""Training policies, each a `fit` with a ParamScheduler: one-cycle, flat-then-cosine, SGDR restarts, fine_tune.

Plain functions of a learner; `Learner` exposes each as the method of the same name."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from blocklearn.blocks.basics import listify
from blocklearn.callbacks.schedule import ParamScheduler
from blocklearn.learner.schedules import SchedCos, combine_scheds, combined_cos

__all__ = ['fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'fine_tune']


def fit_one_cycle(learn: Any, n_epoch: int, lr_max: float | slice | None = None, div: float = 25.,
                  div_final: float = 1e5, pct_start: float = 0.25, wd: float | None = None,
                  moms: tuple[float, float, float] | None = None, cbs: Iterable | Any = None,
                  reset_opt: bool = False, start_epoch: int = 0) -> None:
    """lr warms up from lr_max/div to lr_max over `pct_start` then anneals to lr_max/div_final; mom mirrors."""
    lr_max = _group_lrs(learn, lr_max)
    scheds = {'lr': combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final),
              'mom': combined_cos(pct_start, *(learn.moms if moms is None else moms))}
    learn.fit(n_epoch, cbs=[ParamScheduler(scheds)] + listify(cbs), reset_opt=reset_opt, wd=wd,
              start_epoch=start_epoch)


def fit_flat_cos(learn: Any, n_epoch: int, lr: float | slice | None = None, div_final: float = 1e5,
                 pct_start: float = 0.75, wd: float | None = None, cbs: Iterable | Any = None,
                 reset_opt: bool = False, start_epoch: int = 0) -> None:
    """Constant lr for `pct_start` of training, then cosine annealing to lr/div_final."""
    lr = _group_lrs(learn, lr)
    scheds = {'lr': combined_cos(pct_start, lr, lr, lr / div_final)}
    learn.fit(n_epoch, cbs=[ParamScheduler(scheds)] + listify(cbs), reset_opt=reset_opt, wd=wd,
              start_epoch=start_epoch)


def fit_sgdr(learn: Any, n_cycles: int, cycle_len: int, lr_max: float | slice | None = None, cycle_mult: int = 2,
             cbs: Iterable | Any = None, reset_opt: bool = False, wd: float | None = None,
             start_epoch: int = 0) -> None:
    """`n_cycles` cosine annealings from lr_max to 0 (warm restarts), each `cycle_mult` times longer."""
    lr_max = _group_lrs(learn, lr_max)
    lengths = [cycle_len * cycle_mult ** i for i in range(n_cycles)]
    n_epoch = sum(lengths)  # = cycle_len * (cycle_mult**n_cycles - 1) // (cycle_mult - 1), and cycle_mult=1 works
    scheds = {'lr': combine_scheds([n / n_epoch for n in lengths], [SchedCos(lr_max, 0) for _ in lengths])}
    learn.fit(n_epoch, cbs=[ParamScheduler(scheds)] + listify(cbs), reset_opt=reset_opt, wd=wd,
              start_epoch=start_epoch)


def fine_tune(learn: Any, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
              pct_start: float = 0.3, div: float = 5.0, **kwargs) -> None:
    """Train the head frozen for `freeze_epochs`, then everything with discriminative lrs for `epochs`."""
    learn.freeze()
    learn.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, **kwargs)
    base_lr /= 2
    learn.unfreeze()
    learn.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div, **kwargs)


def _group_lrs(learn: Any, lr: float | slice | None) -> np.ndarray:
    # The optimizer resolves slices into one lr per group; schedules then run on that array.
    if learn.opt is None:
        learn.create_opt()
    learn.opt.set_hyper('lr', learn.lr if lr is None else lr)
    return np.array([h['lr'] for h in learn.opt.hypers])
