"""Segmentation-mask targets: `MaskSetup` opens what `get_y` gives as a `PILMask` of class codes, knows the loss,
`c` and the names of the codes, and decodes predictions to a `TensorMask` that draws itself over its image."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from blocklearn.blocks.categories import CategoryMap
from blocklearn.blocks.losses import CrossEntropyLossFlat
from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.transform import Transform
from .core import ImageReadError, PILMask, TensorMask

__all__ = ['MaskSetup']

# summary() opens at most this many masks of each split to list the codes they hold
_REPORT_LIMIT = 200


class MaskSetup(Transform):
    """`get_y`'s output (a mask file, array or image) -> `PILMask` of codes 0..c-1; loss cross-entropy over the class
    axis (1), `c` = len(codes) (else the largest code of the training masks + 1), `vocab` = the codes' names.

    MaskBlock's type transform. fastai splits this between `PILMask.create` and the item transform AddMaskCodes;
    here, like PointSetup, one class keeps `c` and the codes where `dls.c` and `dls.vocab` look, and decodes a
    prediction (codes, or activations (c,H,W)) to a `TensorMask` whose `codes` fix the colour of each code."""
    loss_type = partial(CrossEntropyLossFlat, axis=1)
    _recipe_state = ('c',)

    def __init__(self, codes: Iterable | None = None):
        super().__init__()
        codes = None if codes is None else [o.item() if isinstance(o, np.generic) else o for o in codes]
        # what an export writes: np.loadtxt's array of names becomes a list of plain strings, which a recipe holds
        self._init_args = ((), {'codes': codes})
        self.vocab = None if codes is None else CategoryMap(codes, strict=True)
        self.c: int | None = None if codes is None else len(codes)

    def setups(self, items: Any) -> None:
        if self.c is None and items is not None and len(items):
            self.c = max(_codes_held(PILMask.create(o))[-1] for o in items) + 1

    def encodes(self, o: Any) -> PILMask:
        mask = PILMask.create(o)
        top = mask.getextrema()[1]
        if self.c is not None and top >= self.c:
            # caught here, with the file named: the loss would fail later with a bare index error (on CUDA, an assert)
            raise ValueError(f'Mask {o} holds code {top}, but the MaskBlock has {self.c} codes (0..{self.c - 1}). '
                             f'Give every code in MaskBlock(codes=[...]), in the order of the values, or map the '
                             f"mask's values (e.g. 255 for 'void') to 0..{self.c - 1}.")
        return mask

    def decodes(self, x: torch.Tensor) -> TensorMask:
        t = x.as_subclass(torch.Tensor)
        if t.is_floating_point():
            # activations (c,H,W) or (b,c,H,W): the code scored highest; a float mask (H,W): its codes
            t = t.argmax(dim=-3) if t.ndim >= 3 else t.round().long()
        res = t.as_subclass(TensorMask)
        res.codes = self.vocab if self.vocab is not None else (list(range(self.c)) if self.c else None)
        return res

    def label_report(self, train: Sequence, valid: Sequence) -> list[str]:
        """summary()'s lines on the masks (`train`, `valid`: what `get_y` gives): the codes, how many training masks
        hold each, and the masks that hold codes the block does not have or that cannot be opened."""
        names = list(self.vocab) if self.vocab is not None else list(range(self.c or 0))
        held, beyond, unreadable = Counter(), [], []
        for split, targets in (('train', train), ('valid', valid)):
            for o in list(targets)[:_REPORT_LIMIT]:
                try:
                    codes = _codes_held(PILMask.create(o))
                except (ImageReadError, OSError, ValueError) as e:
                    unreadable.append(f'{o} ({e})')
                    continue
                if split == 'train':
                    held.update(codes)
                if self.c is not None and codes[-1] >= self.c:
                    beyond.append(f'{o} ({", ".join(str(k) for k in codes if k >= self.c)})')
        some = f'the first {_REPORT_LIMIT} ' if len(train) > _REPORT_LIMIT else ''
        lines = [f'Mask codes: {len(names)} (dls.vocab, dls.c), with the number of {some}training masks holding each: '
                 + ', '.join(f'{k} {name} ({held[k]})' for k, name in enumerate(names[:32]))
                 + (' ...' if len(names) > 32 else '')]
        if beyond:
            lines.append(f'Warning: {len(beyond)} mask(s) hold codes beyond 0..{self.c - 1}: '
                         + ', '.join(beyond[:5]) + (', ...' if len(beyond) > 5 else '')
                         + '. Loading them will fail: give every code in MaskBlock(codes=[...]) or map those values.')
        if unreadable:
            lines.append(f'Warning: {len(unreadable)} mask(s) could not be opened: ' + ', '.join(unreadable[:3])
                         + '. Check get_y (the label function) and the files.')
        return lines

    @property
    def name(self) -> str:
        return 'PILMask.create'


def _codes_held(mask: PILMask) -> list[int]:
    """The sorted codes a mask holds (PIL's histogram of an 'L' image: no copy of the pixels)."""
    return [k for k, n in enumerate(mask.histogram()) if n] or [0]


# What a recipe (an export) may name from this module, by its own name: see blocks/registry.py.
register_for_recipes('transform', MaskSetup)
