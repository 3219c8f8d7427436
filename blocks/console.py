"""How the library writes to whoever runs it: progress as bars (a terminal, a notebook) or as whole lines (a file,
a pipe, CI, SLURM), and the `blocklearn` logger that carries its status messages."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

from fastprogress import fastprogress

__all__ = ['logger', 'progress_mode', 'PROGRESS_ENV', 'PROGRESS_MODES']

PROGRESS_ENV = 'BLOCKLEARN_PROGRESS'
PROGRESS_MODES = ('bar', 'lines')

# Status messages ('Better model found ...', 'reducing lr ...'). INFO, so they show as fastai's prints did;
# `logging.getLogger('blocklearn').setLevel(logging.WARNING)` silences them.
logger = logging.getLogger('blocklearn')


def progress_mode(mode: str | None = None) -> str:
    """'bar' or 'lines': `mode` if given, else $BLOCKLEARN_PROGRESS, else bars when stdout is a terminal or a
    notebook and lines otherwise (carriage returns make a log file unreadable)."""
    source = 'mode'
    if mode is None:
        mode, source = os.environ.get(PROGRESS_ENV, '').strip().lower() or None, f'${PROGRESS_ENV}'
    if mode is None:
        return 'bar' if _in_notebook() or _is_terminal(sys.stdout) or 'PYCHARM_HOSTED' in os.environ else 'lines'
    if mode not in PROGRESS_MODES:
        raise ValueError(f"{source}={mode!r}: use 'bar' (redrawn progress bars) or 'lines' (one line per epoch, "
                         f"for log files), or leave it unset to choose from the output.")
    return mode


def _in_notebook() -> bool:
    # Read at each call: fastprogress turns it off when it cannot import IPython's display.
    return bool(getattr(fastprogress, 'IN_NOTEBOOK', False))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class _DefaultHandler(logging.Handler):
    """Writes a message as `print` would, to the `sys.stdout` of the moment (a notebook cell, a redirect), unless
    a handler the user configured (on the root logger, say) receives it: then that one alone does."""

    def emit(self, record: logging.LogRecord) -> None:
        if _handled_elsewhere(record, self):
            return
        try:
            sys.stdout.write(self.format(record) + '\n')
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging's contract: a failing handler reports, never raises
            self.handleError(record)


def _handled_elsewhere(record: logging.LogRecord, mine: logging.Handler) -> bool:
    log: logging.Logger | None = logging.getLogger(record.name)
    while log is not None:
        if any(h is not mine and not isinstance(h, logging.NullHandler) for h in log.handlers):
            return True
        log = log.parent if log.propagate else None
    return False


_HANDLER_NAME = 'blocklearn-default'
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)
if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):  # once, even if this module is reloaded
    _handler = _DefaultHandler()
    _handler.set_name(_HANDLER_NAME)
    logger.addHandler(_handler)
