"""Checkpoints that resume exactly, saves that survive a kill, loads that never run code."""
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import parent_label
from blocklearn.blocks.safe_io import UnsafeFileError, safe_load
from blocklearn.blocks.splitters import GrandparentSplitter
from blocklearn.callbacks.core import Callback, CancelFitException
from blocklearn.callbacks.tracker import SaveModelCallback
from blocklearn.learner.learner import Learner
from synth import three_group_learner
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.core import PILImageBW
from blocklearn.vision.data import get_image_files
from blocklearn.vision.resize import RandomResizedCrop

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT / 'data' / 'fashion_tiny'   # the `fashion` fixture's folder, for the module-wide run


def fashion_learner(fashion: Path, path: Path, seed: int = 0, num_workers: int = 0) -> Learner:
    """A small CNN on fashion_tiny drawing random numbers three ways: shuffled batches and dropout (torch's
    generator), random crops (Python's `random`); the crops in this process by default, else in the workers."""
    seed_all(seed)
    block = DataBlock(blocks=(ImageBlock(PILImageBW), CategoryBlock), get_items=get_image_files,
                      splitter=GrandparentSplitter(), get_y=parent_label,
                      item_tfms=RandomResizedCrop(24, min_scale=0.5))
    dls = block.dataloaders(fashion, bs=64, num_workers=num_workers, device='cpu')
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(16, dls.c))
    return Learner(dls, model, path=path)


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def fit_quietly(learn: Learner, *args, **kwargs) -> None:
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(*args, **kwargs)


def assert_same_state(a: Learner, b: Learner) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f'differ: {differ}'


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """fit_one_cycle(3) with a checkpoint after every epoch: the run every resumed one must end like."""
    path = tmp_path_factory.mktemp('run')
    learn = fashion_learner(FASHION, path)
    # The resumed learners below are seeded otherwise: they get this run's random state from the checkpoint only.
    seed_all(1)
    fit_quietly(learn, 3, 1e-2, cbs=SaveModelCallback(every_epoch=True))
    return learn


def test_every_epoch_checkpoint_holds_what_resuming_needs(uninterrupted):
    folder = uninterrupted.path / 'models'
    assert sorted(p.name for p in folder.iterdir()) == ['model_0.pth', 'model_1.pth', 'model_2.pth']
    state = safe_load(folder / 'model_1.pth')
    assert set(state) == {'model', 'opt', 'epoch', 'rng'} and state['epoch'] == 1
    assert set(state['rng']) >= {'torch', 'numpy', 'python'}
    # 300 training images in batches of 64, the last partial one dropped: 4 steps an epoch
    assert [int(s['step']) for s in state['opt']['state'].values()] == [2 * 4] * len(state['opt']['state'])


def test_resumed_run_ends_bitwise_like_the_uninterrupted_one(fashion, uninterrupted):
    learn = fashion_learner(fashion, uninterrupted.path, seed=123)   # a fresh process would start elsewhere
    learn.load('model_1')
    fit_quietly(learn, 3, 1e-2, start_epoch=2)
    assert_same_state(learn, uninterrupted)
    # the optimizer's moments and step counts went on from epoch 2 too
    done, ref = learn.opt.state_dict()['state'], uninterrupted.opt.state_dict()['state']
    assert all(torch.equal(done[i][k], ref[i][k]) for i in ref for k in ref[i])
    assert int(done[0]['step']) == 3 * 4
    # and the schedule: the last epoch's lrs and moms are the tail of the uninterrupted run's
    for name in ('lr', 'mom'):
        assert learn.recorder.hps[name] == uninterrupted.recorder.hps[name][-4:]
    assert learn.recorder.log[0] == 2 and learn.recorder.values[-1][1] == uninterrupted.recorder.values[-1][1]


@pytest.fixture(scope='module')
def uninterrupted_with_workers(tmp_path_factory):
    """The same run with the crops drawn in two persistent worker processes."""
    path = tmp_path_factory.mktemp('run_workers')
    learn = fashion_learner(FASHION, path, num_workers=2)
    seed_all(1)
    fit_quietly(learn, 3, 1e-2, cbs=SaveModelCallback(every_epoch=True))
    return learn


