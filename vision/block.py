"""ImageBlock: an image input, opened as PIL, made a uint8 tensor per item and a float tensor per batch."""
from __future__ import annotations

from blocklearn.blocks.block import TransformBlock

from .core import PILImage, ToTensor
from .normalize import IntToFloatTensor

__all__ = ['ImageBlock']


def ImageBlock(cls: type[PILImage] = PILImage) -> TransformBlock:
    """An image input: `cls.create` opens it, `ToTensor` per item, `IntToFloatTensor` per batch."""
    return TransformBlock(type_tfms=cls.create, item_tfms=ToTensor(), batch_tfms=IntToFloatTensor())
