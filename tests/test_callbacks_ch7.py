"""The callbacks of fastbook chapter 7 and the everyday names: MixUp, CutMix, label smoothing, ReduceLROnPlateau,
GradientAccumulation, ShowGraphCallback, channels last and set_seed."""
from __future__ import annotations

import io
import math
import random

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocklearn.blocks.losses import (BCEWithLogitsLossFlat, CrossEntropyLossFlat, LabelSmoothingCrossEntropy,
                                      LabelSmoothingCrossEntropyFlat)
from blocklearn.blocks.recipe import loss_from_recipe, loss_recipe
from blocklearn.blocks.rng import set_seed
from blocklearn.callbacks.channels_last import ChannelsLast
from blocklearn.callbacks.core import Callback
from blocklearn.callbacks.cutmix import CutMix
from blocklearn.callbacks.fp16 import MixedPrecision
from blocklearn.callbacks.grad_accum import GradientAccumulation
from blocklearn.callbacks.mixup import MixUp
from blocklearn.callbacks.show_graph import ShowGraphCallback
from blocklearn.callbacks.tracker import ReduceLROnPlateau
from blocklearn.learner.learner import Learner
from blocklearn.learner.optimizer import SGD
from synth import SynthDataLoaders, synth_learner


def image_dls(n_train: int = 3, n_valid: int = 2, bs: int = 8, n_classes: int = 3, one_hot: bool = False,
              loss_func=None) -> SynthDataLoaders:
    """Batches of random 3x8x8 'images' with class targets (or their one-hot floats)."""
    g = torch.Generator().manual_seed(0)

    def batches(n: int) -> list:
        out = []
        for _ in range(n):
            y = torch.randint(0, n_classes, (bs,), generator=g)
            out.append((torch.rand(bs, 3, 8, 8, generator=g), F.one_hot(y, n_classes).float() if one_hot else y))
        return out
    return SynthDataLoaders(batches(n_train), batches(n_valid), loss_func=loss_func or CrossEntropyLossFlat(),
                            c=n_classes)


def image_learner(dls: SynthDataLoaders | None = None, **kwargs) -> Learner:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    return Learner(dls or image_dls(), model, **kwargs)


class Spy(Callback):
    """Keeps, per batch, the loader's batch, what the model saw, the predictions and the loss."""
    order = 80  # after the mixing callbacks' before_batch

    def before_fit(self):
        self.train, self.valid = [], []

    def after_loss(self):
        rec = dict(b=tuple(o.clone() for o in self.learn.b), xb=self.learn.xb[0].clone(), yb=self.learn.yb,
                   pred=self.learn.pred.detach().clone(), loss=self.learn.loss.clone())
        (self.train if self.learn.training else self.valid).append(rec)


class MixSpy(Callback):
    """Keeps the mixing callback's draws of each training batch (read before the next batch replaces them)."""
    order = 80

    def __init__(self, mix: Callback):
        self.mix, self.draws = mix, []

    def after_loss(self):
        if self.learn.training:
            self.draws.append(dict(lam=self.mix.lam.clone(), shuffle=self.mix.shuffle.clone(),
                                   box=getattr(self.mix, 'box', None)))


def quiet(learn: Learner):
    return learn.no_bar()


def fit_with(mix: Callback, loss_func=None, dls=None, n_epoch: int = 1):
    learn = image_learner(dls, loss_func=loss_func)
    spy, draws = Spy(), MixSpy(mix)
    with quiet(learn), learn.no_logging():
        learn.fit(n_epoch, lr=1e-2, cbs=[mix, spy, draws])
    return learn, spy.train, spy.valid, draws.draws


