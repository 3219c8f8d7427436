"""Crash-safe saves (temp file, fsync, rename) and loads that never unpickle code and refuse damaged files."""
from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
import pickletools
import re
import secrets
import shutil
import struct
import time
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Iterator

import torch

__all__ = ['UnsafeFileError', 'CorruptFileError', 'atomic_write', 'atomic_save', 'atomic_write_text',
           'safe_load', 'remove_stale_leftovers', 'temp_prefix']

# Every write of this process starts after this: an older leftover is another process's.
_STARTED = time.time()
# What an OSError says when the bytes did not fit: no space, over the file-size limit, over quota.
_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, 'EDQUOT', errno.ENOSPC)}
# The first bytes of files often given by mistake, for a message that says what the file is.
_KNOWN_FORMATS = ((b'\xff\xd8\xff', 'a JPEG image'), (b'\x89PNG', 'a PNG image'), (b'GIF8', 'a GIF image'),
                  (b'RIFF', 'a RIFF file such as a WebP image'), (b'%PDF', 'a PDF document'),
                  (b'\x1f\x8b', 'a gzip archive'), (b'<', 'an HTML or XML page, such as a saved error page'))

_REEXPORT_HINT = ("blocklearn never unpickles code, so it only reads files of tensors and plain data "
                  "(torch.load(weights_only=True)). If you trust where the file came from, load it once "
                  "with the tool that wrote it and save plain data instead: "
                  "torch.save(model.state_dict(), path), or learn.export() for a Learner.")


class UnsafeFileError(pickle.UnpicklingError):
    """A file holds a pickle that would import or call code; it was refused, not run."""


class CorruptFileError(ValueError):
    """A file is truncated, damaged (a checksum fails), or is not something `torch.save` wrote."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'wb', encoding: str | None = None) -> Iterator[IO]:
    """Open a temp file next to `path` for writing; on success it replaces `path` in one rename.

    If the block raises or the process dies, `path` keeps its previous content; a full disk (or file-size limit)
    raises an OSError that says so and names `path`.
    """
    path = Path(path)
    if 'w' not in mode:
        raise ValueError(f"atomic_write(mode={mode!r}) for {path}: the mode must be a write mode such as 'wb' or 'w'.")
    tmp = _create_temp(path)
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        full = _full_disk_error(e)
        if full is None:
            raise
        raise OSError(full.errno, f"Could not save {path}: disk full or file too large ({full.strerror}); "
                                  f"{path.name} was left as it was. Free space there, or save elsewhere.") from None
    _fsync_dir(path.parent)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to `path` atomically: a crash mid-save leaves the previous file intact.

    Then the temp files that killed saves of `path` left (a checkpoint's size each) are removed."""
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(obj, f)
    # here, not in every atomic_write: resize_images writes thousands of files to one folder, and each would
    # list the folder again
    remove_stale_leftovers(path, '.tmp')
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = 'utf-8') -> Path:
    """Write `text` to `path` atomically (temp file, fsync, rename)."""
    path = Path(path)
    with atomic_write(path, 'w', encoding=encoding) as f:
        f.write(text)
    return path


def safe_load(path: str | os.PathLike, map_location: Any = 'cpu') -> Any:
    """Load a `torch.save` file with `weights_only=True`; a pickle that would run code raises `UnsafeFileError`.

    A file that is damaged (a checksum fails: torch.load does not check them), truncated, or not a torch file at
    all raises `CorruptFileError`, with one line that names the file."""
    path = Path(path)
    if not _check_zip(path):
        fmt = _not_a_pickle(path)
        if fmt is not None:
            raise CorruptFileError(f"Could not read {path}: it is not a file torch.save wrote{fmt}. Give the "
                                   f"checkpoint or export itself (learn.save / learn.export write them).")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeFileError(_unsafe_message(path, str(e))) from None
    except EOFError:
        raise CorruptFileError(_corrupt_message(path, 'it ends too soon')) from None
    except RuntimeError as e:
        # torch raises RuntimeError for many things; one about devices is about this machine, not the file
        if 'cuda' in str(e).lower() or 'device' in str(e).lower():
            raise
        raise CorruptFileError(_damaged_message(path, _first_line(e))) from None
    except (TypeError, ValueError, LookupError, OverflowError, struct.error) as e:
        # what torch's reader raises on values no torch.save writes: a claimed size past 2**63 bytes, a bad key
        detail = ('a tensor in it claims more than 2**63 bytes' if 'get_storage_from_record' in str(e)
                  else f'{type(e).__name__}: {_first_line(e)}')
        raise CorruptFileError(_damaged_message(path, detail)) from None


def remove_stale_leftovers(target: str | os.PathLike, suffix: str) -> list[Path]:
    """Remove the hidden `.<name>.*<suffix>` siblings of `target` that a killed writer left; return what was removed.

    A leftover is stale when the pid in its name is dead, or when it is older than this process and no live
    process (but this one) names it; a live writer's is kept. Errors are ignored: it is only tidying up."""
    target = Path(target)
    pattern = re.compile(rf'\.{re.escape(target.name)}\.(?:(\d+)-)?\w+{re.escape(suffix)}')
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or not _is_stale(entry, int(m.group(1)) if m.group(1) else None):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def temp_prefix(target: str | os.PathLike) -> str:
    """`.<name>.<pid>-`: how a hidden temp sibling of `target` starts, so `remove_stale_leftovers` knows its writer."""
    return f'.{Path(target).name}.{os.getpid()}-'


