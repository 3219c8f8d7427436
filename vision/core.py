"""Image types: PIL images that open any file upright in RGB (or L), typed image tensors, and `ToTensor`."""
from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageFile

from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.tensors import TensorBase
from blocklearn.blocks.transform import Transform
from .jpeg import crop_resize_tensor, decode_jpeg_tensor
from .show import show_image, show_points

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ['first_image', 'ImageReadError', 'TensorImageBase', 'TensorImage', 'TensorImageBW', 'TensorMask',
           'PILBase', 'PILImage', 'PILImageBW', 'PILMask', 'TensorPoint', 'image2tensor', 'ToTensor']


class ImageReadError(OSError):
    """An image that cannot be read; the message names the file, what is wrong with it, and the fix."""


class TensorImageBase(TensorBase):
    """An image-shaped tensor that can draw itself."""
    _show_args: dict[str, Any] = {}

    def show(self, ctx: Axes | None = None, **kwargs) -> Axes:
        """Draw on `ctx` (a matplotlib Axes, created if None) and return it."""
        return show_image(self, ctx=ctx, **{**self._show_args, **kwargs})


class TensorImage(TensorImageBase):
    """An image (C,H,W) or a batch of images (B,C,H,W)."""


class TensorImageBW(TensorImage):
    """A single-channel image (1,H,W)."""


class TensorMask(TensorImageBase):
    """A segmentation mask (H,W), or a batch of them (B,H,W), of integer class codes.

    Decoding (MaskSetup) sets `codes`, the names of the codes: each code then has the same colour in every mask."""
    _show_args = {'alpha': 0.5, 'cmap': 'tab20', 'interpolation': 'nearest'}

    def show(self, ctx: Axes | None = None, **kwargs) -> Axes:
        """Draw the codes in colour over what `ctx` shows (an image, usually), half transparent."""
        return show_image(self, ctx=ctx, **{**self._show_args, **_code_range(self), **kwargs})

    def summary_repr(self) -> str:
        """One line for `summary()`: size, dtype and the codes the mask holds."""
        codes = self.as_subclass(torch.Tensor).unique().tolist()
        return f'TensorMask of size {"x".join(map(str, self.shape))} ({str(self.dtype)[6:]}), {_codes_text(codes)}'


class TensorPoint(TensorBase):
    """Key points (n, 2) as (x, y) pixels, PIL's convention: pixel (i, j) covers [i, i+1) x [j, j+1).

    `PointScaler` makes them (x, y) in [-1, 1] relative to the image for the model; transforms move them with
    the image. Points that leave the image are kept (as in fastai), so a target never changes shape."""
    _show_args: dict[str, Any] = {'s': 10, 'marker': '.', 'c': 'r'}

    @classmethod
    def create(cls, t: Any, img_size: Any = None) -> TensorPoint:
        """Points from anything `torch.tensor` reads (a pair, a list of pairs, an array) as a float (n, 2) tensor.
        `img_size` is accepted as in fastai and unused: transforms take the size from the image of the sample."""
        return torch.as_tensor(t if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float32),
                               dtype=torch.float32).reshape(-1, 2).as_subclass(cls)

    def show(self, ctx: Axes | None = None, **kwargs) -> Axes:
        """Scatter the points over what `ctx` shows (an image, usually)."""
        kwargs.pop('figsize', None)
        return show_points(self, ctx=ctx, **{**self._show_args, **kwargs})


_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
_ORIENTATION_INFO_KEYS = ('exif', 'xmp', 'XML:com.adobe.xmp', 'Raw profile type exif')


