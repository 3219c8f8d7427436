"""Inference, as functions of a learner: `get_preds` over a loader and `predict` on one item.

Both run the learner's own validation loop (so callbacks such as MixedPrecision apply), with GatherPreds added."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F

from blocklearn.blocks.basics import noop
from blocklearn.blocks.categories import Categorize, EncodedMultiCategorize, MultiCategorize, OneHotEncode
from blocklearn.callbacks.gather_preds import GatherPreds

__all__ = ['get_preds', 'predict', 'inference_loader', 'pred_activation', 'decode_preds', 'decode_target']


def get_preds(learn: Any, ds_idx: int = 1, dl: Iterable | None = None, with_input: bool = False,
              with_decoded: bool = False, with_loss: bool = False, act: Callable | None = None,
              reorder: bool = True) -> tuple:
    """Eval-mode, no-grad predictions over `dl` (default `dls[ds_idx]`, every item in order):
    `([inputs,] preds, targs[, decoded][, losses])`.

    `dl` may be any iterable of (x, y) batches; `act` defaults to the loss's activation, else the target
    block's (softmax for a category, sigmoid for multi-label). `reorder` is accepted as in fastai: order is kept."""
    dl = inference_loader(learn.dls[ds_idx] if dl is None else dl)
    gather = GatherPreds(with_input=with_input, with_loss=with_loss)
    loss_func = learn.loss_func
    reduction = getattr(loss_func, 'reduction', None) if with_loss else None
    try:
        if reduction is not None:
            loss_func.reduction = 'none'
        learn.run_validation(dl, cbs=gather)
    finally:
        if reduction is not None:
            loss_func.reduction = reduction
    if with_loss and not gather.targs:
        raise ValueError('with_loss=True needs targets: this loader yields inputs only.')
    probs = (act or pred_activation(learn))(torch.cat(gather.preds) if gather.preds else torch.empty(0))
    res: list = []
    if with_input:
        inputs = tuple(_cat([b[k] for b in gather.inputs]) for k in range(len(gather.inputs[0]))) if gather.inputs else ()
        res.append(inputs[0] if len(inputs) == 1 else inputs)
    res += [probs, _cat(gather.targs) if gather.targs else None]
    if with_decoded:
        res.append(decode_preds(learn, probs))
    if with_loss:
        res.append(torch.cat(gather.losses))
    return tuple(res)


def predict(learn: Any, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """`(decoded label, decoded index tensor, probabilities)` for one item, with the validation transforms.

    The label is decoded with the input beside it (as fastai does), so key points come back as pixels of the
    image the model saw."""
    dl = learn.dls.test_dl([item])
    with learn.no_bar():
        inputs, probs, _, dec = get_preds(learn, dl=dl, with_input=True, with_decoded=True)
    return decode_target(learn, dec[0], inputs=inputs if isinstance(inputs, tuple) else (inputs,)), dec[0], probs[0]


def inference_loader(dl: Iterable) -> Iterable:
    """`dl`, or a copy of it that neither shuffles nor drops a partial batch: inference sees every item in order."""
    if getattr(dl, 'shuffle', False) or getattr(dl, 'drop_last', False):
        return dl.new(shuffle=False, drop_last=False)
    return dl


def pred_activation(learn: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss's `activation` if it has one, else the target block's: softmax (category), sigmoid (multi-label)."""
    act = getattr(learn.loss_func, 'activation', None)
    if act is not None:
        return act
    kind = _target_kind(learn.dls)
    if kind == 'category':
        return _softmax
    if kind == 'multi':
        return torch.sigmoid
    return noop


def decode_preds(learn: Any, probs: torch.Tensor) -> torch.Tensor:
    """Activated predictions to targets: the loss's `decodes` if it has one, else the target block's rule
    (argmax for a category, `> 0.5` for multi-label); unchanged for anything else."""
    decodes = getattr(learn.loss_func, 'decodes', None)
    if decodes is not None:
        return decodes(probs)
    kind = _target_kind(learn.dls)
    if kind == 'category':
        return probs.argmax(dim=-1)
    if kind == 'multi':
        return probs > 0.5
    return probs


def decode_target(learn: Any, t: torch.Tensor, inputs: tuple | None = None) -> Any:
    """A decoded prediction as the user's label (e.g. 'cat'), through the target's own pipeline.

    With `inputs` (the batch of one it was predicted from, as the loader gave it) the sample (inputs, t) is decoded
    through the item and batch transforms too: targets decoded against their image (key points) need that."""
    # Target decodes dispatch on the target's tensor type (TensorCategory, ...): take that type from the
    # valid set's first target (encoding a label only, no input is loaded) and decode through its pipeline.
    ds = learn.dls.valid.dataset
    tls, n_inp = getattr(ds, 'tls', None), getattr(ds, 'n_inp', 1)
    if tls is None or len(tls) <= n_inp:
        return t
    tl = tls[n_inp]
    # With no items (a learner from load_learner) the type is what the last encoding transform returns.
    typ = type(tl[0]) if len(ds) else next((ret for f in reversed(tl.tfms.fs)
                                             for _, ret in f._encodes.funcs.values() if ret is not None), object)
    if isinstance(t, torch.Tensor) and issubclass(typ, torch.Tensor) and type(t) is not typ:
        t = t.as_subclass(typ)
    if inputs is not None and hasattr(learn.dls.valid, 'decode_batch'):
        return learn.dls.valid.decode_batch((*inputs, t[None]), max_n=1)[0][n_inp]
    return tl.decode(t)


def _target_kind(dls: Any) -> str | None:
    # What the first target pipeline encodes: 'multi' (one-hot labels), 'category' (one index), or None.
    ds = getattr(getattr(dls, 'valid', None), 'dataset', None)
    tls, n_inp = getattr(ds, 'tls', None), getattr(ds, 'n_inp', 1)
    if not tls or len(tls) <= n_inp:
        return None
    fs = tls[n_inp].tfms.fs
    if any(isinstance(f, (MultiCategorize, OneHotEncode, EncodedMultiCategorize)) for f in fs):
        return 'multi'
    if any(isinstance(f, Categorize) for f in fs):
        return 'category'
    return None


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return F.softmax(x, dim=-1)


def _cat(ts: list) -> Any:
    # torch.cat keeps the tensor subclass (TensorImage, TensorCategory) so the loader can still decode.
    if ts and isinstance(ts[0], torch.Tensor):
        return torch.cat(ts)
    return [o for t in ts for o in (t if isinstance(t, (list, tuple)) else [t])]
