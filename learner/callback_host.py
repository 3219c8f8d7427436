"""How a Learner's callbacks are found for each event, and the outline `show_training_loop` prints."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from blocklearn.callbacks.core import Callback, events, inner_events

__all__ = ['LEVELS', 'handler_table', 'quiet_levels', 'training_loop_outline']

# (before, after, after_cancel, cleanup) event names of each level of the loop; step and backward live inside
# a batch, whose cleanup covers them.
LEVELS: dict[str, tuple[str, ...]] = {
    level: (f'before_{level}', f'after_{level}', f'after_cancel_{level}')
    + ((f'cleanup_{level}',) if level in ('fit', 'epoch', 'train', 'validate', 'batch') else ())
    for level in ('fit', 'epoch', 'train', 'validate', 'batch', 'step', 'backward')}

Handlers = dict[str, tuple[bool, list[tuple[Callback, Callable[[], None]]]]]


def handler_table(cbs: Iterable[Callback]) -> Handlers:
    """For each event: (is it a batch event, [(callback, bound handler)] in `order`)."""
    cbs = sorted(cbs, key=lambda cb: cb.order)
    return {name: (name in inner_events, [(cb, fn) for cb in cbs if (fn := _handler(cb, name)) is not None])
            for name in events}


def quiet_levels(handlers: Handlers) -> set[str]:
    """The levels none of whose events has a handler: the loop can skip firing them."""
    return {level for level, names in LEVELS.items()
            if not any(handlers[name][1] for name in names)}


def training_loop_outline(handlers: Handlers) -> str:
    """The loop's events, indented by level, each with the callbacks that run at it."""
    depth, lines = 0, []
    for step in _LOOP_OUTLINE:
        if step.startswith('Start'):
            lines.append(f"{'   ' * depth}{step}")
            depth += 1
        elif step.startswith('End'):
            depth -= 1
            lines.append(f"{'   ' * depth}{step}")
        elif step in handlers:
            lines.append(f"{'   ' * depth} - {step:<15}: {[cb for cb, _ in handlers[step][1]]}")
        else:
            lines.append(f"{'   ' * depth} - {step}")
    return '\n'.join(lines)


_LOOP_OUTLINE = (
    'Start Fit', 'before_fit', 'Start Epoch Loop', 'before_epoch', 'Start Train', 'before_train',
    'Start Batch Loop', 'before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_cancel_backward',
    'after_backward', 'before_step', 'after_cancel_step', 'after_step', 'after_cancel_batch', 'after_batch',
    'cleanup_batch', 'End Batch Loop', 'after_cancel_train', 'after_train', 'cleanup_train', 'End Train',
    'Start Valid', 'before_validate', 'Start Batch Loop', '(the batch events above, without backward and step)',
    'End Batch Loop', 'after_cancel_validate', 'after_validate', 'cleanup_validate', 'End Valid',
    'after_cancel_epoch', 'after_epoch', 'cleanup_epoch', 'End Epoch Loop', 'after_cancel_fit', 'after_fit',
    'cleanup_fit', 'End Fit')


def _handler(cb: Callback, name: str) -> Callable[[], None] | None:
    # Looked up on the instance, then the class: Callback.__getattr__ would otherwise reach the learner.
    fn: Any = cb.__dict__.get(name)
    if fn is not None:
        return fn
    return getattr(cb, name) if getattr(type(cb), name, None) is not None else None
