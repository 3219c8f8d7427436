"""Batch augmentation: all geometry (flip, rotate, zoom, warp, crop to size) in one grid and one interpolation.
Random values are drawn per image; lighting works in logit space so values stay in (0, 1)."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.transform import RandTransform, Transform
from blocklearn.vision.core import TensorImage, TensorMask, TensorPoint, first_image
from blocklearn.vision.points import warp_points

__all__ = ['aug_transforms', 'AffineAugment', 'RandomResizedCropGPU', 'GeometricTfm', 'Flip', 'Dihedral',
           'Rotate', 'Zoom', 'Warp', 'LightingAugment', 'LightingTfm', 'Brightness', 'Contrast',
           'perspective_grid', 'presize_comparison']

Draw = float | Sequence[float] | torch.Tensor | Callable[[int], Any] | None
Size = int | tuple[int, int]

_MODES = ('bilinear', 'nearest', 'bicubic')
_PAD_MODES = ('reflection', 'zeros', 'border')
_LOGIT_EPS = 1e-6


def aug_transforms(mult: float = 1., do_flip: bool = True, flip_vert: bool = False, max_rotate: float = 10.,
                   min_zoom: float = 1., max_zoom: float = 1.1, max_lighting: float = 0.2, max_warp: float = 0.2,
                   p_affine: float = 0.75, p_lighting: float = 0.75, xtra_tfms: Sequence[Transform] | None = None,
                   size: Size | None = None, mode: str = 'bilinear', pad_mode: str = 'reflection',
                   align_corners: bool = True, batch: bool = False, min_scale: float = 1.) -> list[Transform]:
    """Batch augmentation as one `AffineAugment` (flip, rotate, zoom, warp, crop to `size`) and one `LightingAugment`.
    Geometric `xtra_tfms` join the single interpolation and lighting ones the single logit pass."""
    steps: list[GeometricTfm] = []
    if do_flip:
        steps.append(Dihedral(p=0.5, batch=batch) if flip_vert else Flip(p=0.5, batch=batch))
    if max_rotate:
        steps.append(Rotate(max_rotate * mult, p=p_affine, batch=batch))
    if min_zoom < 1 or max_zoom > 1:
        steps.append(Zoom(min_zoom, max_zoom, p=p_affine, batch=batch))
    if max_warp:
        steps.append(Warp(max_warp * mult, p=p_affine, batch=batch))
    lighting: list[LightingTfm] = []
    if max_lighting:
        lighting += [Brightness(max_lighting * mult, p=p_lighting, batch=batch),
                     Contrast(max_lighting * mult, p=p_lighting, batch=batch)]
    others: list[Transform] = []
    for t in xtra_tfms or []:
        (steps if isinstance(t, GeometricTfm) else lighting if isinstance(t, LightingTfm) else others).append(t)
    res: list[Transform] = []
    # reflection by default: rotated corners continue the picture instead of teaching the model black triangles
    if steps or size is not None or min_scale < 1:
        res.append(AffineAugment(steps, size=size, min_scale=min_scale, mode=mode, pad_mode=pad_mode,
                                 align_corners=align_corners, batch=batch))
    if lighting:
        res.append(LightingAugment(lighting))
    return res + others


class AffineAugment(RandTransform):
    """Geometric `tfms` and a crop to `size` composed into one sampling grid: one `grid_sample` per batch.
    Train: a random box (area in [min_scale, 1], aspect in `ratio`) then the steps; else a centred box, resized.
    Key points of the sample move with the image (kept when they leave it); masks too, sampled nearest."""
    order = 30
    split_idx = None

    def __init__(self, tfms: Sequence[GeometricTfm] = (), size: Size | None = None, min_scale: float = 1.,
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), mode: str = 'bilinear', pad_mode: str = 'reflection',
                 align_corners: bool = True, batch: bool = False):
        super().__init__(p=1.)
        bad = [t for t in tfms if not isinstance(t, GeometricTfm)]
        if bad:
            raise TypeError(f'AffineAugment: tfms must be geometric transforms (Flip, Rotate, Zoom, Warp, ...), '
                            f'got {bad!r}; put other transforms in the pipeline next to it.')
        if not 0 < min_scale <= 1:
            raise ValueError(f'AffineAugment: min_scale={min_scale} must be in (0, 1]; 0.75 keeps 3/4 of the area.')
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f'AffineAugment: ratio={ratio} must be (low, high) with 0 < low <= high.')
        _check_modes(type(self).__name__, mode, pad_mode)
        self.tfms, self.size, self.min_scale, self.ratio = list(tfms), _as_size(size), min_scale, ratio
        self.mode, self.pad_mode, self.align_corners, self.batch = mode, pad_mode, align_corners, batch
        self._mats: torch.Tensor | None = None
        self._out_hw: tuple[int, int] = (0, 0)

    def plan(self, shape: Sequence[int], split_idx: int | None) -> tuple[tuple[int, int], list[torch.Tensor]]:
        """Output (h, w) and the per-image matrices, crop first then each step, for a batch of `shape`."""
        n = shape[0] if len(shape) == 4 else 1
        in_hw = (int(shape[-2]), int(shape[-1]))
        out_hw = self.size or in_hw
        train = split_idx == 0
        mats = []
        if self.size is not None or (train and self.min_scale < 1):
            mats.append(_crop_matrices(n, in_hw, out_hw, self.min_scale, self.ratio, self.align_corners,
                                       random=train, batch=self.batch))
        if train:
            mats += [t.matrices(n, out_hw) for t in self.tfms]
        return out_hw, mats

    def before_call(self, b: Any, split_idx: int | None) -> None:
        x = first_image(b)
        self.do = x is not None
        if not self.do:
            return
        self._out_hw, mats = self.plan(x.shape, split_idx)
        self._in_hw = (int(x.shape[-2]), int(x.shape[-1]))
        n = x.shape[0] if x.ndim == 4 else 1
        m = _compose(mats, n)
        # nothing to move and nothing to resize: skip the interpolation, the batch comes back bit-exact
        self.do = not (self._out_hw == tuple(x.shape[-2:]) and torch.equal(m, _eye(n)))
        self._mats = m

    def encodes(self, x: TensorImage) -> TensorImage:
        return _resample(x, self._mats, self._out_hw, self.mode, self.pad_mode, self.align_corners)

    def encodes(self, x: TensorPoint) -> TensorPoint:  # noqa: F811 (dispatched on the annotation)
        return warp_points(x, self._mats, self._in_hw, self._out_hw, self.align_corners)

    def encodes(self, x: TensorMask) -> TensorMask:  # noqa: F811
        return _resample_mask(x, self._mats, self._out_hw, self.pad_mode, self.align_corners)

    def __repr__(self) -> str:
        steps = ' -> '.join(t.name for t in self.tfms) or 'no steps'
        return f'{type(self).__name__}({steps}, size={self.size}, min_scale={self.min_scale})'


class RandomResizedCropGPU(AffineAugment):
    """Random crop (area in [min_scale, 1], aspect in `ratio`) resized to `size` on train; centre crop otherwise."""

    def __init__(self, size: Size, min_scale: float = 0.08, ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 mode: str = 'bilinear', pad_mode: str = 'reflection', align_corners: bool = True,
                 batch: bool = False):
        if size is None:
            raise ValueError('RandomResizedCropGPU: size is required, e.g. RandomResizedCropGPU(224).')
        super().__init__((), size=size, min_scale=min_scale, ratio=ratio, mode=mode, pad_mode=pad_mode,
                         align_corners=align_corners, batch=batch)


class GeometricTfm(RandTransform):
    """A geometric step (train only): per-image 3x3 matrices from output to input coordinates.
    Alone it samples once itself; inside `AffineAugment` it only lends its matrices (its mode/padding unused)."""
    order = 30

    def __init__(self, p: float = 0.5, mode: str = 'bilinear', pad_mode: str = 'reflection',
                 align_corners: bool = True, batch: bool = False):
        super().__init__(p=p)
        _check_modes(type(self).__name__, mode, pad_mode)
        self.mode, self.pad_mode, self.align_corners, self.batch = mode, pad_mode, align_corners, batch
        self._mats: torch.Tensor | None = None

    def matrices(self, n: int, out_hw: tuple[int, int]) -> torch.Tensor:
        """(n, 3, 3) float32 matrices; the identity for images the coin flip with `p` left out."""
        k = 1 if self.batch else n
        mats = self._draw(k, out_hw)
        if self.p < 1:
            mats = torch.where((torch.rand(k) < self.p)[:, None, None], mats, _eye(k))
        return mats.expand(n, 3, 3) if k != n else mats

    def _draw(self, n: int, out_hw: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError(f'{type(self).__name__} must define _draw(n, out_hw) -> (n, 3, 3) matrices')

    def before_call(self, b: Any, split_idx: int | None) -> None:
        x = first_image(b)
        self.do = x is not None
        if self.do:
            n = x.shape[0] if x.ndim == 4 else 1
            self._hw = (int(x.shape[-2]), int(x.shape[-1]))
            self._mats = self.matrices(n, self._hw)
            self.do = not torch.equal(self._mats, _eye(n))

    def encodes(self, x: TensorImage) -> TensorImage:
        return _resample(x, self._mats, tuple(x.shape[-2:]), self.mode, self.pad_mode, self.align_corners)

    def encodes(self, x: TensorPoint) -> TensorPoint:  # noqa: F811 (dispatched on the annotation)
        return warp_points(x, self._mats, self._hw, self._hw, self.align_corners)

    def encodes(self, x: TensorMask) -> TensorMask:  # noqa: F811
        return _resample_mask(x, self._mats, self._hw, self.pad_mode, self.align_corners)


class Flip(GeometricTfm):
    """Mirror left-right with probability `p` per image."""

    def _draw(self, n: int, out_hw: tuple[int, int]) -> torch.Tensor:
        return _diag(-torch.ones(n), torch.ones(n))


class Dihedral(GeometricTfm):
    """One of the 8 flips/transpositions per image; `draw` picks them (0..7: bit 0 flips x, 1 flips y, 2 transposes)."""

    def __init__(self, p: float = 0.5, draw: Draw = None, mode: str = 'bilinear', pad_mode: str = 'reflection',
                 align_corners: bool = True, batch: bool = False):
        super().__init__(p, mode, pad_mode, align_corners, batch)
        self.draw = draw

    def _draw(self, n: int, out_hw: tuple[int, int]) -> torch.Tensor:
        k = _values(self.draw, n, lambda m: torch.randint(0, 8, (m,)).float(), 'draw').long()
        sx, sy = 1. - 2. * (k & 1).float(), 1. - 2. * ((k >> 1) & 1).float()
        mats = _diag(sx, sy)
        aspect = out_hw[1] / out_hw[0]
        # a transposition in pixel space, seen in normalised coordinates of a non-square output
        swap = torch.tensor([[0., 1 / aspect, 0.], [aspect, 0., 0.], [0., 0., 1.]])
        return torch.where(((k >> 2) & 1).bool()[:, None, None], swap @ mats, mats)


class Rotate(GeometricTfm):
    """Rotate by degrees uniform in [-max_deg, max_deg] (or `draw`); positive turns the image counter-clockwise."""

    def __init__(self, max_deg: float = 10., p: float = 0.5, draw: Draw = None, mode: str = 'bilinear',
                 pad_mode: str = 'reflection', align_corners: bool = True, batch: bool = False):
        super().__init__(p, mode, pad_mode, align_corners, batch)
        self.max_deg, self.draw = max_deg, draw

    def _draw(self, n: int, out_hw: tuple[int, int]) -> torch.Tensor:
        deg = _values(self.draw, n, lambda m: torch.empty(m).uniform_(-self.max_deg, self.max_deg), 'draw')
        th = deg * (math.pi / 180)
        cos, sin = torch.cos(th), torch.sin(th)
        # rotate in pixel-proportional coordinates so a non-square output is turned, not sheared
        a = out_hw[1] / out_hw[0]
        mats = _eye(n)
        mats[:, 0, 0], mats[:, 0, 1] = cos, -sin / a
        mats[:, 1, 0], mats[:, 1, 1] = sin * a, cos
        return mats


class Zoom(GeometricTfm):
    """Zoom in by a factor in [min_zoom, max_zoom] (or `draw`) around (draw_x, draw_y) in [0, 1], 0.5 the middle.
    The centre is random by default, within the range that keeps the zoomed view inside the image."""

    def __init__(self, min_zoom: float = 1., max_zoom: float = 1.1, p: float = 0.5, draw: Draw = None,
                 draw_x: Draw = None, draw_y: Draw = None, mode: str = 'bilinear', pad_mode: str = 'reflection',
                 align_corners: bool = True, batch: bool = False):
        super().__init__(p, mode, pad_mode, align_corners, batch)
        if not 0 < min_zoom <= max_zoom:
            raise ValueError(f'Zoom: need 0 < min_zoom <= max_zoom, got min_zoom={min_zoom}, max_zoom={max_zoom}.')
        self.min_zoom, self.max_zoom, self.draw, self.draw_x, self.draw_y = min_zoom, max_zoom, draw, draw_x, draw_y

    def _draw(self, n: int, out_hw: tuple[int, int]) -> torch.Tensor:
        z = _values(self.draw, n, lambda m: torch.empty(m).uniform_(self.min_zoom, self.max_zoom), 'draw')
        cx = _values(self.draw_x, n, torch.rand, 'draw_x')
        cy = _values(self.draw_y, n, torch.rand, 'draw_y')
        s = 1 / z
        mats = _diag(s, s)
        mats[:, 0, 2], mats[:, 1, 2] = (2 * cx - 1) * (1 - s), (2 * cy - 1) * (1 - s)
        return mats


class Warp(GeometricTfm):
    """Perspective tilt: horizontal (draw_x) and vertical (draw_y) magnitudes uniform in [-magnitude, magnitude]."""

    def __init__(self, magnitude: float = 0.2, p: float = 0.5, draw_x: Draw = None, draw_y: Draw = None,
                 mode: str = 'bilinear', pad_mode: str = 'reflection', align_corners: bool = True,
                 batch: bool = False):
        super().__init__(p, mode, pad_mode, align_corners, batch)
        if not 0 <= magnitude < 1:
            raise ValueError(f'Warp: magnitude={magnitude} must be in [0, 1); 0.2 is a moderate tilt.')
        self.magnitude, self.draw_x, self.draw_y = magnitude, draw_x, draw_y

    def _draw(self, n: int, out_hw: tuple[int, int]) -> torch.Tensor:
        def uniform(m: int) -> torch.Tensor:
            return torch.empty(m).uniform_(-self.magnitude, self.magnitude)
        mx = _values(self.draw_x, n, uniform, 'draw_x')
        my = _values(self.draw_y, n, uniform, 'draw_y')
        x = torch.tensor([-1., 1., 1., -1.]).expand(n, 4)
        y = torch.tensor([-1., -1., 1., 1.]).expand(n, 4)
        # each output corner reads from a corner pulled in or pushed out: one side of the image looks nearer
        return _homography(x, y, x * (1 - my[:, None] * y), y * (1 - mx[:, None] * x))


class LightingTfm(RandTransform):
    """A lighting step: per image y = sigmoid(scale * logit(x) + shift), so values stay in (0, 1); train only."""
    order = 40

    def __init__(self, p: float = 0.75, batch: bool = False):
        super().__init__(p=p)
        self.batch = batch
        self._params: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def logit_affine(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-image (scale, shift, applied) for `n` images; scale 1, shift 0 where not applied."""
        k = 1 if self.batch else n
        scale, shift = self._draw(k)
        applied = torch.rand(k) < self.p if self.p < 1 else torch.ones(k, dtype=torch.bool)
        scale, shift = torch.where(applied, scale, 1.), torch.where(applied, shift, 0.)
        return tuple(t.expand(n) for t in (scale, shift, applied))

    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f'{type(self).__name__} must define _draw(n) -> (scale, shift)')

    def before_call(self, b: Any, split_idx: int | None) -> None:
        x = first_image(b)
        self.do = x is not None
        if self.do:
            self._params = self.logit_affine(x.shape[0] if x.ndim == 4 else 1)
            self.do = bool(self._params[2].any())

    def encodes(self, x: TensorImage) -> TensorImage:
        return _logit_affine(x, *self._params)


