"""Draw images (PIL, tensors, arrays) on matplotlib axes, alone or in a grid."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from PIL import Image

from blocklearn.blocks.show import get_grid

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ['show_image', 'show_images', 'show_points']


def show_image(im: Any, ax: Axes | None = None, figsize: tuple[float, float] | None = None,
               title: str | None = None, ctx: Axes | None = None, cmap: str | None = None, **kwargs) -> Axes:
    """Draw `im` (PIL image, tensor (C,H,W) or (H,W), array (H,W,C) or (H,W)) on `ax` (or `ctx`, or a new Axes).

    Single-channel images default to a gray colormap over the full 0-255 (or 0-1) range, not stretched.
    """
    arr, known_range = _display_array(im)
    ax = ax if ax is not None else ctx
    if ax is None:
        import matplotlib.pyplot as plt  # pyplot costs ~0.5 s to import; workers that never draw skip it
        _, ax = plt.subplots(figsize=figsize)
    if arr.ndim == 2 and cmap is None:
        cmap = 'gray'
        if known_range and 'vmin' not in kwargs and 'vmax' not in kwargs:
            kwargs['vmin'], kwargs['vmax'] = 0, (255 if arr.dtype == np.uint8 else 1)
    ax.imshow(arr, cmap=cmap, **kwargs)
    if title is not None:
        ax.set_title(title)
    ax.axis('off')
    return ax


def show_images(ims: Sequence[Any], nrows: int = 1, ncols: int | None = None,
                titles: Sequence[str | None] | None = None, **kwargs) -> list[Axes]:
    """Draw `ims` in a grid of `nrows` rows (and `ncols` columns, enough for all by default); returns the Axes used."""
    if ncols is None:
        ncols = math.ceil(len(ims) / nrows)
    titles = list(titles) if titles is not None else [None] * len(ims)
    if len(titles) != len(ims):
        raise ValueError(f'show_images got {len(ims)} images but {len(titles)} titles; pass one title per image.')
    axs = get_grid(len(ims), nrows=nrows, ncols=ncols, **kwargs)
    for im, title, ax in zip(ims, titles, axs):
        show_image(im, ax=ax, title=title)
    return axs


def show_points(pts: Any, ax: Axes | None = None, ctx: Axes | None = None, **kwargs) -> Axes:
    """Scatter points (n, 2) as (x, y) pixels on `ax` (or `ctx`, or a new Axes), over the image drawn there.

    Drawn with pixel centres at i + 0.5 (TensorPoint's convention); the view stays the image's, so points that
    left it are kept in the data but not drawn."""
    ax = ax if ax is not None else ctx
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots()
    xy = torch.as_tensor(pts).detach().cpu().float().reshape(-1, 2).numpy()
    has_image = bool(ax.images)
    limits = ax.get_xlim(), ax.get_ylim()
    # imshow puts pixel i's centre at i; a point at x covers pixel floor(x), whose centre is at x - 0.5
    ax.scatter(xy[:, 0] - 0.5, xy[:, 1] - 0.5, **kwargs)
    if has_image:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    return ax


def _display_array(im: Any) -> tuple[np.ndarray, bool]:
    """`im` as an (H,W) or (H,W,C) array for imshow, and whether its values have a known range (0-255 or 0-1)."""
    if isinstance(im, Image.Image):
        arr = _pil_array(im)
    elif isinstance(im, torch.Tensor):
        t = im.detach().cpu().as_subclass(torch.Tensor)
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        if t.ndim == 3 and t.shape[0] <= 4:  # channels first, the torch layout
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    else:
        arr = np.asarray(im)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f'show_image cannot draw an image of shape {tuple(arr.shape)}: it needs (H,W) or (H,W,3|4) '
                         f'(tensors (C,H,W) with C in 1,3,4). Select the channels to show, e.g. im[:3].')
    return _display_values(arr)


def _pil_array(im: Image.Image) -> np.ndarray:
    if im.mode in ('L', 'RGB', 'RGBA'):
        return np.asarray(im)
    if im.mode in ('I', 'F') or im.mode.startswith('I;16'):
        return np.asarray(im).astype(np.float32)
    has_alpha = 'A' in im.getbands() or 'transparency' in im.info
    return np.asarray(im.convert('RGBA' if has_alpha else 'RGB'))


def _display_values(arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """uint8 as is; 0-255 integers as uint8; floats in [0,1] or 0-255 as float32 in [0,1]; anything else stretched."""
    if arr.dtype == np.uint8:
        return arr, True
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255, True
    if arr.size == 0:
        return arr.astype(np.float32), False
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if arr.dtype.kind in 'iu' and lo >= 0 and hi <= 255:
        return arr.astype(np.uint8), True
    if arr.dtype.kind == 'f' and lo >= 0 and hi <= 1:
        return arr.astype(np.float32), True
    if lo >= 0 and hi <= 255:
        return (arr / 255).astype(np.float32), True
    if arr.ndim == 3:
        # colours outside any known range (e.g. a normalised image): clip as imshow would, minus its warning
        return np.clip(arr.astype(np.float32), 0, 1), True
    return arr.astype(np.float32), False
