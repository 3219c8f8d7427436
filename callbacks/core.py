"""The Callback base class, the training-loop events in firing order, and the Cancel exceptions."""
from __future__ import annotations

import re
import warnings
from types import SimpleNamespace
from typing import Any

__all__ = ['Callback', 'events', 'event', 'inner_events', 'snake_name',
           'CancelBatchException', 'CancelTrainException', 'CancelValidException', 'CancelEpochException',
           'CancelFitException', 'CancelStepException', 'CancelBackwardException']

events: tuple[str, ...] = (
    'after_create', 'before_fit', 'before_epoch', 'before_train', 'before_batch', 'after_pred', 'after_loss',
    'before_backward', 'after_backward', 'before_step', 'after_step', 'after_batch', 'after_train',
    'before_validate', 'after_validate', 'after_epoch', 'after_fit',
    'after_cancel_batch', 'after_cancel_train', 'after_cancel_validate', 'after_cancel_epoch',
    'after_cancel_fit', 'after_cancel_step', 'after_cancel_backward',
    'cleanup_batch', 'cleanup_train', 'cleanup_validate', 'cleanup_epoch', 'cleanup_fit',
)
# `cleanup_<level>` fires in a `finally` after `after_<level>`: also when the level raised (an error, Ctrl-C),
# so a callback restores what it changed (autocast, bars, weights) before the exception goes on.
event = SimpleNamespace(**{name: name for name in events})

# Events of a single batch: `run_train`/`run_valid` decide whether a callback sees them.
inner_events: frozenset[str] = frozenset({
    'before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_backward', 'before_step',
    'after_step', 'after_batch', 'after_cancel_batch', 'after_cancel_step', 'after_cancel_backward',
    'cleanup_batch'})


class CancelBatchException(Exception):
    """Skip the rest of this batch; `after_cancel_batch` then `after_batch` run."""


class CancelTrainException(Exception):
    """Skip the rest of this training phase; `after_cancel_train` then `after_train` run."""


class CancelValidException(Exception):
    """Skip the rest of this validation phase; `after_cancel_validate` then `after_validate` run."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch; `after_cancel_epoch` then `after_epoch` run."""


class CancelFitException(Exception):
    """Stop fitting; `after_cancel_fit` then `after_fit` run."""


class CancelStepException(Exception):
    """Skip the optimizer step of this batch; `after_cancel_step` then `after_step` run."""


class CancelBackwardException(Exception):
    """Skip the backward pass of this batch; `after_cancel_backward` then `after_backward` run."""


class Callback:
    """Hooks into the Learner's loop by defining methods named after `events`; reads learner state as `self.x`."""
    order: int = 0
    run_train: bool = True
    run_valid: bool = True
    learn: Any = None

    @property
    def name(self) -> str:
        """Snake-case class name without 'Callback': the attribute the Learner exposes it as."""
        return snake_name(type(self).__name__)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: reads fall through to the learner.
        learn = self.__dict__.get('learn', type(self).learn)
        if learn is None or name.startswith('_'):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(learn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if (name not in self.__dict__ and self.learn is not None and not hasattr(type(self), name)
                and hasattr(self.learn, name)):
            warnings.warn(f"{type(self).__name__} sets its own `{name}`, hiding the learner's: "
                          f"write `self.learn.{name} = ...` to change the learner's value.", stacklevel=2)
        object.__setattr__(self, name, value)

    def __call__(self, event_name: str) -> None:
        """Run this callback's handler for `event_name`, if it has one and should run now."""
        if event_name in inner_events:
            training = getattr(self.learn, 'training', False)
            if not (self.run_train if training else self.run_valid):
                return
        handler = getattr(type(self), event_name, None)
        if handler is not None:
            handler(self)

    def __repr__(self) -> str:
        return type(self).__name__


def snake_name(class_name: str) -> str:
    """'TrainEvalCallback' -> 'train_eval', 'LRFinder' -> 'lr_finder'."""
    base = re.sub('Callback$', '', class_name) or class_name
    base = re.sub('(.)([A-Z][a-z]+)', r'\1_\2', base)
    return re.sub('([a-z0-9])([A-Z])', r'\1_\2', base).lower()
