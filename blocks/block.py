"""Blocks: what each part of a sample contributes to the pipelines (type, item and batch transforms)."""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from .basics import listify
from .categories import Categorize, EncodedMultiCategorize, MultiCategorize, OneHotEncode, RegressionSetup

__all__ = ['TransformBlock', 'CategoryBlock', 'MultiCategoryBlock', 'RegressionBlock']


class TransformBlock:
    """The transforms one element of a sample needs: `type_tfms` make it, `item_tfms`/`batch_tfms` prepare it."""

    def __init__(self, type_tfms: Callable | Sequence[Callable] | None = None,
                 item_tfms: Callable | Sequence[Callable] | None = None,
                 batch_tfms: Callable | Sequence[Callable] | None = None, dl_type: type | None = None,
                 dls_kwargs: dict | None = None):
        self.type_tfms, self.item_tfms, self.batch_tfms = listify(type_tfms), listify(item_tfms), listify(batch_tfms)
        self.dl_type, self.dls_kwargs = dl_type, dls_kwargs or {}

    def __repr__(self) -> str:
        return f'{type(self).__name__}(type_tfms={self.type_tfms})'


def CategoryBlock(vocab: Iterable | None = None, sort: bool = True, add_na: bool = False) -> TransformBlock:
    """A single-label classification target."""
    return TransformBlock(type_tfms=Categorize(vocab=vocab, sort=sort, add_na=add_na))


def MultiCategoryBlock(encoded: bool = False, vocab: Iterable | None = None, add_na: bool = False) -> TransformBlock:
    """A multi-label target: a list of labels (or, `encoded`, a one-hot row with column names `vocab`)."""
    if encoded:
        if vocab is None:
            raise ValueError('MultiCategoryBlock(encoded=True) needs vocab= (the names of the one-hot columns).')
        return TransformBlock(type_tfms=EncodedMultiCategorize(vocab))
    return TransformBlock(type_tfms=[MultiCategorize(vocab=vocab, add_na=add_na), OneHotEncode()])


def RegressionBlock(n_out: int | None = None) -> TransformBlock:
    """A float target (or vector of `n_out` floats)."""
    return TransformBlock(type_tfms=RegressionSetup(c=n_out))
