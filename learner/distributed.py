"""Training across the processes torchrun starts, on one machine or several: `distrib_ctx` (a function of a
learner, `Learner.distrib_ctx` calls it), and `on_rank0` for what only one process may write.

Under `with learn.distrib_ctx():` N processes with `bs` each train, step by step, on the samples one process with
`N * bs` would, and validate, predict and interpret the whole validation set once, gathered in dataset order: see
callbacks/distributed.py. Outside torchrun the context does nothing, so one script runs either way."""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import warnings
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn

from blocklearn.blocks.console import logger as status_logger
from blocklearn.blocks.shard import Shard
from blocklearn.callbacks.csv_logger import CSVLogger
from blocklearn.callbacks.distributed import DistributedTrainer, broadcast_seed, num_distrib, rank_distrib
from blocklearn.callbacks.progress import ProgressCallback
from blocklearn.callbacks.show_graph import ShowGraphCallback

__all__ = ['distrib_ctx', 'setup_distrib', 'teardown_distrib', 'on_rank0', 'started_by_torchrun', 'rank0_only_cbs']

_groups_created = itertools.count()

# Callbacks that only show or write: on every rank but 0 they get no events inside distrib_ctx.
rank0_only_cbs: tuple[type, ...] = (ProgressCallback, CSVLogger, ShowGraphCallback)


def started_by_torchrun() -> bool:
    """Whether torchrun (or another launcher that sets $RANK and $WORLD_SIZE) started this process."""
    return 'RANK' in os.environ and 'WORLD_SIZE' in os.environ


def setup_distrib(device: torch.device) -> bool:
    """Join the process group torchrun's environment describes: NCCL for a CUDA `device`, gloo otherwise.

    Returns whether this call created it (a group the caller initialised is left to the caller)."""
    if dist.is_initialized():
        return False
    store, rank, world = next(dist.rendezvous('env://'))
    # Keys of their own for each group this process creates: on torchrun's store a second group (a second
    # distrib_ctx) would otherwise read the first one's addresses, closed since, and fail to connect.
    restart = os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')
    store = dist.PrefixStore(f'blocklearn/{restart}/{next(_groups_created)}', store)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
        dist.init_process_group('nccl', store=store, rank=rank, world_size=world, device_id=device)
    else:
        dist.init_process_group('gloo', store=store, rank=rank, world_size=world)
    return True


def teardown_distrib() -> None:
    """Leave the process group, if there is one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def on_rank0(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`f(*args, **kwargs)` on rank 0 only (in every process torchrun did not start); its result there, else None.

    Inside a process group the other ranks wait at a barrier until rank 0 is done, so they may read what it wrote
    (`learn.save`, then `learn.load` on every rank). Every rank must call it: the barrier waits for them all."""
    out = f(*args, **kwargs) if rank_distrib() == 0 else None
    if dist.is_available() and dist.is_initialized():
        _barrier()
    return out


@contextlib.contextmanager
def distrib_ctx(learn: Any, sync_bn: bool = False, **ddp_kwargs: Any) -> Iterator[Any]:
    """A `with` block in which `learn` trains with DistributedDataParallel across the processes torchrun started.

    The process group comes from torchrun's environment (NCCL and `cuda:$LOCAL_RANK` when the loaders are on CUDA,
    gloo on CPUs) and is left on exit, also on an error; outside torchrun this does nothing. `bs` stays per
    process. Only rank 0 draws bars and the results table and writes CSVLogger files, checkpoints and exports.
    `sync_bn=True` turns BatchNorm into SyncBatchNorm (GPUs only) for the block; off by default, as in PyTorch's
    DDP (fastai's default is on): it costs a collective per BatchNorm layer per batch. `ddp_kwargs` go to
    `DistributedDataParallel` (e.g. find_unused_parameters=True). An error on one rank stops the job: torchrun
    ends the others and reports the rank, whose error carries a note naming it."""
    if not started_by_torchrun():
        yield learn
        return
    rank, world = rank_distrib(), num_distrib()
    device = _rank_device(learn)
    with contextlib.ExitStack() as undo:
        if setup_distrib(device):
            undo.callback(teardown_distrib)  # last out, also after an error
        try:
            _on_device(learn, device, undo)
            if sync_bn:
                _use_sync_bn(learn.model, device, undo)
            shard = Shard(rank, world, share_seed=broadcast_seed)
            _shard_loaders(learn, shard, undo)
            trainer = DistributedTrainer(shard, device_ids=[device.index] if device.type == 'cuda' else None,
                                         **ddp_kwargs)
            learn.add_cb(trainer)
            undo.callback(learn.remove_cb, trainer)
            if rank != 0:
                _quiet(learn, undo)
            yield learn
            _barrier()  # no rank leaves the group while another still needs it
        except BaseException as e:
            _name_rank(e, rank, world)
            raise