@pytest.mark.parametrize('num_workers', [2, 1])
def test_resume_with_workers_is_bitwise_too(fashion, uninterrupted_with_workers, num_workers):
    # Each item's crop is seeded from the epoch's draw and its index: new workers, even fewer of them, crop alike.
    learn = fashion_learner(fashion, uninterrupted_with_workers.path, seed=123, num_workers=num_workers)
    learn.load('model_1')
    fit_quietly(learn, 3, 1e-2, start_epoch=2)
    assert learn.dls.train._torch_dl.num_workers == num_workers
    assert_same_state(learn, uninterrupted_with_workers)


def test_resume_with_the_default_progress_bar(fashion, uninterrupted, capsys, monkeypatch):
    # The README's recipe as typed in a console: no no_bar(), the results table printed.
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', 'bar')  # a terminal's bars (stdout is captured here)
    learn = fashion_learner(fashion, uninterrupted.path, seed=123)
    learn.load('model_1')
    learn.fit_one_cycle(3, 1e-2, start_epoch=2)
    out = capsys.readouterr().out
    rows = re.split('[\r\n]', out)
    assert 'Epoch 1/1' in out and sum(r.startswith('2 ') for r in rows) == 1   # one epoch run, logged as epoch 2
    assert_same_state(learn, uninterrupted)


class _FakeDisplay:
    """IPython's `display` as in a notebook, keeping the last HTML of each output area."""

    def __init__(self):
        self.areas: list[str] = []

    def __call__(self, obj, display_id: bool = False):
        self.areas.append(obj.data)
        area = len(self.areas) - 1
        return _Area(self, area) if display_id else None


class _Area:
    def __init__(self, display: _FakeDisplay, i: int):
        self.display, self.i = display, i

    def update(self, obj) -> None:
        self.display.areas[self.i] = obj.data


def test_resume_with_the_notebook_progress_bar(fashion, uninterrupted, monkeypatch):
    # The same recipe in Jupyter, where fastprogress draws HTML bars (what it imports when it finds a notebook).
    import fastprogress.fastprogress as fastprogress
    from IPython.display import HTML
    import blocklearn.callbacks.progress as progress
    shown = _FakeDisplay()
    for name, value in (('display', shown), ('HTML', HTML), ('clear_output', lambda **k: None),
                        ('IN_NOTEBOOK', True)):
        monkeypatch.setattr(fastprogress, name, value, raising=False)
    monkeypatch.setattr(progress, 'master_bar', fastprogress.NBMasterBar)
    monkeypatch.setattr(progress, 'progress_bar', fastprogress.NBProgressBar)
    learn = fashion_learner(fashion, uninterrupted.path, seed=123)
    learn.load('model_1')
    learn.fit_one_cycle(3, 1e-2, start_epoch=2)
    table = next(a for a in shown.areas if '<table' in a)
    rows = re.findall(r'<tr>\s*<td>(\d+)</td>', table)
    assert rows == ['2'], table                  # one epoch run, logged as epoch 2
    assert_same_state(learn, uninterrupted)


def test_resuming_without_the_rng_states_ends_elsewhere(fashion, uninterrupted):
    # The control for the test above: same weights, optimizer and schedule, but this process's random numbers.
    learn = fashion_learner(fashion, uninterrupted.path, seed=123)
    learn.load('model_1', with_rng=False)
    fit_quietly(learn, 3, 1e-2, start_epoch=2)
    with pytest.raises(AssertionError, match='differ'):
        assert_same_state(learn, uninterrupted)


class CancelAfterEpoch(Callback):
    """Stop the fit once epoch `n` has been saved, as a crash or a killed job would."""
    order = 70

    def __init__(self, n: int):
        self.n = n

    def after_epoch(self):
        if self.learn.epoch == self.n:
            raise CancelFitException()


def test_interrupted_learner_resumes_in_place(fashion, tmp_path, uninterrupted):
    learn = fashion_learner(fashion, tmp_path)
    seed_all(1)
    fit_quietly(learn, 3, 1e-2, cbs=[SaveModelCallback(every_epoch=True), CancelAfterEpoch(1)])
    assert sorted(p.name for p in (tmp_path / 'models').iterdir()) == ['model_0.pth', 'model_1.pth']
    torch.rand(10), random.random()               # the process goes on drawing before the user resumes
    learn.load('model_1')
    fit_quietly(learn, 3, 1e-2, start_epoch=2)
    assert_same_state(learn, uninterrupted)