def per_item_ce(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -pred.log_softmax(-1).gather(1, y[:, None])[:, 0]


# -- MixUp ---------------------------------------------------------------------------------------------------
def test_mixup_batch_is_lam_x_plus_1_minus_lam_shuffled_x_and_loss_is_the_lerp():
    torch.manual_seed(1)
    learn, train, valid, draws = fit_with(MixUp(alpha=0.4))
    assert len(train) == 3 == len(draws)
    for rec, d in zip(train, draws):
        x, y = rec['b']
        lam, perm = d['lam'], d['shuffle']
        assert lam.shape == (8,) and bool((lam >= 0.5).all()) and bool((lam <= 1).all())
        assert sorted(perm.tolist()) == list(range(8))
        w = lam[:, None, None, None]
        assert torch.allclose(rec['xb'], w * x + (1 - w) * x[perm], atol=1e-6)
        expected = (lam * per_item_ce(rec['pred'], y) + (1 - lam) * per_item_ce(rec['pred'], y[perm])).mean()
        assert rec['loss'].item() == pytest.approx(expected.item(), rel=1e-5)
    # Validation is left alone: the model sees the batch as loaded, the loss is plain cross-entropy.
    for rec in valid:
        assert torch.equal(rec['xb'], rec['b'][0])
        assert rec['loss'].item() == pytest.approx(F.cross_entropy(rec['pred'], rec['b'][1]).item(), rel=1e-5)
    assert isinstance(learn.loss_func, CrossEntropyLossFlat) and learn.loss_func.reduction == 'mean'


def test_mixup_draws_differ_between_batches_and_follow_the_seed():
    torch.manual_seed(3)
    *_, first = fit_with(MixUp())
    torch.manual_seed(3)
    *_, again = fit_with(MixUp())
    assert not torch.equal(first[0]['lam'], first[1]['lam'])
    assert all(torch.equal(a['lam'], b['lam']) and torch.equal(a['shuffle'], b['shuffle'])
               for a, b in zip(first, again))


def test_mixup_with_label_smoothing_lerps_the_smoothed_losses():
    torch.manual_seed(2)
    learn, train, _, draws = fit_with(MixUp(), loss_func=LabelSmoothingCrossEntropy())
    rec, d = train[0], draws[0]
    y, lam, perm = rec['b'][1], d['lam'], d['shuffle']

    def ls(pred, t):
        return F.cross_entropy(pred, t, label_smoothing=0.1, reduction='none')
    expected = (lam * ls(rec['pred'], y) + (1 - lam) * ls(rec['pred'], y[perm])).mean()
    assert rec['loss'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert isinstance(learn.loss_func, LabelSmoothingCrossEntropy) and learn.loss_func.reduction == 'mean'


def test_mixup_keeps_a_sum_reduction():
    torch.manual_seed(2)
    _, train, _, draws = fit_with(MixUp(), loss_func=CrossEntropyLossFlat(reduction='sum'))
    rec, d = train[0], draws[0]
    y, lam, perm = rec['b'][1], d['lam'], d['shuffle']
    expected = (lam * per_item_ce(rec['pred'], y) + (1 - lam) * per_item_ce(rec['pred'], y[perm])).sum()
    assert rec['loss'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_mixup_mixes_one_hot_targets_instead_of_losses():
    torch.manual_seed(4)
    learn, train, _, draws = fit_with(MixUp(), loss_func=BCEWithLogitsLossFlat(), dls=image_dls(one_hot=True))
    rec, d = train[0], draws[0]
    y, lam, perm = rec['b'][1], d['lam'][:, None], d['shuffle']
    mixed_y = lam * y + (1 - lam) * y[perm]
    assert torch.allclose(rec['yb'][0], mixed_y, atol=1e-6)
    assert rec['loss'].item() == pytest.approx(F.binary_cross_entropy_with_logits(rec['pred'], mixed_y).item(),
                                               rel=1e-5)
    assert isinstance(learn.loss_func, BCEWithLogitsLossFlat)


class Boom(Callback):
    def after_batch(self):
        if self.learn.training:
            raise RuntimeError('boom')


@pytest.mark.parametrize('mix', [MixUp, CutMix])
def test_loss_func_is_restored_after_an_error(mix):
    loss = CrossEntropyLossFlat()
    learn = image_learner(loss_func=loss)
    with quiet(learn), pytest.raises(RuntimeError, match='boom'):
        learn.fit(1, cbs=[mix(), Boom()])
    assert learn.loss_func is loss and loss.reduction == 'mean'
    # ... and after an interrupted fit, the learner trains and validates as before.
    assert learn.validate()[0] == pytest.approx(F.cross_entropy(
        learn.model(torch.cat([b[0] for b in learn.dls.valid])), torch.cat([b[1] for b in learn.dls.valid])).item(),
        rel=1e-5)


def test_mixup_loss_needs_a_per_item_loss():
    def mean_only(pred, targ):
        return F.cross_entropy(pred, targ)
    learn = image_learner(loss_func=mean_only)
    with quiet(learn), pytest.raises(TypeError, match='reduction'):
        learn.fit(1, cbs=MixUp())
    assert learn.loss_func is mean_only


# -- CutMix --------------------------------------------------------------------------------------------------
def test_cutmix_pastes_a_box_of_the_shuffled_batch_and_lam_is_the_area_left():
    torch.manual_seed(5)
    learn, train, valid, draws = fit_with(CutMix(alpha=1.), n_epoch=2)
    boxes = []
    for rec, d in zip(train, draws):
        x, y = rec['b']
        perm, (x1, y1, x2, y2) = d['shuffle'], d['box']
        boxes.append((x1, y1, x2, y2))
        expected = x.clone()
        expected[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
        assert torch.equal(rec['xb'], expected)
        lam = 1 - (x2 - x1) * (y2 - y1) / 64
        assert d['lam'].item() == pytest.approx(lam)
        expected_loss = (lam * per_item_ce(rec['pred'], y) + (1 - lam) * per_item_ce(rec['pred'], y[perm])).mean()
        assert rec['loss'].item() == pytest.approx(expected_loss.item(), rel=1e-5)
    assert len(set(boxes)) > 1
    assert all(torch.equal(rec['xb'], rec['b'][0]) for rec in valid)
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)


# -- label smoothing -----------------------------------------------------------------------------------------
def test_label_smoothing_matches_the_hand_formula():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    targ = torch.tensor([0, 2])
    eps, c = 0.1, 3
    by_hand = []
    for row, t in zip(logits.tolist(), targ.tolist()):
        logz = math.log(sum(math.exp(v) for v in row))
        log_p = [v - logz for v in row]
        # the target distribution puts 1 - eps + eps/c on the label and eps/c on every other class
        q = [(1 - eps) * (i == t) + eps / c for i in range(c)]
        by_hand.append(-sum(qi * lp for qi, lp in zip(q, log_p)))
    assert LabelSmoothingCrossEntropy()(logits, targ).item() == pytest.approx(sum(by_hand) / 2, rel=1e-6)
    assert LabelSmoothingCrossEntropy(reduction='sum')(logits, targ).item() == pytest.approx(sum(by_hand), rel=1e-6)
    assert LabelSmoothingCrossEntropy(reduction='none')(logits, targ).tolist() == pytest.approx(by_hand, rel=1e-6)
    assert LabelSmoothingCrossEntropy(eps=0.3)(logits, targ).item() == pytest.approx(
        F.cross_entropy(logits, targ, label_smoothing=0.3).item(), rel=1e-6)
    assert LabelSmoothingCrossEntropy(eps=0.0)(logits, targ).item() == pytest.approx(
        F.cross_entropy(logits, targ).item(), rel=1e-6)


def test_label_smoothing_flat_activation_decodes_and_recipe():
    loss = LabelSmoothingCrossEntropyFlat(eps=0.2)
    logits, targ = torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))
    assert loss(logits, targ).item() == pytest.approx(
        F.cross_entropy(logits.reshape(6, 5), targ.reshape(6), label_smoothing=0.2).item(), rel=1e-6)
    probs = loss.activation(logits)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 3)) and torch.equal(loss.decodes(probs), logits.argmax(-1))
    plain = LabelSmoothingCrossEntropy(eps=0.2, reduction='sum')
    assert torch.equal(plain.decodes(plain.activation(logits[0])), logits[0].argmax(-1))
    for lf in (loss, plain):
        back = loss_from_recipe(loss_recipe(lf))
        assert type(back) is type(lf)
        assert back(logits[0], targ[0]).item() == pytest.approx(lf(logits[0], targ[0]).item())