class PILBase(Image.Image):
    """A PIL image that `create` opens upright (EXIF orientation applied) in `mode_out`, from almost anything.

    A JPEG that needs no mode conversion is decoded on first use, so `resize_box` can let libjpeg decode it at
    1/2, 1/4 or 1/8 scale when the result is that much smaller (a 3000x2250 photo presized to 460: 3x faster),
    and otherwise decode and resize it as a tensor (vision/jpeg.py: 2.5x faster than PIL for a 500x375 photo
    presized to 460), whose pixels `ToTensor` then takes as they are.
    `create` still checks the header, size and truncation; damage inside the compressed data raises the same
    `ImageReadError` when the pixels are first used.
    """
    mode_out = 'RGB'
    tensor_type: type[TensorImageBase] = TensorImage
    _show_args: dict[str, Any] = {}
    _deferrable = True
    _source: bytes | None = None  # the file's bytes while its pixels are not decoded yet
    _pixels: torch.Tensor | None = None  # (C, H, W) uint8 from the tensor route, until PIL needs its own copy
    _name = ''
    _orientation = 1

    @classmethod
    def create(cls, src: Any) -> PILBase:
        """Open `src` (path, str, bytes, file object, array (H,W[,C]), tensor (C,H,W) or PIL image) as `cls`."""
        return cls._create(src)

    @classmethod
    def _create(cls, src: Any) -> PILBase:
        if isinstance(src, cls) and src.mode == cls.mode_out:
            return src
        if isinstance(src, Image.Image):
            return cls._from_pil(src, getattr(src, 'filename', '') or f'<{type(src).__name__}>')
        if isinstance(src, torch.Tensor):
            return cls._from_array(_tensor_hwc(src), f'<tensor of shape {tuple(src.shape)}>')
        if isinstance(src, np.ndarray):
            return cls._from_array(src, f'<array of shape {src.shape}>')
        name, data = _read_source(src, cls.__name__)
        return cls._from_bytes(data, name)

    def resize_box(self, size: tuple[int, int], box: tuple[float, float, float, float],
                   resample: int = Image.Resampling.BILINEAR) -> PILBase:
        """`resize(size, resample, box)` in one pass; a not-yet-decoded JPEG is decoded at 1/2, 1/4 or 1/8 scale
        when `box` shrinks by at least that factor, which never changes the result's size."""
        pending = self._source is not None and self._im is None
        reduce = _draft_reduce(box, size) if pending else 1
        if pending and reduce == 1 and resample == Image.Resampling.BILINEAR and _is_pixel_box(box, self.size):
            t = decode_jpeg_tensor(self._source, self.mode, self._orientation)
            if t is not None:
                return self._from_pixels(crop_resize_tensor(t, tuple(int(c) for c in box), size))
        if reduce == 1:
            return self._retype(self.resize(size, resample, box=box))
        small = self._decode(reduce)
        return self._retype(small.resize(size, resample, box=tuple(c / reduce for c in box)))

    def load(self) -> Any:
        """Decode the pixels if `create` deferred it, then do what PIL's `load` does."""
        if self._source is not None and self._im is None:
            self.im = self._decode(1).im
            self._source = None
        elif self._pixels is not None and self._im is None:
            hwc = _tensor_hwc(self._pixels)
            self.im = Image.fromarray(np.ascontiguousarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)).im
            self._pixels = None  # PIL may now change its pixels in place: one copy, PIL's
        return super().load()

    def tensor_pixels(self) -> torch.Tensor | None:
        """The (C, H, W) uint8 pixels when they are (or can be made) without PIL: a resized or undecoded JPEG."""
        if self._pixels is None and self._source is not None and self._im is None:
            self._pixels = decode_jpeg_tensor(self._source, self.mode, self._orientation)
            if self._pixels is not None:
                self._source = None
        return self._pixels if self._im is None else None

    def show(self, ctx: Axes | None = None, **kwargs) -> Axes:
        """Draw on `ctx` (a matplotlib Axes, created if None) and return it."""
        return show_image(self, ctx=ctx, **{**self._show_args, **kwargs})

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), in the order of a tensor's last two axes (PIL's `size` is (width, height))."""
        return self.size[1], self.size[0]

    def to_thumb(self, h: int, w: int | None = None) -> PILBase:
        """A copy that fits in `w` x `h` (`w` defaults to `h`), aspect kept, as PIL's in-place `thumbnail` would."""
        im = self.copy()
        im.thumbnail((h if w is None else w, h))
        return self._retype(im)

    def __repr__(self) -> str:
        return f'{type(self).__name__} mode={self.mode} size={self.size[0]}x{self.size[1]}'

    @classmethod
    def _from_bytes(cls, data: bytes, name: str) -> PILBase:
        if not data:
            raise ImageReadError(f'Cannot open image {name}: the file is empty (0 bytes), probably cut off while '
                                 f'downloading or copying. Download it again, or delete it from the dataset.')
        img = _open_bytes(data, name, warn=True)
        if img.format == 'JPEG' and not ImageFile.LOAD_TRUNCATED_IMAGES and not _jpeg_complete(data):
            raise ImageReadError(_truncated_message(name, 'the JPEG data ends before its end-of-image marker'))
        if cls._can_defer(img):
            return cls._deferred(img, data, name)
        return cls._from_pil(img, name)

    @classmethod
    def _can_defer(cls, img: Image.Image) -> bool:
        # libjpeg converts RGB to L itself while decoding (draft), so BW images defer too
        mode_ok = img.mode == cls.mode_out or (img.mode == 'RGB' and cls.mode_out == 'L')
        return cls._deferrable and img.format == 'JPEG' and len(img.tile) == 1 and mode_ok

    @classmethod
    def _deferred(cls, img: Image.Image, data: bytes, name: str) -> PILBase:
        """An image with `img`'s final size, mode and info whose pixels `load` decodes from `data` later."""
        new = cls.__new__(cls)
        Image.Image.__init__(new)
        orientation = _orientation(img)
        new._mode = cls.mode_out
        new._size = img.size[::-1] if orientation in (5, 6, 7, 8) else img.size
        new.info = _info_upright(img.info, orientation)
        new._source, new._name, new._orientation = data, name, orientation
        return new

    def _decode(self, reduce: int) -> Image.Image:
        """Decode the deferred JPEG (at 1/`reduce` scale) in `self.mode`, upright."""
        img = _open_bytes(self._source, self._name, warn=False)
        img.draft(self.mode, (img.width // reduce, img.height // reduce) if reduce > 1 else None)
        _load(img, self._name)
        return img.transpose(_TRANSPOSE[self._orientation]) if self._orientation in _TRANSPOSE else img

    @classmethod
    def _from_pil(cls, img: Image.Image, name: str) -> PILBase:
        _load(img, name)
        orientation = _orientation(img)
        if orientation in _TRANSPOSE:
            info = _info_upright(img.info, orientation)
            img = img.transpose(_TRANSPOSE[orientation])
            img.info = info
        try:
            img = cls._convert(img)
        except (ValueError, OSError) as e:
            raise ImageReadError(f'Cannot convert image {name} from mode {img.mode} to {cls.mode_out} ({e}). '
                                 f'Convert the file to an RGB or grayscale format (PNG, JPEG) first.') from e
        return cls._wrap(img)

    @classmethod
    def _from_array(cls, arr: np.ndarray, name: str) -> PILBase:
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(f'{cls.__name__}.create cannot make an image from {name}: arrays must be (H,W), '
                             f'(H,W,1), (H,W,3) or (H,W,4), tensors (H,W) or (C,H,W) with C in 1,3,4.')
        return cls._from_pil(Image.fromarray(np.ascontiguousarray(cls._array_to_uint8(arr))), name)

    @classmethod
    def _array_to_uint8(cls, arr: np.ndarray) -> np.ndarray:
        return _to_uint8(arr, 65535 if arr.dtype == np.uint16 else None)

    @classmethod
    def _convert(cls, img: Image.Image) -> Image.Image:
        """`img` in `mode_out`: alpha composited on white, 16/32-bit and float pixels scaled to 0-255."""
        mode = img.mode
        if mode in ('I', 'F') or mode.startswith('I;16'):
            # PIL's own conversion clips at 255, which turns most 16-bit images white
            full_scale = 65535 if mode.startswith('I;16') else None
            img = Image.fromarray(_to_uint8(np.asarray(img), full_scale))
        elif mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or 'transparency' in img.info:
            # dropping alpha leaves whatever colour the transparent pixels happen to store, often black
            rgba = img.convert('RGBA')
            img = Image.new('RGB', rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba)
        return img if img.mode == cls.mode_out else img.convert(cls.mode_out)

    @classmethod
    def _wrap(cls, img: Image.Image) -> PILBase:
        """Retype a PIL image as `cls` without copying its pixels (nor an open file's state)."""
        new = cls.__new__(cls)
        Image.Image.__init__(new)
        new._im, new._mode, new._size = img._im, img.mode, img.size
        new.palette, new.info, new.readonly = img.palette, dict(img.info), img.readonly
        if isinstance(img, PILBase) and img._source is not None:
            new._source, new._name, new._orientation = img._source, img._name, img._orientation
        return new

    def _retype(self, img: Image.Image) -> PILBase:
        return type(self)._wrap(img)

    def _from_pixels(self, t: torch.Tensor) -> PILBase:
        """An image of this type and mode whose pixels are the uint8 (C, H, W) `t`; PIL's copy is made on use."""
        new = type(self).__new__(type(self))
        Image.Image.__init__(new)
        new._mode, new._size, new.info = self.mode, (int(t.shape[-1]), int(t.shape[-2])), dict(self.info)
        new._pixels, new._name = t, self._name
        return new


class PILImage(PILBase):
    """A colour image (mode RGB)."""


class PILImageBW(PILImage):
    """A grayscale image (mode L)."""
    mode_out = 'L'
    tensor_type = TensorImageBW


class PILMask(PILBase):
    """A segmentation mask (mode L) whose pixel values are class indices, kept exactly (palette indices too)."""
    mode_out = 'L'
    tensor_type = TensorMask
    _show_args = {'alpha': 0.5, 'cmap': 'tab20', 'interpolation': 'nearest'}
    _deferrable = False

    def show(self, ctx: Axes | None = None, **kwargs) -> Axes:
        """Draw the codes in colour over what `ctx` shows (an image, usually), half transparent."""
        return show_image(self, ctx=ctx, **{**self._show_args, **_code_range(self), **kwargs})

    def summary_repr(self) -> str:
        """One line for `summary()`: mode, size and the codes the mask holds."""
        return f'{self!r}, {_codes_text([k for k, n in enumerate(self.histogram()) if n])}'

    @classmethod
    def _array_to_uint8(cls, arr: np.ndarray) -> np.ndarray:
        return _mask_values(arr)

    @classmethod
    def _convert(cls, img: Image.Image) -> Image.Image:
        # class indices must not be mapped through the palette, scaled or composited
        if img.mode in ('P', 'PA', 'I', 'F') or img.mode.startswith('I;16'):
            arr = np.asarray(img)
            return Image.fromarray(_mask_values(arr[:, :, 0] if arr.ndim == 3 else arr))
        if img.mode == '1':
            return Image.fromarray(np.asarray(img).astype(np.uint8))
        return img if img.mode == 'L' else img.convert('L')


def first_image(b: Any) -> torch.Tensor | None:
    """The first TensorImage in a batch (searching nested tuples), or None."""
    if isinstance(b, TensorImage):
        return b
    if isinstance(b, (tuple, list)):
        return next((o for o in map(first_image, b) if o is not None), None)
    return None


def image2tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """A writable uint8 tensor (C,H,W) of `img`'s pixels (a channels-last view; collate makes batches contiguous)."""
    if isinstance(img, PILBase) and (t := img.tensor_pixels()) is not None:
        return t
    if isinstance(img, np.ndarray):
        arr = img if img.flags.writeable else img.copy()
    else:
        if img.mode in ('I', 'F') or img.mode.startswith('I;16'):
            img = Image.fromarray(_to_uint8(np.asarray(img), 65535 if img.mode.startswith('I;16') else None))
        elif img.mode == '1':
            img = img.convert('L')
        # tobytes already copies out of PIL; a bytearray makes that copy writable for torch at ~3% extra cost
        arr = np.frombuffer(bytearray(img.tobytes()), np.uint8).reshape(img.height, img.width, len(img.getbands()))
    t = torch.from_numpy(_to_uint8(arr))
    return (t[:, :, None] if t.ndim == 2 else t).permute(2, 0, 1)


class ToTensor(Transform):
    """PIL images to tensors: PILImage -> uint8 TensorImage (3,H,W), PILImageBW -> uint8 TensorImageBW (1,H,W),
    PILMask -> int64 TensorMask (H,W); images decode back to PIL for display, masks stay TensorMask (as in fastai)."""
    order = 5

    def encodes(self, x: PILBase):
        return image2tensor(x).as_subclass(x.tensor_type)

    def encodes(self, x: PILMask) -> TensorMask:  # noqa: F811 (dispatched on the annotation)
        # int64: the targets cross-entropy takes, so no batch transform has to cast them
        return image2tensor(x)[0].long().as_subclass(TensorMask)

    def decodes(self, x: TensorImage) -> PILImage:
        return PILImage.create(x)

    def decodes(self, x: TensorImageBW) -> PILImageBW:  # noqa: F811
        return PILImageBW.create(x)


def _read_source(src: Any, cls_name: str) -> tuple[str, bytes]:
    """(name for messages, the bytes) of a path, bytes or a file object."""
    if isinstance(src, (str, os.PathLike)):
        with open(src, 'rb') as f:
            return os.fspath(src), f.read()
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f'<{len(src)} bytes>', bytes(src)
    if hasattr(src, 'read'):
        return str(getattr(src, 'name', '<file object>')), src.read()
    raise TypeError(f'{cls_name}.create cannot open a {type(src).__name__}: pass a path, bytes, a file object, '
                    f'a numpy array, a tensor or a PIL image.')


def _open_bytes(data: bytes, name: str, warn: bool) -> Image.Image:
    """`Image.open` on `data`, with PIL's errors restated for `name`, and a warning naming it when it is huge."""
    try:
        # PIL's own bomb warning (no file name) still shows: silencing it would need catch_warnings, which
        # mutates the process's filters on every image and makes other once-only warnings repeat
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageReadError(_bomb_message(name, str(e), 2 * (Image.MAX_IMAGE_PIXELS or 0))) from e
    except (OSError, SyntaxError, ValueError) as e:
        head = data[:16]
        hint = ' It looks like an HTML page (a failed download?).' if head.lstrip()[:1] == b'<' else ''
        raise ImageReadError(f'Cannot open image {name}: it is not an image PIL can read (it starts with {head!r}).'
                             f'{hint} Delete it from the dataset, or re-save it as JPEG or PNG.') from e
    limit = Image.MAX_IMAGE_PIXELS
    if warn and limit and img.width * img.height > limit:
        warnings.warn(f'Image {name} is {img.width}x{img.height} = {img.width * img.height:,} pixels, over PIL\'s '
                      f'decompression-bomb limit PIL.Image.MAX_IMAGE_PIXELS={limit:,}; it will use a lot of memory. '
                      f'Shrink such files once with resize_images, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust '
                      f'them.', Image.DecompressionBombWarning, stacklevel=4)
    return img


def _load(img: Image.Image, name: str) -> None:
    """Decode `img`, turning PIL's decoder errors into an `ImageReadError` about `name`."""
    try:
        img.load()
    except Image.DecompressionBombError as e:
        raise ImageReadError(_bomb_message(name, str(e), 2 * (Image.MAX_IMAGE_PIXELS or 0))) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if isinstance(e, ImageReadError):
            raise
        if 'truncated' in str(e) or isinstance(e, EOFError):
            raise ImageReadError(_truncated_message(name, str(e))) from e
        raise ImageReadError(f'Cannot decode image {name}: the file is corrupt ({type(e).__name__}: {e}). '
                             f'Download it again, or delete it from the dataset.') from e


def _truncated_message(name: str, detail: str) -> str:
    return (f'Cannot read image {name}: the file is truncated ({detail}), probably cut off while downloading or '
            f'copying. Download it again or delete it; to keep the part that is there, set '
            f'PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True before loading.')


def _bomb_message(name: str, pil_message: str, limit: int) -> str:
    pixels = next((w for w in pil_message.replace('(', ' ').split() if w.isdigit()), '?')
    size = f'{int(pixels):,} pixels' if pixels != '?' else 'too many pixels'
    return (f'Cannot open image {name}: it has {size}, more than twice PIL\'s decompression-bomb limit '
            f'PIL.Image.MAX_IMAGE_PIXELS ({limit:,} pixels), so PIL refuses it as a possible attack. If the file is '
            f'trusted, shrink it once with resize_images(...) (or any image tool), or raise '
            f'PIL.Image.MAX_IMAGE_PIXELS before loading.')


def _jpeg_complete(data: bytes) -> bool:
    """Whether an end-of-image marker follows the first start-of-scan (byte stuffing keeps it out of scan data)."""
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return True  # a layout we do not walk; let the decoder judge it
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == 0xDA:
            return data.find(b'\xff\xd9', pos) != -1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
    return False


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except (ValueError, TypeError, SyntaxError, OSError):  # a corrupt EXIF block: pixels are still fine
        return 1


def _info_upright(info: dict, orientation: int) -> dict:
    """`info` without the metadata that says how to rotate, once the pixels are upright (so no second rotation)."""
    if orientation == 1:
        return info
    return {k: v for k, v in info.items() if k not in _ORIENTATION_INFO_KEYS}


def _is_pixel_box(box: tuple[float, ...], size: tuple[int, int]) -> bool:
    """Whether `box` (l, t, r, b) is whole pixels inside an image of `size` (w, h): else PIL resizes (or refuses)."""
    left, top, right, bottom = box
    return (all(float(c).is_integer() for c in box)
            and 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1])


def _draft_reduce(box: tuple[float, float, float, float], size: tuple[int, int]) -> int:
    """The largest JPEG decode scale (8, 4, 2) that still leaves `box` at least `size` pixels; 1 if none."""
    factor = min((box[2] - box[0]) / max(size[0], 1), (box[3] - box[1]) / max(size[1], 1))
    return next((s for s in (8, 4, 2) if factor >= s), 1)


def _tensor_hwc(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().as_subclass(torch.Tensor)
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return (t.permute(1, 2, 0) if t.ndim == 3 else t).numpy()


def _to_uint8(arr: np.ndarray, full_scale: float | None = None) -> np.ndarray:
    """Pixels scaled to 0-255 uint8: by `full_scale` when the type has one (16-bit: 65535), else by their values:
    floats in [0,1] and integers in [0,255] keep their meaning, anything else is stretched min-to-max."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    a = np.nan_to_num(arr.astype(np.float32))
    lo = float(a.min()) if a.size else 0.
    if full_scale is None:
        hi = float(a.max()) if a.size else 0.
        if lo >= 0 and hi <= 1 and arr.dtype.kind == 'f':
            full_scale = 1.
        elif lo >= 0 and hi <= 255:
            full_scale = 255.
        else:
            a, full_scale = a - lo, (hi - lo) or 1.
    return np.clip(np.rint(a * (255. / full_scale)), 0, 255).astype(np.uint8)


def _code_range(mask: Any) -> dict[str, int]:
    """imshow's value range for a mask whose `codes` are known (code k always the same colour), else nothing."""
    codes = getattr(mask, 'codes', None)
    return {} if codes is None else {'vmin': 0, 'vmax': max(len(codes) - 1, 0)}


def _codes_text(codes: list[int], most: int = 20) -> str:
    shown = ', '.join(map(str, codes[:most])) + (', ...' if len(codes) > most else '')
    return f'codes present: {shown}'


def _mask_values(arr: np.ndarray) -> np.ndarray:
    """Mask class indices as uint8, unchanged; an error if they do not fit."""
    if arr.dtype == np.uint8:
        return arr
    if arr.size and (arr.min() < 0 or arr.max() > 255 or not np.array_equal(arr, np.round(arr))):
        raise ValueError(f'A mask must hold whole class indices 0-255, got values {arr.min()}..{arr.max()}; '
                         f'map the classes to 0..n-1 before creating the PILMask.')
    return arr.astype(np.uint8)


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', ToTensor)
register_for_recipes('function', PILImage.create, PILImageBW.create, PILMask.create, TensorPoint.create)
