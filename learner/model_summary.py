"""`learn.summary()`: the model's layers with their output shapes and parameter counts, then the training setup."""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn as nn

from blocklearn.blocks.rng import get_rng_state, set_rng_state

__all__ = ['model_summary', 'layer_info', 'LayerInfo', 'ModelSummary']

_WIDTH = 80


class LayerInfo(NamedTuple):
    """One call of a leaf module: its name in the model, type, output shape (batch size first), own parameters."""
    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    trainable: bool | None  # None when it has no parameters


class ModelSummary(str):
    """The summary's text (shown as is in a notebook) with its numbers as attributes."""
    layers: list[LayerInfo]
    input_shape: tuple[int, ...]
    total_params: int
    trainable_params: int

    def __repr__(self) -> str:
        return str.__str__(self)


def model_summary(learn: Any) -> ModelSummary:
    """The model's leaf layers (name, output shape, parameters, trainable), totals, optimizer, loss and callbacks.

    Runs the model once, in eval mode without gradients, on the first item of `dls.train.one_batch()`; the
    model's train/eval modes and the random generators are as they were afterwards."""
    xb = _first_inputs(learn)
    bs = xb[0].shape[0] if xb and isinstance(xb[0], torch.Tensor) and xb[0].ndim else 1
    layers = layer_info(learn.model, *xb, bs=bs)
    params = list(learn.model.parameters())
    total, trainable = sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
    name_w = max([len(f'{i.name} ({i.type})') for i in layers] + [20]) + 2
    lines = [f'{type(learn.model).__name__} (Input shape: {_shape(xb[0].shape) if xb else "?"})', '=' * _WIDTH,
             f"{'Layer (type)':<{name_w}}{'Output Shape':<22}{'Param #':<12}Trainable", '=' * _WIDTH]
    for i in layers:
        n, trn = f'{i.params:,}' if i.params else '', '' if i.trainable is None else i.trainable
        lines.append(f"{f'{i.name} ({i.type})':<{name_w}}{_shape(i.output_shape):<22}{n:<12}{trn}".rstrip())
    lines += ['_' * _WIDTH, '', f'Total params: {total:,}', f'Total trainable params: {trainable:,}',
              f'Total non-trainable params: {total - trainable:,}', '',
              f'Optimizer used: {getattr(learn.opt_func, "__name__", learn.opt_func)}',
              f'Loss function: {learn.loss_func}', '']
    if learn.opt is not None:
        frozen = learn.opt.frozen_idx
        lines += ['Model unfrozen' if frozen == 0 else f'Model frozen up to parameter group #{frozen}', '']
    lines += ['Callbacks:'] + [f'  - {type(cb).__name__}' for cb in sorted(learn.cbs, key=lambda cb: cb.order)]
    res = ModelSummary('\n'.join(lines))
    res.layers, res.input_shape = layers, tuple(xb[0].shape) if xb else ()
    res.total_params, res.trainable_params = total, trainable
    return res


def layer_info(model: nn.Module, *xb: torch.Tensor, bs: int | None = None) -> list[LayerInfo]:
    """One LayerInfo per call of each leaf module (and each module with parameters of its own) on the first
    item of `xb`, shapes reported with `bs` items; the model's modes are restored afterwards."""
    named = [(n, m) for n, m in model.named_modules()
             if not list(m.children()) or any(True for _ in m.parameters(recurse=False))]
    seen: set[int] = set()
    infos: list[LayerInfo] = []

    def hook(name: str):
        def record(m: nn.Module, inp: Any, out: Any) -> None:
            own = list(m.parameters(recurse=False))
            first = id(m) not in seen  # a module called twice counts its parameters once
            seen.add(id(m))
            n = sum(p.numel() for p in own) if first else 0
            trainable = (all(p.requires_grad for p in own) if own else None) if first else None
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            if shape and bs is not None:
                shape = (bs, *shape[1:])
            infos.append(LayerInfo(name or type(m).__name__, type(m).__name__, shape, n, trainable))
        return record

    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook(n)) for n, m in named]
    try:
        model.eval()
        with torch.no_grad():
            model(*[x[:1] if isinstance(x, torch.Tensor) and x.ndim else x for x in xb])
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return infos


def _first_inputs(learn: Any) -> tuple:
    # one_batch shuffles and augments with the global generators: put them back so training is unaffected
    state = get_rng_state()
    try:
        dl = learn.dls.train
        b = dl.one_batch() if hasattr(dl, 'one_batch') else next(iter(dl))
    finally:
        set_rng_state(state)
    n_inp = getattr(dl, 'n_inp', getattr(learn.dls, 'n_inp', 1))
    p = next(learn.model.parameters(), None)
    device = p.device if p is not None else None
    return tuple(_plain(x, device) for x in tuple(b)[:n_inp])


def _plain(x: Any, device: torch.device | None) -> Any:
    if not isinstance(x, torch.Tensor):
        return x
    x = x.as_subclass(torch.Tensor)
    return x.to(device) if device is not None else x


def _shape(shape: Any) -> str:
    return ' x '.join(str(s) for s in shape) if shape else ''
