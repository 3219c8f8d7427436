"""DataBlock.summary(): narrate one sample and one batch through the pipeline, and explain what fails."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch

from .datasets import Datasets
from .loader import CollateError, DataLoader, _item_name, collate, default_device
from .transform import Pipeline

__all__ = ['summarize', 'short_repr']


def short_repr(o: Any) -> str:
    """One line describing `o`: `TensorImage of size 3x414x500`, `TensorCategory(13)`, a path, a label."""
    if isinstance(o, tuple):
        return '(' + ', '.join(short_repr(x) for x in o) + ')'
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
              **kwargs) -> None:
    """Print each step of building a sample and a batch with `dblock`; raise a short error where one fails."""
    p = print_fn
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

    train_ds = dsets.train
    # The real training path: split 0, shuffled, exactly what the train DataLoader will draw.
    order = torch.randperm(len(train_ds)).tolist()
    p('\nBuilding one sample')
    sample = _narrate_sample(p, train_ds, order[0])
    p(f'\nFinal sample: {short_repr(sample)}\n')

    dl_kwargs = {**dblock.dls_kwargs, **kwargs}
    dl = DataLoader(train_ds, bs=bs, shuffle=True, drop_last=True, num_workers=0, after_item=dblock.item_tfms,
                    after_batch=dblock.batch_tfms, device=dl_kwargs.get('device') or default_device(), split_idx=0)
    p(f'Setting up after_item: {dl.after_item}')
    p(f'Setting up before_batch: {dl.before_batch}')
    p(f'Setting up after_batch: {dl.after_batch}')
    p('\nBuilding one batch')
    p('Applying item_tfms to the first sample:')
    first = _narrate(p, dl.after_item, sample, _item_name(train_ds, order[0]))
    idxs = order[:bs]
    p(f'\nAdding the next {len(idxs) - 1} samples')
    samples = [first] + [_step(p, f'loading {_item_name(train_ds, i)}', lambda i=i: dl.after_item(train_ds[i]))
                         for i in idxs[1:]]
    if len(dl.before_batch):
        p(f'\nApplying before_batch to the list of samples: {dl.before_batch}')
        samples = dl.before_batch(samples)
    else:
        p('\nNo before_batch transform to apply')
    p('\nCollating items in a batch')
    batch = _collate_or_explain(p, samples, [_item_name(train_ds, i) for i in idxs])
    p(f'\nApplying batch_tfms to the batch built')
    batch = tuple(o.to(dl.device) if isinstance(o, torch.Tensor) else o for o in batch)
    batch = _narrate(p, dl.after_batch, batch, 'the batch')
    _check_full_batch(p, dl, order, dl_kwargs.get('bs', 64))
    p('\nEverything checks out: dataloaders() will build batches like this one.')
    if show_batch:
        dl.show_batch(batch)


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


def _narrate_sample(p: Callable, ds: Datasets, i: int) -> tuple:
    """Each type pipeline of sample `i`, step by step."""
    parts = []
    for tl in ds.tls:
        item = tl.items[i]
        parts.append(_narrate(p, tl.tfms, item, _item_name(ds, i)))
    return tuple(parts)


def _narrate(p: Callable, pipe: Pipeline, x: Any, name: str) -> Any:
    p(f'  {pipe}')
    p(f'    starting from\n      {short_repr(x)}')
    for t in pipe.fs:
        try:
            x = t(x, split_idx=pipe.split_idx)
        except Exception as e:
            p(f'    applying {t.name} failed on {name}:\n      {e}')
            p(f"Error! {t.name} could not process {name}. Fix that item (or filter it out in get_items) "
              'and run summary() again.')
            raise type(e)(f'{t.name} failed on {name}: {e}') if _rebuildable(e) else e from None
        p(f'    applying {t.name} gives\n      {short_repr(x)}')
    return x


def _collate_or_explain(p: Callable, samples: list, names: list[str]) -> tuple:
    try:
        return collate(samples, names=names)
    except CollateError as e:
        p("Error! It's not possible to collate your items in a batch")
        for k in range(len(samples[0])):
            col = [s[k] for s in samples]
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


def _check_full_batch(p: Callable, dl: DataLoader, order: list[int], bs: int) -> None:
    """Collate a whole first batch of the real size too: a few samples can agree where 64 do not."""
    idxs = order[:bs]
    if len(idxs) <= dl.bs:
        return
    names = [_item_name(dl.dataset, i) for i in idxs]
    samples = []
    for i, name in zip(idxs, names):
        try:
            samples.append(dl.after_item(dl.dataset[i]))
        except Exception as e:
            p(f'\nError! Checking a full batch of {len(idxs)}: could not load {name}: {e}')
            raise type(e)(f'Could not load {name}: {e}') if _rebuildable(e) else e from None
    p(f'\nCollating a full batch of {len(idxs)} training samples (as dataloaders will)')
    _collate_or_explain(p, samples, names)


def _report_missing_files(p: Callable, items: Any) -> None:
    paths = [o for o in list(items)[:100_000] if isinstance(o, (str, Path))] if not hasattr(items, 'iloc') else []
    bad = [o for o in paths if not os.path.isfile(o) or os.path.getsize(o) == 0]
    if bad:
        shown = ', '.join(str(o) for o in bad[:5])
        p(f'Warning: {len(bad)} item(s) are missing or empty files, e.g. {shown}. '
          'Remove them (verify_images finds unreadable images) or training will stop on them.')


def _report_labels(p: Callable, dsets: Datasets, items: Any, valid: list[int]) -> None:
    """Counts per class on train, and the labels of valid that train never saw."""
    for tl in dsets.tls[dsets.n_inp:]:
        fs = tl.tfms.fs
        k = next((j for j, t in enumerate(fs) if getattr(t, 'vocab', None) is not None), None)
        if k is None:
            continue
        to_label = Pipeline(fs[:k], split_idx=1)
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
