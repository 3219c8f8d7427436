import io
import os
import pickle
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

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



def _saved(tmp_path, state=None):
    path = tmp_path / 'export.pkl'
    atomic_save(state if state is not None else {'w': torch.linspace(-1, 1, 300), 'recipe': '{"vocab": ["a"]}'}, path)
    return path


def test_weights_overwritten_in_place_fail_their_checksum(tmp_path):
    # torch.load does not check a zip's CRCs: these bytes would load, and predict nan
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(torch.linspace(-1, 1, 300).numpy().tobytes()[:64]) + 400
    data[at:at + 16] = b'\xff' * 16
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"export\.pkl.*damaged.*checksum of '\w+/data/0'"):
        safe_load(path)


def test_any_flipped_byte_is_refused_or_changes_nothing(tmp_path):
    path = _saved(tmp_path)
    good = path.read_bytes()
    want = safe_load(path)
    refused = 0
    for at in range(0, len(good), 3):
        data = bytearray(good)
        data[at] ^= 0x55
        path.write_bytes(bytes(data))
        try:
            got = safe_load(path)
        except CorruptFileError as e:
            assert str(path) in str(e) and '\n' not in str(e), (at, str(e))
            refused += 1
            continue
        # a byte no reader uses (a timestamp, padding): what loads is exactly what was saved
        assert torch.equal(got['w'], want['w']) and got['recipe'] == want['recipe'], at
    assert refused > len(good) // 6


def test_a_jpeg_is_not_called_a_pickle(tmp_path, write_image):
    photo = write_image(tmp_path / 'cat.jpg')
    with pytest.raises(CorruptFileError, match=r'cat\.jpg.*not a file torch\.save wrote.*JPEG image'):
        safe_load(photo)
    (tmp_path / 'page.pth').write_text('<!DOCTYPE html><html>Access denied</html>')
    with pytest.raises(CorruptFileError, match=r'page\.pth.*HTML'):
        safe_load(tmp_path / 'page.pth')


def _with_storage_of(path, numel: int):
    """A torch file whose one tensor claims a storage of `numel` floats (the data holds 3): a hostile edit."""
    torch.save({'w': torch.tensor([1., 2., 3.])}, path)
    with zipfile.ZipFile(path) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, 'w') as zf:
        for name, data in members:
            if name.endswith('data.pkl'):  # the storage's size is the BININT1 3 just before the tuple closes
                assert data.count(b'K\x03t') == 1
                data = data.replace(b'K\x03t', b'\x8a\x08' + numel.to_bytes(8, 'little') + b't')
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize('numel, says', [(2 ** 62, r'a tensor in it claims more than 2\*\*63 bytes'),
                                         (2 ** 40, 'record size')])
def test_a_storage_larger_than_its_data_is_refused(tmp_path, numel, says):
    path = _with_storage_of(tmp_path / 'huge.pth', numel)
    with pytest.raises(CorruptFileError, match=rf'huge\.pth: it is damaged \({says}'):
        safe_load(path)


_FULL_DISK = textwrap.dedent('''
    import resource, sys, torch
    from blocklearn.blocks.safe_io import atomic_save
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # as if the disk filled up at 100 kB
    try:
        atomic_save({'w': torch.zeros(100_000)}, sys.argv[1])
    except OSError as e:
        print(e)
''')


@pytest.mark.skipif(sys.platform != 'linux', reason='RLIMIT_FSIZE semantics are Linux-specific')
def test_disk_full_names_the_file_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / 'model.pth'
    atomic_save({'step': 1}, path)
    res = subprocess.run([sys.executable, '-c', _FULL_DISK, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert str(path) in res.stdout and 'disk full or file too large' in res.stdout, res.stdout
    assert safe_load(path) == {'step': 1} and sorted(p.name for p in tmp_path.iterdir()) == ['model.pth']


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_next_save_removes_stale_temp_files_of_the_same_target(tmp_path):
    path = tmp_path / 'model.pth'
    hour_ago = time.time() - 3600
    stale = [tmp_path / '.model.pth.0a1b2c3d.tmp', tmp_path / f'.model.pth.{_dead_pid()}-0a1b2c3d.tmp']
    kept = [tmp_path / f'.model.pth.{os.getppid()}-0a1b2c3d.tmp',  # its writer is alive: maybe mid-save
            tmp_path / '.model.pth.99999999.tmp',                    # no pid, and newer than this process
            tmp_path / '.other.pth.0a1b2c3d.tmp', tmp_path / '.model.pth.notes']
    for p in stale + kept:
        p.write_bytes(b'x' * 1000)
    os.utime(stale[0], (hour_ago, hour_ago))
    os.utime(kept[0], (hour_ago, hour_ago))
    atomic_save({'step': 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['model.pth', *(p.name for p in kept)])
