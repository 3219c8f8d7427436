"""DataBlock.summary(): narrate one sample and one batch through the pipeline, and explain what fails."""
from __future__ import annotations

import os
import warnings
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from .datasets import Datasets
from .loader import CollateError, DataLoader, NoBatchWarning
from .printable import printable
from .transform import Pipeline

__all__ = ['summarize', 'short_repr']


def short_repr(o: Any) -> str:
    """One line describing `o`: `TensorImage of size 3x414x500`, `TensorCategory(13)`, a path, a label."""
    if isinstance(o, tuple):
        return '(' + ', '.join(short_repr(x) for x in o) + ')'
    describe = getattr(o, 'summary_repr', None)  # a type that says more than its size (a mask: its codes)
    if callable(describe):
        return describe()
    if isinstance(o, torch.Tensor):
        name = type(o).__name__
        if o.ndim == 0:
            return f'{name}({o.item()})'
        if o.numel() <= 8 and o.ndim == 1:
            return f'{name}({o.tolist()})'
        return f'{name} of size {"x".join(map(str, o.shape))}'
    text = repr(o) if not isinstance(o, (str, Path)) else str(o)
    return text if len(text) <= 120 else text[:117] + '...'


def summarize(dblock: Any, source: Any, bs: int = 4, show_batch: bool = False, print_fn: Callable = print,
              **kwargs) -> tuple:
    """Print each step of building a sample and a batch with `dblock`; raise a short error where one fails.

    The batch is built by the train DataLoader's own stages (`load_item`, `collate`, `finish_batch`), only
    narrated here, so it is the batch `dls.train.one_batch()` gives for the same random draws; it is returned.
    """
    def p(*args: Any) -> None:
        # A file name that is not valid UTF-8 is shown with its escapes, never as a crash of the print.
        print_fn(*(printable(a) for a in args))
    p('Setting-up type transforms pipelines')
    p(f'Collecting items from {source}')
    items = _step(p, 'collecting the items', lambda: dblock.collect_items(source))
    p(f'Found {len(items)} items')
    train, valid = _step(p, 'splitting the items', lambda: dblock.split(items))
    p(f'2 datasets of sizes {len(train)},{len(valid)}')
    _report_missing_files(p, items)
    dsets = _step(p, 'setting up the type transforms',
                  lambda: dblock.make_datasets(items, (train, valid)))
    for tl in dsets.tls:
        p(f'Setting up {tl.tfms}')
    _report_labels(p, dsets, items, valid)

    # The real training loader, built as dataloaders() builds it (split 0, shuffled), at summary's batch size
    # and without worker processes.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NoBatchWarning)  # said below, in the narration's own words
        real = dblock.dataloaders_from(dsets, **{**kwargs, 'num_workers': 0}).train
    dl = real.new(bs=bs)
    order = dl.first_indices(len(dl.dataset))
    idxs = order[:bs]
    p('\nBuilding one sample')
    sample = _narrate_sample(p, dl, idxs[0])
    p(f'\nFinal sample: {short_repr(sample)}\n')

    p(f'Setting up after_item: {dl.after_item}')
    p(f'Setting up before_batch: {dl.before_batch}')
    p(f'Setting up after_batch: {dl.after_batch}')
    p('\nBuilding one batch')
    p('Applying item_tfms to the first sample:')
    first = dl.load_item(idxs[0], apply=partial(_narrate, p, name=dl.item_name(idxs[0]), rename=False))
    p(f'\nAdding the next {len(idxs) - 1} samples')
    samples = [first] + _step(p, 'loading the next samples', lambda: [dl.load_item(i) for i in idxs[1:]])
    if not len(dl.before_batch):
        p('\nNo before_batch transform to apply')
        p('\nCollating items in a batch')
    batch = _collate_or_explain(p, dl, samples, idxs, narrate=True)
    p('\nApplying batch_tfms to the batch built')
    batch = dl.finish_batch(batch, apply=partial(_narrate, p, name='the batch'))
    _check_full_batch(p, dl, order[:real.bs])
    reason = real.no_batch_reason()
    if reason is not None:
        # Not raised: the bs given to dataloaders() later may fit; fit() refuses if it does not.
        p(f'\nWarning! With dataloaders(bs={real.bs}): {reason}')
    else:
        p('\nEverything checks out: dataloaders() will build batches like this one.')
    if show_batch:
        dl.show_batch(batch)
    return batch


def _step(p: Callable, what: str, f: Callable) -> Any:
    try:
        return f()
    except Exception as e:
        p(f'Error! While {what}: {e}')
        raise type(e)(str(e)) if _rebuildable(e) else e from None


def _rebuildable(e: Exception) -> bool:
    try:
        type(e)(str(e))
        return True
    except Exception:
        return False


def _narrate_sample(p: Callable, dl: DataLoader, i: int) -> tuple:
    """Each type pipeline of sample `i` of the loader's dataset, step by step."""
    ds = dl.dataset
    return tuple(_narrate(p, tl.tfms, tl.items[i], dl.item_name(i)) for tl in ds.tls)


