"""DataBlock: a declarative recipe (blocks, getters, splitter, transforms) turned into Datasets and DataLoaders."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Sequence

from .basics import listify, noop
from .block import TransformBlock
from .datasets import Datasets
from .loader import DataLoaders
from .registry import register_for_recipes
from .splitters import RandomSplitter
from .summary import summarize
from .transform import ItemTransform, Transform

__all__ = ['DataBlock', 'merge_tfms']

_ARGS = ('blocks', 'dl_type', 'getters', 'n_inp', 'item_tfms', 'batch_tfms', 'get_items', 'splitter', 'get_y', 'get_x')


class DataBlock:
    """How to get items, split them, label them and transform them, one block per element of a sample."""

    def __init__(self, blocks: Sequence[TransformBlock | Callable] | None = None, dl_type: type | None = None,
                 getters: Sequence[Callable] | None = None, n_inp: int | None = None,
                 item_tfms: Callable | Sequence[Callable] | None = None,
                 batch_tfms: Callable | Sequence[Callable] | None = None, get_items: Callable | None = None,
                 splitter: Callable | None = None, get_y: Callable | Sequence[Callable] | None = None,
                 get_x: Callable | Sequence[Callable] | None = None, **kwargs):
        if kwargs:
            raise TypeError(f"DataBlock got unknown argument(s) {', '.join(map(repr, kwargs))}; "
                            f"it takes {', '.join(_ARGS)}." + _did_you_mean(kwargs))
        blocks = [TransformBlock(), TransformBlock()] if blocks is None else list(blocks)
        self.blocks = [b() if callable(b) and not isinstance(b, TransformBlock) else b for b in blocks]
        self.n_inp = n_inp if n_inp is not None else max(1, len(self.blocks) - 1)
        # The loader class: as in fastai, the DataBlock's, else the first block's that names one (None: DataLoader).
        self.dl_type = dl_type if dl_type is not None else next(
            (b.dl_type for b in self.blocks if getattr(b, 'dl_type', None) is not None), None)
        self.get_items = get_items
        self.splitter = splitter if splitter is not None else RandomSplitter()
        self.getters = self._getters(getters, get_x, get_y)
        self.type_tfms = [([g] if g.f is not noop else []) + b.type_tfms for g, b in zip(self.getters, self.blocks)]
        self.item_tfms = merge_tfms(*[b.item_tfms for b in self.blocks], listify(item_tfms))
        self.batch_tfms = merge_tfms(*[b.batch_tfms for b in self.blocks], listify(batch_tfms))
        self.dls_kwargs = {k: v for b in self.blocks for k, v in b.dls_kwargs.items()}

    def _getters(self, getters, get_x, get_y) -> list[Transform]:
        n, n_inp = len(self.blocks), self.n_inp
        if getters is not None:
            if len(getters) != n:
                raise ValueError(f'DataBlock has {n} blocks but {len(getters)} getters: give one getter per block.')
            fs = list(getters)
        else:
            fs = [noop] * n
            for name, part, count, offset in (('get_x', get_x, n_inp, 0), ('get_y', get_y, n - n_inp, n_inp)):
                if part is None:
                    continue
                part = listify(part)
                if len(part) != count:
                    raise ValueError(f'DataBlock has {count} {"input" if name == "get_x" else "target"} block(s) '
                                     f'but {len(part)} {name} function(s) were given: give exactly {count}.')
                fs[offset:offset + count] = part
        return [_Getter(f) for f in fs]

    def new(self, item_tfms: Callable | Sequence[Callable] | None = None,
            batch_tfms: Callable | Sequence[Callable] | None = None) -> DataBlock:
        """A copy with the blocks' own transforms plus `item_tfms` and `batch_tfms` (None: none of the user's).

        fastai changes the DataBlock itself and returns it; a copy leaves the original as it was."""
        res = copy.copy(self)
        res.item_tfms = merge_tfms(*[b.item_tfms for b in self.blocks], listify(item_tfms))
        res.batch_tfms = merge_tfms(*[b.batch_tfms for b in self.blocks], listify(batch_tfms))
        return res

    def datasets(self, source: Any, verbose: bool = False) -> Datasets:
        """Items from `source`, split, with each block's type pipeline set up on the training items."""
        items = self.collect_items(source)
        return self.make_datasets(items, self.split(items))

    def make_datasets(self, items: Any, splits: tuple[list[int], list[int]]) -> Datasets:
        """Datasets of `items` split by `splits`; if setting up fails, say which items the getters fail on."""
        try:
            return Datasets(items, tfms=self.type_tfms, splits=splits, n_inp=self.n_inp, dls_type=DataLoaders)
        except Exception:
            explained = self._explain_getter_failures(items)
            if explained is None:
                raise
            raise ValueError(explained) from None

    def _explain_getter_failures(self, items: Any) -> str | None:
        """Run every getter over every item; describe how many fail, with a few examples."""
        rows = items.iloc if hasattr(items, 'iloc') else items
        for getter in self.getters:
            failures = []
            for i in range(len(items)):
                try:
                    getter(rows[i])
                except Exception as e:
                    failures.append((rows[i], e))
            if failures:
                names = ', '.join(_item_label(o) for o, _ in failures[:5]) + (', ...' if len(failures) > 5 else '')
                return (f'{getter.name} failed on {len(failures)} of {len(items)} items: {names}\n'
                        f'First error: {failures[0][1]}\n'
                        'Fix the getter (e.g. the regex), or leave those items out in get_items.')
        return None

    def collect_items(self, source: Any) -> Any:
        items = self.get_items(source) if self.get_items is not None else source
        if items is None or len(items) == 0:
            where = f" in '{source}'" if isinstance(source, (str, Path)) else ''
            getter = _name(self.get_items) if self.get_items is not None else 'the source'
            raise ValueError(f'{getter} found no items{where}. Check the path, that the folder is not empty, '
                             'and that the files have an extension get_items looks for.')
        return items

    def split(self, items: Any) -> tuple[list[int], list[int]]:
        splits = self.splitter(items)
        if len(splits) < 2:
            raise ValueError(f'{_name(self.splitter)} must return (train_idxs, valid_idxs).')
        train, valid = list(splits[0]), list(splits[1])
        if not train:
            raise ValueError(f'{_name(self.splitter)} put no items in the training split ({len(items)} items, '
                             f'{len(valid)} in valid). Check its arguments.')
        return train, valid

    def dataloaders(self, source: Any, path: str | Path = '.', verbose: bool = False, **kwargs) -> DataLoaders:
        """`datasets(source)` batched: item_tfms in the workers, batch_tfms on the device."""
        return self.dataloaders_from(self.datasets(source, verbose=verbose), path=path, **kwargs)

    def dataloaders_from(self, dsets: Datasets, path: str | Path = '.', **kwargs) -> DataLoaders:
        """Loaders over `dsets` with this block's transforms, loader class and arguments (`summary` uses it too)."""
        kwargs = {**self.dls_kwargs, **kwargs}
        return DataLoaders.from_dsets(dsets.train, dsets.valid, path=path, after_item=self.item_tfms,
                                      after_batch=self.batch_tfms, dl_type=self.dl_type, **kwargs)

    def summary(self, source: Any, bs: int = 4, show_batch: bool = False, **kwargs) -> None:
        """Walk one sample and one batch through the pipeline, saying what each step gives and what fails."""
        summarize(self, source, bs=bs, show_batch=show_batch, **kwargs)

    def __repr__(self) -> str:
        return f'DataBlock(blocks={self.blocks}, n_inp={self.n_inp})'


