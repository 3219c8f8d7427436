"""DataLoader and DataLoaders: item transforms in worker processes, collation, batch transforms on the device."""
from __future__ import annotations

import numbers
import os
import random
import signal
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.utils.data as tud

from .shard import Shard
from .show import get_grid, show_sample
from .tensors import as_plain
from .transform import Pipeline

__all__ = ['DataLoader', 'DataLoaders', 'NoBatchWarning', 'collate', 'CollateError', 'ItemLoadError', 'default_num_workers',
           'default_device', 'PipelineApply']


class CollateError(RuntimeError):
    """The samples of a batch could not be stacked (usually: images of different sizes)."""


class ItemLoadError(RuntimeError):
    """An item could not be turned into a sample; the message names the item and the cause."""


def default_device() -> torch.device:
    """CUDA if a GPU is there, else MPS (an Apple GPU), else the CPU."""
    if torch.cuda.is_available():
        return torch.device('cuda')
    mps = getattr(torch.backends, 'mps', None)
    if mps is not None and mps.is_available():
        return torch.device('mps')
    return torch.device('cpu')


def default_num_workers(device: torch.device | str | None = None) -> int:
    """One worker per core but one, so items load while the main process runs batch transforms and the model;
    none when the batches go to the CPU (`device` None or 'cpu') of a machine with 2 cores or fewer.

    There the model needs both cores, and a worker costs it more than loading the items in between steps: on 2
    cores, fine_tune(1) of resnet18 at 128 px on 640 JPEGs took a median 18.7 s without a worker and 21.7 s with
    one, against 18.5 s on batches held in memory (bench/finetune.py --num-workers 0 / 1, 5 runs each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    on_cpu = device is None or torch.device(device).type == 'cpu'
    if on_cpu and cores <= 2:
        return 0
    return min(max(cores - 1, 0), 8)


# How a stage applies one of its pipelines to a value: by default `pipe(x)`; summary() passes one that narrates.
PipelineApply = Callable[[Pipeline, Any], Any]


class DataLoader:
    """Batches of a dataset: `after_item` per sample in the workers, collate, `after_batch` on the device.

    `dataset` is anything indexable with a length: a `Datasets`, or (fastbook chapter 4) a plain list of `(x, y)`
    tuples, whose tensors are stacked and numbers made tensors; items that are not tuples (`range(15)`) give bare
    batches. `batch_size` is PyTorch's name for `bs`. An in-memory list, tuple or range loads in this process by
    default (`num_workers=0`): indexing it is faster than sending its items between processes.
    `shard` (a `Shard`, set by `distrib_ctx`) makes each epoch load only this rank's part of every global batch."""

    def __init__(self, dataset: Any, bs: int = 64, shuffle: bool = False, drop_last: bool = False,
                 num_workers: int | None = None, after_item: Sequence[Callable] | Pipeline | None = None,
                 before_batch: Sequence[Callable] | Pipeline | None = None,
                 after_batch: Sequence[Callable] | Pipeline | None = None, device: torch.device | str | None = None,
                 pin_memory: bool | None = None, persistent_workers: bool = True, split_idx: int | None = None,
                 n_inp: int | None = None, batch_size: int | None = None):
        bs = bs if batch_size is None else batch_size
        self.dataset, self.bs, self.shuffle, self.drop_last = dataset, bs, shuffle, drop_last
        if num_workers is None:
            num_workers = 0 if isinstance(dataset, (list, tuple, range)) else default_num_workers(device)
        self.num_workers = num_workers
        self.split_idx = split_idx if split_idx is not None else getattr(dataset, 'split_idx', None)
        self.after_item = _pipeline(after_item, self.split_idx)
        self.before_batch = _pipeline(before_batch, self.split_idx)
        self.after_batch = _pipeline(after_batch, self.split_idx)
        self.device = torch.device(device) if device is not None else None
        self.pin_memory = pin_memory if pin_memory is not None else (self.device is not None and self.device.type == 'cuda')
        self.persistent_workers = persistent_workers
        self.n_inp = n_inp if n_inp is not None else getattr(dataset, 'n_inp', 1)
        self.shard: Shard | None = None  # read at each epoch's start: setting it restarts no worker
        self._torch_dl = None

    # -- the stages of a batch: iteration (in the workers and here), one_batch and summary() all use these --
    def load_item(self, i: int, apply: PipelineApply | None = None) -> tuple:
        """Sample `i` of the dataset after `after_item` (a worker's per-item work); an error names the item."""
        try:
            sample = self.dataset[i]
            return self.after_item(sample) if apply is None else apply(self.after_item, sample)
        except Exception as e:
            raise _item_error(self.dataset, i, e) from None

    def collate(self, samples: list[tuple], idxs: Sequence[int] | None = None,
                apply: PipelineApply | None = None) -> tuple:
        """`before_batch` on the samples, then stacked into a batch; a CollateError names the items `idxs`."""
        if len(self.before_batch):
            samples = self.before_batch(samples) if apply is None else apply(self.before_batch, samples)
        return collate(samples, names=None if idxs is None else [self.item_name(i) for i in idxs])

    def finish_batch(self, b: tuple, apply: PipelineApply | None = None) -> tuple:
        """A collated batch moved to the device, then through `after_batch`."""
        if self.device is not None:
            b = tuple(_to(o, self.device) for o in b) if isinstance(b, tuple) else _to(b, self.device)
        return self.after_batch(b) if apply is None else apply(self.after_batch, b)

    def first_indices(self, n: int) -> list[int]:
        """The `n` items `one_batch` (and summary) draw: random ones on a shuffling loader, else the first."""
        if self.shuffle:
            return torch.randperm(len(self.dataset))[:n].tolist()
        return list(range(n))

    def item_name(self, i: int) -> str:
        """How errors name item `i` of the dataset: `item 3 (images/pug_80.jpg)`."""
        return _item_name(self.dataset, i)

    # -- iteration ---------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple]:
        try:
            for b in self._loader():
                yield self._finish(b)
        except GeneratorExit:
            raise  # the consumer stopped early: persistent workers go on to the next epoch as they are
        except BaseException:
            # Ctrl-C or an error while batches were in flight: the next epoch starts from fresh workers
            self._stop_workers()
            raise

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.shard is not None:
            return self.shard.n_steps(n, self.bs, self.drop_last)
        return n // self.bs if self.drop_last else -(-n // self.bs)

    @property
    def n(self) -> int:
        return len(self.dataset)

    def no_batch_reason(self) -> str | None:
        """Why this loader yields no batch at all (a split smaller than `bs` with `drop_last`), with the fix; or None."""
        n = len(self.dataset)
        if n == 0 or len(self) > 0:
            return None  # an empty split is said where it is built
        return (f"The {_split_name(self.split_idx)} split has {n} item{'s' if n != 1 else ''} and bs is {self.bs}: "
                f"dropping the last partial batch, its loader yields no batch. Pass bs={_fitting_bs(n)} (at most "
                f"{n}), or give the split more items.")

    def _loader(self) -> tud.DataLoader:
        if self._torch_dl is not None and not _workers_alive(self._torch_dl):
            self._stop_workers()  # a worker was killed (OOM, SIGKILL) since the last epoch
        if self._torch_dl is None:
            workers = self.num_workers if len(self.dataset) > self.bs else min(self.num_workers, 1)
            # torch's own seed draw gets a private generator: the global one is drawn once per epoch, by the sampler
            self._torch_dl = tud.DataLoader(
                _ItemDataset(self), batch_size=self.bs, sampler=_EpochSampler(len(self.dataset), self.shuffle, workers, self),
                drop_last=self.drop_last, num_workers=workers, collate_fn=_Collator(self),
                pin_memory=self.pin_memory, worker_init_fn=_init_worker if workers else None,
                persistent_workers=self.persistent_workers and workers > 0, generator=torch.Generator())
        return self._torch_dl

    def _stop_workers(self) -> None:
        """Shut down the worker processes (if any); the next epoch starts new ones."""
        dl, self._torch_dl = self._torch_dl, None
        it = getattr(dl, '_iterator', None)
        if it is not None and hasattr(it, '_shutdown_workers'):
            it._shutdown_workers()

    def _finish(self, b: Any) -> tuple:
        """Raise a worker's failure here, in the user's process; else restore the tensor types and finish."""
        if isinstance(b, _Failure):
            raise b.exc from None
        tensors, types = b
        if isinstance(types, type):  # a bare batch: the items were not tuples
            return self.finish_batch(_retype(tensors, types))
        return self.finish_batch(tuple(_retype(t, typ) for t, typ in zip(tensors, types)))

    def one_batch(self) -> tuple:
        """The first batch (without starting worker processes, which one batch does not repay)."""
        n = min(self.bs, len(self.dataset))
        if n == 0:
            raise ValueError('This DataLoader has no items: check the split (is the validation set empty?).')
        idxs = self.first_indices(n)
        return self.finish_batch(self.collate([self.load_item(i) for i in idxs], idxs))

    def __getstate__(self) -> dict:
        # A copy (a spawned worker's, a pickle) never carries the torch loader and its worker processes.
        return {**self.__dict__, '_torch_dl': None}

    # -- decoding and display ----------------------------------------------------------------------------
    def decode(self, b: tuple) -> tuple:
        """Undo the batch transforms (e.g. Normalize, int->float) on a batch."""
        return self.after_batch.decode(b)

    def decode_batch(self, b: tuple, max_n: int = 9) -> list[tuple]:
        """The samples of `b` decoded all the way back to showable objects (labels as strings)."""
        b = self.decode(b)
        n = min(max_n, _batch_len(b))
        samples = [tuple(o[i] for o in b) for i in range(n)]
        return [self.dataset.decode(self.after_item.decode(s)) if hasattr(self.dataset, 'decode')
                else self.after_item.decode(s) for s in samples]

    def show_batch(self, b: tuple | None = None, max_n: int = 9, nrows: int | None = None,
                   ncols: int | None = None, figsize: tuple | None = None, show: bool = True, unique: bool = False,
                   ctxs: Sequence[Any] | None = None, **kwargs) -> list:
        """Show up to `max_n` decoded samples of `b` (default: one batch) in a grid, or on `ctxs`.

        `unique`: the first item again and again, each time through this loader's random transforms (how to see
        the augmentation). `show=False` returns the decoded samples instead of drawing them."""
        n = max_n if nrows is None or ncols is None else min(max_n, nrows * ncols)
        if b is None:
            b = self._repeated_batch(0, min(n, self.bs)) if unique else self.one_batch()
        samples = self.decode_batch(b, max_n=n)
        if not show:
            return samples
        axs = get_grid(len(samples), nrows=nrows, ncols=ncols, figsize=figsize) if ctxs is None else list(ctxs)
        for sample, ax in zip(samples, axs):
            show_sample(sample, ctx=ax, **kwargs)
        return axs

    def _repeated_batch(self, i: int, n: int) -> tuple:
        """A batch of item `i` loaded `n` times: random item and batch transforms draw anew for each copy."""
        if len(self.dataset) == 0:
            raise ValueError('This DataLoader has no items: check the split (is the validation set empty?).')
        return self.finish_batch(self.collate([self.load_item(i) for _ in range(n)], [i] * n))

    # -- copies ------------------------------------------------------------------------------------------
    def new(self, dataset: Any = None, **kwargs) -> DataLoader:
        """A loader like this one, with `dataset` and any argument replaced."""
        args = dict(dataset=self.dataset if dataset is None else dataset, bs=self.bs, shuffle=self.shuffle,
                    drop_last=self.drop_last, num_workers=self.num_workers, after_item=self.after_item.fs,
                    before_batch=self.before_batch.fs, after_batch=self.after_batch.fs, device=self.device,
                    pin_memory=self.pin_memory, persistent_workers=self.persistent_workers,
                    split_idx=self.split_idx, n_inp=self.n_inp)
        args.update(kwargs)
        return type(self)(**args)

    def to(self, device: torch.device | str) -> DataLoader:
        self.device = torch.device(device)
        return self

    def add_tfms(self, tfms: Sequence[Callable], event: str = 'after_batch') -> None:
        """Add transforms to `after_item`, `before_batch` or `after_batch`, kept sorted by order."""
        getattr(self, event).add(tfms)
        self._torch_dl = None  # workers hold a copy of the pipelines

    @property
    def vocab(self) -> Any:
        return getattr(self.dataset, 'vocab', None)

    @property
    def items(self) -> Any:
        return getattr(self.dataset, 'items', None)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(n={self.n}, bs={self.bs}, shuffle={self.shuffle}, num_workers={self.num_workers})'


