"""Loss functions that flatten predictions and targets, and know their activation and decoding."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_for_recipes

__all__ = ['BaseLoss', 'CrossEntropyLossFlat', 'BCEWithLogitsLossFlat', 'MSELossFlat', 'L1LossFlat',
           'LabelSmoothingCrossEntropy', 'LabelSmoothingCrossEntropyFlat']


class BaseLoss:
    """Wrap a torch loss so (B, ..., C) predictions and (B, ...) targets are flattened first."""

    def __new__(cls, *args: Any, **kwargs: Any) -> BaseLoss:
        self = super().__new__(cls)
        self._init_args = (args, kwargs)  # what built it, so an export can write a recipe instead of a pickle
        return self

    def __init__(self, loss_cls: type[nn.Module], *args, axis: int = -1, flatten: bool = True,
                 floatify: bool = False, is_2d: bool = True, **kwargs):
        self.func = loss_cls(*args, **kwargs)
        self.axis, self.flatten, self.floatify, self.is_2d = axis, flatten, floatify, is_2d

    @property
    def reduction(self) -> str:
        return self.func.reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        self.func.reduction = value

    def __call__(self, inp: torch.Tensor, targ: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.floatify and targ.dtype != torch.float16:
            targ = targ.float()
        if targ.dtype in (torch.int8, torch.int16, torch.int32):
            targ = targ.long()
        if self.flatten:
            if targ.ndim > 1 and self.axis % inp.ndim != inp.ndim - 1:
                # the same swap as the predictions', so each pixel's scores meet its target: (B,H,W) -> (B,W,H)
                targ = targ.transpose(self.axis, -1)
            inp = inp.transpose(self.axis, -1).contiguous()
            inp = inp.view(-1, inp.shape[-1]) if self.is_2d else inp.view(-1)
            targ = targ.reshape(-1)
        return self.func(inp, targ, **kwargs)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __repr__(self) -> str:
        return f'FlattenedLoss of {self.func}'


class CrossEntropyLossFlat(BaseLoss):
    """Cross-entropy over the last axis; activation softmax, decodes argmax."""

    def __init__(self, *args, axis: int = -1, **kwargs):
        super().__init__(nn.CrossEntropyLoss, *args, axis=axis, **kwargs)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=self.axis)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=self.axis)


class BCEWithLogitsLossFlat(BaseLoss):
    """Binary cross-entropy on logits; activation sigmoid, decodes `> thresh`."""

    def __init__(self, *args, axis: int = -1, floatify: bool = True, thresh: float = 0.5, **kwargs):
        super().__init__(nn.BCEWithLogitsLoss, *args, axis=axis, floatify=floatify, is_2d=False, **kwargs)
        self.thresh = thresh

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x > self.thresh


class MSELossFlat(BaseLoss):
    """Mean squared error on flattened float targets."""

    def __init__(self, *args, axis: int = -1, floatify: bool = True, **kwargs):
        super().__init__(nn.MSELoss, *args, axis=axis, floatify=floatify, is_2d=False, **kwargs)


class L1LossFlat(BaseLoss):
    """Mean absolute error on flattened float targets."""

    def __init__(self, *args, axis: int = -1, floatify: bool = True, **kwargs):
        super().__init__(nn.L1Loss, *args, axis=axis, floatify=floatify, is_2d=False, **kwargs)


class LabelSmoothingCrossEntropy(nn.Module):
    """Cross-entropy against targets smoothed to `1 - eps + eps/c` on the label and `eps/c` elsewhere (c classes).

    Predictions are (B, c, ...) as for nn.CrossEntropyLoss; `weight` weighs the label term, as fastai does."""

    def __init__(self, eps: float = 0.1, weight: torch.Tensor | None = None, reduction: str = 'mean'):
        super().__init__()
        self.eps, self.reduction = eps, reduction
        self.register_buffer('weight', weight)  # a buffer moves with the learner's `loss_func.to(device)`

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c = output.shape[1]
        log_preds = F.log_softmax(output, dim=1)
        # -sum_j log p_j: what the uniform eps/c share of the target costs, per item
        uniform = -log_preds.sum(dim=1)
        if self.reduction == 'mean':
            uniform = uniform.mean()
        elif self.reduction == 'sum':
            uniform = uniform.sum()
        label = F.nll_loss(log_preds, target.long(), weight=self.weight, reduction=self.reduction)
        return uniform * self.eps / c + (1 - self.eps) * label

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=-1)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=-1)


class LabelSmoothingCrossEntropyFlat(BaseLoss):
    """LabelSmoothingCrossEntropy over the last axis of flattened predictions; activation softmax, decodes argmax."""

    def __init__(self, *args, axis: int = -1, **kwargs):
        super().__init__(LabelSmoothingCrossEntropy, *args, axis=axis, **kwargs)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=self.axis)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=self.axis)


# What a recipe (an export) may name from this module and torch, by its own name: see blocks/registry.py.
register_for_recipes('loss', BaseLoss, CrossEntropyLossFlat, BCEWithLogitsLossFlat, MSELossFlat, L1LossFlat,
                     nn.CrossEntropyLoss, nn.BCEWithLogitsLoss, nn.BCELoss, nn.MSELoss, nn.L1Loss, nn.NLLLoss,
                     nn.SmoothL1Loss, nn.HuberLoss, nn.KLDivLoss, nn.MultiLabelSoftMarginLoss, F.cross_entropy,
                     F.binary_cross_entropy_with_logits, F.binary_cross_entropy, F.mse_loss, F.l1_loss, F.nll_loss,
                     F.smooth_l1_loss, F.huber_loss, F.kl_div)
register_for_recipes('loss', LabelSmoothingCrossEntropy, LabelSmoothingCrossEntropyFlat)
