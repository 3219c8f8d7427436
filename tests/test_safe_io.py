import io
import os
import pickle
import shlex
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from blocklearn.blocks.safe_io import (CorruptFileError, UnsafeFileError, atomic_save, atomic_write, atomic_write_text,
                            safe_load)

# The child writes `fraction` of a new torch file through atomic_write, reports how many bytes, then blocks
# on stdin until the parent SIGKILLs it: the kill always lands mid-save, with no timing involved.
_CHILD = textwrap.dedent('''
    import io, sys, torch
    from blocklearn.blocks.safe_io import atomic_write
    path, fraction = sys.argv[1], float(sys.argv[2])
    buf = io.BytesIO()
    torch.save({'w': torch.full((4096,), 2.0), 'step': 2}, buf)
    data = buf.getvalue()
    with atomic_write(path) as f:
        f.write(data[:int(len(data) * fraction)])
        f.flush()
        print(int(len(data) * fraction), flush=True)
        sys.stdin.read()
''')


class _RunsShell:
    """Unpickling this calls os.system: the attack a tampered checkpoint carries."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.mark.parametrize('fraction', [0.5, 1.0])
def test_save_killed_midway_leaves_previous_file(tmp_path, fraction):
    path = tmp_path / 'model.pth'
    atomic_save({'w': torch.full((4096,), 1.0), 'step': 1}, path)
    proc = subprocess.Popen([sys.executable, '-c', _CHILD, str(path), str(fraction)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        written = int(proc.stdout.readline())
        temps = [p for p in tmp_path.iterdir() if p != path]
        assert len(temps) == 1 and temps[0].stat().st_size == written > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    state = safe_load(path)
    assert state['step'] == 1 and torch.equal(state['w'], torch.full((4096,), 1.0))


def test_failed_save_keeps_previous_file_and_cleans_up(tmp_path):
    path = tmp_path / 'model.pth'
    atomic_save({'step': 1}, path)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        atomic_save({'step': 2, 'fn': lambda x: x}, path)
    assert safe_load(path) == {'step': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['model.pth']


def test_atomic_save_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / 'model.pth'
    atomic_save({'step': 1}, path)
    path.chmod(0o640)
    atomic_save({'step': 2, 'w': torch.arange(3)}, path)
    state = safe_load(path)
    assert state['step'] == 2 and state['w'].tolist() == [0, 1, 2]
    assert path.stat().st_mode & 0o777 == 0o640


def test_new_file_gets_default_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / 'recipe.json', '{}')
    finally:
        os.umask(umask)
    assert (tmp_path / 'recipe.json').stat().st_mode & 0o777 == 0o644


def test_atomic_write_text_round_trip(tmp_path):
    path = atomic_write_text(tmp_path / 'recipe.json', '{"vocab": ["café", "chat"]}')
    assert path.read_text(encoding='utf-8') == '{"vocab": ["café", "chat"]}'
    atomic_write_text(path, 'second')
    assert path.read_text() == 'second'


def test_atomic_write_refuses_read_mode(tmp_path):
    with pytest.raises(ValueError, match="mode='rb'"):
        with atomic_write(tmp_path / 'x', 'rb'):
            pass


def test_save_into_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='models.*does not exist'):
        atomic_save({'step': 1}, tmp_path / 'models' / 'stage-1.pth')


def test_safe_load_round_trips_plain_state(tmp_path):
    state = {'model': {'0.weight': torch.randn(4, 3), '0.bias': torch.zeros(4)},
             'opt': {'state': {0: {'step': torch.tensor(3.0)}}, 'param_groups': [{'lr': 1e-3, 'params': [0]}]},
             'epoch': 2, 'vocab': ['cat', 'dog']}
    atomic_save(state, tmp_path / 'ckpt.pth')
    loaded = safe_load(tmp_path / 'ckpt.pth')
    assert torch.equal(loaded['model']['0.weight'], state['model']['0.weight'])
    assert loaded['opt']['param_groups'] == state['opt']['param_groups']
    assert loaded['epoch'] == 2 and loaded['vocab'] == ['cat', 'dog']


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('writer', ['torch.save', 'pickle0', 'pickle2', 'pickle5'])
def test_malicious_pickle_is_refused_without_running(tmp_path, writer):
    marker = tmp_path / 'MARKER'
    evil = {'weights': torch.ones(2), 'payload': _RunsShell(f'touch {shlex.quote(str(marker))}')}
    path = tmp_path / 'model.pth'
    if writer == 'torch.save':
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil, protocol=int(writer[-1])))
    with pytest.raises(UnsafeFileError) as err:
        safe_load(path)
    msg = str(err.value)
    assert str(path) in msg and 'posix.system' in msg
    assert 'never unpickles code' in msg and 'state_dict()' in msg
    assert not marker.exists()


def test_corrupt_file_is_named(tmp_path):
    buf = io.BytesIO()
    torch.save({'w': torch.ones(100)}, buf)
    path = tmp_path / 'cut.pth'
    path.write_bytes(buf.getvalue()[:200])
    with pytest.raises(CorruptFileError, match='cut.pth.*truncated'):
        safe_load(path)
    path.write_bytes(b'')
    with pytest.raises(CorruptFileError, match='cut.pth'):
        safe_load(path)

