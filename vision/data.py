"""Image files, ImageDataLoaders (the common ways of labelling a folder of images, in one call each) and
SegmentationDataLoaders (images and their masks)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from blocklearn.blocks.block import CategoryBlock, MultiCategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.files import get_files
from blocklearn.blocks.labellers import ColReader, ItemGetter, RegexLabeller, parent_label, using_attr
from blocklearn.blocks.loader import DataLoaders
from blocklearn.blocks.splitters import ColSplitter, GrandparentSplitter, RandomSplitter

from .block import ImageBlock, MaskBlock
from .core import PILImage

__all__ = ['image_extensions', 'get_image_files', 'ImageDataLoaders', 'SegmentationDataLoaders']

# The one list of image extensions (get_image_files, resize_images, download_images). Written out rather than
# taken from mimetypes, whose table depends on the machine and lists .svg, which PIL cannot read.
image_extensions = frozenset({'.bmp', '.gif', '.ico', '.jfif', '.jpe', '.jpeg', '.jpg', '.pbm', '.pgm', '.png', '.pnm',
                              '.ppm', '.tif', '.tiff', '.webp'})


def get_image_files(path: str | os.PathLike, recurse: bool = True, folders: Sequence[str] | None = None) -> list[Path]:
    """Image files under `path` (by extension), sorted."""
    return get_files(path, extensions=image_extensions, recurse=recurse, folders=folders)


class _ImageFileGetter:
    """get_items for from_folder: images under the train/valid folders only (picklable)."""

    def __init__(self, folders: Sequence[str] | None):
        self.folders = folders

    def __call__(self, path: str | os.PathLike) -> list[Path]:
        return get_image_files(path, folders=self.folders)

    def __repr__(self) -> str:
        return 'get_image_files'


class ImageDataLoaders(DataLoaders):
    """DataLoaders for image classification, built from folders, file names, functions, lists or a DataFrame."""

    @classmethod
    def from_folder(cls, path: str | os.PathLike, train: str = 'train', valid: str = 'valid',
                    valid_pct: float | None = None, seed: int | None = None, vocab: Sequence | None = None,
                    item_tfms=None, batch_tfms=None, img_cls: type = PILImage, **kwargs) -> ImageDataLoaders:
        """`path/train/<label>/*` and `path/valid/<label>/*` (or a random `valid_pct` of everything)."""
        splitter = GrandparentSplitter(train_name=train, valid_name=valid) if valid_pct is None \
            else RandomSplitter(valid_pct, seed=seed)
        folders = [train, valid] if valid_pct is None else None
        block = DataBlock(blocks=(ImageBlock(img_cls), CategoryBlock(vocab=vocab)),
                          get_items=_ImageFileGetter(folders), splitter=splitter, get_y=parent_label,
                          item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls._from_block(block, path, path, **kwargs)

    @classmethod
    def from_path_func(cls, path: str | os.PathLike, fnames: Sequence, label_func: Callable,
                       valid_pct: float = 0.2, seed: int | None = None, item_tfms=None, batch_tfms=None,
                       img_cls: type = PILImage, **kwargs) -> ImageDataLoaders:
        """Labels from `label_func(path_of_file)`."""
        block = DataBlock(blocks=(ImageBlock(img_cls), CategoryBlock()), splitter=RandomSplitter(valid_pct, seed=seed),
                          get_y=label_func, item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls._from_block(block, list(fnames), path, **kwargs)

    @classmethod
    def from_name_func(cls, path: str | os.PathLike, fnames: Sequence, label_func: Callable, **kwargs) -> ImageDataLoaders:
        """Labels from `label_func(file_name)`."""
        return cls.from_path_func(path, fnames, using_attr(label_func, 'name'), **kwargs)

    @classmethod
    def from_path_re(cls, path: str | os.PathLike, fnames: Sequence, pat: str, **kwargs) -> ImageDataLoaders:
        """Labels from the first group of `pat` searched in the full path."""
        return cls.from_path_func(path, fnames, RegexLabeller(pat), **kwargs)

    @classmethod
    def from_name_re(cls, path: str | os.PathLike, fnames: Sequence, pat: str, **kwargs) -> ImageDataLoaders:
        """Labels from the first group of `pat` searched in the file name (`r'(.+)_\\d+.jpg$'` for pets)."""
        return cls.from_name_func(path, fnames, RegexLabeller(pat), **kwargs)

    @classmethod
    def from_lists(cls, path: str | os.PathLike, fnames: Sequence, labels: Sequence, valid_pct: float = 0.2,
                   seed: int | None = None, y_block: Any = CategoryBlock, item_tfms=None, batch_tfms=None,
                   img_cls: type = PILImage, **kwargs) -> ImageDataLoaders:
        """Files and their labels as two lists."""
        if len(fnames) != len(labels):
            raise ValueError(f'from_lists: {len(fnames)} file names but {len(labels)} labels.')
        block = DataBlock(blocks=(ImageBlock(img_cls), y_block), splitter=RandomSplitter(valid_pct, seed=seed),
                          get_x=ItemGetter(0), get_y=ItemGetter(1), item_tfms=item_tfms, batch_tfms=batch_tfms)
        items = [(Path(path) / f if not Path(f).is_absolute() else Path(f), y) for f, y in zip(fnames, labels)]
        return cls._from_block(block, items, path, **kwargs)

    @classmethod
    def from_df(cls, df: pd.DataFrame, path: str | os.PathLike = '.', valid_pct: float = 0.2, seed: int | None = None,
                fn_col: int | str = 0, folder: str | None = None, suff: str = '', label_col: int | str = 1,
                label_delim: str | None = None, y_block: Any = None, valid_col: str | None = None,
                item_tfms=None, batch_tfms=None, img_cls: type = PILImage, **kwargs) -> ImageDataLoaders:
        """File names in column `fn_col` (under `path/folder`), labels in `label_col`."""
        pref = f'{Path(path) / folder if folder else Path(path)}{os.path.sep}'
        if y_block is None:
            y_block = MultiCategoryBlock if label_delim is not None else CategoryBlock
        splitter = RandomSplitter(valid_pct, seed=seed) if valid_col is None else ColSplitter(valid_col)
        block = DataBlock(blocks=(ImageBlock(img_cls), y_block), splitter=splitter,
                          get_x=ColReader(fn_col, pref=pref, suff=suff),
                          get_y=ColReader(label_col, label_delim=label_delim),
                          item_tfms=item_tfms, batch_tfms=batch_tfms)
        return cls._from_block(block, df, path, **kwargs)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, csv_fname: str = 'labels.csv', header: str | None = 'infer',
                 delimiter: str | None = None, **kwargs) -> ImageDataLoaders:
        """`from_df` on `path/csv_fname`."""
        df = pd.read_csv(Path(path) / csv_fname, header=header, **({'delimiter': delimiter} if delimiter else {}))
        return cls.from_df(df, path=path, **kwargs)

    @classmethod
    def _from_block(cls, block: DataBlock, source: Any, path: str | os.PathLike, **kwargs) -> ImageDataLoaders:
        dls = block.dataloaders(source, path=path, **kwargs)
        return cls(*dls.loaders, path=dls.path)


class SegmentationDataLoaders(DataLoaders):
    """DataLoaders for segmentation: images and masks of class codes, one mask per image."""

    @classmethod
    def from_label_func(cls, path: str | os.PathLike, fnames: Sequence, label_func: Callable,
                        valid_pct: float = 0.2, seed: int | None = None, codes: Iterable | None = None,
                        item_tfms=None, batch_tfms=None, img_cls: type = PILImage,
                        **kwargs) -> SegmentationDataLoaders:
        """Masks at `label_func(image_file)`, their codes 0, 1, ... named by `codes` (CamVid: codes.txt)."""
        block = DataBlock(blocks=(ImageBlock(img_cls), MaskBlock(codes)),
                          splitter=RandomSplitter(valid_pct, seed=seed), get_y=label_func,
                          item_tfms=item_tfms, batch_tfms=batch_tfms)
        dls = block.dataloaders(list(fnames), path=path, **kwargs)
        return cls(*dls.loaders, path=dls.path)
