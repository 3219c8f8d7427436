"""ProgressCallback: fastprogress bars (console or notebook), or whole lines for a log file, and the per-epoch
results table."""
from __future__ import annotations

import time
from typing import Any

from fastprogress.fastprogress import ConsoleProgressBar, master_bar, progress_bar

from blocklearn.blocks.basics import noop
from blocklearn.blocks.console import progress_mode
from blocklearn.callbacks.core import Callback

__all__ = ['ProgressCallback']


class ProgressCallback(Callback):
    """A bar over epochs, one over batches, and the table `epoch train_loss valid_loss <metrics> time`.

    `mode='lines'` draws no bar and writes the table a whole line at a time, for a log file; `'bar'` always draws.
    The default (None) reads $BLOCKLEARN_PROGRESS, else draws in a terminal or a notebook and writes lines elsewhere.
    """
    order = 60

    def __init__(self, refresh: float = 0.1, mode: str | None = None):
        if mode is not None:
            progress_mode(mode)  # a typo fails here, not at the end of the first epoch
        self.refresh, self.mode = refresh, mode
        self.mbar: Any = None
        self.pbar: Any = None
        self._next_draw = 0.0
        self._names: list[str] = []

    def before_fit(self) -> None:
        # Over the epochs this fit runs: a resumed fit (start_epoch > 0) starts its bar at 0 like any other.
        if progress_mode(self.mode) == 'bar':
            self.mbar = master_bar(range(self.learn.n_epoch - self.learn.start_epoch))
        self._names = []
        if self.learn.logger is not noop:
            self.learn.logger = self._write_stats
            recorder = getattr(self.learn, 'recorder', None)
            if recorder is not None:
                self._write_stats(recorder.metric_names)

    def before_epoch(self) -> None:
        if self.mbar is not None:
            self.mbar.update(self.learn.epoch - self.learn.start_epoch)

    def before_train(self) -> None:
        self._launch()

    def before_validate(self) -> None:
        self._launch()

    def after_batch(self) -> None:
        if self.pbar is None:  # lines mode
            return
        # Redraw at most every `refresh` seconds: formatting a bar costs more than a small model's step.
        done = self.learn.iter + 1
        now = time.monotonic()
        if now < self._next_draw and done < self.pbar.total:
            return
        self._next_draw = now + self.refresh
        smooth = getattr(self.learn, 'smooth_loss', None)
        if self.learn.training and smooth is not None:
            self.pbar.comment = f'{smooth:.4f}'
        self.pbar.update(done)

    def after_train(self) -> None:
        self._close()

    def after_validate(self) -> None:
        self._close()

    def cleanup_train(self) -> None:
        self._close(interrupted=True)

    def cleanup_validate(self) -> None:
        self._close(interrupted=True)

    def cleanup_fit(self) -> None:
        # After the last epoch, a Cancel, an error or Ctrl-C alike: no bar is left open.
        self._close(interrupted=True)
        if self.mbar is not None:
            self.mbar.on_iter_end()
        self.mbar = None

    def _launch(self) -> None:
        if progress_mode(self.mode) == 'lines':
            return
        self.pbar = progress_bar(self.learn.dl, total=len(self.learn.dl), parent=self.mbar, leave=False)
        self.pbar.update(0)
        self._next_draw = time.monotonic() + self.refresh

    def _close(self, interrupted: bool = False) -> None:
        # A bar that reached its total has closed itself; one cut short by a Cancel must be closed here. One still
        # open at cleanup was cut by an error or Ctrl-C: end its line, so the traceback starts on a line of its own.
        if self.pbar is None:
            return
        if self.pbar.last_v is not None:
            self.pbar.on_iter_end()
            if interrupted and isinstance(self.pbar, ConsoleProgressBar):
                print(flush=True)
        self.pbar = None

    def _write_stats(self, log: list) -> None:
        cells = [f'{v:.6f}' if isinstance(v, float) else '' if v is None else str(v) for v in log]
        if self.mbar is not None:
            self.mbar.write(cells, table=True)
        elif not self._names:  # the header, once a fit; the columns as wide as the console table's
            self._names = [name.ljust(8) for name in cells]
            print('  '.join(self._names).rstrip(), flush=True)
        else:
            # two spaces between cells, also after one wider than its header (a loss of 18776.815972)
            print('  '.join(c.ljust(len(name)) for c, name in zip(cells, self._names)).rstrip(), flush=True)
