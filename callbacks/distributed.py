"""DistributedTrainer: the loop's side of training across processes (torchrun, DistributedDataParallel).

Each loader yields this rank's part of every global batch (`Shard`); a training loss is weighted so that the
averaged gradients are those of the whole global batch; a validation batch's predictions, targets and losses are
gathered from every rank, in dataset order and without padding, before any other callback sees them. So metrics,
`get_preds`, `tta` and interpretation give the single-process values, and all ranks take the same decisions."""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from blocklearn.blocks.shard import Shard
from blocklearn.callbacks.core import Callback
from blocklearn.callbacks.gather_preds import GatherPreds

__all__ = ['DistributedTrainer', 'rank_distrib', 'num_distrib', 'gather_rows', 'broadcast_seed']


def rank_distrib() -> int:
    """This process's rank under torchrun (`$RANK`), 0 in a process torchrun did not start."""
    return int(os.environ.get('RANK', '0'))


def num_distrib() -> int:
    """The number of processes under torchrun (`$WORLD_SIZE`), 0 in a process torchrun did not start (fastai's)."""
    return int(os.environ.get('WORLD_SIZE', '0'))


def broadcast_seed(seed: int) -> int:
    """Rank 0's `seed`, on every rank: the epoch seed all ranks shuffle with (a Shard's `share_seed`)."""
    t = torch.tensor([seed], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())


def gather_rows(t: Any, sizes: list[int]) -> Any:
    """The first `sizes[r]` rows of `t` on each rank r, concatenated in rank order, on every rank.

    `t` may be a tensor (its type kept), a tuple or list of them, or a list of objects; ranks may hold more rows
    than their size (padding), which are dropped. Collective: every rank must call it with the same `sizes`."""
    if isinstance(t, (tuple, list)) and t and all(isinstance(o, torch.Tensor) for o in t):
        return type(t)(gather_rows(o, sizes) for o in t)
    if not isinstance(t, torch.Tensor):
        return _gather_objects(list(t), sizes)
    if t.ndim == 0:
        raise ValueError(f'gather_rows needs one row per item, got a 0-d tensor ({t}).')
    typ, plain = type(t), t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t
    dtype = plain.dtype
    if dtype == torch.bool:  # gloo does not reduce or gather bools
        plain = plain.to(torch.uint8)
    rows = max(max(sizes), 1)
    padded = plain.new_zeros((rows, *plain.shape[1:]))
    padded[:len(plain)] = plain
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    out = torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(dtype)
    return out.as_subclass(typ) if typ is not torch.Tensor else out