def _pipeline(tfms: Sequence[Callable] | Pipeline | None, split_idx: int | None) -> Pipeline:
    return Pipeline(tfms.fs if isinstance(tfms, Pipeline) else tfms, split_idx=split_idx)


def _init_worker(worker_id: int) -> None:
    # Each worker is one process on one core: torch's own threads would fight the other workers.
    torch.set_num_threads(1)
    # A terminal's Ctrl-C reaches the whole process group: the main process stops the workers it owns, so a
    # worker that died of it cannot leave the next epoch a queue of batches it can no longer hand over.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _workers_alive(dl: tud.DataLoader) -> bool:
    workers = getattr(getattr(dl, '_iterator', None), '_workers', None) or []
    return all(w.is_alive() for w in workers)


class _EpochSampler(tud.Sampler):
    """The indices of an epoch, each paired with the epoch's seed, drawn from torch's global generator.

    A worker seeds its generators from (seed, index) before each item, so an item's random transforms depend on
    neither the worker it lands on nor the epochs before: a run resumed from a checkpoint (which holds the global
    state) draws what the uninterrupted one did. In this process (no workers) items draw from the global state.
    Under the loader's `shard`, a shuffled epoch uses the seed all ranks share (rank 0's draw), and yields only this
    rank's part of each global batch: with workers, an item then draws what it would in a single process."""

    def __init__(self, n: int, shuffle: bool, workers: int, dl: DataLoader | None = None):
        self.n, self.shuffle, self.workers = n, shuffle, workers
        self._dl = weakref.ref(dl) if dl is not None else None  # weak: the loader owns this sampler

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int | None]]:
        dl = self._dl() if self._dl is not None else None
        shard = getattr(dl, 'shard', None)
        if not (self.shuffle or self.workers):
            order, seed = range(self.n), None
        else:
            seed = int(torch.randint(0, 2 ** 62, ()).item())
            if shard is not None and self.shuffle:
                seed = shard.share_seed(seed)
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)).tolist() if self.shuffle \
                else range(self.n)
        if shard is not None:
            order = shard.indices(order, dl.bs, dl.drop_last)
        return ((i, seed) for i in order)


