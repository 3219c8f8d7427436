"""Crash-safe saves (temp file, fsync, rename) and loads that never unpickle code."""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import pickletools
import re
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator

import torch

__all__ = ['UnsafeFileError', 'CorruptFileError', 'atomic_write', 'atomic_save', 'atomic_write_text',
           'safe_load']

_REEXPORT_HINT = ("blocklearn never unpickles code, so it only reads files of tensors and plain data "
                  "(torch.load(weights_only=True)). If you trust where the file came from, load it once "
                  "with the tool that wrote it and save plain data instead: "
                  "torch.save(model.state_dict(), path), or learn.export() for a Learner.")


class UnsafeFileError(pickle.UnpicklingError):
    """A file holds a pickle that would import or call code; it was refused, not run."""


class CorruptFileError(ValueError):
    """A file is truncated or is not something `torch.save` wrote."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'wb', encoding: str | None = None) -> Iterator[IO]:
    """Open a temp file next to `path` for writing; on success it replaces `path` in one rename.

    If the block raises or the process dies, `path` keeps its previous content.
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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to `path` atomically: a crash mid-save leaves the previous file intact."""
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(obj, f)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = 'utf-8') -> Path:
    """Write `text` to `path` atomically (temp file, fsync, rename)."""
    path = Path(path)
    with atomic_write(path, 'w', encoding=encoding) as f:
        f.write(text)
    return path


def safe_load(path: str | os.PathLike, map_location: Any = 'cpu') -> Any:
    """Load a `torch.save` file with `weights_only=True`; a pickle that would run code raises `UnsafeFileError`."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeFileError(_unsafe_message(path, str(e))) from None
    except EOFError:
        raise CorruptFileError(_corrupt_message(path, 'it ends too soon')) from None
    except KeyError:
        # the legacy (pre-zip) reader's way of saying the first bytes are not a torch header
        raise CorruptFileError(_corrupt_message(path, 'unknown file format')) from None
    except RuntimeError as e:
        # torch raises RuntimeError for many things (devices, dtypes); only a broken archive is "corrupt".
        if 'PytorchStreamReader' not in str(e):
            raise
        raise CorruptFileError(_corrupt_message(path, str(e).split('.')[0])) from None


def _create_temp(path: Path) -> Path:
    """A new, empty, hidden file in `path`'s directory, created with the default permissions (umask)."""
    while True:
        tmp = path.with_name(f'.{path.name}.{secrets.token_hex(4)}.tmp')
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
