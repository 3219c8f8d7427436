"""MixedPrecision: run forward and loss under torch.autocast in the precision that is fast on the device in use:
float16 with a GradScaler on CUDA, bfloat16 where the hardware has fast bfloat16 kernels, else float32."""
from __future__ import annotations

import os
import sys
from functools import lru_cache

import torch

from blocklearn.blocks.console import logger
from blocklearn.callbacks.core import Callback, CancelStepException

__all__ = ['MixedPrecision', 'amp_dtype', 'cpu_has_fast_bf16', 'cpu_has_fast_fp16', 'AMP_ENV', 'AMP_MODES']

AMP_ENV = 'BLOCKLEARN_AMP'
AMP_MODES = ('auto', 'force')


class MixedPrecision(Callback):
    """Autocast the forward pass where that is faster: float16 with loss scaling on CUDA, bfloat16 (no scaling) on
    hardware with fast bfloat16 kernels; elsewhere (most CPUs) it stays in float32 and says so once.

    `dtype` asks for float16 or bfloat16 (still only where it is fast); `force=True` (or $BLOCKLEARN_AMP=force)
    autocasts to `dtype` (default float16 on CUDA, bfloat16 elsewhere) whatever the hardware, as fastai does."""
    order = 10

    def __init__(self, dtype: torch.dtype | None = None, init_scale: float = 2.0 ** 16, growth_interval: int = 2000,
                 force: bool = False):
        if dtype not in (None, torch.float16, torch.bfloat16):
            raise ValueError(f"MixedPrecision dtype must be torch.float16, torch.bfloat16 or None, not {dtype}.")
        self.dtype, self.init_scale, self.growth_interval, self.force = dtype, init_scale, growth_interval, force
        self.scaler: torch.amp.GradScaler | None = None
        self.amp_dtype: torch.dtype | None = None  # what the forward pass runs in; None: float32 (set before fit)
        self._autocast: torch.autocast | None = None
        self._ready, self._noticed = False, False
        self._probe = _StepProbe()

    def before_fit(self) -> None:
        self._setup()
        if self.amp_dtype == torch.float16 and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self._autocast.device, init_scale=self.init_scale,
                                               growth_interval=self.growth_interval)

    def before_batch(self) -> None:
        if not self._ready:
            self._setup()
        if self._autocast is None:
            return
        self._autocast.__enter__()
        self._active = True

    def after_pred(self) -> None:
        pred = self.learn.pred
        # Metrics and user losses expect full precision, as without autocast.
        if isinstance(pred, torch.Tensor) and pred.dtype in (torch.float16, torch.bfloat16):
            self.learn.pred = pred.float()

    def after_loss(self) -> None:
        self._exit()

    def cleanup_batch(self) -> None:
        # Also after an error or Ctrl-C in the forward pass: autocast must not stay on for the process.
        self._exit()

    def before_backward(self) -> None:
        if self.scaler is not None:
            self.learn.loss_grad = self.scaler.scale(self.learn.loss_grad)

    def before_step(self) -> None:
        # The scaler unscales the grads (so later callbacks, e.g. GradientClip, see true values) and calls
        # the probe's step only when they are finite; otherwise the learner's step is skipped.
        if self.scaler is None:
            return
        self._probe.param_groups, self._probe.stepped = self.learn.opt.param_groups, False
        self.scaler.step(self._probe)
        self._needs_update = True
        if not self._probe.stepped:
            raise CancelStepException()

    def after_step(self) -> None:
        # `update` is only valid after a `step` of the scaler: an earlier callback may have cancelled it.
        if getattr(self, '_needs_update', False):
            self._needs_update = False
            self.scaler.update()

    def _setup(self) -> None:
        param = next(self.learn.model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        self.amp_dtype, why = amp_dtype(device, self.dtype, force=self.force)
        self._autocast = torch.autocast(device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else None
        self._ready, self._active = True, False
        if why and not self._noticed:
            self._noticed = True
            logger.info(why)

    def _exit(self) -> None:
        if getattr(self, '_active', False):
            self._active = False
            self._autocast.__exit__(None, None, None)


def amp_dtype(device: torch.device | str, dtype: torch.dtype | None = None,
              force: bool = False) -> tuple[torch.dtype | None, str]:
    """The autocast dtype that is fast on `device` (None: float32), and a one-line notice when it is not the one
    asked for (empty otherwise). `force` (or $BLOCKLEARN_AMP=force) takes `dtype` as asked."""
    device = torch.device(device)
    if force or _amp_mode() == 'force':
        return dtype or (torch.float16 if device.type == 'cuda' else torch.bfloat16), ''
    if device.type == 'cuda':
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return torch.float16, ('Mixed precision: this GPU has no bfloat16 support; training in float16 with '
                                   'loss scaling instead.')
        return dtype or torch.float16, ''
    if device.type == 'cpu':
        for half, fast in ((torch.bfloat16, cpu_has_fast_bf16), (torch.float16, cpu_has_fast_fp16)):
            if dtype in (None, half) and fast():
                return half, ''
        asked = {None: 'bfloat16', torch.float16: 'float16', torch.bfloat16: 'bfloat16'}[dtype]
        return None, (f'Mixed precision is off on this CPU: it has no fast {asked} kernels (torch reports '
                      f'{_capability()}), so float32 is faster here. to_fp16(force=True) or {AMP_ENV}=force '
                      f'autocasts anyway.')
    # MPS and other devices: their autocast speed-ups vary with the chip and the torch version; not guessed here.
    return None, (f'Mixed precision is off on {device.type}: blocklearn autocasts on CUDA, and on CPUs with fast '
                  f'bfloat16 kernels. to_fp16(force=True) or {AMP_ENV}=force autocasts anyway.')


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix kernels faster than float32: AVX512-BF16 or AMX-BF16 (read on Linux)."""
    return 'AVX512' in _capability() and bool({'avx512_bf16', 'amx_bf16'} & _cpu_flags())


def cpu_has_fast_fp16() -> bool:
    """Whether this CPU has float16 matrix kernels faster than float32: AVX512-FP16 or AMX-FP16 (read on Linux)."""
    return 'AVX512' in _capability() and bool({'avx512_fp16', 'amx_fp16'} & _cpu_flags())


def _capability() -> str:
    # The vector instruction set torch's CPU kernels were dispatched to ('AVX2', 'AVX512', 'DEFAULT', ...).
    get = getattr(getattr(torch.backends, 'cpu', None), 'get_cpu_capability', None)
    return get() if get is not None else 'DEFAULT'


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    # Only Linux says which extensions the CPU has in a file; elsewhere no flags, so no half precision on the CPU.
    if not sys.platform.startswith('linux'):
        return frozenset()
    try:
        with open('/proc/cpuinfo', encoding='utf-8', errors='replace') as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.partition(':')[2].split())
    except OSError:
        pass
    return frozenset()


def _amp_mode() -> str:
    mode = os.environ.get(AMP_ENV, '').strip().lower() or 'auto'
    if mode not in AMP_MODES:
        raise ValueError(f"${AMP_ENV}={mode!r}: use 'auto' (autocast only where it is faster) or 'force' "
                         f"(autocast whatever the hardware), or leave it unset.")
    return mode


class _StepProbe:
    """Stands in for the optimizer in `GradScaler.step`, recording whether the step would be taken."""

    def __init__(self):
        self.param_groups: list = []
        self.stepped = False

    def step(self, *args, **kwargs) -> None:
        self.stepped = True
