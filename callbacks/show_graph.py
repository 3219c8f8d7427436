"""ShowGraphCallback: a figure of the training and validation losses, redrawn after each epoch."""
from __future__ import annotations

import io
from typing import Any

from fastprogress.core import IN_NOTEBOOK

from blocklearn.callbacks.core import Callback

__all__ = ['ShowGraphCallback']


class ShowGraphCallback(Callback):
    """After each epoch, plot the smoothed training loss per batch and the validation loss at each epoch's end.

    In a notebook the figure is shown (as a PNG) and updated in place; elsewhere (a script, the Agg backend) it
    is kept as `self.fig` to save or show. fastai draws into the progress bar's widget; a figure works in both."""
    order = 65

    def __init__(self):
        self.fig: Any = None
        self.run = True
        self._display: Any = None

    def before_fit(self) -> None:
        # lr_find's short run with no validation has nothing worth plotting.
        self.run = getattr(self.learn, 'lr_finder', None) is None
        self.fig, self._display = None, None

    def after_epoch(self) -> None:
        recorder = getattr(self.learn, 'recorder', None)
        if not self.run or recorder is None:
            return
        if self.fig is None:
            # A Figure of its own, not pyplot's: the notebook's inline backend would show it a second time.
            from matplotlib.figure import Figure
            self.fig = Figure(figsize=(6, 4))
            self.fig.add_subplot()
        ax = self.fig.axes[0]
        ax.clear()
        ax.plot(range(1, len(recorder.losses) + 1), recorder.losses, label='train')
        col = recorder.metric_names.index('valid_loss') - 1 if 'valid_loss' in recorder.metric_names else None
        if col is not None:
            pts = [(it, row[col]) for it, row in zip(recorder.iters, recorder.values) if row[col] is not None]
            if pts:
                ax.plot(*zip(*pts), 'o-', label='valid')
        n_batches = len(self.learn.dls.train) * (self.learn.n_epoch - self.learn.start_epoch)
        ax.set_xlim(0, max(n_batches, len(recorder.losses), 1))
        ax.set_xlabel('batches processed')
        ax.set_ylabel('loss')
        ax.legend()
        self._show()

    def _show(self) -> None:
        if not IN_NOTEBOOK:
            return
        from IPython.display import Image, display
        # A PNG of our own: a bare Figure has no formatter unless pyplot's inline backend happens to be loaded.
        buf = io.BytesIO()
        self.fig.savefig(buf, format='png', bbox_inches='tight')
        image = Image(data=buf.getvalue(), format='png')
        if self._display is None:
            self._display = display(image, display_id=True)
        else:
            self._display.update(image)
