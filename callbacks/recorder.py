"""Recorder: the smoothed training loss, lrs, per-epoch values and metric names, and their plots."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

import torch
from fastprogress.core import format_time

from blocklearn.callbacks.core import Callback

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ['Recorder', 'AvgLoss', 'AvgSmoothLoss', 'batch_size']


def batch_size(learn: Any) -> int:
    """Number of samples in the learner's current batch (from the first target, else the first input)."""
    b = learn.yb[0] if learn.yb else learn.xb[0]
    return b.shape[0] if b.ndim else 1


class AvgLoss:
    """Mean loss over a phase, each batch weighted by its size."""
    name = 'loss'

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._losses, self._counts = [], []

    def accumulate(self, learn: Any) -> None:
        loss = learn.loss
        # Kept as tensors so a GPU run does not sync on every validation batch.
        self._losses.append(loss if loss.ndim == 0 else loss.mean())
        self._counts.append(batch_size(learn))

    @property
    def value(self) -> float | None:
        if not self._counts:
            return None
        losses = torch.stack(self._losses).double()
        counts = torch.tensor(self._counts, dtype=torch.float64, device=losses.device)
        return (losses * counts).sum().item() / counts.sum().item()


class AvgSmoothLoss:
    """Exponential moving average of the training loss, debiased like Adam's moments."""
    name = 'train_loss'

    def __init__(self, beta: float = 0.98):
        self.beta = beta
        self.reset()

    def reset(self) -> None:
        self.count, self._avg = 0, 0.0

    def accumulate(self, learn: Any) -> None:
        loss = learn.loss
        self.count += 1
        self._avg = self.beta * self._avg + (1 - self.beta) * (loss if loss.ndim == 0 else loss.mean()).item()

    @property
    def value(self) -> float | None:
        return self._avg / (1 - self.beta ** self.count) if self.count else None


