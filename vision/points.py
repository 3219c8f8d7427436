"""Key-point targets: made from `get_y`, scaled to [-1, 1] by `PointScaler`, and moved with the image by the
item (crop, pad, resize) and batch (one affine/perspective grid) transforms through the kernels below."""
from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from blocklearn.blocks.losses import MSELossFlat
from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.transform import Transform
from .core import PILBase, TensorImageBase, TensorPoint

__all__ = ['PointSetup', 'PointScaler', 'crop_pad_points', 'warp_points', 'image_size', 'sample_image_size',
           'points_source']


class PointSetup(Transform):
    """`get_y`'s output -> `TensorPoint` (n, 2) in pixels; knows the loss (MSE) and `c` = n_points * 2 outputs.

    PointBlock's type transform, like RegressionSetup for numbers. fastai's is `TensorPointCreate`, a shared
    Transform around `TensorPoint.create`; a class keeps `c` per DataBlock and lets an export name it."""
    loss_type = MSELossFlat
    _recipe_state = ('c',)

    def __init__(self, c: int | None = None):
        super().__init__()
        self.c = c

    def setups(self, items: Any) -> None:
        if self.c is None and items is not None and len(items):
            self.c = TensorPoint.create(items[0]).numel()

    def encodes(self, o: Any) -> TensorPoint:
        return TensorPoint.create(o)

    @property
    def name(self) -> str:
        return 'TensorPoint.create'


class PointScaler(Transform):
    """Points in pixels <-> (x, y) in [-1, 1] across the image of the same sample: x' = 2x/w - 1 (fastai's scale).

    An image in the sample (before the points, as blocks order them) gives the size, on encode and on decode, so
    decoded points are pixels of the image they are shown with. `y_first`: `get_y` gives (y, x) pairs."""
    order = 1

    def __init__(self, do_scale: bool = True, y_first: bool = False):
        super().__init__()
        self.do_scale, self.y_first = do_scale, y_first
        self.sz: tuple[int, int] | None = None  # (w, h) of the last image seen

    def encodes(self, x: PILBase | TensorImageBase):
        return self._grab_size(x)

    def decodes(self, x: PILBase | TensorImageBase):
        return self._grab_size(x)

    def encodes(self, x: TensorPoint) -> TensorPoint:  # noqa: F811 (dispatched on the annotation)
        if self.y_first:
            x = x.flip(-1)
        return _to_unit(x, self._size()) if self.do_scale else x

    def decodes(self, x: TensorPoint) -> TensorPoint:  # noqa: F811
        return _to_pixels(x.reshape(-1, 2), self._size())

    def _grab_size(self, x: Any) -> Any:
        self.sz = image_size(x)
        return x

    def _size(self) -> tuple[int, int]:
        if self.sz is None:
            raise ValueError('PointScaler needs the image of the sample to scale its points: build samples as '
                             '(image, points), e.g. DataBlock(blocks=(ImageBlock, PointBlock)).')
        return self.sz


def image_size(x: Any) -> tuple[int, int] | None:
    """(w, h) of a PIL image or an image tensor (..., H, W); None for anything else."""
    if isinstance(x, Image.Image):
        return x.size
    if isinstance(x, TensorImageBase):
        return int(x.shape[-1]), int(x.shape[-2])
    return None


def sample_image_size(b: Any) -> tuple[int, int] | None:
    """(w, h) of the first image in the sample `b` (an image, or a tuple holding one), or None."""
    return next((wh for x in (b if isinstance(b, tuple) else (b,)) if (wh := image_size(x)) is not None), None)


def points_source(wh: tuple[int, int] | None, name: str) -> tuple[int, int]:
    """`wh`, the size of the image points move with; an error naming transform `name` when the sample had none."""
    if wh is None:
        raise ValueError(f'{name} moves points with the image of their sample, and this sample has none: apply it '
                         f'to (image, points) samples, e.g. DataBlock(blocks=(ImageBlock, PointBlock)).')
    return wh


def crop_pad_points(pts: TensorPoint, src_wh: tuple[int, int], inner: tuple[int, int, int, int],
                    dest: tuple[int, int, int, int], out_wh: tuple[int, int], scaled: bool = True) -> TensorPoint:
    """Points of an image `src_wh` after its pixels `inner` (l, t, r, b) were resized onto the box `dest` of an
    `out_wh` image (a crop, pad or resize, as item transforms place them); points outside stay outside.
    `scaled`: the points are PointScaler's [-1, 1] (else pixels, as before PointScaler runs)."""
    (w, h), (ow, oh) = src_wh, out_wh
    t = pts.as_subclass(torch.Tensor)
    src = torch.tensor([w, h], dtype=t.dtype, device=t.device)
    out = torch.tensor([ow, oh], dtype=t.dtype, device=t.device)
    lo_in = torch.tensor(inner[:2], dtype=t.dtype, device=t.device)
    span_in = torch.tensor([inner[2] - inner[0], inner[3] - inner[1]], dtype=t.dtype, device=t.device)
    lo_out = torch.tensor(dest[:2], dtype=t.dtype, device=t.device)
    span_out = torch.tensor([dest[2] - dest[0], dest[3] - dest[1]], dtype=t.dtype, device=t.device)
    px = (t + 1) * src / 2 if scaled else t
    moved = lo_out + (px - lo_in) * span_out / span_in
    return (moved * 2 / out - 1 if scaled else moved).as_subclass(type(pts))


def warp_points(pts: TensorPoint, mats: torch.Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int],
                align_corners: bool = True) -> TensorPoint:
    """Scaled points (b, n, 2) or (n, 2) of the input moved to where `grid_sample` puts them in the output.

    `mats` (b, 3, 3) map output to input grid coordinates (what the images are sampled with), so points go through
    their inverse; a perspective (warp) is a 3x3 homography too, inverted exactly. Points may land outside."""
    t = pts.as_subclass(torch.Tensor)
    single = t.ndim == 2
    batch = t[None] if single else t
    m = mats.to(device=t.device, dtype=torch.float64)
    # PointScaler's -1/1 are the image's edges; with align_corners grid_sample's are the edge pixels' centres
    to_grid_in = _grid_scale(in_hw, align_corners, m)
    to_grid_out = _grid_scale(out_hw, align_corners, m)
    g = batch.to(torch.float64) * to_grid_in
    homog = torch.cat([g, torch.ones_like(g[..., :1])], -1)
    q = homog @ torch.linalg.inv(m).transpose(-1, -2)
    res = (q[..., :2] / q[..., 2:]) / to_grid_out
    res = res.to(t.dtype)
    return (res[0] if single else res).as_subclass(type(pts))


def _grid_scale(hw: tuple[int, int], align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """Factor (x, y) from PointScaler's coordinates to grid_sample's for an image of (h, w)."""
    h, w = hw
    if not align_corners:
        return torch.ones(2, dtype=like.dtype, device=like.device)
    return torch.tensor([w / max(w - 1, 1), h / max(h - 1, 1)], dtype=like.dtype, device=like.device)


def _to_unit(x: torch.Tensor, wh: tuple[int, int]) -> torch.Tensor:
    return x * 2 / torch.tensor(wh, dtype=x.dtype, device=x.device) - 1


def _to_pixels(x: torch.Tensor, wh: tuple[int, int]) -> torch.Tensor:
    return (x + 1) * torch.tensor(wh, dtype=x.dtype, device=x.device) / 2


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', PointSetup, PointScaler)