def _rank_device(learn: Any) -> torch.device:
    """This rank's device: `cuda:$LOCAL_RANK` when the loaders (or the model) are on CUDA, else theirs."""
    device = getattr(learn.dls, 'device', None)
    if device is None:
        p = next(learn.model.parameters(), None)
        device = p.device if p is not None else torch.device('cpu')
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    if device.type != 'cpu':
        raise ValueError(f"distrib_ctx trains on CUDA GPUs (NCCL) or CPUs (gloo); the loaders are on {device}. "
                         f"Build them with device='cpu' or on CUDA.")
    return device


def _on_device(learn: Any, device: torch.device, undo: contextlib.ExitStack) -> None:
    if device.type != 'cuda':
        return
    old = learn.dls.device
    learn.dls.to(device)
    learn.model.to(device)
    if old is not None:
        undo.callback(learn.dls.to, old)


def _use_sync_bn(model: nn.Module, device: torch.device, undo: contextlib.ExitStack) -> None:
    if device.type != 'cuda':
        raise ValueError("distrib_ctx(sync_bn=True) needs GPUs: torch's SyncBatchNorm runs on CUDA devices only. "
                         "On CPUs use sync_bn=False (each process normalises over its own bs items).")
    # Replaced in their parents and put back on exit; SyncBatchNorm shares their parameters and, on this device,
    # their buffers, and the trained state is copied back into the originals.
    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm)]
    for parent, name, child in swaps:
        setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))

    def revert() -> None:
        for parent, name, child in swaps:
            synced = getattr(parent, name)
            child.load_state_dict(synced.state_dict())
            child.train(synced.training)
            setattr(parent, name, child)
    undo.callback(revert)


def _shard_loaders(learn: Any, shard: Shard, undo: contextlib.ExitStack) -> None:
    loaders = list(getattr(learn.dls, 'loaders', []))
    for dl in loaders:
        if hasattr(dl, 'shard') and dl.shard is None:
            dl.shard = shard
            undo.callback(setattr, dl, 'shard', None)
    if loaders and not hasattr(loaders[0], 'shard'):
        warnings.warn(f"distrib_ctx shards blocklearn DataLoaders only; the training loader is a "
                      f"{type(loaders[0]).__name__}, so every rank trains on all of it.", stacklevel=4)


def _quiet(learn: Any, undo: contextlib.ExitStack) -> None:
    """Rank 0 speaks for the job: no bars, table, CSV or graph here, and only warnings from the status logger."""
    undo.enter_context(learn.muted_cbs(rank0_only_cbs))
    undo.enter_context(learn.no_logging())
    undo.callback(status_logger.setLevel, status_logger.level)
    status_logger.setLevel(max(status_logger.level, logging.WARNING))


def _barrier() -> None:
    if dist.get_backend() == 'nccl':
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def _name_rank(e: BaseException, rank: int, world: int) -> None:
    """Say which rank raised: a note on the traceback, and torchrun's error file, which its summary prints."""
    if isinstance(e, GeneratorExit):
        return
    if hasattr(e, 'add_note'):  # Python 3.11+
        e.add_note(f'(raised on rank {rank} of {world})')
    if isinstance(e, Exception):
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler
        ErrorHandler().record_exception(e)
