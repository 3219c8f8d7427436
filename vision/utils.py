"""Image files on disk: find the broken ones, shrink them, download them; PIL only, no tensors."""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from PIL import Image

from blocklearn.blocks.external import DownloadError, download_url
from blocklearn.blocks.safe_io import atomic_write

from .data import get_image_files, image_extensions

__all__ = ['verify_image', 'verify_images', 'resize_to', 'resize_image', 'resize_images', 'download_images']

_MODES = {1: 'L', 3: 'RGB', 4: 'RGBA'}
_JPEG_MODES = ('RGB', 'L', 'CMYK')
_KEPT_INFO = ('exif', 'icc_profile')
T = TypeVar('T')
R = TypeVar('R')


def verify_image(fn: str | os.PathLike) -> bool:
    """True when `fn` opens and fully decodes as an image (a truncated file fails unless PIL is told to allow it)."""
    try:
        with Image.open(fn) as img:
            # a JPEG decoded at 1/8 scale still reads every byte, so truncation shows, at a fraction of the cost
            img.draft(img.mode, (32, 32))
            img.load()
        return True
    except Exception:
        return False


def verify_images(fns: Iterable[str | os.PathLike], n_workers: int | None = None) -> list[Path]:
    """The files of `fns` that are not readable images, in their original order (checked in threads)."""
    fns = [Path(f) for f in fns]
    ok = _thread_map(verify_image, fns, n_workers)
    return [f for f, good in zip(fns, ok) if not good]


def resize_to(img: Image.Image, targ_sz: int, use_min: bool = False) -> tuple[int, int]:
    """The (width, height) that gives `img`'s longer side (shorter with `use_min`) `targ_sz`, same aspect ratio."""
    w, h = img.size
    side = min(w, h) if use_min else max(w, h)
    return max(1, round(w * targ_sz / side)), max(1, round(h * targ_sz / side))


def resize_image(file: str | os.PathLike, dest: str | os.PathLike, src: str | os.PathLike = '.',
                 max_size: int | None = None, n_channels: int | None = 3, ext: str | None = None,
                 img_format: str | None = None, resample: int = Image.Resampling.BILINEAR, resume: bool = False,
                 **kwargs) -> Path | None:
    """Write `src/file` to `dest/file` with its longer side at most `max_size`; None if it is not an image.

    A file already small enough, with `n_channels` channels and in the same format, is copied byte for byte.
    """
    src_file = Path(src) / file
    out = Path(dest) / _relative(Path(file), Path(src))
    if ext is not None:
        out = out.with_suffix(ext if ext.startswith('.') else f'.{ext}')
    if n_channels is not None and n_channels not in _MODES:
        raise ValueError(f'resize_image(n_channels={n_channels}) for {src_file}: use 1 (L), 3 (RGB), 4 (RGBA) '
                         f'or None to keep the mode.')
    fmt = img_format or (_format_of(out) if ext is not None else None)
    if resume and out.exists():
        return out
    try:
        with Image.open(src_file) as img:
            fmt = fmt or img.format
            save_kwargs = {**{k: img.info[k] for k in _KEPT_INFO if k in img.info}, **kwargs}
            new = None
            if (max_size is None or max(img.size) <= max_size) and fmt == img.format and \
                    (n_channels is None or len(img.getbands()) == n_channels):
                img.load()
            else:
                if max_size is not None:
                    # a JPEG is then decoded at 1/2..1/8 scale, never below max_size: 3x faster for 3000x2000 -> 400
                    img.draft(img.mode, (max_size, max_size))
                img.load()
                new = _shrunk(img, max_size, n_channels, resample, fmt)
    except Exception:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    if new is None:
        if out.resolve() != src_file.resolve():
            shutil.copy2(src_file, out)
        return out
    # atomic, because resizing in place (dest == src) must not destroy the original on a crash
    with atomic_write(out) as f:
        new.save(f, format=fmt, **save_kwargs)
    return out


