"""Item augmentation: random flips of one sample on the CPU worker (`FlipItem`, `DihedralItem`), its image, mask and
points alike. vision/augment.py does the same on the device for a whole batch, in one interpolation."""
from __future__ import annotations

import random
from typing import Any

import torch
from PIL import Image

from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.transform import RandTransform
from .core import PILBase, TensorImageBase, TensorPoint
from .points import points_source, sample_image_size

__all__ = ['FlipItem', 'DihedralItem']

# DihedralItem's k: bit 0 flips left-right, bit 1 flips top-bottom, bit 2 then transposes (as batch Dihedral's draw)
_FLIP_X, _FLIP_Y, _TRANSPOSE = 1, 2, 4


class FlipItem(RandTransform):
    """Mirror the sample left-right with probability `p`, on the training split: image, mask and points together.

    Order 0, as in fastai: it runs before PointScaler, so points are pixels and x becomes width - x (fastai negates
    x, which is right only for points already scaled to [-1, 1])."""
    order = 0

    def __init__(self, p: float = 0.5):
        super().__init__(p=p)
        self.src_wh: tuple[int, int] | None = None  # the sample's image size, for its points

    def before_call(self, b: Any, split_idx: int | None) -> None:
        super().before_call(b, split_idx)
        self.src_wh = sample_image_size(b)

    def encodes(self, x: Image.Image):
        return _dihedral_pil(x, _FLIP_X)

    def encodes(self, x: TensorImageBase):  # noqa: F811 (dispatched on the annotation)
        return _dihedral_tensor(x, _FLIP_X)

    def encodes(self, x: TensorPoint):  # noqa: F811
        return _dihedral_points(x, _FLIP_X, points_source(self.src_wh, 'FlipItem'))


class DihedralItem(RandTransform):
    """With probability `p` (fastai's default 1), one of the 8 flips and quarter turns, drawn once per sample and
    applied to its image, mask and points alike; training split only, order 0 (before PointScaler) as FlipItem."""
    order = 0

    def __init__(self, p: float = 1.):
        super().__init__(p=p)
        self.k = 0
        self.src_wh: tuple[int, int] | None = None

    def before_call(self, b: Any, split_idx: int | None) -> None:
        super().before_call(b, split_idx)
        self.k = random.randint(0, 7)
        self.src_wh = sample_image_size(b)

    def encodes(self, x: Image.Image):
        return _dihedral_pil(x, self.k)

    def encodes(self, x: TensorImageBase):  # noqa: F811 (dispatched on the annotation)
        return _dihedral_tensor(x, self.k)

    def encodes(self, x: TensorPoint):  # noqa: F811
        return _dihedral_points(x, self.k, points_source(self.src_wh, 'DihedralItem'))


def _dihedral_pil(img: Image.Image, k: int) -> Image.Image:
    """`img` flipped and/or transposed as `k` says; a PILImage or PILMask keeps its type (a mask's codes are moved,
    never resampled)."""
    out = img
    for bit, op in ((_FLIP_X, Image.Transpose.FLIP_LEFT_RIGHT), (_FLIP_Y, Image.Transpose.FLIP_TOP_BOTTOM),
                    (_TRANSPOSE, Image.Transpose.TRANSPOSE)):
        if k & bit:
            out = out.transpose(op)
    return img._retype(out) if isinstance(img, PILBase) and out is not img else out


def _dihedral_tensor(x: torch.Tensor, k: int) -> torch.Tensor:
    """An image (..., H, W) or mask flipped and/or transposed as `k` says, as `_dihedral_pil` moves pixels."""
    t = x.as_subclass(torch.Tensor)
    dims = [d for bit, d in ((_FLIP_X, -1), (_FLIP_Y, -2)) if k & bit]
    if dims:
        t = t.flip(dims)
    if k & _TRANSPOSE:
        t = t.transpose(-1, -2).contiguous()  # collate and the batch kernels expect contiguous items
    return t.as_subclass(type(x))


def _dihedral_points(pts: TensorPoint, k: int, wh: tuple[int, int]) -> TensorPoint:
    """Pixel points (n, 2) of a `wh` image moved as `_dihedral_pil` moves its pixels: pixel i covers [i, i+1), so a
    flip maps x to w - x, and a transposition swaps x and y."""
    t = pts.as_subclass(torch.Tensor).clone()
    w, h = wh
    if k & _FLIP_X:
        t[..., 0] = w - t[..., 0]
    if k & _FLIP_Y:
        t[..., 1] = h - t[..., 1]
    if k & _TRANSPOSE:
        t = t.flip(-1)
    return t.as_subclass(type(pts))


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', FlipItem, DihedralItem)