# -- ReduceLROnPlateau ---------------------------------------------------------------------------------------
def plateau(pred, targ):
    return torch.tensor(0.5)  # a metric that never improves


def epoch_lrs(learn: Learner, n_epoch: int) -> list[float]:
    per_epoch = len(learn.recorder.lrs) // n_epoch
    return [learn.recorder.lrs[i * per_epoch] for i in range(n_epoch)]


def test_reduce_lr_on_plateau_divides_every_group_by_factor_after_patience(caplog):
    learn = synth_learner(metrics=plateau)
    with quiet(learn):
        learn.fit(5, lr=1e-2, cbs=ReduceLROnPlateau(monitor='plateau', patience=2, factor=10., min_lr=2e-5))
    # epoch 0 sets the best; epochs 1, 2 do not beat it -> reduce after epoch 2; again after epoch 4.
    assert epoch_lrs(learn, 5) == pytest.approx([1e-2, 1e-2, 1e-2, 1e-3, 1e-3])
    assert learn.opt.hyper('lr') == pytest.approx(1e-4)
    out = caplog.text                                # the blocklearn logger
    assert 'Epoch 2: reducing lr to 0.001' in out and 'Epoch 4: reducing lr to 0.0001' in out
    with quiet(learn):
        learn.fit(3, lr=1e-3, cbs=ReduceLROnPlateau(monitor='plateau', patience=1, min_lr=2e-5))
    assert epoch_lrs(learn, 3) == pytest.approx([1e-3, 1e-3, 1e-4])
    assert learn.opt.hyper('lr') == pytest.approx(2e-5)  # min_lr is the floor


