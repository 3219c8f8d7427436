"""The Callback base, the event order of a fit, and where each Cancel exception is caught."""
import functools
import warnings

import pytest
import torch
import torch.nn.functional as F

from blocklearn.callbacks.core import (Callback, CancelBackwardException, CancelBatchException, CancelEpochException,
                            CancelFitException, CancelStepException, CancelTrainException, CancelValidException,
                            event, events, snake_name)
from blocklearn.callbacks.csv_logger import CSVLogger
from blocklearn.callbacks.fp16 import MixedPrecision
from blocklearn.callbacks.lr_finder import LRFinder
from blocklearn.callbacks.recorder import Recorder
from blocklearn.callbacks.terminate import TerminateOnNaNCallback
from blocklearn.callbacks.tracker import SaveModelCallback
from blocklearn.callbacks.train_eval import TrainEvalCallback
from synth import synth_learner

TRAIN_BATCH = ['before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_backward', 'before_step',
               'after_step', 'after_batch']
VALID_BATCH = ['before_batch', 'after_pred', 'after_loss', 'after_batch']


class EventLog(Callback):
    """Records every event it sees, in order (the cleanup events only with `cleanup=True`)."""
    order = 100

    def __init__(self, cleanup: bool = False):
        self.seen = []
        for name in events:
            if cleanup or not name.startswith('cleanup_'):
                setattr(self, name, functools.partial(self.seen.append, name))


class RaiseAt(Callback):
    """Raises `exc` the first time `at` fires (after EventLog has recorded it)."""
    order = 110

    def __init__(self, at: str, exc: type):
        self.exc, self.done = exc, False
        setattr(self, at, self.fire)

    def fire(self):
        if not self.done:
            self.done = True
            raise self.exc()


def test_event_names_in_spec_order():
    spec = ['before_fit', 'before_epoch', 'before_train', 'before_batch', 'after_pred', 'after_loss',
            'before_backward', 'after_backward', 'before_step', 'after_step', 'after_batch', 'after_train',
            'before_validate', 'after_validate', 'after_epoch', 'after_fit']
    assert [e for e in events if e in spec] == spec
    assert event.before_fit == 'before_fit' and event.after_cancel_step == 'after_cancel_step'
    levels = ('batch', 'train', 'validate', 'epoch', 'fit', 'step', 'backward')
    assert {f'after_cancel_{x}' for x in levels} <= set(events)


def test_full_event_order_of_one_epoch():
    learn = synth_learner(n_train=2, n_valid=1)
    log = EventLog()
    learn.fit(1, cbs=log)
    expected = (['before_fit', 'before_epoch', 'before_train'] + TRAIN_BATCH * 2 + ['after_train', 'before_validate']
                + VALID_BATCH + ['after_validate', 'after_epoch', 'after_fit'])
    assert log.seen == expected


def test_cleanup_closes_each_level_after_its_after_event():
    learn = synth_learner(n_train=1, n_valid=1)
    log = EventLog(cleanup=True)
    learn.fit(1, cbs=log)
    expected = (['before_fit', 'before_epoch', 'before_train'] + TRAIN_BATCH + ['cleanup_batch', 'after_train',
                'cleanup_train', 'before_validate'] + VALID_BATCH + ['cleanup_batch', 'after_validate',
                'cleanup_validate', 'after_epoch', 'cleanup_epoch', 'after_fit', 'cleanup_fit'])
    assert log.seen == expected


@pytest.mark.parametrize('mode', ['bar', 'lines'])
@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_an_error_runs_every_open_levels_cleanup_then_propagates(exc, mode, capsys, monkeypatch):
    monkeypatch.setenv('BLOCKLEARN_PROGRESS', mode)
    learn = synth_learner(n_train=3, n_valid=1)
    log = EventLog(cleanup=True)
    with pytest.raises(exc):
        learn.fit(2, cbs=[log, RaiseAt('after_loss', exc)])      # the default progress bar on
    out = capsys.readouterr().out
    assert out.endswith('\n')                              # a bar drawn, or the table's header: its line ended
    assert ('Epoch 1/2' in out) == (mode == 'bar') and ('\r' in out) == (mode == 'bar')
    assert learn.progress.pbar is None and learn.progress.mbar is None
    # No after_* event (the levels did not end), each cleanup once, innermost first.
    assert log.seen == ['before_fit', 'before_epoch', 'before_train', 'before_batch', 'after_pred', 'after_loss',
                        'cleanup_batch', 'cleanup_train', 'cleanup_epoch', 'cleanup_fit']
    assert not learn.training and not learn.model.training
    assert learn.xb == () and learn.pred is None and log not in learn.cbs


