"""CSVLogger: append each epoch's results row to a CSV file under the learner's path."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from blocklearn.callbacks.core import Callback

if TYPE_CHECKING:
    import pandas as pd

__all__ = ['CSVLogger']


class CSVLogger(Callback):
    """Write the Recorder's table (`epoch, train_loss, valid_loss, <metrics>, time`) to `path/fname`."""
    order = 60

    def __init__(self, fname: str = 'history.csv', append: bool = False):
        self.fname, self.append = fname, append
        self.file_path: Path | None = None

    def before_fit(self) -> None:
        recorder = getattr(self.learn, 'recorder', None)
        if recorder is None:
            raise ValueError("CSVLogger writes the Recorder's rows: keep the default callbacks.")
        self.file_path = Path(self.learn.path) / self.fname
        self.file_path.parent.mkdir(parents=True, exist_ok=True)
        if not (self.append and self.file_path.exists()):
            self._write(recorder.metric_names, mode='w')

    def after_epoch(self) -> None:
        self._write(['' if v is None else v for v in self.learn.recorder.log], mode='a')

    def read_log(self) -> pd.DataFrame:
        """The CSV written so far, as a pandas DataFrame."""
        import pandas as pd  # only here: pandas is slow to import and logging never needs it
        return pd.read_csv(self.file_path)

    def _write(self, row: list, mode: str) -> None:
        # Opened per epoch so the file is complete on disk even if training is interrupted.
        with open(self.file_path, mode, newline='') as f:
            csv.writer(f).writerow(row)
