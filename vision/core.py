"""Image types: PIL images that know how to open any file, and typed image tensors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from blocks.tensors import TensorBase

__all__ = ['PILImage', 'PILImageBW', 'TensorImage', 'TensorImageBW', 'image2tensor']


class TensorImage(TensorBase):
    """An image (C,H,W) or a batch of images (B,C,H,W)."""


class TensorImageBW(TensorImage):
    """A single-channel image."""


class PILImage(Image.Image):
    """A PIL image opened in RGB; `create` accepts a path, bytes, an array or a tensor."""
    mode_out = 'RGB'
    tensor_type = TensorImage

    @classmethod
    def create(cls, src: Any) -> PILImage:
        if isinstance(src, Image.Image):
            img = src
        elif isinstance(src, torch.Tensor):
            img = Image.fromarray(src.permute(1, 2, 0).numpy() if src.ndim == 3 else src.numpy())
        elif isinstance(src, np.ndarray):
            img = Image.fromarray(src)
        else:
            img = Image.open(src if not isinstance(src, bytes) else __import__('io').BytesIO(src))
            img.load()
        return cls._wrap(img.convert(cls.mode_out) if img.mode != cls.mode_out else img)

    @classmethod
    def _wrap(cls, img: Image.Image) -> PILImage:
        """Retype a PIL image as `cls` without copying its pixels."""
        new = cls.__new__(cls)
        new.__dict__.update(img.__dict__)
        return new

    def __repr__(self) -> str:
        return f'{type(self).__name__} mode={self.mode} size={self.size[0]}x{self.size[1]}'


class PILImageBW(PILImage):
    """A PIL image opened in grayscale (mode L)."""
    mode_out = 'L'
    tensor_type = TensorImageBW


def image2tensor(img: Image.Image) -> torch.Tensor:
    """uint8 tensor (C,H,W) sharing the image's pixels where possible."""
    arr = np.asarray(img)
    t = torch.from_numpy(arr if arr.ndim == 3 else arr[:, :, None])
    return t.permute(2, 0, 1)