def test_reduce_lr_on_plateau_keeps_lr_while_the_loss_improves():
    learn = synth_learner(lr=0.05)
    with quiet(learn):
        learn.fit(3, cbs=ReduceLROnPlateau())                # the regression's loss falls every epoch
    assert epoch_lrs(learn, 3) == pytest.approx([0.05] * 3)
    assert ReduceLROnPlateau().order > 60 and ReduceLROnPlateau(monitor='accuracy').comp(0.9, 0.8)


# -- GradientAccumulation ------------------------------------------------------------------------------------
def regression_batches(bs: int, n: int = 16) -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    y = x @ torch.tensor([[2.0], [-1.0]]) + 0.5 + 0.1 * torch.randn(n, 1, generator=g)
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]


def linear_learner(bs: int) -> Learner:
    torch.manual_seed(0)
    dls = SynthDataLoaders(regression_batches(bs), regression_batches(8)[:1], loss_func=F.mse_loss)
    return Learner(dls, nn.Linear(2, 1), opt_func=SGD, lr=0.1)


def test_gradient_accumulation_of_bs4_over_8_samples_equals_bs8():
    accumulated, plain = linear_learner(4), linear_learner(8)
    with quiet(accumulated), quiet(plain):
        accumulated.fit(2, cbs=GradientAccumulation(n_acc=8))
        plain.fit(2)
    for a, b in zip(accumulated.model.parameters(), plain.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    # the same steps, but not the same as stepping on each batch of 4
    single = linear_learner(4)
    with quiet(single):
        single.fit(2)
    assert not torch.allclose(single.model.weight, plain.model.weight, atol=1e-3)


def test_gradient_accumulation_records_the_true_loss():
    learn = linear_learner(4)
    losses = []

    class Losses(Callback):
        order = 90

        def after_batch(self):
            if self.learn.training:
                losses.append(self.learn.loss.item())
    with quiet(learn):
        learn.fit(1, lr=0.0, cbs=[GradientAccumulation(n_acc=8), Losses()])
    model = learn.model
    expected = [F.mse_loss(model(x), y).item() for x, y in regression_batches(4)]
    assert losses == pytest.approx(expected, rel=1e-6)


# -- ShowGraphCallback ---------------------------------------------------------------------------------------
def test_show_graph_plots_train_and_valid_losses_headless():
    assert matplotlib.get_backend().lower() == 'agg'
    learn = synth_learner(n_train=5, lr=0.05)
    graph = ShowGraphCallback()
    with quiet(learn):
        learn.fit(3, cbs=graph)
    ax = graph.fig.axes[0]
    train, valid = ax.get_lines()[:2]
    assert list(train.get_ydata()) == pytest.approx(learn.recorder.losses)
    assert list(valid.get_xdata()) == [5, 10, 15]
    assert list(valid.get_ydata()) == pytest.approx([row[1] for row in learn.recorder.values])
    assert ax.get_xlim()[1] >= 15
    graph.fig.savefig(io.BytesIO(), format='png')  # it renders


def test_show_graph_in_a_notebook_shows_one_figure_and_updates_it(monkeypatch):
    import IPython.display

    from blocklearn.callbacks import show_graph
    calls = []

    class Handle:
        def update(self, obj):
            calls.append(('update', obj))

    def display(obj, display_id=False):
        calls.append(('display', obj))
        return Handle()
    monkeypatch.setattr(show_graph, 'IN_NOTEBOOK', True)
    monkeypatch.setattr(IPython.display, 'display', display)
    graph = ShowGraphCallback()
    learn = synth_learner(n_train=5, lr=0.05)
    with quiet(learn):
        learn.fit(3, cbs=graph)
    assert [(what, type(obj)) for what, obj in calls] == [
        ('display', IPython.display.Image), ('update', IPython.display.Image), ('update', IPython.display.Image)]
    assert calls[-1][1].data[:8] == b'\x89PNG\r\n\x1a\n'


# -- channels last -------------------------------------------------------------------------------------------
def test_to_channelslast_converts_model_and_inputs_and_to_contiguous_undoes_it():
    learn = image_learner()
    seen = []

    class Formats(Callback):
        order = 80

        def before_batch(self):
            x = self.learn.xb[0]
            seen.append((x.is_contiguous(memory_format=torch.channels_last), x.is_contiguous()))

    assert learn.to_channelslast(use_amp=False) is learn
    conv = learn.model[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert isinstance(learn.channels_last, ChannelsLast) and not hasattr(learn, 'mixed_precision')
    with quiet(learn):
        learn.fit(1, cbs=Formats())
    assert seen == [(True, False)] * 5   # 3 training and 2 validation batches
    learn.to_contiguous()
    assert conv.weight.is_contiguous() and not hasattr(learn, 'channels_last')
    seen.clear()
    with quiet(learn):
        learn.fit(1, cbs=Formats())
    assert seen == [(False, True)] * 5


def test_to_channelslast_adds_mixed_precision_by_default():
    learn = image_learner()
    learn.to_channelslast()
    assert isinstance(learn.mixed_precision, MixedPrecision) and isinstance(learn.channels_last, ChannelsLast)
    learn.to_channelslast()
    assert sum(isinstance(cb, (ChannelsLast, MixedPrecision)) for cb in learn.cbs) == 2
    learn.to_contiguous(to_fp32=True)
    assert not hasattr(learn, 'mixed_precision') and not hasattr(learn, 'channels_last')


# -- set_seed ------------------------------------------------------------------------------------------------
def draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(1).item(), torch.randperm(10).tolist()


def test_set_seed_makes_random_numpy_and_torch_repeat(monkeypatch):
    set_seed(42)
    first = draws()
    assert draws() != first
    set_seed(42)
    assert draws() == first
    set_seed(43)
    assert draws() != first
    monkeypatch.setattr(torch.backends.cudnn, 'deterministic', False)
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', True)
    set_seed(42)
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, True)
    set_seed(42, reproducible=True)
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (True, False)
    assert draws() == first
