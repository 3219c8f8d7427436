"""Learner: the training loop, its events and callbacks, the optimizer's groups, save and load.

The one class of the package: training policies (fit.py), lr_find (lr_find.py), inference (predict.py, tta.py,
show_results.py) and export (export.py) are functions of a learner that this class names as methods."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn as nn

from blocklearn.blocks.basics import listify, noop
from blocklearn.blocks.rng import get_rng_state, set_rng_state
from blocklearn.blocks.safe_io import atomic_save, safe_load
from blocklearn.blocks.tensors import as_plain
from blocklearn.callbacks.channels_last import to_channelslast, to_contiguous
from blocklearn.callbacks.core import (Callback, CancelBackwardException, CancelBatchException, CancelEpochException,
                                      CancelFitException, CancelStepException, CancelTrainException,
                                      CancelValidException, events)
from blocklearn.callbacks.fp16 import MixedPrecision
from blocklearn.callbacks.progress import ProgressCallback
from blocklearn.callbacks.recorder import Recorder
from blocklearn.callbacks.train_eval import TrainEvalCallback
from blocklearn.learner.callback_host import LEVELS, handler_table, quiet_levels, training_loop_outline
from blocklearn.learner.distributed import distrib_ctx, on_rank0
from blocklearn.learner.export import export_learner
from blocklearn.learner.fit import fine_tune, fit_flat_cos, fit_one_cycle, fit_sgdr
from blocklearn.learner.lr_find import lr_find
from blocklearn.learner.metrics import Metric, as_metric
from blocklearn.learner.model_summary import model_summary
from blocklearn.learner.optimizer import Adam, Optimizer, norm_bias_params, trainable_params
from blocklearn.learner.predict import get_preds, predict
from blocklearn.learner.show_results import show_results
from blocklearn.learner.tta import tta

__all__ = ['Learner', 'default_callbacks']

default_callbacks: tuple[type[Callback], ...] = (TrainEvalCallback, Recorder, ProgressCallback)


class Learner:
    """Trains `model` on `dls` with `loss_func` and `opt_func`, calling each callback at each event."""

    # fastai's method names for the functions of a learner that live in their own modules.
    fit_one_cycle, fit_flat_cos, fit_sgdr, fine_tune = fit_one_cycle, fit_flat_cos, fit_sgdr, fine_tune
    lr_find = lr_find
    get_preds, predict, tta, show_results = get_preds, predict, tta, show_results
    distrib_ctx = distrib_ctx
    summary = model_summary
    to_channelslast, to_contiguous = to_channelslast, to_contiguous

    def __init__(self, dls: Any, model: nn.Module, loss_func: Callable | None = None, opt_func: Callable = Adam,
                 lr: float | slice = 1e-3, splitter: Callable[[nn.Module], Iterable] = trainable_params,
                 cbs: Iterable | Callback | type | None = None, metrics: Iterable | Callable | None = None,
                 path: str | Path | None = None, model_dir: str | Path = 'models', wd: float | None = None,
                 wd_bn_bias: bool = False, train_bn: bool = True, moms: tuple[float, ...] = (0.95, 0.85, 0.95),
                 default_cbs: bool = True):
        if loss_func is None:
            loss_func = getattr(dls, 'loss_func', None)
            if loss_func is None:
                raise ValueError("Learner needs a loss: pass loss_func=... (e.g. nn.CrossEntropyLoss()), or use "
                                 "DataLoaders whose target block sets dls.loss_func.")
        self.dls, self.model, self.loss_func, self.opt_func = dls, model, loss_func, opt_func
        self.lr, self.splitter, self.wd, self.moms = lr, splitter, wd, moms
        self.wd_bn_bias, self.train_bn = wd_bn_bias, train_bn
        self.path = Path(path) if path is not None else Path(getattr(dls, 'path', '.'))
        self.model_dir = Path(model_dir)
        self.metrics = [as_metric(m) for m in listify(metrics)]
        self.opt: Optimizer | None = None
        self.model_recipe: dict | None = None  # how `export` says to rebuild the model (vision_learner sets it)
        self.logger: Callable = print
        self.training, self.epoch, self.n_epoch, self.start_epoch = False, 0, 1, 0
        self.iter, self.n_iter, self.train_iter, self.pct_train = 0, 0, 0, 0.0
        self.dl = self.pred = self.loss = self.loss_grad = self.smooth_loss = self.final_record = None
        self.b: tuple = ()  # the batch as the loader gave it (typed tensors, for decoding)
        self.xb: tuple = ()
        self.yb: tuple = ()
        self.cbs: list[Callback] = []
        self._muted: tuple[type, ...] = ()  # callback classes that get no events (see muted_cbs)
        self._handlers = handler_table([])
        self._quiet_levels = quiet_levels(self._handlers)
        self._device: torch.device | None = None
        self._n_inp: int = getattr(dls, 'n_inp', 1)
        self.add_cbs([cb() for cb in default_callbacks] if default_cbs else [])
        self.add_cbs(listify(cbs))
        self('after_create')

    @property
    def metrics(self) -> list[Metric]:
        """The metric objects the Recorder computes at each validation, in the order of its table."""
        return self._metrics

    @metrics.setter
    def metrics(self, value: Iterable | Callable | None) -> None:
        # Assignable after creation (fastbook: `learn.metrics = partial(accuracy_multi, thresh=0.1)`): a function,
        # a partial, a Metric, or a list of them; the Recorder reads the new names from here.
        self._metrics = [as_metric(m) for m in listify(value)]

    # ---- callbacks and events --------------------------------------------------------------------------
    def __call__(self, event_name: str | Iterable[str]) -> None:
        """Fire `event_name` (or each of a list of names) on the callbacks, in `order`."""
        if not isinstance(event_name, str):
            for name in event_name:
                self(name)
            return
        try:
            inner, handlers = self._handlers[event_name]
        except KeyError:
            raise ValueError(f"Unknown event {event_name!r}: events are {', '.join(events)}.") from None
        if not handlers:
            return
        if inner:
            training = self.training
            for cb, fn in handlers:
                if cb.run_train if training else cb.run_valid:
                    fn()
        else:
            for _, fn in handlers:
                fn()

    def add_cb(self, cb: Callback | type) -> Learner:
        """Add a callback (instance or class), reachable as `learn.<cb.name>`."""
        if isinstance(cb, type):
            cb = cb()
        if not isinstance(cb, Callback):
            raise TypeError(f"cbs must be Callback instances or classes, got {type(cb).__name__}.")
        existing = getattr(type(self), cb.name, None)
        if existing is not None or (cb.name in self.__dict__ and not isinstance(self.__dict__[cb.name], Callback)):
            raise ValueError(f"A callback named {cb.name!r} would hide the Learner attribute of that name: "
                             f"rename the callback class.")
        cb.learn = self
        setattr(self, cb.name, cb)
        self.cbs.append(cb)
        self._sort_cbs()
        return self

    def add_cbs(self, cbs: Iterable[Callback | type]) -> Learner:
        """Add each callback of `cbs`."""
        for cb in cbs:
            self.add_cb(cb)
        return self

    def remove_cb(self, cb: Callback | type) -> Learner:
        """Remove a callback instance, or every callback of a class."""
        targets = [c for c in self.cbs if c is cb or (isinstance(cb, type) and isinstance(c, cb))]
        for c in targets:
            self.cbs.remove(c)
            c.learn = None
            if self.__dict__.get(c.name) is c:
                delattr(self, c.name)
        for c in self.cbs:
            # Another callback of the same name takes the attribute back.
            self.__dict__.setdefault(c.name, c)
        self._sort_cbs()
        return self

    def remove_cbs(self, cbs: Iterable[Callback | type]) -> Learner:
        """Remove each callback of `cbs`."""
        for cb in list(cbs):
            self.remove_cb(cb)
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Iterable | Callback | type | None) -> Iterator[Learner]:
        """Add `cbs` for the duration of a `with` block."""
        added = [cb() if isinstance(cb, type) else cb for cb in listify(cbs)]
        self.add_cbs(added)
        try:
            yield self
        finally:
            self.remove_cbs(added)

    @contextlib.contextmanager
    def removed_cbs(self, cbs: Iterable[Callback]) -> Iterator[Learner]:
        """Remove `cbs` for the duration of a `with` block."""
        removed = [cb for cb in cbs if cb in self.cbs]
        self.remove_cbs(removed)
        try:
            yield self
        finally:
            self.add_cbs(removed)

    def no_bar(self) -> contextlib.AbstractContextManager:
        """A `with` block without progress bars."""
        return self.removed_cbs([cb for cb in self.cbs if isinstance(cb, ProgressCallback)])

    @contextlib.contextmanager
    def no_logging(self) -> Iterator[Learner]:
        """A `with` block that prints no results table."""
        logger, self.logger = self.logger, noop
        try:
            yield self
        finally:
            self.logger = logger

    @contextlib.contextmanager
    def muted_cbs(self, types: Iterable[type]) -> Iterator[Learner]:
        """A `with` block in which callbacks of `types`, added before or during it, get no events (distrib_ctx
        mutes bars, tables and file writers on all ranks but 0)."""
        muted, self._muted = self._muted, tuple(types)
        self._sort_cbs()
        try:
            yield self
        finally:
            self._muted = muted
            self._sort_cbs()

    def show_training_loop(self) -> None:
        """Print the loop's events, indented by level, with the callbacks that run at each."""
        print(training_loop_outline(self._handlers))

    def _sort_cbs(self) -> None:
        self.cbs.sort(key=lambda cb: cb.order)
        self._handlers = handler_table([cb for cb in self.cbs if not isinstance(cb, self._muted)])
        self._quiet_levels = quiet_levels(self._handlers)

    # ---- optimizer -------------------------------------------------------------------------------------
    def create_opt(self) -> None:
        """Build the optimizer over the splitter's groups, with the no-wd and train_bn rules.

        `opt_func` may also be a torch optimizer class (e.g. torch.optim.AdamW), used with its own defaults."""
        groups = self.splitter(self.model)
        if isinstance(self.opt_func, type) and issubclass(self.opt_func, torch.optim.Optimizer):
            self.opt = Optimizer(groups, self.opt_func, lr=self.lr)
        else:
            self.opt = self.opt_func(groups, lr=self.lr)
        if not isinstance(self.opt, Optimizer):
            raise TypeError(f"opt_func must return a learner.optimizer.Optimizer (e.g. opt_func=Adam, SGD or "
                            f"torch.optim.RMSprop), got {type(self.opt).__name__}.")
        if not self.wd_bn_bias:
            self.opt.exclude_from_wd(norm_bias_params(self.model, with_bias=True))
        if self.train_bn:
            self.opt.keep_trainable(norm_bias_params(self.model, with_bias=False))

    def freeze_to(self, n: int) -> None:
        """Train only the parameter groups from `n` on (norm params stay trainable if `train_bn`)."""
        if self.opt is None:
            self.create_opt()
        self.opt.freeze_to(n)
        self.opt.clear_state()

    def freeze(self) -> None:
        """Train only the last parameter group (the head)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every parameter group."""
        self.freeze_to(0)

    # ---- the loop --------------------------------------------------------------------------------------
    def fit(self, n_epoch: int, lr: float | slice | None = None, wd: float | None = None,
            cbs: Iterable | Callback | None = None, reset_opt: bool = False, start_epoch: int = 0) -> None:
        """Train for `n_epoch` epochs (from `start_epoch`, to resume) at `lr`, validating after each."""
        logger = self.logger
        with self.added_cbs(cbs):
            if reset_opt or self.opt is None:
                self.create_opt()
            wd = self.wd if wd is None else wd
            if wd is not None:
                self.opt.set_hyper('wd', wd)
            self.opt.set_hyper('lr', self.lr if lr is None else lr)
            # A fit stopped between backward and step (Ctrl-C) left gradients behind: never add them to new ones.
            self.opt.zero_grad()
            self.n_epoch, self.start_epoch = n_epoch, start_epoch
            self.check_trainable()
            self._to_dls_device()
            try:
                self._with_events(self._do_fit, 'fit', CancelFitException)
            finally:
                self.logger = logger

    def check_trainable(self) -> None:
        """Raise, saying the fix, if the training loader would yield no batch (fit would silently train nothing)."""
        train = self.dls.train
        reason = train.no_batch_reason() if hasattr(train, 'no_batch_reason') else None
        if reason is None and len(train) == 0:
            reason = 'The training loader yields no batch: give it items (and a bs no larger than their number).'
        if reason is not None:
            raise ValueError(reason)

    def validate(self, ds_idx: int = 1, dl: Iterable | None = None,
                 cbs: Iterable | Callback | None = None) -> list[float | None]:
        """One validation pass over `dl` (default `dls[ds_idx]`): `[valid_loss, *metrics]`."""
        if getattr(self, 'recorder', None) is None:
            raise ValueError("validate() reads its results from the Recorder: create the Learner with "
                             "default_cbs=True or add Recorder().")
        self.run_validation(self.dls[ds_idx] if dl is None else dl, cbs)
        return self.recorder.valid_record

    def run_validation(self, dl: Iterable, cbs: Iterable | Callback | None = None) -> None:
        """The validation level of the loop over `dl`, with `cbs` added: what `validate` and `get_preds` run."""
        with self.added_cbs(cbs):
            self._do_validate(dl)

    def _with_events(self, f: Callable[[], None], level: str, exc: type[Exception]) -> None:
        # before_X, f, after_X; the level's Cancel runs after_cancel_X then after_X; cleanup_X always runs, last.
        before, after, cancel, *cleanup = LEVELS[level]
        if level in self._quiet_levels:
            # No callback listens to this level, so firing its events would do nothing; `f` may still raise the
            # level's Cancel (from a callback deeper in), which ends it just the same.
            try:
                f()
            except exc:
                pass
            return
        try:
            try:
                self(before)
                f()
            except exc:
                self(cancel)
            self(after)
        except BaseException:
            if cleanup:
                self._cleanup(cleanup[0], raising=False)
            raise
        if cleanup and self._handlers[cleanup[0]][1]:
            self._cleanup(cleanup[0], raising=True)

    def _cleanup(self, event_name: str, raising: bool) -> None:
        # Every handler runs even if one fails: each restores something of its own. The first failure is raised
        # unless an exception is already on its way out (that one matters more, and keeps its traceback).
        first: BaseException | None = None
        inner, handlers = self._handlers[event_name]
        for cb, fn in handlers:
            if inner and not (cb.run_train if self.training else cb.run_valid):
                continue
            try:
                fn()
            except BaseException as e:
                first = first or e
        if first is not None and raising:
            raise first

    def _do_fit(self) -> None:
        try:
            for epoch in range(self.start_epoch, self.n_epoch):
                self.epoch = epoch
                self._with_events(self._do_epoch, 'epoch', CancelEpochException)
        finally:
            # Whatever ended the fit, the model is left ready for inference and holds no batch.
            self._end_phase()

    def _do_epoch(self) -> None:
        self._do_train()
        self._do_validate(self.dls.valid)

    def _do_train(self) -> None:
        self.dl, self.training = self.dls.train, True
        self.model.train()
        self._with_events(self.all_batches, 'train', CancelTrainException)

    def _do_validate(self, dl: Iterable) -> None:
        self.dl, self.training = dl, False
        self.model.eval()
        try:
            with torch.no_grad():
                self._with_events(self.all_batches, 'validate', CancelValidException)
        finally:
            self._end_phase()

    def _end_phase(self) -> None:
        self.training = False
        self.model.eval()
        self.dl, self.b, self.xb, self.yb, self.pred, self.loss, self.loss_grad = None, (), (), (), None, None, None

    def all_batches(self) -> None:
        """Run `one_batch` on every batch of `self.dl`."""
        self.n_iter = len(self.dl)
        self._device = _model_device(self.model)
        self._n_inp = getattr(self.dl, 'n_inp', getattr(self.dls, 'n_inp', 1))
        for i, b in enumerate(self.dl):
            self.one_batch(i, b)

    def one_batch(self, i: int, b: tuple) -> None:
        """Run the batch events on batch `b` (inputs then targets, split by `dls.n_inp`)."""
        self.iter, self.b = i, tuple(b)
        mb = _to_model_inputs(self.b, self._device)
        n_inp = self._n_inp
        self.xb, self.yb = mb[:n_inp], mb[n_inp:]
        # Cleared so a batch cancelled early never shows callbacks the previous batch's results.
        self.pred = self.loss = self.loss_grad = None
        self._with_events(self._do_one_batch, 'batch', CancelBatchException)

    def _do_one_batch(self) -> None:
        self.pred = self.model(*self.xb)
        self('after_pred')
        if self.yb:
            self.loss_grad = self.loss_func(self.pred, *self.yb)
            self.loss = self.loss_grad.detach()
        self('after_loss')
        if not self.training or not self.yb:
            return
        self._with_events(self._backward, 'backward', CancelBackwardException)
        self._with_events(self.opt.step, 'step', CancelStepException)
        self.opt.zero_grad()

    def _backward(self) -> None:
        self.loss_grad.backward()

    def _to_dls_device(self) -> None:
        device = getattr(self.dls, 'device', None)
        if device is not None:
            self.model.to(device)
            if isinstance(self.loss_func, nn.Module):
                self.loss_func.to(device)

    # ---- mixed precision, save and load ----------------------------------------------------------------
    def to_fp16(self, dtype: torch.dtype | None = None, force: bool = False, **kwargs) -> Learner:
        """Train with autocast where it is faster: fp16 and loss scaling on CUDA, bf16 on CPUs with fast bf16
        kernels, float32 (with a notice) on other CPUs; `force=True` autocasts anyway. See MixedPrecision."""
        self.remove_cb(MixedPrecision)
        return self.add_cb(MixedPrecision(dtype=dtype, force=force, **kwargs))

    def to_bf16(self, force: bool = False) -> Learner:
        """Train with bf16 autocast (no loss scaling needed) where the device has fast bf16 kernels, as `to_fp16`."""
        return self.to_fp16(dtype=torch.bfloat16, force=force)

    def to_fp32(self) -> Learner:
        """Train in full precision again."""
        return self.remove_cb(MixedPrecision)

    def model_file(self, name: str | Path) -> Path:
        """Where `save(name)` writes: `path/model_dir/name.pth`."""
        return self.path / self.model_dir / f'{name}.pth'

    def save(self, name: str | Path, with_opt: bool = True) -> Path:
        """Save a checkpoint to `path/model_dir/name.pth`, atomically: a crash mid-save keeps the previous file.

        It holds 'model' (the state dict), 'opt' with `with_opt` (moments, step counts, per-group hypers,
        frozen groups), 'epoch' (`learn.epoch`: the epoch just finished when saved from `after_epoch`) and
        'rng' (torch, CUDA, numpy and `random` states): tensors and plain data only, read back with
        weights_only=True. See `load` for resuming. Under torchrun only rank 0 writes (inside distrib_ctx the others
        wait for it, so each may then load the file): call it on every rank."""
        file = self.model_file(name)
        file.parent.mkdir(parents=True, exist_ok=True)
        state = {'model': self.model.state_dict(), 'epoch': self.epoch, 'rng': get_rng_state()}
        if with_opt and self.opt is not None:
            state['opt'] = self.opt.state_dict()
        on_rank0(atomic_save, state, file)
        return file

    def export(self, fname: str | Path = 'export.pkl') -> Path:
        """Write the weights and a JSON recipe of the model, data and loss to `path/fname` (see export_learner);
        under torchrun rank 0 alone writes it, as `save` does."""
        on_rank0(export_learner, self, fname)
        return Path(self.path) / fname

    def load(self, name: str | Path, device: torch.device | str | None = None, with_opt: bool = True,
             strict: bool = True, with_rng: bool = True) -> Learner:
        """Load what `save(name)` wrote; no code is unpickled (a file that would run code raises UnsafeFileError).

        Restores the weights, the optimizer with `with_opt` and the RNG states with `with_rng`, each if the file
        has it (files holding only 'model' and 'opt' load too). Restoring the RNGs is what makes a resumed run
        shuffle, drop out and augment as the uninterrupted one would have, so after
        `SaveModelCallback(every_epoch=True)` wrote `model_1`, `learn.load('model_1')` then
        `learn.fit_one_cycle(3, start_epoch=2)` ends with the weights `fit_one_cycle(3)` would have given.
        Pass with_rng=False to load weights without rewinding this process's random numbers."""
        file = self.model_file(name)
        if not file.exists():
            raise FileNotFoundError(f"No saved model at {file}: call learn.save({str(name)!r}) first, "
                                    f"or check learn.path ({self.path}) and model_dir ({self.model_dir}).")
        device = device if device is not None else (_model_device(self.model) or 'cpu')
        state = safe_load(file, map_location=device)
        # fastai's convention: a file without 'model' is a bare state dict, e.g. torch.save(model.state_dict()).
        weights = state['model'] if 'model' in state else state
        _check_fits(self.model, weights, strict, file)  # before copying anything: a misfit leaves the model as it was
        self.model.load_state_dict(weights, strict=strict)
        if with_opt and 'opt' in state:
            if self.opt is None:
                self.create_opt()
            self.opt.load_state_dict(state['opt'])
        if with_rng and 'rng' in state:
            set_rng_state(state['rng'])
        return self


