"""MixedPrecision (the dtype fast on the device; forced bf16 on CPU, fp16 with a GradScaler), GradientClip and
TerminateOnNaNCallback."""
import logging
import math

import pytest
import torch
import torch.nn as nn

from blocklearn.callbacks import fp16
from blocklearn.callbacks.core import Callback
from blocklearn.callbacks.grad_clip import GradientClip
from blocklearn.callbacks.terminate import TerminateOnNaNCallback
from blocklearn.learner.learner import Learner
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.resize import Resize
from synth import synth_learner


class Watch(Callback):
    """Records the model's output dtype inside autocast and the pred dtype callbacks see."""
    order = 50

    def __init__(self):
        self.pred_dtypes, self.grad_norms = [], []

    def after_pred(self):
        self.pred_dtypes.append(self.learn.pred.dtype)

    def before_step(self):
        grads = [p.grad for p in self.learn.model.parameters()]
        self.grad_norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())


def test_forced_bf16_autocast_on_cpu_and_full_precision_preds():
    learn = synth_learner(n_train=2, n_valid=1).to_fp16(force=True)
    inner = []
    learn.model.register_forward_hook(lambda m, i, out: inner.append(out.dtype))
    watch = Watch()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=watch)
    assert inner == [torch.bfloat16] * 3
    assert watch.pred_dtypes == [torch.float32] * 3
    assert learn.mixed_precision.scaler is None and not torch.is_autocast_enabled('cpu')
    assert learn.model.weight.dtype == torch.float32 and math.isfinite(learn.recorder.values[0][1])


def test_fp16_scaler_skips_the_step_when_grads_overflow():
    class Overflow(Callback):
        def after_backward(self):
            self.learn.model.weight.grad.fill_(math.inf)
    learn = synth_learner(n_train=1, n_valid=1).to_fp16(dtype=torch.float16, force=True)
    before = learn.model.weight.detach().clone()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=Overflow())
    assert torch.equal(before, learn.model.weight)
    assert learn.mixed_precision.scaler.get_scale() == 2.0 ** 15


def test_fp16_scaler_unscales_before_gradient_clipping():
    # A small scale so fp16 grads do not overflow; clipping scaled grads would leave norms of 0.01/16.
    learn = synth_learner(n_train=3, n_valid=1).to_fp16(dtype=torch.float16, init_scale=16.0, force=True)
    watch = Watch()
    watch.order = 30                                  # after MixedPrecision (10) and GradientClip (20)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=[GradientClip(max_norm=0.01), watch])
    assert watch.grad_norms == pytest.approx([0.01] * 3, rel=1e-3)
    assert learn.mixed_precision.scaler.get_scale() == 16.0


def test_gradient_clip_in_full_precision():
    learn = synth_learner(n_train=2, n_valid=1)
    watch = Watch()
    watch.order = 30
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=[GradientClip(max_norm=0.5), watch])
    assert watch.grad_norms == pytest.approx([0.5, 0.5], rel=1e-5)


def test_terminate_on_nan_stops_the_fit(caplog):
    losses = iter([1.0, 2.0, math.nan, 1.0])

    def loss(pred, targ):
        return pred.sum() * 0 + next(losses)
    learn = synth_learner(n_train=4, loss_func=loss)
    with learn.no_bar():
        learn.fit(2, cbs=TerminateOnNaNCallback())
    assert len(learn.recorder.losses) == 2 and learn.recorder.values == []
    assert 'Loss is nan at epoch 0, batch 2' in caplog.text                # a warning of the blocklearn logger



class KeepWeights(Callback):
    """The model's weights after each optimizer step."""
    order = 60

    def __init__(self):
        self.after_steps = []

    def after_step(self):
        self.after_steps.append([p.detach().clone() for p in self.learn.model.parameters()])


def test_terminate_on_nan_stops_before_the_step_so_the_weights_stay_finite(caplog):
    scale = iter([1.0, 1.0, math.nan, 1.0])

    def loss(pred, targ):  # a NaN through the prediction: a step on it would make every weight NaN
        return ((pred - targ) ** 2).mean() * next(scale)
    learn = synth_learner(n_train=4, loss_func=loss, lr=0.1)
    keep = KeepWeights()
    with learn.no_bar():
        learn.fit(1, cbs=[TerminateOnNaNCallback(), keep])
    weights = [p.detach() for p in learn.model.parameters()]
    assert len(keep.after_steps) == 2 and all(bool(torch.isfinite(w).all()) for w in weights)
    assert all(torch.equal(w, k) for w, k in zip(weights, keep.after_steps[-1]))  # those of the last finite step
    out = caplog.text
    assert 'Loss is nan at epoch 0, batch 2' in out and 'before its optimizer step' in out