class Recorder(Callback):
    """Record lrs, smoothed losses and each epoch's `[train_loss, valid_loss, *metrics]` in `values`."""
    order = 50

    def __init__(self, add_time: bool = True, train_metrics: bool = False, valid_metrics: bool = True,
                 beta: float = 0.98):
        self.add_time, self.train_metrics, self.valid_metrics = add_time, train_metrics, valid_metrics
        self.loss, self.smooth_loss = AvgLoss(), AvgSmoothLoss(beta)
        self.lrs, self.iters, self.losses, self.values, self.hps = [], [], [], [], {}
        self.log: list = []
        self.valid_record: list | None = None
        self._train_row, self._valid_row = [], []
        self._train_cancelled = self._valid_cancelled = False
        self._epoch_start = 0.0

    @property
    def metric_names(self) -> list[str]:
        """The columns of the results table: `epoch train_loss valid_loss <metrics> time`, from the learner's
        metrics as they are now (so `learn.metrics = ...` after creation shows up)."""
        learn = self.learn
        names = [m.name for m in learn.metrics] if learn is not None else []
        train = ['train_loss'] + ([f'train_{n}' for n in names] if self.train_metrics else [])
        valid = ['valid_loss'] + ([f'valid_{n}' for n in names] if self.train_metrics else names)
        return ['epoch'] + train + (valid if self.valid_metrics else []) + (['time'] if self.add_time else [])

    def before_fit(self) -> None:
        self.lrs, self.iters, self.losses, self.values, self.hps = [], [], [], [], {}
        self.smooth_loss.reset()

    def before_epoch(self) -> None:
        self._epoch_start = time.time()
        self._train_row = [None] * (1 + len(self._train_metrics()))
        self._valid_row = [None] * (1 + len(self.learn.metrics)) if self.valid_metrics else []

    def before_train(self) -> None:
        self._train_cancelled = False
        for m in self._train_metrics():
            m.reset()

    def before_validate(self) -> None:
        self._valid_cancelled = False
        self.valid_record = None
        self.loss.reset()
        for m in self.learn.metrics:
            m.reset()

    def after_batch(self) -> None:
        learn = self.learn
        if learn.loss is None:
            return
        if learn.training:
            smooth = self.smooth_loss
            smooth.accumulate(learn)
            learn.smooth_loss = value = smooth.value
            self.losses.append(value)
            self.lrs.append(learn.opt.param_groups[-1]['lr'])
            if self.train_metrics:
                for m in learn.metrics:
                    m.accumulate(learn)
        elif self.valid_metrics:
            self.loss.accumulate(learn)
            for m in learn.metrics:
                m.accumulate(learn)

    def after_cancel_train(self) -> None:
        self._train_cancelled = True

    def after_train(self) -> None:
        if not self._train_cancelled:
            self._train_row = [self.smooth_loss.value] + [m.value for m in self._train_metrics()]

    def after_cancel_validate(self) -> None:
        self._valid_cancelled = True

    def after_validate(self) -> None:
        if self.valid_metrics and not self._valid_cancelled:
            self.valid_record = self._valid_row = [self.loss.value] + [m.value for m in self.learn.metrics]

    def after_epoch(self) -> None:
        learn = self.learn
        learn.final_record = self._train_row + self._valid_row
        self.values.append(learn.final_record)
        self.log = [learn.epoch] + learn.final_record
        if self.add_time:
            self.log.append(format_time(time.time() - self._epoch_start))
        learn.logger(self.log)
        self.iters.append(self.smooth_loss.count)

    def _train_metrics(self) -> list:
        return list(self.learn.metrics) if self.train_metrics else []

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True, log: bool = False, show_epochs: bool = False,
                  ax: Axes | None = None, return_fig: bool = False) -> Figure | None:
        """Plot the smoothed training loss per batch (from batch `skip_start`) and, `with_valid`, the validation
        loss at each epoch's end, at the number of batches trained by then; on `ax`, else on a new figure.

        `log` puts both axes on a log scale; `show_epochs` marks each epoch's end with a dotted line."""
        if ax is None:
            _, ax = _pyplot().subplots()
        xs, losses = range(skip_start, len(self.losses)), self.losses[skip_start:]
        (ax.loglog if log else ax.plot)(xs, losses, label='train')
        if show_epochs:
            for it in self.iters:
                ax.axvline(it, color='grey', ls=':')
        if with_valid and 'valid_loss' in self.metric_names:
            col = self.metric_names.index('valid_loss') - 1
            # an epoch whose validation was cancelled has no valid loss to draw
            pts = [(it, row[col]) for it, row in zip(self.iters, self.values)
                   if it >= skip_start and row[col] is not None]
            if pts:
                (ax.loglog if log else ax.plot)(*zip(*pts), label='valid')
        ax.set_xlabel('batches processed')
        ax.set_ylabel('loss')
        ax.legend()
        return ax.figure if return_fig else None

    def plot_sched(self, keys: Sequence[str] | None = None, figsize: tuple | None = None,
                   return_fig: bool = False) -> Figure | None:
        """Plot each scheduled hyper-parameter (`lr`, `mom`, ...) against the training iteration."""
        plt = _pyplot()
        hps = self.hps if self.hps else {'lr': self.lrs}
        keys = list(hps) if keys is None else list(keys)
        fig, axs = plt.subplots(1, len(keys), figsize=figsize or (6 * len(keys), 4), squeeze=False)
        for ax, key in zip(axs[0], keys):
            ax.plot(hps[key])
            ax.set_ylabel(key)
            ax.set_xlabel('iteration')
        return fig if return_fig else None

    def plot_lr_find(self, skip_end: int = 5, suggestions: dict[str, float] | None = None,
                     return_fig: bool = False) -> Figure | None:
        """Plot smoothed loss against lr (log scale), marking each suggested lr on the curve."""
        plt = _pyplot()
        end = len(self.losses) - skip_end if len(self.losses) > skip_end else len(self.losses)
        lrs, losses = self.lrs[:end], self.losses[:end]
        fig, ax = plt.subplots()
        ax.plot(lrs, losses)
        ax.set_xscale('log')
        ax.set_xlabel('Learning Rate')
        ax.set_ylabel('Loss')
        for (name, lr), color in zip((suggestions or {}).items(), ('C1', 'C2', 'C3', 'C4', 'C5', 'C6')):
            if lrs and lr == lr:
                nearest = min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr))
                ax.plot(lr, losses[nearest], 'o', color=color, label=f'{name}: {lr:.2e}')
        if suggestions:
            ax.legend()
        return fig if return_fig else None


def _pyplot():
    # Imported on first plot: matplotlib costs half a second to import and training never needs it.
    import matplotlib.pyplot as plt
    return plt
