"""Conversions the course types: `tensor(anything array-like)` and `to_np(tensors)`."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

__all__ = ['tensor', 'to_np']


def tensor(x: Any, *rest: Any, **kwargs: Any) -> torch.Tensor:
    """`x` as a tensor: a tensor as it is; numbers and lists as `torch.tensor` makes them; anything numpy can read
    (an array, a PIL image, a pandas Series) through numpy. `tensor(1, 2, 3)` is `tensor([1, 2, 3])`.

    fastai's rules, unlike `torch.tensor`: a PIL image works, and float64 becomes float32 (the model's dtype)."""
    if rest:
        x = (x, *rest)
    if isinstance(x, torch.Tensor):
        res = x
    elif isinstance(x, (tuple, list, numbers.Number)):
        res = torch.tensor(x, **kwargs)
    else:
        arr = x if isinstance(x, np.ndarray) else np.array(x.values if hasattr(x, 'iloc') else x)
        if arr.dtype == np.uint16:
            arr = arr.astype(np.float32)  # torch's uint16 supports almost no ops
        # Shares memory with a writable array, as torch.from_numpy; copies a read-only one (torch warns on those).
        res = torch.as_tensor(arr, **kwargs) if arr.flags.writeable else torch.tensor(arr, **kwargs)
    return res.float() if res.dtype == torch.float64 and 'dtype' not in kwargs else res


def to_np(x: Any) -> Any:
    """`x` (a tensor, or a tuple or list of them) as numpy arrays, detached and on the CPU."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if isinstance(x, (tuple, list)):
        items = [to_np(o) for o in x]
        return type(x)(*items) if hasattr(x, '_fields') else type(x)(items)
    return x
