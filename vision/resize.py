"""Item transforms that bring every image to one size: `Resize`, `RandomResizedCrop` and `CropPad`."""
from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2.functional import resize_image

from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.transform import RandTransform, Transform
from .core import PILBase, PILMask, TensorImageBase, TensorMask, TensorPoint
from .points import crop_pad_points, points_source, sample_image_size

__all__ = ['ResizeMethod', 'PadMode', 'Resize', 'RandomResizedCrop', 'CropPad']

Box = tuple[int, int, int, int]  # left, top, right, bottom in source pixels; may reach outside the image (padding)


class ResizeMethod:
    """How `Resize` reaches the target aspect ratio."""
    Squish, Crop, Pad = 'squish', 'crop', 'pad'


class PadMode:
    """What fills the border that padding adds."""
    Zeros, Border, Reflection = 'zeros', 'border', 'reflection'


_BILINEAR, _NEAREST = Image.Resampling.BILINEAR, Image.Resampling.NEAREST


class Resize(RandTransform):
    """Resize to `size` ((h, w), or an int for a square) by cropping, padding or squishing to its aspect ratio.

    The crop (or pad) position is random on the training split (split_idx 0) and centred otherwise, including
    when called on its own (fastai picks at random then: a direct call here is reproducible).
    """
    split_idx = None
    order = 1

    def __init__(self, size: int | tuple[int, int], method: str = ResizeMethod.Crop,
                 pad_mode: str = PadMode.Reflection, resamples: tuple[int, int] = (_BILINEAR, _NEAREST), **kwargs):
        super().__init__(**kwargs)
        self.size = _size_hw(size, 'Resize')
        self.method = _choice(method, ResizeMethod, 'method', 'Resize')
        self.pad_mode = _choice(pad_mode, PadMode, 'pad_mode', 'Resize')
        self.mode, self.mode_mask = resamples
        self.pcts = (0.5, 0.5)
        self.src_wh: tuple[int, int] | None = None  # the sample's image size, for its points

    def before_call(self, b: Any, split_idx: int | None) -> None:
        super().before_call(b, split_idx)
        self.pcts = (random.random(), random.random()) if split_idx == 0 else (0.5, 0.5)
        self.src_wh = sample_image_size(b)

    def encodes(self, x: PILBase):
        return _crop_pad_resize_pil(x, self._box(x.size), self.size, self._resample(x), self.pad_mode)

    def encodes(self, x: TensorImageBase):  # noqa: F811 (dispatched on the annotation)
        h, w = x.shape[-2:]
        return _crop_pad_resize_tensor(x, self._box((w, h)), self.size, self._resample(x), self.pad_mode)

    def encodes(self, x: TensorPoint):  # noqa: F811
        wh = points_source(self.src_wh, 'Resize')
        return _crop_pad_resize_points(x, self._box(wh), wh, self.size)

    def _box(self, wh: tuple[int, int]) -> Box:
        """The source box of the target aspect: inside the image (crop), around it (pad) or the image (squish)."""
        (w, h), (th, tw) = wh, self.size
        if self.method == ResizeMethod.Squish:
            return (0, 0, w, h)
        wider = w * th > h * tw
        # integer arithmetic: in floats 230/224*224 is 229.99..., which would crop one pixel short
        if (self.method == ResizeMethod.Crop) == wider:
            cw, ch = h * tw // th, h
        else:
            cw, ch = w, w * th // tw
        left, top = int(self.pcts[0] * (w - cw)), int(self.pcts[1] * (h - ch))
        return (left, top, left + cw, top + ch)

    def _resample(self, x: Any) -> int:
        return self.mode_mask if isinstance(x, (PILMask, TensorMask)) else self.mode


