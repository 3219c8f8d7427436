"""CallbackHost: how the Learner holds callbacks and fires events at them, in `order`."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

from blocklearn.callbacks.core import Callback, events, inner_events, noop
from blocklearn.callbacks.progress import ProgressCallback

__all__ = ['CallbackHost', 'listify']

# (before, after, after_cancel) event names of each level of the loop.
_LEVELS = {level: (f'before_{level}', f'after_{level}', f'after_cancel_{level}')
           for level in ('fit', 'epoch', 'train', 'validate', 'batch', 'step', 'backward')}


class CallbackHost:
    """The callbacks of a Learner: add/remove them, fire events, run a step of the loop with its events."""
    cbs: list[Callback]
    training: bool
    logger: Callable

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

    def add_cb(self, cb: Callback | type) -> CallbackHost:
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

    def add_cbs(self, cbs: Iterable[Callback | type]) -> CallbackHost:
        """Add each callback of `cbs`."""
        for cb in cbs:
            self.add_cb(cb)
        return self

    def remove_cb(self, cb: Callback | type) -> CallbackHost:
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

    def remove_cbs(self, cbs: Iterable[Callback | type]) -> CallbackHost:
        """Remove each callback of `cbs`."""
        for cb in list(cbs):
            self.remove_cb(cb)
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Iterable | Callback | type | None) -> Iterator[CallbackHost]:
        """Add `cbs` for the duration of a `with` block."""
        added = [cb() if isinstance(cb, type) else cb for cb in listify(cbs)]
        self.add_cbs(added)
        try:
            yield self
        finally:
            self.remove_cbs(added)

    @contextlib.contextmanager
    def removed_cbs(self, cbs: Iterable[Callback]) -> Iterator[CallbackHost]:
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
    def no_logging(self) -> Iterator[CallbackHost]:
        """A `with` block that prints no results table."""
        logger, self.logger = self.logger, noop
        try:
            yield self
        finally:
            self.logger = logger

    def show_training_loop(self) -> None:
        """Print the loop's events, indented by level, with the callbacks that run at each."""
        def handlers(name: str) -> str:
            return f"{'   ' * depth} - {name:<15}: {[cb for cb, _ in self._handlers[name][1]]}"
        depth, lines = 0, []
        for step in _LOOP_OUTLINE:
            if step.startswith('Start'):
                lines.append(f"{'   ' * depth}{step}")
                depth += 1
            elif step.startswith('End'):
                depth -= 1
                lines.append(f"{'   ' * depth}{step}")
            elif step in self._handlers:
                lines.append(handlers(step))
            else:
                lines.append(f"{'   ' * depth} - {step}")
        print('\n'.join(lines))

    def _sort_cbs(self) -> None:
        self.cbs.sort(key=lambda cb: cb.order)
        self._handlers = {name: (name in inner_events, [(cb, fn) for cb in self.cbs
                                                        if (fn := _handler(cb, name)) is not None])
                          for name in events}
        self._quiet_levels = {level for level, names in _LEVELS.items()
                              if not any(self._handlers[name][1] for name in names)}

    def _with_events(self, f: Callable[[], None], level: str, exc: type[Exception]) -> None:
        before, after, cancel = _LEVELS[level]
        if level in self._quiet_levels:
            # No callback listens to this level's own events, so firing them would do nothing; `f` may still
            # raise the level's Cancel (from a callback deeper in), which ends it just the same.
            try:
                f()
            except exc:
                pass
            return
        try:
            self(before)
            f()
        except exc:
            self(cancel)
        self(after)


_LOOP_OUTLINE = (
    'Start Fit', 'before_fit', 'Start Epoch Loop', 'before_epoch', 'Start Train', 'before_train',
    'Start Batch Loop', 'before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_cancel_backward',
    'after_backward', 'before_step', 'after_cancel_step', 'after_step', 'after_cancel_batch', 'after_batch',
    'End Batch Loop', 'after_cancel_train', 'after_train', 'End Train', 'Start Valid', 'before_validate',
    'Start Batch Loop', '(the batch events above, without backward and step)', 'End Batch Loop',
    'after_cancel_validate', 'after_validate', 'End Valid', 'after_cancel_epoch', 'after_epoch', 'End Epoch Loop',
    'after_cancel_fit', 'after_fit', 'End Fit')


def _handler(cb: Callback, name: str) -> Callable[[], None] | None:
    # Looked up on the instance, then the class: Callback.__getattr__ would otherwise reach the learner.
    fn = cb.__dict__.get(name)
    if fn is not None:
        return fn
    return getattr(cb, name) if getattr(type(cb), name, None) is not None else None


def listify(o: Any) -> list:
    """`o` as a list: None -> [], a list or tuple -> a list of its items, anything else -> [o]."""
    if o is None:
        return []
    if isinstance(o, (list, tuple)):
        return list(o)
    return [o]
