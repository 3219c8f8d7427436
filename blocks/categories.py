"""Targets: category vocabularies, (multi-)label encoding and regression targets."""
from __future__ import annotations

from typing import Any, Iterable

import torch

from .collection import L
from .losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from .printable import printable
from .registry import register_for_recipes
from .tensors import TensorBase, TensorCategory, TensorMultiCategory
from .transform import Transform

__all__ = ['CategoryMap', 'Category', 'MultiCategory', 'Categorize', 'MultiCategorize', 'OneHotEncode',
           'EncodedMultiCategorize', 'RegressionSetup']


class CategoryMap(list):
    """The sorted unique labels of `col`, with `o2i` mapping a label to its index."""

    def __init__(self, col: Iterable, sort: bool = True, add_na: bool = False, strict: bool = False):
        items = list(col)
        if not strict:
            items = list(dict.fromkeys(items))
            if sort:
                items = sorted(items)
        if add_na:
            items = ['#na#'] + [o for o in items if o != '#na#']
        super().__init__(items)
        self.o2i = {o: i for i, o in enumerate(self)}

    def map_ids(self, o: Any) -> int:
        return self.o2i[o]

    def __getitem__(self, i: Any) -> Any:
        """A label for an int (or a 0-d tensor); an `L` of labels for a slice, or a tensor, array or list of
        indices or a boolean mask, as fastbook decodes a one-hot target: `vocab[torch.where(y == 1.)[0]]`."""
        if isinstance(i, int) or (not isinstance(i, slice) and getattr(i, 'ndim', 1) == 0):
            return super().__getitem__(int(i))
        return L(self)[i]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, tuple)) else NotImplemented

    __hash__ = None


class Category(str):
    """A decoded label; shows itself as the title of a plot."""

    def show(self, ctx: Any = None, **kwargs) -> Any:
        if ctx is not None:
            ctx.set_title(printable(self))
        return ctx


class MultiCategory(list):
    """Decoded labels of a multi-label target."""

    def show(self, ctx: Any = None, sep: str = ';', **kwargs) -> Any:
        if ctx is not None:
            ctx.set_title(printable(sep.join(map(str, self))))
        return ctx


def _unseen(label: Any, vocab: list) -> KeyError:
    return KeyError(f"Label '{label}' was not included in the training dataset (vocab has {len(vocab)} labels). "
                    'Put examples of it in the training split, or give the vocab: CategoryBlock(vocab=[...]).')


class Categorize(Transform):
    """Label -> index into a vocab built from the training split; decodes back to the label."""
    order = 1
    loss_type = CrossEntropyLossFlat
    _recipe_state = ('vocab',)

    def __init__(self, vocab: Iterable | None = None, sort: bool = True, add_na: bool = False):
        super().__init__()
        self.sort, self.add_na = sort, add_na
        self.vocab = None if vocab is None else CategoryMap(vocab, sort=sort, add_na=add_na)

    def setups(self, items: Any) -> None:
        if self.vocab is None and items is not None:
            self.vocab = CategoryMap(items, sort=self.sort, add_na=self.add_na)

    @property
    def c(self) -> int:
        return len(self.vocab)

    def encodes(self, o: Any) -> TensorCategory:
        try:
            return torch.tensor(self.vocab.o2i[o]).as_subclass(TensorCategory)
        except KeyError:
            raise _unseen(o, self.vocab) from None
        except AttributeError:
            raise RuntimeError('Categorize has no vocab: set it up on the training items first '
                               '(DataBlock does this) or pass vocab=.') from None

    def decodes(self, o: TensorCategory) -> Category:
        return Category(self.vocab[int(o)])


class MultiCategorize(Categorize):
    """A list of labels -> their indices in a vocab from the training split."""
    loss_type = BCEWithLogitsLossFlat

    def __init__(self, vocab: Iterable | None = None, add_na: bool = False):
        super().__init__(vocab=vocab, sort=True, add_na=add_na)

    def setups(self, items: Any) -> None:
        if self.vocab is None and items is not None:
            self.vocab = CategoryMap({o for labels in items for o in labels}, add_na=self.add_na)

    def encodes(self, o: list) -> TensorMultiCategory:
        for label in o:
            if label not in self.vocab.o2i:
                raise _unseen(label, self.vocab)
        return torch.tensor([self.vocab.o2i[label] for label in o], dtype=torch.long).as_subclass(TensorMultiCategory)

    def decodes(self, o: TensorMultiCategory) -> MultiCategory:
        return MultiCategory([self.vocab[int(i)] for i in o])


class OneHotEncode(Transform):
    """Label indices -> a one-hot float vector of length `c`; decodes back to indices."""
    order = 2
    _recipe_state = ('c',)

    def __init__(self, c: int | None = None):
        super().__init__()
        self.c = c

    def setups(self, items: Any) -> None:
        vocab = getattr(items, 'vocab', None)
        if self.c is None and vocab is not None:
            self.c = len(vocab)

    def encodes(self, o: TensorMultiCategory) -> TensorMultiCategory:
        if self.c is None:
            raise RuntimeError('OneHotEncode needs the number of classes: pass c=.')
        return torch.zeros(self.c).index_fill_(0, o.as_subclass(torch.Tensor).long(), 1.).as_subclass(TensorMultiCategory)

    def decodes(self, o: TensorMultiCategory) -> TensorMultiCategory:
        return torch.nonzero(o.as_subclass(torch.Tensor) > 0.5).flatten().as_subclass(TensorMultiCategory)


class EncodedMultiCategorize(Categorize):
    """Targets already one-hot encoded, with column names `vocab`."""
    loss_type = BCEWithLogitsLossFlat

    def __init__(self, vocab: Iterable):
        super().__init__(vocab=vocab, sort=False)

    def encodes(self, o: Any) -> TensorMultiCategory:
        return torch.as_tensor(o, dtype=torch.float).as_subclass(TensorMultiCategory)

    def decodes(self, o: TensorMultiCategory) -> MultiCategory:
        return MultiCategory([self.vocab[i] for i in torch.nonzero(o.as_subclass(torch.Tensor) > 0.5).flatten().tolist()])


class RegressionSetup(Transform):
    """Numbers -> a float tensor; `c` (number of outputs) is found from the training items."""
    loss_type = MSELossFlat
    _recipe_state = ('c',)

    def __init__(self, c: int | None = None):
        super().__init__()
        self.c = c

    def setups(self, items: Any) -> None:
        if self.c is None and items is not None and len(items):
            first = items[0]
            self.c = len(first) if hasattr(first, '__len__') else 1

    def encodes(self, o: Any) -> TensorBase:
        return torch.as_tensor(o, dtype=torch.float).as_subclass(TensorBase)

    def decodes(self, o: TensorBase) -> Any:
        return o.item() if o.ndim == 0 else o.tolist()


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', Categorize, MultiCategorize, OneHotEncode, EncodedMultiCategorize, RegressionSetup)
