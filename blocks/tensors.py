"""Tensor types that say what a tensor holds, so transforms can dispatch on them."""
from __future__ import annotations

import torch

__all__ = ['TensorBase', 'TensorCategory', 'TensorMultiCategory', 'as_plain']


class TensorBase(torch.Tensor):
    """A `torch.Tensor` whose subclass survives torch ops (torch's default subclass propagation)."""

    def __repr__(self) -> str:
        return f'{type(self).__name__}({torch.Tensor.__repr__(self.as_subclass(torch.Tensor))[7:-1]})'


class TensorCategory(TensorBase):
    """Index (or batch of indices) into a vocab."""


class TensorMultiCategory(TensorBase):
    """One-hot encoded set of labels."""


def as_plain(x):
    """`x` with every typed tensor turned into a plain `torch.Tensor` (tuples and lists mapped)."""
    if isinstance(x, torch.Tensor):
        return x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x
    if isinstance(x, (tuple, list)):
        return type(x)(as_plain(o) for o in x)
    return x