class DistributedTrainer(Callback):
    """Shard each loader of the loop, wrap the model in DDP for each fit, weight and gather as the module says.

    `distrib_ctx` adds it; `ddp_kwargs` go to `DistributedDataParallel` (e.g. `find_unused_parameters=True`).
    A loader that is not a blocklearn DataLoader cannot be sharded: every rank then runs all of it, and nothing
    is gathered (the values are still the single-process ones, computed on each rank)."""
    # First, so every other callback (TerminateOnNaN, the Recorder, trackers) sees global values and all ranks
    # decide alike; the model is wrapped at the first before_train, once ChannelsLast has changed its layout.
    order = -20

    def __init__(self, shard: Shard, device_ids: list[int] | None = None, **ddp_kwargs: Any):
        self.shard, self.device_ids, self.ddp_kwargs = shard, device_ids, ddp_kwargs
        self._plain_model: Any = None
        self._fit_sharded: Any = None
        self._phase_sharded: list = []
        self._sharding = False

    # ---- the model ----------------------------------------------------------------------------------------
    def before_fit(self) -> None:
        # Sharded already by distrib_ctx, unless the dls were replaced: TrainEvalCallback counts its batches next.
        if _set_shard(self.learn.dls.train, self.shard):
            self._fit_sharded = self.learn.dls.train

    def _wrap(self) -> None:
        # Wrapped anew for each fit: DDP syncs the gradients of the parameters trainable when it is built, and
        # fine_tune unfreezes the body between its two fits.
        learn = self.learn
        if self._plain_model is None:
            self._plain_model = learn.model
            learn.model = _DDP(learn.model, device_ids=self.device_ids, **self.ddp_kwargs)

    def after_fit(self) -> None:
        learn, recorder = self.learn, getattr(self.learn, 'recorder', None)
        if getattr(learn, 'lr_finder', None) is not None and recorder is not None:
            # Every rank suggests from rank 0's curve (the same one already: its losses are global).
            curve = [recorder.lrs, recorder.losses]
            dist.broadcast_object_list(curve, src=0, device=_comm_device())
            recorder.lrs, recorder.losses = curve

    def cleanup_fit(self) -> None:
        if self._plain_model is not None:
            self.learn.model, self._plain_model = self._plain_model, None
        if self._fit_sharded is not None:
            self._fit_sharded.shard, self._fit_sharded = None, None

    # ---- the loaders --------------------------------------------------------------------------------------
    def before_train(self) -> None:
        self._wrap()
        self._begin_phase()

    def before_validate(self) -> None:
        self._begin_phase()

    def cleanup_train(self) -> None:
        self._end_phase()

    def cleanup_validate(self) -> None:
        self._end_phase()

    def _begin_phase(self) -> None:
        dl = self.learn.dl
        if hasattr(dl, 'shard') and dl.shard is None:
            _set_shard(dl, self.shard)
            self._phase_sharded.append(dl)
        self._sharding = getattr(dl, 'shard', None) is self.shard

    def _end_phase(self) -> None:
        while self._phase_sharded:
            self._phase_sharded.pop().shard = None
        self._sharding = False

    # ---- each batch ---------------------------------------------------------------------------------------
    def after_loss(self) -> None:
        if not self._sharding:
            return
        learn = self.learn
        dl = learn.dl
        sizes = self.shard.sizes(len(dl.dataset), dl.bs, dl.drop_last, learn.iter)
        if learn.training:
            self._weigh_loss(sizes)
            recorder = getattr(learn, 'recorder', None)
            if recorder is not None and recorder.train_metrics:
                self._gather_batch(sizes, with_input=False, with_loss=False)
        else:
            self._gather_batch(sizes, with_input=any(isinstance(cb, GatherPreds) and cb.with_input
                                                     for cb in learn.cbs), with_loss=True)

    def _weigh_loss(self, sizes: list[int]) -> None:
        # DDP averages the ranks' gradients; a rank holding m_r of a global batch of m items weighs its mean loss
        # by world * m_r / m, so that average is the gradient of the mean over the m (1 when all hold bs).
        learn, m, mine = self.learn, sum(sizes), sizes[self.shard.rank]
        if learn.loss_grad is not None and len(set(sizes)) > 1:
            learn.loss_grad = learn.loss_grad * (self.shard.world * mine / m)
        if learn.loss is not None:
            learn.loss = _global_mean(learn.loss, mine, m)

    def _gather_batch(self, sizes: list[int], with_input: bool, with_loss: bool) -> None:
        learn = self.learn
        n_inp = len(learn.xb)
        learn.pred = gather_rows(learn.pred, sizes)
        yb = tuple(gather_rows(y, sizes) for y in learn.yb)
        xb = tuple(gather_rows(x, sizes) for x in learn.xb) if with_input else learn.xb
        if with_loss and learn.loss is not None:
            learn.loss = _global_mean(learn.loss, sizes[self.shard.rank], sum(sizes)) if learn.loss.ndim == 0 \
                else gather_rows(learn.loss, sizes)
        # The loader's batch, typed for decoding: gathered from the model's tensors, on the loader's device.
        b = learn.b
        inputs = tuple(_like(x, o) for x, o in zip(xb, b[:n_inp])) if with_input else b[:n_inp]
        learn.b = inputs + tuple(_like(y, o) for y, o in zip(yb, b[n_inp:]))
        learn.xb, learn.yb = xb, yb


class _DDP(DistributedDataParallel):
    """DistributedDataParallel whose state dict is the wrapped model's (no `module.` prefix): a checkpoint saved
    during a fit, lr_find's snapshot and SaveModelCallback's reload all see the keys of the plain model."""

    def state_dict(self, *args: Any, **kwargs: Any) -> dict:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.load_state_dict(*args, **kwargs)


def _set_shard(dl: Any, shard: Shard) -> bool:
    """Give `dl` the shard if it is a loader without one; whether it did."""
    if hasattr(dl, 'shard') and dl.shard is None:
        dl.shard = shard
        return True
    return False


def _global_mean(loss: torch.Tensor, mine: int, m: int) -> torch.Tensor:
    """The mean of a batch-mean loss over the whole global batch of `m` items (this rank holds `mine`)."""
    total = loss.detach().double() * mine
    dist.all_reduce(total)
    return (total / m).to(loss.dtype)


def _like(t: Any, ref: Any) -> Any:
    """`t` on `ref`'s device and of its tensor type (a gathered target back as the loader typed it)."""
    if not (isinstance(t, torch.Tensor) and isinstance(ref, torch.Tensor)):
        return t
    t = t.to(ref.device)
    return t.as_subclass(type(ref)) if type(ref) is not torch.Tensor else t


def _gather_objects(items: list, sizes: list[int]) -> list:
    parts: list = [None] * len(sizes)
    dist.all_gather_object(parts, items)
    return [o for part, s in zip(parts, sizes) for o in part[:s]]


def _comm_device() -> torch.device:
    # NCCL moves CUDA tensors only (this rank's GPU, set by distrib_ctx); gloo moves CPU tensors.
    return torch.device('cuda', torch.cuda.current_device()) if dist.get_backend() == 'nccl' else torch.device('cpu')