def _to_model_inputs(batch: tuple, device: torch.device | None) -> tuple:
    # The model and loss see plain tensors on the model's device, whatever the loader yields.
    out = []
    for o in batch:
        if isinstance(o, torch.Tensor):
            if type(o) is not torch.Tensor:
                o = o.as_subclass(torch.Tensor)
            if device is not None and o.device != device:
                o = o.to(device, non_blocking=True)
        else:
            o = as_plain(o) if device is None else _move(as_plain(o), device)
        out.append(o)
    return tuple(out)


def _move(o: Any, device: torch.device) -> Any:
    if isinstance(o, torch.Tensor):
        return o.to(device, non_blocking=True)
    if isinstance(o, (tuple, list)):
        return type(o)(_move(x, device) for x in o)
    return o


def _check_fits(model: nn.Module, weights: dict, strict: bool, file: Path) -> None:
    # torch's load_state_dict copies every tensor that fits before it reports those that do not.
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in weights.items()
             if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape]
    missing = [k for k in own if k not in weights] if strict else []
    unexpected = [k for k in weights if k not in own] if strict else []
    if wrong or missing or unexpected:
        parts = [f'{len(wrong)} of other shapes (e.g. {wrong[0]})' if wrong else '',
                 f'{len(missing)} missing (e.g. {missing[0]})' if missing else '',
                 f'{len(unexpected)} unexpected (e.g. {unexpected[0]})' if unexpected else '']
        raise RuntimeError(f"{file} holds weights that do not fit this model: {', '.join(p for p in parts if p)}; "
                           f"nothing was loaded. Build the Learner with the architecture that saved it"
                           f"{'' if wrong else ', or pass strict=False'}.")


def _model_device(model: nn.Module) -> torch.device | None:
    p = next(model.parameters(), None)
    return p.device if p is not None else None