@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_an_error_in_the_autocast_forward_leaves_autocast_off(exc):
    learn = synth_learner(n_train=2, n_valid=1).to_fp16(force=True)
    calls = []

    def fail_in_forward(module, inputs):
        calls.append(torch.is_autocast_enabled('cpu'))
        raise exc('in forward')
    learn.model.register_forward_pre_hook(fail_in_forward)
    with pytest.raises(exc):
        learn.fit(1)                                           # default progress bar on
    assert calls == [True] and not torch.is_autocast_enabled('cpu')
    assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_mixed_precision_applies_to_get_preds_as_to_validation():
    learn = synth_learner(n_train=2, n_valid=3).to_fp16(force=True)
    inner = []
    learn.model.register_forward_hook(lambda m, i, out: inner.append(out.dtype))
    preds, targs = learn.get_preds()
    assert inner == [torch.bfloat16] * 3 and preds.dtype == torch.float32 and len(preds) == len(targs) == 48
    assert not torch.is_autocast_enabled('cpu')


# -- the dtype that is fast on the device ---------------------------------------------------------------------------
@pytest.fixture
def cpu(monkeypatch):
    """`cpu(capability, *flags)`: make this CPU report torch's `capability` and the /proc/cpuinfo `flags`."""
    monkeypatch.delenv(fp16.AMP_ENV, raising=False)

    def set_cpu(capability: str, *flags: str) -> None:
        monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: capability)
        monkeypatch.setattr(fp16, '_cpu_flags', lambda: frozenset(flags))
    return set_cpu


@pytest.mark.parametrize('capability, flags, dtype, expected', [
    ('AVX2', (), None, None),                                         # this machine: no fast bf16 kernels
    ('AVX2', ('avx512_bf16',), None, None),                           # torch limited to AVX2 (ATEN_CPU_CAPABILITY)
    ('AVX512', ('avx512f',), None, None),                             # AVX-512 without BF16
    ('AVX512', ('avx512f', 'avx512_bf16'), None, torch.bfloat16),     # Cooper Lake, Zen 4
    ('AVX512', ('amx_bf16', 'amx_tile'), None, torch.bfloat16),       # Sapphire Rapids
    ('AVX512', ('avx512_bf16',), torch.bfloat16, torch.bfloat16),
    ('AVX512', ('avx512_bf16',), torch.float16, None),                # fp16 asked, only bf16 kernels
    ('AVX512', ('avx512_bf16', 'amx_fp16'), torch.float16, torch.float16),
    ('DEFAULT', ('avx512_bf16',), None, None),                        # e.g. an ARM CPU: not guessed
])
def test_amp_dtype_on_a_cpu_follows_its_kernels(cpu, capability, flags, dtype, expected):
    cpu(capability, *flags)
    got, notice = fp16.amp_dtype('cpu', dtype)
    assert got == expected
    assert ('Mixed precision is off on this CPU' in notice and f'torch reports {capability}' in notice
            and 'to_fp16(force=True)' in notice) == (expected is None)


def test_amp_dtype_forced_by_argument_or_environment(cpu, monkeypatch):
    cpu('AVX2')
    assert fp16.amp_dtype('cpu', force=True) == (torch.bfloat16, '')
    assert fp16.amp_dtype('cpu', torch.float16, force=True) == (torch.float16, '')
    monkeypatch.setenv(fp16.AMP_ENV, 'force')
    assert fp16.amp_dtype('cpu') == (torch.bfloat16, '')
    monkeypatch.setenv(fp16.AMP_ENV, 'always')
    with pytest.raises(ValueError, match=r"\$BLOCKLEARN_AMP='always': use 'auto'.*or 'force'"):
        fp16.amp_dtype('cpu')


def test_amp_dtype_on_cuda_is_fp16_and_bf16_where_supported(cpu, monkeypatch):
    cpu('AVX2')
    assert fp16.amp_dtype('cuda') == (torch.float16, '')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    assert fp16.amp_dtype('cuda', torch.bfloat16) == (torch.bfloat16, '')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: False)
    dtype, notice = fp16.amp_dtype('cuda:0', torch.bfloat16)
    assert dtype == torch.float16 and 'no bfloat16 support' in notice
    dtype, notice = fp16.amp_dtype('mps')
    assert dtype is None and 'Mixed precision is off on mps' in notice


def test_to_fp16_on_this_cpu_trains_in_the_fast_dtype_and_says_so_once(photos, caplog):
    dls = ImageDataLoaders.from_name_re(photos, get_image_files(photos)[:40], r'(.+)_\d+.jpg$', item_tfms=Resize(16),
                                        bs=8, num_workers=0, seed=0)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 16 * 16, dls.c)))
    learn.to_fp16()
    seen = []
    learn.model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    caplog.set_level(logging.INFO, logger='blocklearn')
    with learn.no_bar():
        learn.fit(1)
        learn.fit(1)
    fast = fp16.cpu_has_fast_bf16()                   # False on an AVX2 machine: float32 is the fast choice there
    assert set(seen) == {torch.bfloat16 if fast else torch.float32} and len(seen) == 2 * (4 + 1)
    assert learn.mixed_precision.amp_dtype == (torch.bfloat16 if fast else None)
    assert caplog.text.count('Mixed precision is off on this CPU') == (0 if fast else 1)