class Brightness(LightingTfm):
    """Change brightness: `draw` in [0.5-max_lighting/2, 0.5+max_lighting/2] (0.5 = unchanged), added in logit space."""

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75, draw: Draw = None, batch: bool = False):
        super().__init__(p, batch)
        if not 0 <= max_lighting < 1:
            raise ValueError(f'Brightness: max_lighting={max_lighting} must be in [0, 1).')
        self.max_lighting, self.draw = max_lighting, draw

    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = 0.5 * (1 - self.max_lighting), 0.5 * (1 + self.max_lighting)
        change = _values(self.draw, n, lambda m: torch.empty(m).uniform_(lo, hi), 'draw')
        return torch.ones(n), torch.logit(change.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS))


class Contrast(LightingTfm):
    """Scale contrast by `draw`, log-uniform in [1-max_lighting, 1/(1-max_lighting)], in logit space (1 = unchanged)."""

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75, draw: Draw = None, batch: bool = False):
        super().__init__(p, batch)
        if not 0 <= max_lighting < 1:
            raise ValueError(f'Contrast: max_lighting={max_lighting} must be in [0, 1).')
        self.max_lighting, self.draw = max_lighting, draw

    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        lim = -math.log(1 - self.max_lighting)
        scale = _values(self.draw, n, lambda m: torch.empty(m).uniform_(-lim, lim).exp_(), 'draw')
        return scale, torch.zeros(n)