class RandomResizedCrop(RandTransform):
    """Train: a random crop of `min_scale`-`max_scale` of the area and aspect in `ratio`, resized to `size`.

    Other splits (and a direct call): the centre size/(size+xtra) of the largest centred box of the target aspect
    (xtra = `val_xtra`*size rounded up to a multiple of 8: 224 of 256), resized to `size`, keeping the image's
    aspect. fastai squishes the whole image to size+xtra instead, which distorts every validation image.
    """
    split_idx = None
    order = 1

    def __init__(self, size: int | tuple[int, int], min_scale: float = 0.08,
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), resamples: tuple[int, int] = (_BILINEAR, _NEAREST),
                 val_xtra: float = 0.14, max_scale: float = 1., **kwargs):
        super().__init__(**kwargs)
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f'RandomResizedCrop needs 0 < min_scale <= max_scale <= 1, got min_scale={min_scale}, '
                             f'max_scale={max_scale}.')
        self.size = _size_hw(size, 'RandomResizedCrop')
        self.min_scale, self.max_scale, self.ratio, self.val_xtra = min_scale, max_scale, ratio, val_xtra
        self.mode, self.mode_mask = resamples
        self.box: Box = (0, 0, 0, 0)
        self.src_wh: tuple[int, int] | None = None  # the sample's image size, for its points

    def before_call(self, b: Any, split_idx: int | None) -> None:
        super().before_call(b, split_idx)
        w, h = self.src_wh = _image_size(b, 'RandomResizedCrop')
        self.box = self._random_box(w, h) if split_idx == 0 else self._valid_box(w, h)

    def encodes(self, x: PILBase):
        return _crop_pad_resize_pil(x, self.box, self.size, self._resample(x), PadMode.Zeros)

    def encodes(self, x: TensorImageBase):  # noqa: F811
        return _crop_pad_resize_tensor(x, self.box, self.size, self._resample(x), PadMode.Zeros)

    def encodes(self, x: TensorPoint):  # noqa: F811
        return _crop_pad_resize_points(x, self.box, points_source(self.src_wh, 'RandomResizedCrop'), self.size)

    def _random_box(self, w: int, h: int) -> Box:
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = random.uniform(self.min_scale, self.max_scale) * w * h
            aspect = math.exp(random.uniform(*log_ratio))
            nw, nh = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < nw <= w and 0 < nh <= h:
                left, top = random.randint(0, w - nw), random.randint(0, h - nh)
                return (left, top, left + nw, top + nh)
        # no draw fitted (a very long image): the centre crop of the nearest allowed aspect
        if w / h < self.ratio[0]:
            cw, ch = w, int(w / self.ratio[0])
        elif w / h > self.ratio[1]:
            cw, ch = int(h * self.ratio[1]), h
        else:
            cw, ch = w, h
        return _centred(w, h, cw, ch)

    def _valid_box(self, w: int, h: int) -> Box:
        th, tw = self.size
        xtra = math.ceil(max(th, tw) * self.val_xtra / 8) * 8
        bh, bw = th + xtra, tw + xtra
        if w * bh > h * bw:
            big_w, big_h = h * bw / bh, h
        else:
            big_w, big_h = w, w * bh / bw
        return _centred(w, h, max(1, round(big_w * tw / bw)), max(1, round(big_h * th / bh)))

    def _resample(self, x: Any) -> int:
        return self.mode_mask if isinstance(x, (PILMask, TensorMask)) else self.mode