def test_frozen_groups_are_restored_without_losing_the_moments(tmp_path):
    learn = three_group_learner(path=tmp_path)
    learn.freeze()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    learn.save('frozen')
    fresh = three_group_learner(path=tmp_path).load('frozen')
    assert fresh.opt.frozen_idx == 2
    assert [p.requires_grad for p in fresh.model[0].parameters()] == [False, False]
    assert [p.requires_grad for p in fresh.model[1].parameters()] == [True, True]     # train_bn
    saved, loaded = learn.opt.state_dict()['state'], fresh.opt.state_dict()['state']
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[i]['exp_avg'], loaded[i]['exp_avg']) for i in saved)


def test_older_files_still_load(tmp_path):
    learn = three_group_learner(path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    (tmp_path / 'models').mkdir()
    torch.save({'model': learn.model.state_dict(), 'opt': learn.opt.torch_opt.state_dict()},
               tmp_path / 'models' / 'old.pth')
    torch.save(learn.model.state_dict(), tmp_path / 'models' / 'bare.pth')
    for name in ('old', 'bare'):
        fresh = three_group_learner(path=tmp_path).load(name)
        assert_same_state(fresh, learn)
    assert fresh.opt is None                       # a bare state dict has no optimizer to restore


def test_missing_file_names_the_path_and_the_fix(tmp_path):
    learn = three_group_learner(path=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"models/stage-1\.pth: call learn\.save\('stage-1'\) first"):
        learn.load('stage-1')


class _RunsShell:
    """Unpickling this calls os.system: the attack a tampered checkpoint carries."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_tampered_checkpoint_is_refused_and_runs_nothing(tmp_path):
    learn = three_group_learner(path=tmp_path)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    marker = tmp_path / 'PWNED'
    file = tmp_path / 'models' / 'x.pth'
    file.parent.mkdir()
    torch.save({'model': before, 'payload': _RunsShell(f'touch {shlex.quote(str(marker))}')}, file)
    with pytest.raises(UnsafeFileError, match=r'Refused to load .*x\.pth: it would import .*posix\.system'):
        learn.load('x')
    assert not marker.exists()
    assert all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())


# The child saves a 64 MB model over `big.pth`. Its os.fsync is made to block (in the child only), so the save
# can never reach its rename: wherever the SIGKILL lands, it lands before the new file would replace the old.
_SAVE_AND_HANG = textwrap.dedent('''
    import os, sys, torch
    from torch import nn
    from blocklearn.learner.learner import Learner
    def hang(fd):
        sys.stdin.read()
    os.fsync = hang
    torch.manual_seed(2)
    learn = Learner(None, nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(16)]), loss_func=nn.MSELoss(),
                    path=sys.argv[1])
    learn.save('big')
''')


def test_save_killed_half_way_keeps_the_previous_checkpoint(tmp_path):
    torch.manual_seed(1)
    learn = Learner(None, nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(16)]), loss_func=nn.MSELoss(),
                    path=tmp_path)
    file = learn.save('big')
    before = file.read_bytes()
    proc = subprocess.Popen([sys.executable, '-c', _SAVE_AND_HANG, str(tmp_path)], cwd=ROOT,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        temp = _wait_for_temp_file(file.parent, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdin.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert temp.name.startswith('.big.pth.')      # what the kill interrupted
    assert file.read_bytes() == before
    fresh = Learner(None, nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(16)]), loss_func=nn.MSELoss(),
                    path=tmp_path)
    assert_same_state(fresh.load('big'), learn)


def _wait_for_temp_file(folder: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        temps = [p for p in folder.iterdir() if p.suffix == '.tmp' and p.stat().st_size > 0]
        if temps:
            return temps[0]
        if proc.poll() is not None:
            pytest.fail(f'the saving process ended on its own: {proc.stderr.read().decode()[-2000:]}')
        time.sleep(0.001)
    pytest.fail(f'no temp file appeared in {folder} within {timeout} s')


def test_a_load_that_does_not_fit_copies_nothing(tmp_path):
    saver = three_group_learner(path=tmp_path)
    saver.save('three')
    torch.manual_seed(1)
    learn = Learner(saver.dls, nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 16),
                                             nn.ReLU(), nn.Linear(16, 3)), path=tmp_path)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(RuntimeError, match='do not fit this model.*nothing was loaded'):
        learn.load('three')
    # the first layers have the saved shapes and would have been overwritten by a plain load_state_dict
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in before.items())
