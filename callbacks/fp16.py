"""MixedPrecision: run forward and loss under torch.autocast; fp16 with a GradScaler, or bf16."""
from __future__ import annotations

import torch

from blocklearn.callbacks.core import Callback, CancelStepException

__all__ = ['MixedPrecision']


class MixedPrecision(Callback):
    """Autocast the forward pass: fp16 with loss scaling on CUDA, bf16 (no scaling needed) elsewhere."""
    order = 10

    def __init__(self, dtype: torch.dtype | None = None, init_scale: float = 2.0 ** 16, growth_interval: int = 2000):
        if dtype not in (None, torch.float16, torch.bfloat16):
            raise ValueError(f"MixedPrecision dtype must be torch.float16, torch.bfloat16 or None, not {dtype}.")
        self.dtype, self.init_scale, self.growth_interval = dtype, init_scale, growth_interval
        self.scaler: torch.amp.GradScaler | None = None
        self._autocast: torch.autocast | None = None
        self._probe = _StepProbe()

    def before_fit(self) -> None:
        self._setup()
        if self._autocast.fast_dtype == torch.float16 and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self._autocast.device, init_scale=self.init_scale,
                                               growth_interval=self.growth_interval)

    def before_batch(self) -> None:
        if self._autocast is None:
            self._setup()
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
        device = param.device.type if param is not None else 'cpu'
        dtype = self.dtype or (torch.float16 if device == 'cuda' else torch.bfloat16)
        self._autocast = torch.autocast(device, dtype=dtype)
        self._active = False

    def _exit(self) -> None:
        if getattr(self, '_active', False):
            self._active = False
            self._autocast.__exit__(None, None, None)


class _StepProbe:
    """Stands in for the optimizer in `GradScaler.step`, recording whether the step would be taken."""

    def __init__(self):
        self.param_groups: list = []
        self.stepped = False

    def step(self, *args, **kwargs) -> None:
        self.stepped = True