class CropPad(Transform):
    """Centre crop to `size` ((h, w) or an int), padding with `pad_mode` where the image is smaller; no resizing."""
    order = 0

    def __init__(self, size: int | tuple[int, int], pad_mode: str = PadMode.Zeros, **kwargs):
        super().__init__(**kwargs)
        self.size = _size_hw(size, 'CropPad')
        self.pad_mode = _choice(pad_mode, PadMode, 'pad_mode', 'CropPad')
        self.src_wh: tuple[int, int] | None = None  # the last image's size: its sample's points come next

    def encodes(self, x: PILBase):
        w, h = self.src_wh = x.size
        return _crop_pad_resize_pil(x, self._box(w, h), self.size, _NEAREST, self.pad_mode)

    def encodes(self, x: TensorImageBase):  # noqa: F811
        h, w = x.shape[-2:]
        self.src_wh = (int(w), int(h))
        return _crop_pad_resize_tensor(x, self._box(w, h), self.size, _NEAREST, self.pad_mode)

    def encodes(self, x: TensorPoint):  # noqa: F811
        # order 0: in a pipeline CropPad runs before PointScaler (order 1), so the points are still pixels
        wh = points_source(self.src_wh, 'CropPad')
        return _crop_pad_resize_points(x, self._box(*wh), wh, self.size, scaled=False)

    def _box(self, w: int, h: int) -> Box:
        th, tw = self.size
        left, top = (w - tw) // 2, (h - th) // 2
        return (left, top, left + tw, top + th)


def _crop_pad_resize_pil(img: PILBase, box: Box, size: tuple[int, int], resample: int, pad_mode: str) -> PILBase:
    """The `box` of `img` (padded with `pad_mode` where it leaves the image) resized to `size` (h, w)."""
    inner, (tw, th), (x0, y0, x1, y1) = _placement(box, img.size, size)
    if (x0, y0, x1, y1) == (0, 0, tw, th):
        return _scaled_pil(img, inner, (tw, th), resample)
    content = np.asarray(_scaled_pil(img, inner, (x1 - x0, y1 - y0), resample))
    return img._retype(Image.fromarray(_pad(content, (y0, th - y1), (x0, tw - x1), pad_mode, np)))


def _scaled_pil(img: PILBase, box: Box, wh: tuple[int, int], resample: int) -> PILBase:
    if (box[2] - box[0], box[3] - box[1]) == wh:  # nothing to scale: an exact copy, no resampling
        return img if box == (0, 0, *img.size) else img._retype(img.crop(box))
    return img.resize_box(wh, box, resample)


def _crop_pad_resize_tensor(x: torch.Tensor, box: Box, size: tuple[int, int], resample: int,
                            pad_mode: str) -> torch.Tensor:
    """Like `_crop_pad_resize_pil` for a tensor (..., H, W), with torch kernels."""
    cls, t = type(x), x.as_subclass(torch.Tensor)  # plain tensors skip subclass dispatch on every op
    inner, (tw, th), (x0, y0, x1, y1) = _placement(box, (t.shape[-1], t.shape[-2]), size)
    t = t[..., inner[1]:inner[3], inner[0]:inner[2]]
    if t.shape[-2:] != (y1 - y0, x1 - x0):
        t = _resize_tensor(t, (y1 - y0, x1 - x0), resample)
    if (x0, y0, x1, y1) != (0, 0, tw, th):
        t = _pad(t, (y0, th - y1), (x0, tw - x1), pad_mode, torch)
    return t.as_subclass(cls)


def _crop_pad_resize_points(pts: TensorPoint, box: Box, wh: tuple[int, int], size: tuple[int, int],
                            scaled: bool = True) -> TensorPoint:
    """Points moved as `_crop_pad_resize_pil` moves the pixels of a `wh` image (the same rounded placement)."""
    inner, out_wh, dest = _placement(box, wh, size)
    return crop_pad_points(pts, wh, inner, dest, out_wh, scaled)


def _placement(box: Box, wh: tuple[int, int], size: tuple[int, int]) -> tuple[Box, tuple[int, int], Box]:
    """The part of `box` inside the image, the target (w, h), and where that part lands in the target."""
    (w, h), (th, tw) = wh, size
    left, top, right, bottom = box
    inner = (max(left, 0), max(top, 0), min(right, w), min(bottom, h))
    sx, sy = tw / (right - left), th / (bottom - top)
    x0, y0 = min(round((inner[0] - left) * sx), tw - 1), min(round((inner[1] - top) * sy), th - 1)
    x1, y1 = max(round((inner[2] - left) * sx), x0 + 1), max(round((inner[3] - top) * sy), y0 + 1)
    return inner, (tw, th), (x0, y0, min(x1, tw), min(y1, th))