def test_a_failing_cleanup_does_not_stop_the_others_nor_hide_the_error():
    class BadCleanup(Callback):
        def cleanup_fit(self):
            raise ValueError('cleanup failed')
    learn = synth_learner(n_train=1, n_valid=1)
    log = EventLog(cleanup=True)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=[BadCleanup(), log, RaiseAt('before_train', KeyboardInterrupt)])
    assert log.seen[-1] == 'cleanup_fit'
    with pytest.raises(ValueError, match='cleanup failed'):  # with nothing else on its way out, it is raised
        learn.fit(1, cbs=BadCleanup())


def test_the_loop_sets_train_and_eval_mode_without_default_callbacks():
    learn = synth_learner(n_train=5, n_valid=1, lr=0.1, default_cbs=False)
    modes = []

    class Modes(Callback):
        def after_pred(self):
            modes.append((self.learn.training, self.learn.model.training))
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(2, cbs=Modes())
    assert modes == ([(True, True)] * 5 + [(False, False)]) * 2
    assert not any(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    xs, ys = zip(*learn.dls.valid)
    assert F.mse_loss(learn.model(torch.cat(xs)), torch.cat(ys)) < F.mse_loss(
        torch.cat(xs) @ before[0].T + before[1], torch.cat(ys))


def test_after_create_fires_for_callbacks_given_to_the_learner():
    log = EventLog()
    synth_learner(cbs=log)
    assert log.seen == ['after_create']


CANCEL_CASES = [
    # (event that raises, exception, events of the first train batch / the whole fit expected)
    ('after_pred', CancelBatchException,
     ['before_batch', 'after_pred', 'after_cancel_batch', 'after_batch']),
    ('before_backward', CancelBackwardException,
     ['before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_cancel_backward', 'after_backward',
      'before_step', 'after_step', 'after_batch']),
    ('before_step', CancelStepException,
     ['before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_backward', 'before_step',
      'after_cancel_step', 'after_step', 'after_batch']),
]


@pytest.mark.parametrize('at,exc,first_batch', CANCEL_CASES)
def test_batch_level_cancels_skip_only_the_rest_of_their_level(at, exc, first_batch):
    learn = synth_learner(n_train=2, n_valid=1)
    log = EventLog()
    learn.fit(1, cbs=[log, RaiseAt(at, exc)])
    assert log.seen[3:3 + len(first_batch)] == first_batch
    assert log.seen[3 + len(first_batch):3 + len(first_batch) + len(TRAIN_BATCH)] == TRAIN_BATCH
    assert log.seen[-3:] == ['after_validate', 'after_epoch', 'after_fit']


def test_cancel_step_leaves_weights_and_cancel_backward_leaves_no_grads():
    learn = synth_learner(n_train=1, n_valid=1)
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, cbs=RaiseAt('before_step', CancelStepException))
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))

    class GradSeen(Callback):
        def before_step(self):
            self.grads = [p.grad for p in self.learn.model.parameters()]
    seen = GradSeen()
    learn.fit(1, cbs=[RaiseAt('before_backward', CancelBackwardException), seen])
    assert seen.grads == [None, None]


def test_cancel_train_goes_on_to_validation():
    learn = synth_learner(n_train=3, n_valid=1)
    log = EventLog()
    learn.fit(1, cbs=[log, RaiseAt('before_batch', CancelTrainException)])
    assert log.seen[:6] == ['before_fit', 'before_epoch', 'before_train', 'before_batch', 'after_cancel_train',
                            'after_train']
    assert log.seen[6:] == ['before_validate'] + VALID_BATCH + ['after_validate', 'after_epoch', 'after_fit']


def test_cancel_validate_goes_on_to_after_epoch():
    learn = synth_learner(n_train=1, n_valid=3)
    log = EventLog()
    learn.fit(1, cbs=[log, RaiseAt('before_validate', CancelValidException)])
    assert log.seen[-6:] == ['after_train', 'before_validate', 'after_cancel_validate', 'after_validate',
                             'after_epoch', 'after_fit']
    assert learn.recorder.values == [[pytest.approx(learn.recorder.losses[-1]), None]]


