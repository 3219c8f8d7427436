"""MixUp (Zhang et al. 2018): train on blends of two images, with the loss the same blend of their two losses."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from blocklearn.callbacks.core import Callback

__all__ = ['MixHandler', 'MixUp']


class MixHandler(Callback):
    """Base of MixUp and CutMix: during training, targets are mixed (soft labels) or the loss is (class indices).

    With class-index targets the learner's `loss_func` is replaced, for each training phase only, by the lerp of
    the losses on the batch's own and its shuffled targets, reduced as the loss reduces; it is put back in a
    `cleanup_train`, so also after an error or Ctrl-C. Validation, `get_preds` and `tta` see the plain loss."""
    run_valid = False

    def __init__(self, alpha: float = 0.5):
        self.alpha = alpha
        self.distrib = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
        self.lam: torch.Tensor | None = None
        self.shuffle: torch.Tensor | None = None
        self.yb1: tuple = ()
        self._own_loss: Callable | None = None

    def before_train(self) -> None:
        if self._own_loss is None:
            self._own_loss = self.learn.loss_func
            self.learn.loss_func = self.mixed_loss

    def cleanup_train(self) -> None:
        if self._own_loss is not None:
            self.learn.loss_func, self._own_loss = self._own_loss, None

    def cleanup_fit(self) -> None:
        self.cleanup_train()

    def mix_targets(self) -> None:
        """Blend float targets (one-hot, soft labels, regression) with weight `lam`; remember index targets."""
        if self.yb and all(torch.is_floating_point(y) for y in self.yb):
            self.learn.yb = tuple(torch.lerp(y[self.shuffle], y, _per_item(self.lam, y)) for y in self.yb)
            self.yb1 = ()
        else:
            self.yb1 = tuple(y[self.shuffle] for y in self.yb)

    def mixed_loss(self, pred: torch.Tensor, *yb: Any) -> torch.Tensor:
        """`lam * loss(pred, y) + (1 - lam) * loss(pred, y[shuffle])`, per item, then reduced like the loss."""
        loss_func = self._own_loss
        if not self.yb1:
            return loss_func(pred, *yb)
        own, other = _per_item_loss(loss_func, pred, yb), _per_item_loss(loss_func, pred, self.yb1)
        shape = own.shape
        lam = self.lam
        if lam.ndim and own.ndim:
            # one weight per item, also for losses that give several values per item (flattened segmentation)
            own, other, lam = own.reshape(len(lam), -1), other.reshape(len(lam), -1), lam[:, None]
        loss = torch.lerp(other, own, lam.to(own.dtype))
        reduction = getattr(loss_func, 'reduction', 'mean')
        return loss.mean() if reduction == 'mean' else loss.sum() if reduction == 'sum' else loss.reshape(shape)


class MixUp(MixHandler):
    """Replace each training batch by `lam * x + (1 - lam) * x[shuffle]`, `lam ~ Beta(alpha, alpha)` per item.

    `lam` is folded to >= 0.5 so each blend is mostly its own image. Read `lam` and `shuffle` (the permutation)
    after `before_batch` to see what was drawn."""

    def __init__(self, alpha: float = 0.4):
        super().__init__(alpha)

    def before_batch(self) -> None:
        x = self.xb[0]
        lam = self.distrib.sample((x.shape[0],)).to(x.device)
        self.lam = torch.maximum(lam, 1 - lam)
        self.shuffle = torch.randperm(x.shape[0], device=x.device)
        self.learn.xb = tuple(torch.lerp(o[self.shuffle], o, _per_item(self.lam, o)) if torch.is_floating_point(o)
                              else o for o in self.xb)
        self.mix_targets()


def _per_item(lam: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """`lam` shaped to broadcast one value per item over `o`, in `o`'s dtype."""
    return lam.view(-1, *[1] * (o.ndim - 1)).to(o.dtype) if lam.ndim else lam.to(o.dtype)


def _per_item_loss(loss_func: Callable, pred: torch.Tensor, yb: tuple) -> torch.Tensor:
    # The loss of each item: a loss with a `reduction` attribute (BaseLoss, torch's loss modules) is switched to
    # 'none' for this call; a function is called with reduction='none'.
    if hasattr(loss_func, 'reduction'):
        reduction = loss_func.reduction
        loss_func.reduction = 'none'
        try:
            return loss_func(pred, *yb)
        finally:
            loss_func.reduction = reduction
    try:
        takes_reduction = 'reduction' in inspect.signature(loss_func).parameters
    except (TypeError, ValueError):
        takes_reduction = False
    if not takes_reduction:
        name = getattr(loss_func, '__name__', type(loss_func).__name__)
        raise TypeError(f"MixUp/CutMix mix the loss of each item, but the loss {name} has no `reduction` to ask "
                        f"for them: use a loss such as CrossEntropyLossFlat() or LabelSmoothingCrossEntropy(), or "
                        f"give your function a `reduction='mean'` argument that 'none' turns off.")
    return loss_func(pred, *yb, reduction='none')