_TV_MODES = {Image.Resampling.NEAREST: InterpolationMode.NEAREST_EXACT,  # 'nearest' is off by half a pixel
             Image.Resampling.BILINEAR: InterpolationMode.BILINEAR, Image.Resampling.BICUBIC: InterpolationMode.BICUBIC}


def _resize_tensor(t: torch.Tensor, hw: tuple[int, int], resample: int) -> torch.Tensor:
    if resample not in _TV_MODES:
        raise ValueError(f'Resizing a tensor image supports resamples NEAREST, BILINEAR and BICUBIC, got '
                         f'{Image.Resampling(resample).name}; pass resamples=(Image.BILINEAR, Image.NEAREST) or resize '
                         f'before ToTensor.')
    flat = t.ndim == 2  # a mask (H,W): torchvision wants a channel dimension
    out = resize_image(t[None] if flat else t, list(hw), interpolation=_TV_MODES[resample], antialias=True)
    return out[0] if flat else out


def _pad(a: Any, pad_h: tuple[int, int], pad_w: tuple[int, int], pad_mode: str, xp: Any) -> Any:
    """Pad the (H, W) axes of an array (xp=np, channels last) or tensor (xp=torch, channels first)."""
    h_axis = 0 if xp is np else a.ndim - 2
    h, w = a.shape[h_axis], a.shape[h_axis + 1]
    if pad_mode == PadMode.Zeros:
        out_shape = list(a.shape)
        out_shape[h_axis], out_shape[h_axis + 1] = h + sum(pad_h), w + sum(pad_w)
        out = np.zeros(out_shape, a.dtype) if xp is np else a.new_zeros(out_shape)
        index = (slice(pad_h[0], pad_h[0] + h), slice(pad_w[0], pad_w[0] + w))
        out[index if xp is np else (..., *index)] = a
        return out
    rows, cols = _pad_index(h, *pad_h, pad_mode), _pad_index(w, *pad_w, pad_mode)
    if xp is np:
        return a[rows[:, None], cols]
    return a[..., torch.from_numpy(rows).to(a.device)[:, None], torch.from_numpy(cols).to(a.device)]


def _pad_index(n: int, before: int, after: int, pad_mode: str) -> np.ndarray:
    """Source index of every output position along one axis of length `n` padded by `before` and `after`."""
    i = np.arange(-before, n + after)
    if pad_mode == PadMode.Border or n == 1:
        return np.clip(i, 0, n - 1)
    # reflection mirrors about the edge pixels without repeating them, again and again for pads wider than n
    period = 2 * (n - 1)
    i = i % period
    return np.where(i >= n, period - i, i)


def _centred(w: int, h: int, cw: int, ch: int) -> Box:
    left, top = (w - cw) // 2, (h - ch) // 2
    return (left, top, left + cw, top + ch)


def _image_size(b: Any, name: str) -> tuple[int, int]:
    """(w, h) of the first image in the sample `b` (an image, or a tuple holding one)."""
    if (wh := sample_image_size(b)) is not None:
        return wh
    raise TypeError(f'{name} needs an image in the sample to size its crop, got {type(b).__name__}; apply it to a '
                    f'PILImage or TensorImage (or a tuple holding one).')


def _size_hw(size: Any, name: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f'{name} size must be a positive int or a (height, width) pair of them, got {size!r}.')
    return int(size[0]), int(size[1])


def _choice(value: str, options: type, arg: str, name: str) -> str:
    allowed = [v for k, v in vars(options).items() if not k.startswith('_')]
    if value not in allowed:
        raise ValueError(f'{name} {arg}={value!r} is not one of {allowed}; use {options.__name__}.<name> or one of '
                         f'those strings.')
    return value


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', Resize, RandomResizedCrop, CropPad)
