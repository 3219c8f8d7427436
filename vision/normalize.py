"""Batch transforms that turn uint8 images into floats in [0, 1] and normalise them with per-channel stats."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.transform import Transform
from blocklearn.vision.core import TensorImage, first_image

__all__ = ['IntToFloatTensor', 'Normalize', 'imagenet_stats', 'cifar_stats', 'mnist_stats']

imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
cifar_stats = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
mnist_stats = ([0.1307], [0.3081])

Stats = Sequence[float] | torch.Tensor


class IntToFloatTensor(Transform):
    """Integer image batches become float32 divided by `div`; `decodes` rounds back to integers for display.
    Float batches pass unchanged (fastai divides again); masks (TensorMask) stay integer codes, so `div_mask` is
    kept for fastai's signature only."""
    order = 10

    def __init__(self, div: float | None = 255., div_mask: float = 1):
        super().__init__()
        if div is not None and div <= 0:
            raise ValueError(f'IntToFloatTensor: div={div!r} must be positive (255. for 8-bit images) or None.')
        self.div, self.div_mask = div, div_mask

    def encodes(self, x: TensorImage) -> TensorImage:
        plain = x.as_subclass(torch.Tensor)
        if plain.is_floating_point():
            return x
        # to() then an in-place div_ is one allocation; `plain / div` promotes through a slower kernel
        out = plain.to(torch.float32)
        if self.div is not None:
            out.div_(self.div)
        return out.as_subclass(type(x))

    def decodes(self, x: TensorImage) -> TensorImage:
        plain = x.as_subclass(torch.Tensor)
        if not plain.is_floating_point() or self.div is None:
            return x
        dtype = torch.uint8 if self.div <= 255 else torch.int32
        return (plain.clamp(0., 1.) * self.div).round_().to(dtype).as_subclass(type(x))


class Normalize(Transform):
    """Subtract `mean` and divide by `std` along the axes not in `axes`; float image batches only; decodes undoes it.
    Stats move to the batch's device and dtype once and are cached."""
    order = 99
    _recipe_state = ('mean', 'std')

    def __init__(self, mean: Stats | None = None, std: Stats | None = None, axes: tuple[int, ...] = (0, 2, 3)):
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError('Normalize: pass both mean and std, or neither (then `setup` computes them from a batch).')
        self.axes = tuple(axes)
        self.mean = None if mean is None else _shape_stats(mean, self.axes, 'mean')
        self.std = None if std is None else _shape_stats(std, self.axes, 'std')
        if self.std is not None and bool((self.std <= 0).any()):
            raise ValueError(f'Normalize: every std must be positive, got {self.std.flatten().tolist()}.')
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_stats(cls, mean: Stats, std: Stats, dim: int = 1, ndim: int = 4, cuda: bool = True) -> Normalize:
        """Normalize with one stat per index of `dim` in `ndim`-d batches, e.g. `from_stats(*imagenet_stats)`.
        `cuda` is kept for fastai's signature: the stats follow the batch to its device on first use."""
        if not 0 <= dim < ndim:
            raise ValueError(f'Normalize.from_stats: dim={dim} must be in [0, {ndim}) for ndim={ndim}.')
        return cls(mean, std, axes=tuple(i for i in range(ndim) if i != dim))

    def setups(self, items: Any) -> None:
        """Compute mean and std from one batch when none were given (items: a batch, a tuple or a loader)."""
        if self.mean is not None or items is None:
            return
        batch = items.one_batch() if hasattr(items, 'one_batch') else items
        x = first_image(batch)
        if x is None:
            raise TypeError('Normalize.setup needs a batch holding a TensorImage to compute stats from; '
                            'or pass the stats: Normalize.from_stats(*imagenet_stats).')
        plain = x.as_subclass(torch.Tensor).float()
        self.mean = plain.mean(self.axes, keepdim=True).cpu()
        self.std = plain.std(self.axes, keepdim=True).clamp_min(1e-7).cpu()
        self._cache.clear()

    def encodes(self, x: TensorImage) -> TensorImage:
        mean, std = self._stats(x)
        return (x.as_subclass(torch.Tensor) - mean).div_(std).as_subclass(type(x))

    def decodes(self, x: TensorImage) -> TensorImage:
        mean, std = self._stats(x)
        return (x.as_subclass(torch.Tensor) * std).add_(mean).as_subclass(type(x))

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None:
            raise ValueError('Normalize has no stats: pass them, e.g. Normalize.from_stats(*imagenet_stats), '
                             'or call setup with a batch to compute them.')
        if not x.is_floating_point():
            raise TypeError(f'Normalize needs a float batch but got {x.dtype}: put IntToFloatTensor() before it '
                            '(ImageBlock adds it to batch_tfms).')
        key = (x.device, x.dtype, x.ndim)
        found = self._cache.get(key)
        if found is None:
            found = tuple(_fit_stats(s, x) for s in (self.mean, self.std))
            self._cache[key] = found
        _check_broadcast(found[0], x)
        return found

    def __repr__(self) -> str:
        if self.mean is None:
            return 'Normalize(no stats yet)'
        return f'Normalize(mean={_fmt(self.mean)}, std={_fmt(self.std)})'


def _shape_stats(s: Stats, axes: tuple[int, ...], name: str) -> torch.Tensor:
    """Stats as a tensor shaped to broadcast against a batch: size 1 on every reduced axis."""
    t = torch.as_tensor(s, dtype=torch.float32).detach().clone()
    ndim = max(max(axes, default=-1) + 1, t.ndim)
    kept = [i for i in range(ndim) if i not in axes]
    if t.ndim == ndim:
        return t
    if t.ndim <= 1 and len(kept) == 1:
        shape = [1] * ndim
        shape[kept[0]] = t.numel()
        return t.reshape(shape)
    raise ValueError(f'Normalize: {name} has shape {tuple(t.shape)}, which does not fit axes={axes}; '
                     f'give one value per channel, e.g. Normalize.from_stats(*imagenet_stats).')


def _fit_stats(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`s` on x's device and dtype, with leading unit dims dropped so a single (C,H,W) image works too."""
    while s.ndim > x.ndim and s.shape[0] == 1:
        s = s[0]
    return s.to(device=x.device, dtype=x.dtype)


def _check_broadcast(s: torch.Tensor, x: torch.Tensor) -> None:
    for i, (ns, nx) in enumerate(zip(reversed(s.shape), reversed(x.shape))):
        if ns != 1 and ns != nx:
            dim = x.ndim - 1 - i
            raise ValueError(
                f'Normalize has {ns} stats along dim {dim} but the batch has {nx} there (shape {tuple(x.shape)}). '
                f'Use stats with {nx} value(s) (mnist_stats for one channel), or open the images in RGB '
                '(PILImage, not PILImageBW) so they have 3 channels.')


def _fmt(t: torch.Tensor) -> str:
    return '[' + ', '.join(f'{v:.4g}' for v in t.flatten().tolist()) + ']'


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', IntToFloatTensor, Normalize)