def _seed_item(seed: int, i: int) -> None:
    """Seed this worker's generators for item `i` of an epoch (torch's CPU generator only: 1 us, not 200)."""
    s = (seed + (i + 1) * 0x9E3779B97F4A7C15) % 2 ** 63
    torch.default_generator.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2 ** 32)


def _batch_len(b: tuple) -> int:
    first = b[0]
    return len(first) if hasattr(first, '__len__') else 1


def _retype(o: Any, typ: type) -> Any:
    return o.as_subclass(typ) if isinstance(o, torch.Tensor) and typ is not torch.Tensor and issubclass(typ, torch.Tensor) else o


def _to(o: Any, device: torch.device) -> Any:
    return o.to(device, non_blocking=True) if isinstance(o, torch.Tensor) else o


class _Failure:
    """A sample or batch that failed in a worker, carried to the main process to be raised there."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class _OwnedBy:
    """A part of the torch loader a DataLoader owns, pointing back at it weakly: with no reference cycle, the last
    reference to a DataLoader going stops its workers at once (a garbage-collected cycle stalled 5 s per worker).
    A spawned worker gets a pickled copy of the DataLoader, held strongly there."""

    def __init__(self, dl: DataLoader):
        self._ref = weakref.ref(dl)

    @property
    def dl(self) -> DataLoader:
        return self._ref()

    def __getstate__(self) -> dict:
        return {'dl': self.dl}

    def __setstate__(self, state: dict) -> None:
        dl = state['dl']
        self._ref = lambda: dl


class _ItemDataset(_OwnedBy, tud.Dataset):
    """The torch view of a DataLoader: sample i by `dl.load_item`, a failure captured to be raised later."""

    def __len__(self) -> int:
        return len(self.dl.dataset)

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[int, Any]:
        i, seed = key
        if seed is not None and tud.get_worker_info() is not None:
            _seed_item(seed, i)
        try:
            return i, self.dl.load_item(i)
        except Exception as e:
            return i, _Failure(e)


def _item_name(dataset: Any, i: int) -> str:
    items = getattr(dataset, 'items', None)
    try:
        item = items[i] if items is not None else None
    except Exception:
        item = None
    return f'item {i}' + (f' ({item})' if item is not None else '')


def _item_error(dataset: Any, i: int, e: Exception) -> Exception:
    msg = f'Could not load {_item_name(dataset, i)}: {e}' if not isinstance(e, KeyError) else \
        f'Could not load {_item_name(dataset, i)}: {e.args[0] if e.args else e}'
    try:
        return type(e)(msg)
    except Exception:
        return ItemLoadError(msg)


class _Collator(_OwnedBy):
    """collate_fn: `dl.collate`, then tensor types stripped to cross processes (restored by `dl._finish`)."""

    def __call__(self, indexed: list[tuple[int, Any]]) -> Any:
        idxs = [i for i, _ in indexed]
        samples = [s for _, s in indexed]
        failed = next((s for s in samples if isinstance(s, _Failure)), None)
        if failed is not None:
            return failed
        try:
            b = self.dl.collate(samples, idxs)
        except Exception as e:
            return _Failure(e)
        if not isinstance(b, tuple):
            return as_plain(b), type(b)
        return tuple(as_plain(o) for o in b), tuple(type(o) for o in b)


def collate(samples: Sequence[Any], names: Sequence[str] | None = None) -> Any:
    """Stack each tuple position of `samples` into one tensor; a clear error if they can't be. Samples that are
    not tuples (or lists) are stacked as they are, into one bare batch."""
    if not samples:
        raise CollateError('Cannot collate an empty list of samples.')
    if not isinstance(samples[0], (tuple, list)):
        return _collate_column(list(samples), 0, names)
    return tuple(_collate_column([s[k] for s in samples], k, names) for k in range(len(samples[0])))


def _collate_column(col: list, k: int, names: Sequence[str] | None) -> Any:
    first = col[0]
    if isinstance(first, torch.Tensor):
        shapes = [tuple(o.shape) for o in col]
        if len(set(shapes)) > 1:
            raise CollateError(collate_error(col, k, names))
        plain = [o.as_subclass(torch.Tensor) for o in col]
        out = None
        if tud.get_worker_info() is not None:
            # Stack straight into shared memory so the batch crosses to the main process without a copy.
            storage = first.untyped_storage()._new_shared(len(col) * first.numel() * first.element_size())
            out = first.new(storage).resize_(len(col), *first.shape)
        stacked = torch.stack(plain, out=out)
        return stacked.as_subclass(type(first)) if type(first) is not torch.Tensor else stacked
    if isinstance(first, numbers.Number):  # Python's and numpy's
        return torch.tensor(col)
    if isinstance(first, (str, bytes, Path)):
        return list(col)
    raise CollateError(f'{type(first).__name__} is not collatable (element {k} of each sample). '
                       'Add an item transform that turns it into a tensor, e.g. ToTensor() for images.')


def collate_error(col: list, k: int, names: Sequence[str] | None) -> str:
    """The message for tensors of different shapes: which items, which shapes (odd ones first), and the fix."""
    # blocks knows no image types; the name is enough to word the message for images.
    kind = 'images' if type(col[0]).__name__.startswith('TensorImage') else f'{k}-th members of the samples'
    names = names or [f'item {i}' for i in range(len(col))]
    shapes = [tuple(o.shape) for o in col]
    common = max(set(shapes), key=shapes.count)
    order = [i for i, s in enumerate(shapes) if s != common] + [i for i, s in enumerate(shapes) if s == common]
    width = max(len(n) for n in names)
    lines = [f'  {names[i]:<{width}}  {"x".join(map(str, shapes[i]))}' for i in order]
    fix = ('Add an item transform that makes them one size, e.g. item_tfms=Resize(460).'
           if kind == 'images' else 'Make every sample the same shape with an item transform (crop, pad or resize).')
    return (f'Could not collate the {kind} of this batch: they have different sizes.\n'
            + '\n'.join(lines[:8]) + (f'\n  ... and {len(lines) - 8} more' if len(lines) > 8 else '')
            + f'\n{fix}')


class NoBatchWarning(UserWarning):
    """The training loader would yield no batch (its split is smaller than `bs`); `fit` refuses to start."""


def _split_name(split_idx: int | None) -> str:
    return {0: 'training', 1: 'validation'}.get(split_idx, 'data')


def _fitting_bs(n: int) -> int:
    # The largest power of two that fits, as batch sizes usually are.
    return 1 << (n.bit_length() - 1)


class DataLoaders:
    """The train and valid DataLoader (and any more), with what the Learner needs: vocab, c, loss, device."""

    def __init__(self, *loaders: DataLoader, path: str | Path = '.', device: torch.device | str | None = None):
        self.loaders, self.path = list(loaders), Path(path)
        if device is not None:
            self.to(device)

    @classmethod
    def from_dsets(cls, *dsets: Any, path: str | Path = '.', bs: int = 64, shuffle_train: bool = True,
                   device: torch.device | str | None = None, after_item=None, before_batch=None, after_batch=None,
                   num_workers: int | None = None, valid_bs: int | None = None, dl_type: type | None = None,
                   **kwargs) -> DataLoaders:
        """One loader (a `dl_type`, default DataLoader) per dataset: the first shuffles and drops its last
        partial batch, the others keep order."""
        device = default_device() if device is None else device
        dl_type = DataLoader if dl_type is None else dl_type
        loaders = [dl_type(ds, bs=bs if i == 0 else (valid_bs or bs), shuffle=shuffle_train and i == 0,
                              drop_last=shuffle_train and i == 0, num_workers=num_workers, after_item=after_item,
                              before_batch=before_batch, after_batch=after_batch, device=device, split_idx=i,
                              **kwargs)
                   for i, ds in enumerate(dsets)]
        reason = loaders[0].no_batch_reason() if loaders else None
        if reason is not None:
            warnings.warn(reason, NoBatchWarning, stacklevel=2)
        elif loaders:
            # batch transforms that learn from data (Normalize() without stats) see one training batch, through
            # the transforms before them; the loaders share the transforms, so every split gets the same stats
            loaders[0].after_batch.setup(loaders[0])
        return cls(*loaders, path=path)

    def __getitem__(self, i: int) -> DataLoader:
        return self.loaders[i]

    def __len__(self) -> int:
        return len(self.loaders)

    @property
    def train(self) -> DataLoader:
        return self.loaders[0]

    @property
    def valid(self) -> DataLoader:
        return self.loaders[1]

    @property
    def train_ds(self) -> Any:
        return self.train.dataset

    @property
    def valid_ds(self) -> Any:
        return self.valid.dataset

    @property
    def dataset(self) -> Any:
        return self.train.dataset

    @property
    def vocab(self) -> Any:
        return self.train_ds.vocab

    @property
    def c(self) -> int | None:
        return getattr(self.train_ds, 'c', None)

    @property
    def n_inp(self) -> int:
        return self.train.n_inp

    @property
    def loss_func(self) -> Callable | None:
        return getattr(self.train_ds, 'loss_func', None)

    @property
    def device(self) -> torch.device | None:
        return self.train.device

    @property
    def bs(self) -> int:
        return self.train.bs

    def to(self, device: torch.device | str) -> DataLoaders:
        for dl in self.loaders:
            dl.to(device)
        return self

    def cpu(self) -> DataLoaders:
        return self.to('cpu')

    def cuda(self) -> DataLoaders:
        return self.to('cuda')

    def add_tfms(self, tfms: Sequence[Callable], event: str = 'after_batch', loaders: Sequence[int] | None = None) -> None:
        """Add transforms to the given `event` pipeline of each loader (all by default)."""
        for i in (range(len(self.loaders)) if loaders is None else loaders):
            self.loaders[i].add_tfms(tfms, event)

    @property
    def after_batch(self) -> Pipeline:
        return self.train.after_batch

    def one_batch(self) -> tuple:
        return self.train.one_batch()

    def show_batch(self, b: tuple | None = None, max_n: int = 9, nrows: int | None = None, ncols: int | None = None,
                   figsize: tuple | None = None, **kwargs) -> list:
        return self.train.show_batch(b, max_n=max_n, nrows=nrows, ncols=ncols, figsize=figsize, **kwargs)

    def decode(self, b: tuple) -> tuple:
        return self.valid.decode(b)

    def decode_batch(self, b: tuple, max_n: int = 9) -> list[tuple]:
        return self.valid.decode_batch(b, max_n=max_n)

    def test_dl(self, test_items: Sequence, with_labels: bool = False, bs: int | None = None, **kwargs) -> DataLoader:
        """A loader over new items with the validation transforms (inputs only unless `with_labels`)."""
        valid = self.valid
        ds = valid.dataset.new_items(test_items, with_labels=with_labels) if hasattr(valid.dataset, 'new_items') \
            else test_items
        return valid.new(ds, bs=bs or valid.bs, shuffle=False, drop_last=False, split_idx=1, **kwargs)

    def new_empty(self) -> DataLoaders:
        return type(self)(*[dl.new(dl.dataset) for dl in self.loaders], path=self.path)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(' + ', '.join(repr(dl) for dl in self.loaders) + ')'
