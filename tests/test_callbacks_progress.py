"""ProgressCallback in a log file (lines) and in a terminal (bars): whole lines, one row an epoch, ended lines."""
import logging
import math

import pytest
import torch.nn as nn

from blocklearn.callbacks.core import Callback
from blocklearn.callbacks.progress import ProgressCallback
from blocklearn.callbacks.terminate import TerminateOnNaNCallback
from blocklearn.callbacks.tracker import EarlyStoppingCallback
from blocklearn.learner.metrics import accuracy
from blocklearn.learner.learner import Learner
from synth import classification_dls, synth_learner


class FailAt(Callback):
    """Raise RuntimeError at the `batch`-th training batch of epoch `epoch`."""

    def __init__(self, epoch: int, batch: int):
        self.epoch_at, self.batch_at = epoch, batch

    def after_loss(self):
        if self.training and (self.learn.epoch, self.learn.iter) == (self.epoch_at, self.batch_at):
            raise RuntimeError('boom')


def plain_logging(monkeypatch) -> None:
    """Status messages on stdout as a script has them: pytest's root handlers taken away (in the test's body,
    as pytest adds them when the test's call begins)."""
    monkeypatch.setattr(logging.getLogger(), 'handlers', [])


def test_lines_mode_writes_the_header_then_one_row_per_epoch(monkeypatch, capsys):
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', 'lines')
    learn = Learner(classification_dls(n_train=3), nn.Linear(4, 3), metrics=accuracy)
    learn.fit(3)
    learn.get_preds()                                  # inference draws no bar either
    out = capsys.readouterr().out
    assert '\r' not in out and out.endswith('\n')
    lines = out.splitlines()
    assert lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time'] and len(lines) == 4
    for epoch, (line, values) in enumerate(zip(lines[1:], learn.recorder.values)):
        cells = line.split()
        assert cells[0] == str(epoch) and [float(c) for c in cells[1:4]] == pytest.approx(values, abs=1e-6)
    assert len(lines[0]) >= len(lines[1]) - 8          # columns aligned under the header's names


def test_lines_mode_parameter_beats_the_variable(monkeypatch, capsys):
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', 'bar')
    learn = synth_learner(n_train=2, n_valid=1)
    with learn.no_bar():                               # only the one given, in lines mode
        learn.fit(2, cbs=ProgressCallback(mode='lines'))
    out = capsys.readouterr().out
    assert '\r' not in out and len(out.splitlines()) == 3, out
    with pytest.raises(ValueError, match="mode='line': use 'bar'"):
        ProgressCallback(mode='line')


def test_lines_mode_an_interrupted_fit_leaves_only_whole_lines(monkeypatch, capsys):
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', 'lines')
    learn = synth_learner(n_train=4, n_valid=1)
    with pytest.raises(RuntimeError, match='boom'):
        learn.fit(3, cbs=FailAt(epoch=1, batch=2))
    out = capsys.readouterr().out
    assert '\r' not in out and out.endswith('\n') and len(out.splitlines()) == 2   # the header, epoch 0's row
    assert learn.progress.pbar is None and learn.progress.mbar is None


def test_lines_mode_early_stopping_says_so_on_a_line_of_its_own(monkeypatch, capsys):
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', 'lines')
    plain_logging(monkeypatch)
    learn = synth_learner(lr=0.0, n_train=2, n_valid=1)
    learn.fit(10, cbs=EarlyStoppingCallback(patience=2))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ['epoch', '0', '1', '2', 'No']
    assert lines[-1] == 'No improvement since epoch 0: early stopping'


@pytest.mark.parametrize('mode', ['bar', 'lines'])
def test_a_nan_stop_is_said_after_the_bar_it_cut_has_ended_its_line(mode, monkeypatch, capsys):
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', mode)
    plain_logging(monkeypatch)
    losses = iter([1.0, 2.0, math.nan, 1.0])
    learn = synth_learner(n_train=4, loss_func=lambda pred, targ: pred.sum() * 0 + next(losses))
    learn.fit(2, cbs=TerminateOnNaNCallback())
    out = capsys.readouterr().out
    message = out[out.index('Loss is nan'):]
    assert message.count('\n') == 1 and message.endswith('\n')
    assert out[:out.index('Loss is nan')].endswith('\n')          # not glued to a bar fragment
    assert ('\r' in out) == (mode == 'bar')


def test_lines_mode_keeps_a_value_wider_than_its_header_apart_from_the_next(monkeypatch, capsys):
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', 'lines')
    huge = lambda pred, targ: nn.functional.cross_entropy(pred, targ) * 1e6  # noqa: E731 (a loss in the 100000s)
    learn = Learner(classification_dls(n_train=3), nn.Linear(4, 3), loss_func=huge, metrics=accuracy)
    learn.fit(1, lr=0.)
    lines = capsys.readouterr().out.splitlines()
    cells = lines[1].split()
    assert len(cells) == 5 and float(cells[2]) > 1e5 and len(cells[2]) > len('valid_loss'), lines
    assert float(cells[3]) == pytest.approx(learn.recorder.values[0][2], abs=1e-6)
