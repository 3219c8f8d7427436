"""Tensor types that say what a tensor holds, so transforms can dispatch on them."""
from __future__ import annotations

import torch

__all__ = ['TensorBase', 'TensorCategory', 'TensorMultiCategory', 'as_plain', 'to_cpu']


class TensorBase(torch.Tensor):
    """A `torch.Tensor` whose subclass survives torch ops (torch's default subclass propagation)."""

    def __repr__(self) -> str:
        return f'{type(self).__name__}({torch.Tensor.__repr__(self.as_subclass(torch.Tensor))[7:-1]})'

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # Typed tensors of unrelated kinds in one op (fastbook's `loss_func(model(x), y)`: TensorImage activations,
        # a TensorMultiCategory target): torch refuses, as no type describes the result; it is a plain tensor.
        kinds = [t for t in types if issubclass(t, TensorBase)]
        if len(kinds) > 1 and not any(all(issubclass(k, t) for t in kinds) for k in kinds):
            return torch.Tensor.__torch_function__(func, (torch.Tensor,), args, kwargs)
        return super().__torch_function__(func, types, args, kwargs)


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


def to_cpu(b):
    """`b` with every tensor moved to the CPU, types kept (tuples, lists and dicts mapped), e.g. a batch."""
    if isinstance(b, torch.Tensor):
        return b.cpu()
    if isinstance(b, (tuple, list)):
        return type(b)(to_cpu(o) for o in b)
    if isinstance(b, dict):
        return {k: to_cpu(o) for k, o in b.items()}
    return b
