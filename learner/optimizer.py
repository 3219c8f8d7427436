"""The optimizer: per-group hyper-parameters in fastai's names over a torch optimizer, freezable by group."""
from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

__all__ = ['Optimizer', 'Adam', 'SGD', 'lr_range', 'trainable_params', 'norm_bias_params', 'norm_types']

norm_types: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d,
    nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.RMSNorm)


class Optimizer:
    """A torch optimizer seen through fastai's names (lr, mom, sqr_mom, eps, wd), one torch group per group.

    Weight decay is applied here, per parameter, so norm params and biases can skip it."""

    def __init__(self, params: Iterable, opt_cls: type[torch.optim.Optimizer], lr: float | slice | Sequence = 1e-3,
                 wd: float = 0.0, decouple_wd: bool = True, **torch_kwargs):
        self.param_lists = _as_groups(params)
        self.decouple_wd = decouple_wd
        self.torch_opt = opt_cls([{'params': g} for g in self.param_lists], lr=0.0, **torch_kwargs)
        self._decayed = [list(g) for g in self.param_lists]
        self._always_train: set[int] = set()
        self.frozen_idx = 0
        self.set_hyper('wd', wd)
        self.set_hyper('lr', lr)

    @property
    def param_groups(self) -> list[dict]:
        """The torch optimizer's param groups (one per splitter group)."""
        return self.torch_opt.param_groups

    @property
    def hypers(self) -> list[dict[str, float]]:
        """One dict of hyper-parameters per group, in fastai's names."""
        return [{name: self.hyper(name, i) for name in self._names()} for i in range(len(self.param_lists))]

    def hyper(self, name: str, group: int = -1) -> float:
        """The value of hyper-parameter `name` in group `group` (the last by default)."""
        g = self.torch_opt.param_groups[group]
        key, idx = _torch_key(g, name)
        return g[key] if idx is None else g[key][idx]

    def set_hyper(self, name: str, value) -> None:
        """Set `name` in every group: a number, one value per group, or (for lr) a slice, see `lr_range`."""
        groups = self.torch_opt.param_groups
        values = _per_group(name, value, len(groups))
        for g, v in zip(groups, values):
            key, idx = _torch_key(g, name)
            if idx is None:
                g[key] = v
            else:
                pair = list(g[key])
                pair[idx] = v
                g[key] = tuple(pair)

    def set_hypers(self, **kwargs) -> None:
        """`set_hyper` for each keyword."""
        for name, value in kwargs.items():
            self.set_hyper(name, value)

    @torch.no_grad()
    def step(self) -> None:
        """Weight decay on the params that take it, then the torch optimizer's step."""
        for group, decayed in zip(self.torch_opt.param_groups, self._decayed):
            wd = group['wd']
            if not wd:
                continue
            ps = [p for p in decayed if p.grad is not None]
            if not ps:
                continue
            if self.decouple_wd:
                torch._foreach_mul_(ps, 1 - group['lr'] * wd)
            else:
                torch._foreach_add_([p.grad for p in ps], ps, alpha=wd)
        self.torch_opt.step()

    def zero_grad(self) -> None:
        """Drop the gradients (set to None, which also skips frozen params in the next step)."""
        self.torch_opt.zero_grad(set_to_none=True)

    def exclude_from_wd(self, params: Iterable[torch.Tensor]) -> None:
        """Never apply weight decay to `params` (norm params and biases by default)."""
        skip = {id(p) for p in params}
        self._decayed = [[p for p in g if id(p) not in skip] for g in self.param_lists]

    def keep_trainable(self, params: Iterable[torch.Tensor]) -> None:
        """Keep `params` trainable even in frozen groups (norm params, for `train_bn`)."""
        self._always_train = {id(p) for p in params}
        self.freeze_to(self.frozen_idx)

    def freeze_to(self, n: int) -> None:
        """Freeze the groups before group `n` (negative counts from the end); train the rest."""
        n_groups = len(self.param_lists)
        idx = n if n >= 0 else n_groups + n
        if idx >= n_groups:
            warnings.warn(f"freeze_to({n}) freezes all {n_groups} parameter groups: nothing will train "
                          "except norm params kept trainable.")
        self.frozen_idx = max(0, idx)
        for i, group in enumerate(self.param_lists):
            for p in group:
                p.requires_grad_(i >= self.frozen_idx or id(p) in self._always_train)

    def freeze(self) -> None:
        """Freeze every group but the last."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every group."""
        self.freeze_to(0)

    def clear_state(self) -> None:
        """Forget the optimizer's running statistics (moments, momentum buffers)."""
        self.torch_opt.state.clear()

    def state_dict(self) -> dict:
        """The torch optimizer's state dict (moments, step counts, per-group hypers) and `frozen_idx`."""
        return {**self.torch_opt.state_dict(), 'frozen_idx': self.frozen_idx}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned, freezing the same groups (a plain torch state dict works too)."""
        state = dict(state)
        frozen_idx = state.pop('frozen_idx', None)
        self.torch_opt.load_state_dict(state)
        if frozen_idx is not None:
            self.freeze_to(frozen_idx)

    def _names(self) -> list[str]:
        g = self.torch_opt.param_groups[0]
        names = ['lr']
        if 'betas' in g or 'momentum' in g:
            names.append('mom')
        if 'betas' in g or 'alpha' in g:
            names.append('sqr_mom')
        if 'eps' in g:
            names.append('eps')
        return names + ['wd']

    def __repr__(self) -> str:
        return f'Optimizer({type(self.torch_opt).__name__}, {len(self.param_lists)} groups, {self.hypers})'


def Adam(params: Iterable, lr: float | slice = 1e-3, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
         wd: float = 0.01, decouple_wd: bool = True) -> Optimizer:
    """Adam with fastai's defaults: betas (0.9, 0.99), eps 1e-5, decoupled weight decay 0.01 (AdamW)."""
    return Optimizer(params, torch.optim.Adam, lr=lr, wd=wd, decouple_wd=decouple_wd, betas=(mom, sqr_mom), eps=eps)


