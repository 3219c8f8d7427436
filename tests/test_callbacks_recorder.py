"""Recorder and ProgressCallback: smoothed loss, values, names, plots, the printed table."""
import matplotlib
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocklearn.callbacks.progress import ProgressCallback
from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import accuracy, error_rate
from synth import classification_dls, synth_learner

matplotlib.use('Agg')


def scripted_loss(values):
    """A loss function that returns `values` one after another (with a gradient path to the model)."""
    it = iter(values)

    def loss(pred, targ):
        return pred.sum() * 0 + next(it)
    return loss


def test_smooth_loss_is_an_ema_with_beta_098_debiased():
    learn = synth_learner(n_train=3, n_valid=1, loss_func=scripted_loss([4.0, 2.0, 2.0, 0.0]))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0)
    # avg_i = 0.98 avg_{i-1} + 0.02 loss_i, reported as avg_i / (1 - 0.98**i)
    assert learn.recorder.losses == pytest.approx([4.0, 2.98990, 2.65324], abs=1e-5)
    assert learn.smooth_loss == learn.recorder.losses[-1]
    assert learn.recorder.values == [[pytest.approx(2.65324, abs=1e-5), 0.0]]
    assert learn.recorder.iters == [3]


def test_values_and_metric_names():
    learn = Learner(classification_dls(n_train=2), nn.Linear(4, 3), metrics=[accuracy, error_rate])
    with learn.no_bar(), learn.no_logging():
        learn.fit(2)
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'error_rate', 'time']
    assert len(learn.recorder.values) == 2 and all(len(row) == 4 for row in learn.recorder.values)
    _, valid_loss, acc, err = learn.recorder.values[-1]
    xs, ys = map(torch.cat, zip(*learn.dls.valid))
    with torch.no_grad():
        logits = learn.model(xs)
    assert acc == pytest.approx(float((logits.argmax(1) == ys).float().mean()))
    assert err == pytest.approx(float((logits.argmax(1) != ys).float().mean()))
    assert valid_loss == pytest.approx(float(F.cross_entropy(logits, ys)), rel=1e-5)
    assert len(learn.recorder.lrs) == len(learn.recorder.losses) == 4 and learn.recorder.iters == [2, 4]


def test_train_metrics_adds_train_columns():
    learn = Learner(classification_dls(n_train=2), nn.Linear(4, 3), metrics=accuracy)
    learn.recorder.train_metrics = True
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'train_accuracy', 'valid_loss', 'valid_accuracy',
                                           'time']
    assert len(learn.recorder.values[0]) == 4


def test_progress_prints_the_table(capsys):
    learn = Learner(classification_dls(n_train=2), nn.Linear(4, 3), metrics=accuracy)
    learn.fit(2)
    lines = [line.split('\r')[-1] for line in capsys.readouterr().out.splitlines()]
    header = next(line for line in lines if 'train_loss' in line)
    assert header.split() == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']
    rows = [line.split() for line in lines if line.split() and line.split()[0] in ('0', '1')]
    assert [r[0] for r in rows] == ['0', '1']
    assert float(rows[1][2]) == pytest.approx(learn.recorder.values[1][1], abs=1e-6)


def test_no_logging_prints_no_table_and_no_bar_removes_the_progress(capsys):
    learn = synth_learner(n_train=2, n_valid=1)
    with learn.no_logging():
        learn.fit(1)
    assert 'train_loss' not in capsys.readouterr().out
    with learn.no_bar():
        assert not any(isinstance(cb, ProgressCallback) for cb in learn.cbs)
        learn.fit(1)
    out = capsys.readouterr().out
    assert '|' not in out and out.startswith('[0, ')           # the plain logger: print of the row
    assert isinstance(learn.progress, ProgressCallback)


def test_logger_restored_after_an_interrupted_fit():
    class Boom(Exception):
        pass

    def bad_loss(pred, targ):
        raise Boom()
    learn = synth_learner(loss_func=bad_loss)
    with pytest.raises(Boom):
        learn.fit(1)
    assert learn.logger is print


def test_plots_return_figures():
    import matplotlib.pyplot as plt
    learn = synth_learner(lr=1e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2)
    fig = learn.recorder.plot_loss(skip_start=0, return_fig=True)
    train, valid = fig.axes[0].lines
    assert list(train.get_ydata()) == learn.recorder.losses
    assert list(valid.get_xdata()) == [10, 20]
    fig = learn.recorder.plot_sched(return_fig=True)
    assert [ax.get_ylabel() for ax in fig.axes] == ['lr', 'mom']
    assert learn.recorder.plot_loss() is None
    plt.close('all')


def test_valid_loss_is_weighted_by_batch_size():
    torch.manual_seed(0)
    dls = classification_dls(n_valid=2)
    dls.valid = [dls.valid[0], (dls.valid[1][0][:2], dls.valid[1][1][:2])]
    learn = Learner(dls, nn.Linear(4, 3))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0)
    with torch.no_grad():
        losses = [nn.functional.cross_entropy(learn.model(x), y).item() for x, y in dls.valid]
    assert learn.recorder.values[0][1] == pytest.approx((16 * losses[0] + 2 * losses[1]) / 18)