def test_cancel_epoch_goes_on_to_the_next_epoch():
    learn = synth_learner(n_train=1, n_valid=1)
    log = EventLog()
    learn.fit(2, cbs=[log, RaiseAt('before_train', CancelEpochException)])
    assert log.seen[:5] == ['before_fit', 'before_epoch', 'before_train', 'after_cancel_epoch', 'after_epoch']
    assert log.seen[5:8] == ['before_epoch', 'before_train', 'before_batch']
    assert len(learn.recorder.values) == 2 and learn.recorder.values[0] == [None, None]


def test_cancel_fit_runs_after_fit_and_nothing_else():
    learn = synth_learner(n_train=3, n_valid=1)
    log = EventLog()
    learn.fit(3, cbs=[log, RaiseAt('after_step', CancelFitException)])
    assert log.seen[-4:] == ['before_step', 'after_step', 'after_cancel_fit', 'after_fit']
    assert learn.train_iter == 0


@pytest.mark.parametrize('exc', [CancelStepException, CancelBackwardException, CancelTrainException])
def test_cancel_is_caught_only_at_its_own_level(exc):
    learn = synth_learner(n_train=1, n_valid=1)
    # Raised in before_fit, outside the level each exception belongs to: nothing catches it.
    with pytest.raises(exc):
        learn.fit(1, cbs=RaiseAt('before_fit', exc))


def test_names_are_snake_case_without_callback():
    assert Recorder().name == 'recorder'
    assert TrainEvalCallback().name == 'train_eval'
    assert LRFinder().name == 'lr_finder'
    assert CSVLogger().name == 'csv_logger'
    assert SaveModelCallback().name == 'save_model'
    assert MixedPrecision().name == 'mixed_precision'
    assert snake_name('TerminateOnNaNCallback') == TerminateOnNaNCallback().name


def test_learner_exposes_callbacks_by_name_and_removes_them():
    learn = synth_learner()
    assert isinstance(learn.recorder, Recorder) and learn.train_eval.learn is learn
    learn.add_cb(CSVLogger)
    assert isinstance(learn.csv_logger, CSVLogger)
    learn.remove_cb(CSVLogger)
    assert not hasattr(learn, 'csv_logger') and all(not isinstance(c, CSVLogger) for c in learn.cbs)
    with learn.added_cbs([CSVLogger()]):
        assert hasattr(learn, 'csv_logger')
    assert not hasattr(learn, 'csv_logger')


def test_callbacks_run_in_stable_order():
    learn = synth_learner()
    a, b = Callback(), Callback()
    learn.add_cbs([a, b])
    orders = [cb.order for cb in learn.cbs]
    assert orders == sorted(orders) and learn.cbs.index(a) < learn.cbs.index(b)


def test_reads_go_to_the_learner_writes_must_say_learn():
    class Peek(Callback):
        def __init__(self):
            self.seen = []

        def after_batch(self):
            self.seen.append((self.epoch, self.train_iter))
            self.epoch = 99
    learn = synth_learner(n_train=1, n_valid=1)
    peek = Peek()
    with pytest.warns(UserWarning, match=r'self\.learn\.epoch'):
        learn.fit(1, cbs=peek)
    # The write made a callback attribute that hides the learner's from then on; the learner is untouched.
    assert peek.seen == [(0, 1), (99, 1)] and learn.epoch == 0


def test_run_valid_false_skips_validation_batches():
    class TrainOnly(Callback):
        run_valid = False

        def __init__(self):
            self.batches = 0

        def after_batch(self):
            self.batches += 1
    cb = TrainOnly()
    synth_learner(n_train=3, n_valid=2).fit(1, cbs=cb)
    assert cb.batches == 3


def test_unknown_attribute_error_names_the_callback():
    cb = Callback()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(AttributeError, match="'Callback' object has no attribute 'nope'"):
            cb.nope


def test_gradients_left_by_ctrl_c_between_backward_and_step_never_reach_the_next_step():
    learn = synth_learner(n_train=2, n_valid=1)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, cbs=RaiseAt('before_step', KeyboardInterrupt))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in learn.model.parameters())

    class GradsAtFirstBackward(Callback):
        def before_backward(self):
            self.grads = [p.grad for p in self.learn.model.parameters()]
            raise CancelFitException()
    seen = GradsAtFirstBackward()
    learn.fit(1, cbs=seen)
    assert all(g is None or g.abs().sum() == 0 for g in seen.grads)
