"""Channels-last training: the model's weights and the image batches in torch.channels_last memory format.

Convolutions on tensor cores run faster on NHWC data; `learn.to_channelslast()` also turns on mixed precision,
as fastai does, since that is where the speed-up is."""
from __future__ import annotations

from typing import Any

import torch

from blocklearn.callbacks.core import Callback
from blocklearn.callbacks.fp16 import MixedPrecision

__all__ = ['ChannelsLast', 'to_channelslast', 'to_contiguous']


class ChannelsLast(Callback):
    """Put the model in channels_last format before fitting, and every 4-D input batch before the model sees it."""
    order = -1  # before any callback that changes the batch or the model

    def before_fit(self) -> None:
        self.learn.model.to(memory_format=torch.channels_last)

    def before_batch(self) -> None:
        self.learn.xb = tuple(x.contiguous(memory_format=torch.channels_last)
                              if isinstance(x, torch.Tensor) and x.ndim == 4 else x for x in self.learn.xb)


def to_channelslast(learn: Any, use_amp: bool = True, dtype: torch.dtype | None = None, **kwargs) -> Any:
    """Train `learn` in channels_last format, with mixed precision unless `use_amp=False` (`kwargs` go to it).

    fastai's `amp_mode` is `dtype` here, as for `to_fp16`: None is fp16 on CUDA, and bf16 on a CPU only where it
    has fast bf16 kernels (float32 otherwise; `force=True` in `kwargs` autocasts anyway)."""
    learn.model.to(memory_format=torch.channels_last)
    if getattr(learn, 'channels_last', None) is None:
        learn.add_cb(ChannelsLast())
    if use_amp and getattr(learn, 'mixed_precision', None) is None:
        learn.add_cb(MixedPrecision(dtype=dtype, **kwargs))
    return learn


def to_contiguous(learn: Any, to_fp32: bool = False) -> Any:
    """Back to the default (contiguous) memory format; with `to_fp32` also without mixed precision."""
    learn.model.to(memory_format=torch.contiguous_format)
    learn.remove_cb(ChannelsLast)
    if to_fp32:
        learn.remove_cb(MixedPrecision)
    return learn
