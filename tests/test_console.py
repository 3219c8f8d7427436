"""blocks/console: bars or lines from where stdout goes, and the `blocklearn` logger a plain user sees."""
import io
import logging

import pytest
from fastprogress import fastprogress

from blocklearn.blocks.console import logger, progress_mode


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def undecided(monkeypatch):
    """No forcing variable, no PyCharm, no notebook: the choice comes from stdout alone."""
    for name in ('BLOCKLEARN_PROGRESS', 'PYCHARM_HOSTED'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(fastprogress, 'IN_NOTEBOOK', False)
    return monkeypatch


def test_bars_in_a_terminal_lines_in_a_file_or_pipe(undecided):
    undecided.setattr('sys.stdout', _Stream(tty=True))
    assert progress_mode() == 'bar'
    undecided.setattr('sys.stdout', _Stream(tty=False))
    assert progress_mode() == 'lines'
    undecided.setattr(fastprogress, 'IN_NOTEBOOK', True)   # a notebook's stdout is no tty, yet bars draw there
    assert progress_mode() == 'bar'


def test_the_variable_and_the_argument_force_either(undecided):
    undecided.setattr('sys.stdout', _Stream(tty=True))
    undecided.setenv('BLOCKLEARN_PROGRESS', 'lines')
    assert progress_mode() == 'lines' and progress_mode('bar') == 'bar'
    undecided.setattr('sys.stdout', _Stream(tty=False))
    undecided.setenv('BLOCKLEARN_PROGRESS', 'BAR')
    assert progress_mode() == 'bar' and progress_mode('lines') == 'lines'
    undecided.setenv('BLOCKLEARN_PROGRESS', 'fancy')
    with pytest.raises(ValueError, match=r"\$BLOCKLEARN_PROGRESS='fancy': use 'bar' .* or 'lines'"):
        progress_mode()
    with pytest.raises(ValueError, match=r"mode='none': use 'bar'"):
        progress_mode('none')


def test_status_messages_print_once_without_logging_configured(monkeypatch, capsys):
    # As a script or a notebook has it: the root logger has no handler (pytest's are taken away here).
    monkeypatch.setattr(logging.getLogger(), 'handlers', [])
    logger.info('Better model found')
    assert capsys.readouterr() == ('Better model found\n', '')


def test_a_configured_root_logger_gets_them_instead(monkeypatch, capsys):
    seen = io.StringIO()
    monkeypatch.setattr(logging.getLogger(), 'handlers', [logging.StreamHandler(seen)])  # logging.basicConfig's
    logger.info('reducing lr')
    assert seen.getvalue() == 'reducing lr\n' and capsys.readouterr() == ('', '')  # once, not also on stdout
    level = logger.level
    logger.setLevel(logging.WARNING)                                               # how a user silences them
    try:
        logger.info('Better model found')
    finally:
        logger.setLevel(level)
    assert seen.getvalue() == 'reducing lr\n'
