"""ImageBlock: an image input, opened as PIL, made a uint8 tensor per item and a float tensor per batch;
PointBlock: key points in it; MaskBlock: a segmentation mask of it."""
from __future__ import annotations

from collections.abc import Iterable

from blocklearn.blocks.block import TransformBlock

from .core import PILImage, ToTensor
from .mask import MaskSetup
from .normalize import IntToFloatTensor
from .points import PointScaler, PointSetup

__all__ = ['ImageBlock', 'MaskBlock', 'PointBlock']


def ImageBlock(cls: type[PILImage] = PILImage) -> TransformBlock:
    """An image input: `cls.create` opens it, `ToTensor` per item, `IntToFloatTensor` per batch."""
    return TransformBlock(type_tfms=cls.create, item_tfms=ToTensor(), batch_tfms=IntToFloatTensor())


def PointBlock() -> TransformBlock:
    """Key points of an image: `get_y` gives (n, 2) (x, y) pixels, scaled to [-1, 1]; loss MSELossFlat, c = 2n.

    A function, not fastai's shared instance: each DataBlock gets its own transforms and their set-up state."""
    return TransformBlock(type_tfms=PointSetup(), item_tfms=PointScaler())


def MaskBlock(codes: Iterable | None = None) -> TransformBlock:
    """A segmentation mask: `get_y` gives a mask (file, array, image) of codes 0..c-1 that `codes` names (dls.vocab).
    PILMask per sample, int64 TensorMask (H,W) per item, moved with the image by every transform (nearest); loss
    CrossEntropyLossFlat(axis=1), c = len(codes), or the largest code in the training masks + 1 without codes."""
    return TransformBlock(type_tfms=MaskSetup(codes), item_tfms=ToTensor())