def _narrate(p: Callable, pipe: Pipeline, x: Any, name: str, rename: bool = True) -> Any:
    """`pipe(x)`, saying what each step gives; a failure names its transform and `name` (also in the error when
    `rename`: a loader stage names the item itself)."""
    p(f'  {pipe}')
    p(f'    starting from\n      {short_repr(x)}')
    done = 0
    try:
        for t, x in pipe.steps(x):
            done += 1
            p(f'    applying {t.name} gives\n      {short_repr(x)}')
    except Exception as e:
        t = pipe.fs[done]
        p(f'    applying {t.name} failed on {name}:\n      {e}')
        p(f"Error! {t.name} could not process {name}. Fix that item (or filter it out in get_items) "
          'and run summary() again.')
        if not rename:
            raise
        raise type(e)(f'{t.name} failed on {name}: {e}') if _rebuildable(e) else e from None
    return x


class _BeforeBatch:
    """The `apply` summary gives `dl.collate`: runs before_batch (saying so if `narrate`), keeps what it gives."""

    def __init__(self, p: Callable, samples: list, narrate: bool):
        self.p, self.samples, self.narrate = p, samples, narrate

    def __call__(self, pipe: Pipeline, samples: list) -> list:
        if self.narrate:
            self.p(f'\nApplying before_batch to the list of samples: {pipe}')
        self.samples = pipe(samples)
        if self.narrate:
            self.p('\nCollating items in a batch')
        return self.samples


def _collate_or_explain(p: Callable, dl: DataLoader, samples: list, idxs: list[int], narrate: bool) -> tuple:
    """`dl.collate`; when it fails, fastai's diagnosis of what reached collate, then the loader's own error."""
    before_batch = _BeforeBatch(p, samples, narrate)
    try:
        return dl.collate(samples, idxs, apply=before_batch)
    except CollateError as e:
        reached = before_batch.samples
        p("Error! It's not possible to collate your items in a batch")
        for k in range(len(reached[0])):
            col = [s[k] for s in reached]
            if not isinstance(col[0], torch.Tensor):
                p(f'{type(col[0]).__name__} is not collatable')
                break
            shapes = [o.shape for o in col]
            if len(set(shapes)) > 1:
                p(f'Could not collate the {k}-th members of your tuples because got the following shapes')
                p(','.join(str(s) for s in shapes))
                break
        p('')
        p(str(e))
        raise CollateError(str(e)) from None


def _check_full_batch(p: Callable, dl: DataLoader, idxs: list[int]) -> None:
    """Collate a whole first batch of the real size too: a few samples can agree where 64 do not."""
    if len(idxs) <= dl.bs:
        return
    samples = _step(p, f'checking a full batch of {len(idxs)}', lambda: [dl.load_item(i) for i in idxs])
    p(f'\nCollating a full batch of {len(idxs)} training samples (as dataloaders will)')
    _collate_or_explain(p, dl, samples, idxs, narrate=False)


def _report_missing_files(p: Callable, items: Any) -> None:
    paths = [o for o in list(items)[:100_000] if isinstance(o, (str, Path))] if not hasattr(items, 'iloc') else []
    bad = [o for o in paths if not os.path.isfile(o) or os.path.getsize(o) == 0]
    if bad:
        shown = ', '.join(str(o) for o in bad[:5])
        p(f'Warning: {len(bad)} item(s) are missing or empty files, e.g. {shown}. '
          'Remove them (verify_images finds unreadable images) or training will stop on them.')


def _report_labels(p: Callable, dsets: Datasets, items: Any, valid: list[int]) -> None:
    """Counts per class on train, and the labels of valid that train never saw; a target transform with a
    `label_report(train_labels, valid_labels)` (masks) says itself what its labels hold."""
    for tl in dsets.tls[dsets.n_inp:]:
        fs = tl.tfms.fs
        k = next((j for j, t in enumerate(fs)
                  if hasattr(t, 'label_report') or getattr(t, 'vocab', None) is not None), None)
        if k is None:
            continue
        to_label = Pipeline(fs[:k], split_idx=1)
        if hasattr(fs[k], 'label_report'):
            for line in fs[k].label_report([to_label(o) for o in tl.train.items],
                                           [to_label(o) for o in tl.valid.items]):
                p(line)
            continue
        vocab = fs[k].vocab
        train_counts = Counter()
        for o in tl.train.items:
            label = to_label(o)
            for lab in (label if isinstance(label, list) else [label]):
                train_counts[lab] += 1
        p(f'Labels: {len(vocab)} classes on the training split: '
          + ', '.join(f'{c} ({train_counts[c]})' for c in list(vocab)[:20]) + (' ...' if len(vocab) > 20 else ''))
        unseen = Counter()
        for o in tl.valid.items:
            label = to_label(o)
            for lab in (label if isinstance(label, list) else [label]):
                if lab not in vocab.o2i:
                    unseen[lab] += 1
        if unseen:
            p(f'Warning: {sum(unseen.values())} validation item(s) have labels never seen in training: '
              + ', '.join(f'{c} ({n})' for c, n in unseen.most_common(10))
              + '. Loading them will fail: move examples to the training split or give CategoryBlock(vocab=...).')