def SGD(params: Iterable, lr: float | slice = 1e-3, mom: float = 0.0, wd: float = 0.0,
        decouple_wd: bool = True) -> Optimizer:
    """SGD with momentum `mom` (buffer = mom*buffer + grad, as torch) and decoupled weight decay."""
    return Optimizer(params, torch.optim.SGD, lr=lr, wd=wd, decouple_wd=decouple_wd, momentum=mom)


def lr_range(lr: float | slice | Sequence[float], n_groups: int) -> list[float]:
    """Per-group lrs: `slice(a, b)` -> geometric from a to b; `slice(b)` -> b/10 for all groups but the last."""
    if isinstance(lr, slice):
        if lr.stop is None:
            raise ValueError(f"lr={lr} has no stop: use slice(max_lr) or slice(min_lr, max_lr).")
        if not lr.start:
            return [lr.stop / 10] * (n_groups - 1) + [float(lr.stop)]
        if n_groups == 1:
            return [float(lr.stop)]
        step = (lr.stop / lr.start) ** (1 / (n_groups - 1))
        return [float(lr.start * step ** i) for i in range(n_groups)]
    return _per_group('lr', lr, n_groups)


def trainable_params(model: nn.Module) -> list[nn.Parameter]:
    """The default splitter: every parameter that requires grad, as one group."""
    return [p for p in model.parameters() if p.requires_grad]


def norm_bias_params(model: nn.Module, with_bias: bool = True) -> list[nn.Parameter]:
    """Parameters of normalisation layers, plus every layer's `bias` when `with_bias`."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, norm_types):
            found.update((id(p), p) for p in module.parameters(recurse=False))
        elif with_bias and isinstance(getattr(module, 'bias', None), nn.Parameter):
            found[id(module.bias)] = module.bias
    return list(found.values())


def _as_groups(params: Iterable) -> list[list[torch.Tensor]]:
    params = list(params)
    if not params or isinstance(params[0], torch.Tensor):
        return [params]
    return [list(g) for g in params]


def _per_group(name: str, value, n_groups: int) -> list:
    if isinstance(value, slice):
        if name != 'lr':
            raise ValueError(f"{name}={value}: only lr accepts a slice.")
        return lr_range(value, n_groups)
    if isinstance(value, (list, tuple, np.ndarray)):
        values = np.asarray(value, dtype=float).reshape(-1).tolist()
        if len(values) == 1:
            return values * n_groups
        if len(values) != n_groups:
            raise ValueError(f"{name} has {len(values)} values for {n_groups} parameter groups: "
                             f"give one value, or one per group.")
        return values
    return [float(value)] * n_groups


def _torch_key(group: dict, name: str) -> tuple[str, int | None]:
    # fastai's names over torch's keys: mom is beta1 (Adam) or momentum (SGD); sqr_mom is beta2 or alpha.
    if name == 'mom':
        return ('betas', 0) if 'betas' in group else ('momentum', None)
    if name == 'sqr_mom':
        return ('betas', 1) if 'betas' in group else ('alpha', None)
    return name, None
