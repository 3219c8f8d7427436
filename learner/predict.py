"""Inference as Learner methods: `get_preds` over a loader and `predict` on one item (with `tta`, `show_results`)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from blocklearn.learner.show_results import ShowResultsMixin
from blocklearn.learner.tta import TTAMixin

__all__ = ['PredictMixin']


class PredictMixin(TTAMixin, ShowResultsMixin):
    """`get_preds` (predictions, targets, decoded, per-item losses), `predict` (one item to its label), and through
    the mixins `tta` and `show_results`."""
    dls: Any
    model: nn.Module
    loss_func: Callable

    def get_preds(self, ds_idx: int = 1, dl: Iterable | None = None, with_input: bool = False,
                  with_decoded: bool = False, with_loss: bool = False, act: Callable | None = None,
                  reorder: bool = True) -> tuple:
        """Eval-mode, no-grad predictions over `dl` (default `dls[ds_idx]`): `([inputs,] preds, targs[, decoded][, losses])`.

        `dl` may be any iterable of (x, y) batches; `act` defaults to the loss's activation (softmax for cross-entropy)."""
        # `reorder` is accepted for API parity: loaders used for inference never shuffle, so order is kept as is.
        from blocklearn.learner.learner import _model_device, _to_model_inputs  # learner.py imports this module
        dl = self.dls[ds_idx] if dl is None else dl
        n_inp = getattr(dl, 'n_inp', getattr(self.dls, 'n_inp', 1))
        act = act if act is not None else getattr(self.loss_func, 'activation', _identity)
        loss_func = self.loss_func
        old_reduction = getattr(loss_func, 'reduction', None) if with_loss else None
        inputs, preds, targs, losses = [], [], [], []
        was_training = self.model.training
        self.model.eval()
        try:
            if old_reduction is not None:
                loss_func.reduction = 'none'
            device = _model_device(self.model)
            with torch.no_grad():
                for b in dl:
                    b = tuple(b)
                    xb_raw, yb_raw = b[:n_inp], b[n_inp:]
                    mb = _to_model_inputs(b, device)
                    out = self.model(*mb[:n_inp])
                    preds.append(out.detach().float().cpu())
                    if with_input:
                        inputs.append(tuple(_cpu(x) for x in xb_raw))
                    if yb_raw:
                        targs.append(_cpu(yb_raw[0]))
                        if with_loss:
                            losses.append(_per_item_loss(loss_func, out, mb[n_inp:]).float().cpu())
        finally:
            if old_reduction is not None:
                loss_func.reduction = old_reduction
            self.model.train(was_training)
        if with_loss and not targs:
            raise ValueError('with_loss=True needs targets: this loader yields inputs only.')
        raw = torch.cat(preds) if preds else torch.empty(0)
        probs = act(raw)
        res: list = []
        if with_input:
            res.append(tuple(_cat([b[k] for b in inputs]) for k in range(len(inputs[0]))) if inputs else ())
            if len(res[0]) == 1:
                res[0] = res[0][0]
        res += [probs, _cat(targs) if targs else None]
        if with_decoded:
            res.append(getattr(self.loss_func, 'decodes', _identity)(probs))
        if with_loss:
            res.append(torch.cat(losses))
        return tuple(res)

    def predict(self, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """`(decoded label, decoded index tensor, probabilities)` for one item, with the validation transforms."""
        dl = self.dls.test_dl([item])
        probs, _, dec = self.get_preds(dl=dl, with_decoded=True)
        dec0 = dec[0]
        return self._decode_target(dec0), dec0, probs[0]

    def _decode_target(self, t: torch.Tensor) -> Any:
        # Target decodes dispatch on the target's tensor type (TensorCategory, ...): take that type from the
        # valid set's first target (encoding a label only, no input is loaded) and decode through its pipeline.
        ds = self.dls.valid.dataset
        tls, n_inp = getattr(ds, 'tls', None), getattr(ds, 'n_inp', 1)
        if tls is None or len(tls) <= n_inp:
            return t
        tl = tls[n_inp]
        # With no items (a learner from load_learner) the type is what the last encoding transform returns.
        typ = type(tl[0]) if len(ds) else next((ret for f in reversed(tl.tfms.fs)
                                                 for _, ret in f._encodes.funcs.values() if ret is not None), object)
        if isinstance(t, torch.Tensor) and issubclass(typ, torch.Tensor) and type(t) is not typ:
            t = t.as_subclass(typ)
        return tl.decode(t)


def _identity(x: Any) -> Any:
    return x


def _cpu(o: Any) -> Any:
    return o.detach().cpu() if isinstance(o, torch.Tensor) else o


def _cat(ts: list) -> Any:
    # torch.cat keeps the tensor subclass (TensorImage, TensorCategory) so the loader can still decode.
    if ts and isinstance(ts[0], torch.Tensor):
        return torch.cat(ts)
    return [o for t in ts for o in (t if isinstance(t, (list, tuple)) else [t])]


def _per_item_loss(loss_func: Callable, pred: torch.Tensor, yb: tuple) -> torch.Tensor:
    loss = loss_func(pred, *yb)
    # Losses without a reduction attribute give one value per batch: spread it so each item gets one.
    if loss.dim() == 0:
        return loss.expand(len(pred))
    return loss.reshape(len(pred), -1).mean(1)  # segmentation-style losses: one mean per item