def _create_temp(path: Path) -> Path:
    """A new, empty, hidden file in `path`'s directory, created with the default permissions (umask)."""
    while True:
        tmp = path.with_name(f'{temp_prefix(path)}{secrets.token_hex(4)}.tmp')
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise FileNotFoundError(f"Cannot save {path}: the folder {path.parent} does not exist. "
                                    f"Create it first, e.g. Path({str(path.parent)!r}).mkdir(parents=True).") from None


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; some platforms cannot open a folder, and then there is nothing to do."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_stale(entry: os.DirEntry, pid: int | None) -> bool:
    if pid is not None and pid != os.getpid() and _pid_alive(pid) is False:
        return True
    if pid is not None and pid != os.getpid():
        return False  # a live process's, or one we cannot check: maybe a save in progress
    try:
        return entry.stat(follow_symlinks=False).st_mtime < _STARTED
    except OSError:
        return False


def _pid_alive(pid: int) -> bool | None:
    """Whether process `pid` runs on this machine; None where that cannot be asked without harm (Windows)."""
    if os.name != 'posix':
        return None  # os.kill(pid, 0) would end the process there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def _full_disk_error(e: BaseException) -> OSError | None:
    """The OSError saying the disk (or the file-size limit) is full, in `e` or what it was raised from."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno in _FULL:
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _check_zip(path: Path) -> bool:
    """Whether `path` is a zip (what torch.save writes) whose every member passes its CRC check."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, struct.error, EOFError, ValueError, LookupError, NotImplementedError,
            OverflowError, OSError) as e:  # OSError: a damaged offset makes it seek before the start
        raise CorruptFileError(_damaged_message(path, f'its zip directory is broken: {_first_line(e)}')) from None
    if bad is not None:
        raise CorruptFileError(_damaged_message(path, f'the checksum of {bad!r} fails: its bytes changed after it '
                                                      f'was saved'))
    return True


def _not_a_pickle(path: Path) -> str | None:
    """For a file that is not a zip: None if it starts like a pickle, else ' (it looks like a JPEG image)' or ''."""
    try:
        with open(path, 'rb') as f:
            head = f.read(4096)
    except OSError:
        return None  # torch.load will name the problem
    if not head:
        return None
    if head.startswith(b'PK\x03\x04'):  # a zip with no end: a torch.save cut short
        raise CorruptFileError(_corrupt_message(path, 'the end of its zip is missing'))
    try:
        next(pickletools.genops(io.BytesIO(head)))  # its first opcode: what a JPEG or a web page never starts with
        return None
    except ValueError:
        pass
    what = next((name for magic, name in _KNOWN_FORMATS if head.lstrip().startswith(magic)), None)
    return f' (it looks like {what})' if what else ''


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


def _damaged_message(path: Path, detail: str) -> str:
    return (f"Could not read {path}: it is damaged ({detail}). Save or export it again, or copy it again from "
            f"where it came from.")


def _unsafe_message(path: Path, torch_msg: str) -> str:
    names = _pickle_globals(path)
    found = re.search(r'GLOBAL (\S+)', torch_msg)
    if not names and found:
        names = [found.group(1)]
    what = (f"it would import {', '.join(names)}" if names
            else 'it is a pickle that torch.load(weights_only=True) cannot read as plain data')
    return f"Refused to load {path}: {what}. {_REEXPORT_HINT}"


def _corrupt_message(path: Path, detail: str) -> str:
    return (f"Could not read {path}: it is truncated or was not written by torch.save ({detail}). "
            f"If a crash cut it short, save it again (blocklearn's own saves are atomic).")


def _pickle_globals(path: Path) -> list[str]:
    """The `module.name`s a pickle would import, read from its opcodes without executing anything."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                member = next((n for n in zf.namelist() if n.endswith('data.pkl')), None)
                data = zf.read(member) if member else b''
        else:
            data = path.read_bytes()
        return _globals_in(data)
    except (OSError, zipfile.BadZipFile):
        return []


def _globals_in(data: bytes) -> list[str]:
    # Protocol 4 builds a global from two strings on the stack, often fetched back from the memo.
    names, strings, memo = [], [], {}
    pushed = None
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name == 'GLOBAL':
                names.append(arg.replace(' ', '.'))
            elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:
                names.append(f'{strings[-2]}.{strings[-1]}')
            elif op.name == 'MEMOIZE':
                memo[len(memo)] = pushed
            elif op.name in ('PUT', 'BINPUT', 'LONG_BINPUT'):
                memo[arg] = pushed
            elif op.name in ('GET', 'BINGET', 'LONG_BINGET') and memo.get(arg):
                strings.append(memo[arg])
            pushed = arg if isinstance(arg, str) and 'UNICODE' in op.name else None
            if pushed is not None:
                strings.append(pushed)
    except (ValueError, EOFError, KeyError):
        pass
    return list(dict.fromkeys(names))
