"""Items made into samples: one type pipeline per tuple element, set up on the training split."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from .transform import Pipeline, Transform

__all__ = ['TfmdLists', 'Datasets']


class TfmdLists:
    """`items` seen through a pipeline `tfms`; `splits` gives train/valid subsets (`.train`, `.valid`)."""

    def __init__(self, items: Sequence, tfms: Pipeline | Sequence[Callable] | Callable | None,
                 splits: Sequence[Sequence[int]] | None = None, split_idx: int | None = None,
                 do_setup: bool = True):
        self.items = items
        self.splits = [list(s) for s in splits] if splits is not None else [list(range(len(items)))]
        self.tfms = tfms if isinstance(tfms, Pipeline) else Pipeline(tfms, split_idx=split_idx)
        if split_idx is not None:
            self.tfms.split_idx = split_idx
        if do_setup:
            self.setup()

    @property
    def split_idx(self) -> int | None:
        return self.tfms.split_idx

    def setup(self) -> None:
        """Set up the transforms (vocabs and such) on the training items, each seeing them through those before it."""
        # The view shares `self.tfms`, which `Pipeline.setup` refills one transform at a time.
        self.tfms.setup(TfmdLists(_Subset(self.items, self.splits[0]), self.tfms, do_setup=False), train_setup=True)

    def subset(self, i: int) -> TfmdLists:
        """The `i`-th split (0 train, 1 valid) with the same transforms, applied as that split."""
        return TfmdLists(_Subset(self.items, self.splits[i]), Pipeline(self.tfms.fs, split_idx=i), do_setup=False)

    @property
    def train(self) -> TfmdLists:
        return self.subset(0)

    @property
    def valid(self) -> TfmdLists:
        return self.subset(1)

    def __getitem__(self, i: int) -> Any:
        return self.tfms(self.items[i])

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))

    def decode(self, o: Any) -> Any:
        return self.tfms.decode(o)

    @property
    def vocab(self) -> Any:
        """The vocab of the last transform that has one (so OneHotEncode can size itself during setup)."""
        return next((t.vocab for t in reversed(self.tfms.fs) if getattr(t, 'vocab', None) is not None), None)

    def __repr__(self) -> str:
        return f'{type(self).__name__}: {len(self)} items, {self.tfms}'


class _Subset:
    """A list-like view of `items` at `idxs`, with no copy."""

    def __init__(self, items: Sequence, idxs: Sequence[int]):
        self.items, self.idxs = items, idxs

    def __getitem__(self, i: int) -> Any:
        return _get(self.items, self.idxs[i])

    def __len__(self) -> int:
        return len(self.idxs)

    def __iter__(self) -> Iterator:
        return (_get(self.items, i) for i in self.idxs)


def _get(items: Any, i: int) -> Any:
    iloc = getattr(items, 'iloc', None)  # a DataFrame's items are its rows
    return iloc[i] if iloc is not None else items[i]


def _iter(items: Any) -> Iterator:
    return (_get(items, i) for i in range(len(items)))


def _is_row(o: Any) -> bool:
    # A record a getter reads fields from: a DataFrame row (a Series), a tuple, a list, a dict. A str or a path is not.
    return isinstance(o, (tuple, list, dict)) or hasattr(o, 'iloc')


class Datasets:
    """Samples as tuples: element k of sample i is `tfms[k](items[i])`; the first `n_inp` are inputs."""

    def __init__(self, items: Sequence, tfms: Sequence[Sequence[Callable] | Pipeline], splits=None,
                 n_inp: int | None = None, split_idx: int | None = None, do_setup: bool = True,
                 tls: list[TfmdLists] | None = None, dls_type: type | None = None):
        self.items = items
        # The DataLoaders class `dataloaders()` builds with, handed in (DataBlock.datasets does): loader.py
        # builds on this module, so this module cannot import it.
        self.dls_type = dls_type
        self.tls = tls if tls is not None else [
            TfmdLists(items, t, splits=splits, split_idx=split_idx, do_setup=do_setup) for t in tfms]
        self.n_inp = n_inp if n_inp is not None else max(1, len(self.tls) - 1)

    @property
    def splits(self) -> list[list[int]]:
        return self.tls[0].splits

    @property
    def split_idx(self) -> int | None:
        return self.tls[0].split_idx

    def subset(self, i: int) -> Datasets:
        return Datasets(_Subset(self.items, self.splits[i]), [], n_inp=self.n_inp,
                        tls=[tl.subset(i) for tl in self.tls], dls_type=self.dls_type)

    @property
    def train(self) -> Datasets:
        return self.subset(0)

    @property
    def valid(self) -> Datasets:
        return self.subset(1)

    @property
    def subsets(self) -> list[Datasets]:
        return [self.subset(i) for i in range(len(self.splits))]

    def __getitem__(self, i: int) -> tuple:
        return tuple(tl[i] for tl in self.tls)

    def __len__(self) -> int:
        return len(self.tls[0])

    def __iter__(self) -> Iterator[tuple]:
        return (self[i] for i in range(len(self)))

    def decode(self, o: tuple) -> tuple:
        return tuple(tl.decode(x) for tl, x in zip(self.tls, o))

    def new_items(self, items: Sequence, with_labels: bool = False) -> Datasets:
        """New items through this dataset's (already set-up) pipelines as the validation split; inputs only by default.

        When this dataset's items are rows (a DataFrame's, tuples) and none of `items` is, they are what the input
        getter returns (a file path, an image): their pipelines start after the getter, as after `load_learner`."""
        tls = self.tls if with_labels else self.tls[:self.n_inp]
        fss = [tl.tfms.fs for tl in tls]
        if self._items_are_rows() and len(items) > 0 and not any(map(_is_row, _iter(items))):
            fss[:self.n_inp] = [[t for t in fs if not getattr(t, 'is_getter', False)] for fs in fss[:self.n_inp]]
        return Datasets(items, [], n_inp=self.n_inp, dls_type=self.dls_type,
                        tls=[TfmdLists(items, Pipeline(fs, split_idx=1), do_setup=False) for fs in fss])

    def _items_are_rows(self) -> bool:
        return len(self.items) > 0 and _is_row(_get(self.items, 0))

    @property
    def target_tfms(self) -> list[Transform]:
        return [t for tl in self.tls[self.n_inp:] for t in tl.tfms.fs]

    @property
    def vocab(self) -> Any:
        """The vocab of the first target that has one (or of the inputs when there is no target)."""
        for tl in self.tls[self.n_inp:] + self.tls[:self.n_inp]:
            for t in tl.tfms.fs:
                if getattr(t, 'vocab', None) is not None:
                    return t.vocab
        return None

    @property
    def c(self) -> int | None:
        for t in self.target_tfms:
            c = getattr(t, 'c', None)
            if c is not None:
                return c
        vocab = self.vocab
        return len(vocab) if vocab is not None else None

    @property
    def loss_func(self) -> Callable | None:
        """A fresh loss implied by the target transforms (Categorize -> cross-entropy), or None."""
        loss_type = next((t.loss_type for t in reversed(self.target_tfms) if hasattr(t, 'loss_type')), None)
        return loss_type() if loss_type is not None else None

    def dataloaders(self, bs: int = 64, shuffle_train: bool = True, **kwargs) -> Any:
        """A train loader (shuffled, last partial batch dropped) and a valid loader (in order), as in fastai.

        Built by `self.dls_type.from_dsets`; `DataBlock.datasets` sets `dls_type`. A Datasets made by hand
        needs `Datasets(..., dls_type=DataLoaders)`, or call `DataLoaders.from_dsets(dsets.train, dsets.valid)`.
        """
        if self.dls_type is None:
            raise TypeError('This Datasets does not know which DataLoaders to build: create it with '
                            'Datasets(..., dls_type=DataLoaders), or call '
                            'DataLoaders.from_dsets(dsets.train, dsets.valid, bs=...) instead.')
        return self.dls_type.from_dsets(self.train, self.valid, bs=bs, shuffle_train=shuffle_train, **kwargs)

    def __repr__(self) -> str:
        return f'{type(self).__name__}: {len(self)} items, ' + ', '.join(repr(tl.tfms) for tl in self.tls)