class _Getter(ItemTransform):
    """A getter (get_x/get_y/...) applied to the whole item, even when the item is a tuple."""
    is_getter = True  # reads raw items only: an export may leave it out, inference starts from the item

    def __init__(self, f: Callable):
        super().__init__()
        self.f = f

    def encodes(self, o):
        return self.f(o)

    @property
    def name(self) -> str:
        return _name(self.f)


def _item_label(o: Any) -> str:
    return o.name if isinstance(o, Path) else str(o)


def _name(f: Any) -> str:
    if hasattr(f, '__qualname__'):
        return f.__qualname__
    return repr(f) if type(f).__repr__ is not object.__repr__ else type(f).__name__


def merge_tfms(*tfm_lists: Sequence[Callable]) -> list[Callable]:
    """All transforms in order, one per class: a later one replaces an earlier one of the same class."""
    merged: dict[Any, Callable] = {}
    for tfms in tfm_lists:
        for t in tfms:
            key = type(t) if isinstance(t, Transform) else t
            merged.pop(key, None)
            merged[key] = t
    return list(merged.values())


def _did_you_mean(kwargs: dict) -> str:
    import difflib
    hints = [f'{k!r} -> {m[0]!r}' for k in kwargs if (m := difflib.get_close_matches(k, _ARGS, n=1))]
    return f" Did you mean {', '.join(hints)}?" if hints else ''


# An export keeps a getter that is a registered function (parent_label) wrapped in this: see blocks/registry.py.
register_for_recipes('transform', _Getter)
