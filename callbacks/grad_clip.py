"""GradientClip: clip the gradients' global norm before each optimizer step."""
from __future__ import annotations

import torch.nn as nn

from blocklearn.callbacks.core import Callback

__all__ = ['GradientClip']


class GradientClip(Callback):
    """Clip the norm of all gradients to `max_norm` before the step (after MixedPrecision unscaled them)."""
    order = 20

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0):
        self.max_norm, self.norm_type = max_norm, norm_type

    def before_step(self) -> None:
        nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.max_norm, self.norm_type)