class LightingAugment(LightingTfm):
    """Lighting steps (Brightness, Contrast, ...) composed into one logit -> affine -> sigmoid pass."""

    def __init__(self, tfms: Sequence[LightingTfm]):
        super().__init__(p=1.)
        bad = [t for t in tfms if not isinstance(t, LightingTfm)]
        if bad:
            raise TypeError(f'LightingAugment: tfms must be lighting transforms (Brightness, Contrast), got {bad!r}.')
        self.tfms = list(tfms)

    def logit_affine(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale, shift, applied = torch.ones(n), torch.zeros(n), torch.zeros(n, dtype=torch.bool)
        for t in self.tfms:
            s, b, a = t.logit_affine(n)
            scale, shift, applied = s * scale, s * shift + b, applied | a
        return scale, shift, applied

    def __repr__(self) -> str:
        return f'LightingAugment({" -> ".join(t.name for t in self.tfms)})'


def perspective_grid(mats: torch.Tensor, size: tuple[int, int], align_corners: bool = True,
                     device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`grid_sample` grid (n, h, w, 2) from (n, 3, 3) matrices mapping output to input normalised coordinates."""
    h, w = size
    n = mats.shape[0]
    # decided where the matrices are (the CPU, usually), so a GPU batch needs no sync for it
    perspective = not (bool((mats[:, 2, :2] == 0).all()) and bool((mats[:, 2, 2] == 1).all()))
    mats = mats.to(device=device or mats.device, dtype=dtype or mats.dtype)
    u = _coords(w, align_corners, mats)
    v = _coords(h, align_corners, mats)
    grid = torch.empty(n, h, w, 2, device=mats.device, dtype=mats.dtype)
    rec = None
    if perspective:
        last = mats[:, 2]
        rec = _outer_sum(last[:, 0, None] * u, last[:, 1, None] * v + last[:, 2, None]).reciprocal_()
    # each coordinate is a row term plus a column term: 2-3x faster than a (n, h*w, 3) @ (n, 3, 2) matmul
    for i in (0, 1):
        row, col = mats[:, i, 0, None] * u, mats[:, i, 1, None] * v + mats[:, i, 2, None]
        if rec is None:
            _outer_sum(row, col, out=grid[..., i])
        else:
            torch.mul(_outer_sum(row, col), rec, out=grid[..., i])
    return grid


def presize_comparison(x: TensorImage, aug: AffineAugment | None = None,
                       size: Size = 224) -> tuple[TensorImage, TensorImage]:
    """(composed, step_by_step): one random draw of `aug` as one interpolation, and as one per step, for display.
    The default `aug` is aug_transforms' geometry with every step on, so the blur of repeated resampling shows."""
    if aug is None:
        aug = aug_transforms(size=size, min_scale=0.75, p_affine=1., max_lighting=0.)[0]
    out_hw, mats = aug.plan(x.shape, split_idx=0)
    n = x.shape[0] if x.ndim == 4 else 1
    composed = _resample(x, _compose(mats, n), out_hw, aug.mode, aug.pad_mode, aug.align_corners)
    step = x
    for m in mats:
        step = _resample(step, m, out_hw, aug.mode, aug.pad_mode, aug.align_corners)
    return composed, step


def _resample(x: torch.Tensor, mats: torch.Tensor, out_hw: tuple[int, int], mode: str, pad_mode: str,
              align_corners: bool) -> torch.Tensor:
    """One `grid_sample` of the batch `x` through `mats`; keeps x's tensor type."""
    plain = x.as_subclass(torch.Tensor)
    if not plain.is_floating_point():
        raise TypeError(f'Geometric augmentation needs a float batch but got {plain.dtype}: put IntToFloatTensor() '
                        'before it (ImageBlock adds it to batch_tfms).')
    single = plain.ndim == 3
    if single:
        plain = plain[None]
    grid = perspective_grid(mats, out_hw, align_corners, device=plain.device, dtype=plain.dtype)
    out = F.grid_sample(plain, grid, mode=mode, padding_mode=pad_mode, align_corners=align_corners)
    return (out[0] if single else out).as_subclass(type(x))


def _resample_mask(x: TensorMask, mats: torch.Tensor, out_hw: tuple[int, int], pad_mode: str,
                   align_corners: bool) -> TensorMask:
    """A mask (H,W) or batch of masks (B,H,W) through the grid its images go through, sampled nearest so every
    pixel keeps one of the codes; padding as the image's, so a reflected border is labelled as what it shows."""
    plain = x.as_subclass(torch.Tensor)
    # grid_sample takes floats; nearest sampling copies values, so codes come back exact (below 2**24)
    out = _resample(plain.unsqueeze(-3).float(), mats, out_hw, 'nearest', pad_mode, align_corners)
    return out.squeeze(-3).round_().to(plain.dtype).as_subclass(type(x))


def _logit_affine(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, applied: torch.Tensor) -> torch.Tensor:
    plain = x.as_subclass(torch.Tensor)
    if not plain.is_floating_point():
        raise TypeError(f'Lighting needs a float batch in [0, 1] but got {plain.dtype}: put IntToFloatTensor() '
                        'before it (ImageBlock adds it to batch_tfms).')
    batch = plain if plain.ndim == 4 else plain[None]
    shape = (-1,) + (1,) * (batch.ndim - 1)
    dev = dict(device=batch.device, dtype=batch.dtype)
    out = torch.logit(batch, _LOGIT_EPS)
    out.mul_(scale.to(**dev).view(shape)).add_(shift.to(**dev).view(shape)).sigmoid_()
    if not bool(applied.all()):
        # images the coin flip skipped come back bit-exact rather than through logit/sigmoid round-off
        keep = ~applied.to(batch.device)
        out[keep] = batch[keep]
    return (out if plain.ndim == 4 else out[0]).as_subclass(type(x))


def _crop_matrices(n: int, in_hw: tuple[int, int], out_hw: tuple[int, int], min_scale: float,
                   ratio: tuple[float, float], align_corners: bool, random: bool, batch: bool) -> torch.Tensor:
    """Matrices taking the output onto a crop box of the input: random on train, the centred box otherwise."""
    h, w = in_hw
    target = out_hw[1] / out_hw[0]
    if random:
        k = 1 if batch else n
        # area relative to the largest box of the target aspect, so min_scale=1 on a square image is a plain resize
        area = torch.empty(k).uniform_(min_scale, 1.) * (min(w, h * target) * min(h, w / target))
        aspect = torch.empty(k).uniform_(math.log(ratio[0]), math.log(ratio[1])).exp_() * target
        # clamp the aspect, not the sides, so the drawn area is kept and the box still fits the image
        aspect = torch.minimum(torch.maximum(aspect, area / h ** 2), w ** 2 / area)
        cw, ch = (area * aspect).sqrt_().clamp_(max=w), (area / aspect).sqrt_().clamp_(max=h)
        x0, y0 = torch.rand(k) * (w - cw), torch.rand(k) * (h - ch)
    else:
        # whole pixels, floor-centred: the same box as slicing the image, so valid equals crop-then-resize
        cw, ch = min(w, round(h * target)), min(h, round(w / target))
        k = 1
        x0, y0 = torch.full((1,), float((w - cw) // 2)), torch.full((1,), float((h - ch) // 2))
        cw, ch = torch.full((1,), float(cw)), torch.full((1,), float(ch))
    sx, tx = _span(x0, cw, w, align_corners)
    sy, ty = _span(y0, ch, h, align_corners)
    mats = _diag(sx, sy)
    mats[:, 0, 2], mats[:, 1, 2] = tx, ty
    return mats.expand(n, 3, 3) if k != n else mats


def _span(start: torch.Tensor, length: torch.Tensor, full: int,
          align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and offset mapping [-1, 1] onto pixels [start, start+length) of `full`, in grid_sample's convention."""
    if align_corners:
        # -1 and 1 are the centres of the first and last pixel
        d = max(full - 1, 1)
        return (length - 1) / d, (2 * start + length - 1) / d - 1
    return length / full, (2 * start + length) / full - 1


def _homography(x: torch.Tensor, y: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) homographies taking the 4 points (x, y) onto (X, Y), each of shape (n, 4)."""
    n = x.shape[0]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_x = torch.stack([x, y, one, zero, zero, zero, -X * x, -X * y], -1)
    rows_y = torch.stack([zero, zero, zero, x, y, one, -Y * x, -Y * y], -1)
    a = torch.cat([rows_x, rows_y], 1)
    h = torch.linalg.solve(a, torch.cat([X, Y], 1))
    return torch.cat([h, torch.ones(n, 1)], 1).view(n, 3, 3)


def _outer_sum(row: torch.Tensor, col: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """(n, h, w) sums of a per-column term (n, w) and a per-row term (n, h)."""
    return torch.add(row[:, None, :], col[:, :, None], out=out)


def _compose(mats: Sequence[torch.Tensor], n: int) -> torch.Tensor:
    out = _eye(n)
    for m in mats:
        out = out @ m
    return out


def _diag(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    mats = _eye(sx.shape[0])
    mats[:, 0, 0], mats[:, 1, 1] = sx, sy
    return mats


def _eye(n: int) -> torch.Tensor:
    return torch.eye(3).repeat(n, 1, 1)


def _coords(n: int, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """Normalised coordinates of n pixel centres, as grid_sample reads them."""
    if align_corners:
        return torch.linspace(-1, 1, n, device=like.device, dtype=like.dtype)
    return (torch.arange(n, device=like.device, dtype=like.dtype) * 2 + 1) / n - 1


def _values(draw: Draw, n: int, sample: Callable[[int], torch.Tensor], name: str) -> torch.Tensor:
    """n float32 values: sampled, one number for all, one per image, or from `draw(n)`."""
    if draw is None:
        return sample(n).float()
    if callable(draw):
        draw = draw(n)
    vals = torch.as_tensor(draw, dtype=torch.float32).flatten()
    if vals.numel() == 1:
        return vals.expand(n).clone()
    if vals.numel() != n:
        raise ValueError(f'{name}: got {vals.numel()} values for a batch of {n} images; give one number, '
                         f'one value per image, or a function of the batch size.')
    return vals


def _as_size(size: Size | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f'size={size!r} must be an int or an (h, w) pair of positive ints, e.g. size=224.')
    return size


def _check_modes(who: str, mode: str, pad_mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f'{who}: mode={mode!r} is not one of {_MODES}.')
    if pad_mode not in _PAD_MODES:
        raise ValueError(f'{who}: pad_mode={pad_mode!r} is not one of {_PAD_MODES}.')


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', AffineAugment, RandomResizedCropGPU, Flip, Dihedral, Rotate, Zoom, Warp,
                     LightingAugment, Brightness, Contrast)
