"""SaveModelCallback, EarlyStoppingCallback and CSVLogger on tiny runs, files under tmp_path."""
import csv

import pytest
import torch

from blocklearn.callbacks.csv_logger import CSVLogger
from blocklearn.callbacks.tracker import EarlyStoppingCallback, SaveModelCallback
from synth import synth_learner


def quiet(learn):
    return learn.no_bar()


def test_save_model_keeps_the_best_and_loads_it_at_the_end(tmp_path, caplog):
    learn = synth_learner(path=tmp_path, lr=0.05)
    with quiet(learn):
        learn.fit(3, cbs=SaveModelCallback())
    assert (tmp_path / 'models' / 'model.pth').exists()
    assert caplog.text.count('Better model found') == 3   # the loss falls every epoch (the blocklearn logger)
    saved = torch.load(tmp_path / 'models' / 'model.pth', weights_only=True)['model']
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in saved.items())


def test_save_model_every_epoch(tmp_path):
    learn = synth_learner(path=tmp_path)
    with quiet(learn):
        learn.fit(3, cbs=SaveModelCallback(every_epoch=True, fname='ep'))
    assert sorted(p.name for p in (tmp_path / 'models').iterdir()) == ['ep_0.pth', 'ep_1.pth', 'ep_2.pth']


def test_save_model_names_unknown_monitor(tmp_path):
    learn = synth_learner(path=tmp_path)
    with quiet(learn), pytest.raises(ValueError, match=r"monitor='accuracy' is not recorded.*'valid_loss'"):
        learn.fit(1, cbs=SaveModelCallback(monitor='accuracy'))


def test_early_stopping_after_patience_epochs_without_improvement(caplog):
    learn = synth_learner(lr=0.0)                  # nothing changes: no epoch beats the first
    with quiet(learn):
        learn.fit(10, cbs=EarlyStoppingCallback(patience=2))
    assert len(learn.recorder.values) == 3
    assert 'No improvement since epoch 0: early stopping' in caplog.text


def test_early_stopping_min_delta_demands_a_real_improvement():
    learn = synth_learner(lr=1e-4)                 # tiny improvements each epoch
    with quiet(learn):
        learn.fit(10, cbs=EarlyStoppingCallback(min_delta=1.0, patience=1))
    assert len(learn.recorder.values) == 2


def test_csv_logger_writes_the_table(tmp_path):
    learn = synth_learner(path=tmp_path)
    with quiet(learn):
        learn.fit(2, cbs=CSVLogger())
    with open(tmp_path / 'history.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['epoch', 'train_loss', 'valid_loss', 'time']
    assert [r[0] for r in rows[1:]] == ['0', '1']
    assert [float(r[2]) for r in rows[1:]] == pytest.approx([v[1] for v in learn.recorder.values])
    with quiet(learn):
        learn.fit(1, cbs=CSVLogger(append=True))
    assert len(list(csv.reader(open(tmp_path / 'history.csv')))) == 4


def test_with_opt_defaults_to_what_each_save_is_for(tmp_path):
    learn = synth_learner(path=tmp_path, lr=0.05)
    with quiet(learn):
        learn.fit(2, cbs=[SaveModelCallback(fname='best'), SaveModelCallback(every_epoch=True, fname='ep')])
    best = torch.load(tmp_path / 'models' / 'best.pth', weights_only=True)
    ep = torch.load(tmp_path / 'models' / 'ep_1.pth', weights_only=True)
    assert 'opt' not in best                       # the best weights, as fastai saves them
    assert 'opt' in ep and ep['epoch'] == 1        # a checkpoint to resume from