def resize_images(path: str | os.PathLike, dest: str | os.PathLike, max_size: int | None = None,
                  recurse: bool = False, max_workers: int | None = None, n_channels: int | None = 3,
                  ext: str | None = None, img_format: str | None = None,
                  resample: int = Image.Resampling.BILINEAR, resume: bool = False, **kwargs) -> list[Path]:
    """Resize the images in `path` into `dest`, keeping relative paths; return the files that could not be read.

    `dest` has no default (fastai's is the current folder, which scatters files); `dest=path` resizes in place.
    """
    path, dest = Path(path), Path(dest)
    if not path.is_dir():
        raise FileNotFoundError(f'resize_images: {path} is not a folder. Pass the folder that holds the images.')
    # the same walk as get_image_files, so a DataBlock later sees exactly the files that were resized
    files = [f for f in get_image_files(path, recurse=recurse) if dest == path or not f.is_relative_to(dest)]

    def one(f: Path) -> Path | None:
        return resize_image(f.relative_to(path), dest, src=path, max_size=max_size, n_channels=n_channels,
                            ext=ext, img_format=img_format, resample=resample, resume=resume, **kwargs)
    written = _thread_map(one, files, max_workers)
    return [f for f, out in zip(files, written) if out is None]


def download_images(dest: str | os.PathLike, url_file: str | os.PathLike | None = None,
                    urls: Iterable[str] | None = None, max_pics: int = 1000, n_workers: int = 8,
                    timeout: float = 4, preserve_filename: bool = False) -> list[str]:
    """Download image `urls` (or the lines of `url_file`) into `dest`; return the URLs that failed."""
    if (url_file is None) == (urls is None):
        raise ValueError('download_images: pass exactly one of url_file= (a text file, one URL a line) or urls=.')
    if url_file is not None:
        urls = Path(url_file).read_text().split()
    urls = [u.strip() for u in urls if u.strip()][:max_pics]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)

    def one(i_url: tuple[int, str]) -> bool:
        i, url = i_url
        try:
            download_url(url, dest / _image_name(url, i, preserve_filename), show_progress=False, timeout=timeout)
            return True
        except DownloadError:
            return False
    ok = _thread_map(one, list(enumerate(urls)), n_workers)
    return [url for url, good in zip(urls, ok) if not good]


def _thread_map(f: Callable[[T], R], items: list[T], n_workers: int | None) -> list[R]:
    """`f` over `items` in order; threads help because PIL and sockets release the GIL."""
    n_workers = min(32, os.cpu_count() or 1) if n_workers is None else n_workers
    if n_workers <= 1 or len(items) <= 1:
        return [f(o) for o in items]
    with ThreadPoolExecutor(n_workers) as ex:
        return list(ex.map(f, items))


def _shrunk(img: Image.Image, max_size: int | None, n_channels: int | None, resample: int,
            fmt: str) -> Image.Image:
    """A new image: converted to `n_channels`, shrunk to `max_size`, in a mode `fmt` can store."""
    new = img
    if n_channels is not None and len(img.getbands()) != n_channels:
        new = new.convert(_MODES[n_channels])
    if fmt == 'JPEG' and new.mode not in _JPEG_MODES:
        new = new.convert('RGB')
    if max_size is not None and max(new.size) > max_size:
        new = new.resize(resize_to(new, max_size), resample=resample)
    return new.copy() if new is img else new


def _relative(file: Path, src: Path) -> Path:
    """`file` relative to `src`; an absolute file outside `src` keeps only its name, never its full path."""
    if not file.is_absolute():
        return file
    try:
        return file.relative_to(src.absolute())
    except ValueError:
        return Path(file.name)


def _format_of(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f'resize_image: PIL cannot write {path.suffix!r} files ({path}). Use an ext= such as '
                         f"'.jpg' or '.png', or pass img_format=.")
    return fmt


def _image_name(url: str, i: int, preserve_filename: bool) -> str:
    name = Path(url.split('?')[0].split('#')[0]).name
    if preserve_filename and name:
        return name
    suffix = Path(name).suffix.lower()
    return f'{i:08d}{suffix if suffix in image_extensions else ".jpg"}'
