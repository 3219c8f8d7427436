"""Collecting items: files under a folder, filtered by extension, in a stable order."""
from __future__ import annotations

import mimetypes
import os
import pathlib
from typing import Iterable, Iterator

from .collection import L

__all__ = ['get_files', 'FileGetter', 'Path', 'DataPath', 'Listing']


def get_files(path: str | os.PathLike, extensions: Iterable[str] | None = None, recurse: bool = True,
              folders: Iterable[str] | None = None, followlinks: bool = True) -> list[pathlib.Path]:
    """Files under `path` with one of `extensions`, hidden files and folders skipped, sorted.

    Sorted (fastai keeps file-system order) so that a seeded split is the same on every machine.
    """
    path = pathlib.Path(path)
    if not path.is_dir():
        hint = 'it is a file; pass its folder' if path.exists() else 'check the path'
        raise FileNotFoundError(f"get_files: folder '{path}' not found ({hint}).")
    exts = {e.lower() if e.startswith('.') else '.' + e.lower() for e in extensions} if extensions else None
    folders = set(folders) if folders else None
    found = []
    if recurse:
        for root, files in _walk(path, folders, followlinks):
            found += _keep(root, files, exts)
    else:
        found = _keep(path, [f.name for f in os.scandir(path) if f.is_file()], exts)
    return sorted(found)


class Listing(L):
    """What `ls()` returns: an `L` of paths, so `path.ls().sorted()` works; its repr starts with its length,
    like `(#3) [Path('a'),...]`, and stays short."""


class Path(type(pathlib.Path())):
    """pathlib's `Path` with fastai's `ls()`: what `untar_data` returns and what `vision.all` exports as `Path`.

    A subclass of the platform's concrete path (pathlib's own `Path` cannot be subclassed before Python 3.12), so
    every path it makes (`path/'images'`, `.parent`, `ls()`) is one too. After fastbook's `Path.BASE_PATH = path`
    its repr is relative to that folder: `Path('train/3')`."""

    def __repr__(self) -> str:
        # looked up on the class: fastbook sets it on this Path, older code on pathlib's (inherited here)
        base = getattr(type(self), 'BASE_PATH', None)
        if base is not None:
            try:
                return f"Path({self.relative_to(base).as_posix()!r})"
            except (ValueError, TypeError):  # not under BASE_PATH: shown in full
                pass
        return f"Path({self.as_posix()!r})"

    def ls(self, n_max: int | None = None, file_type: str | None = None,
           file_exts: Iterable[str] | str | None = None) -> Listing:
        """The folder's entries, sorted, at most `n_max`; with `file_exts` ('.pkl' or a list) and/or `file_type`
        (a mimetype's first half: 'image', 'text'), only the entries with one of those extensions.

        As fastai, `file_type` adds the extensions of its mimetypes to `file_exts` (either one matches); unlike
        fastai, the order is sorted (the file system's order differs between machines) and extensions ignore case.
        """
        if not self.is_dir():
            why = 'it is a file: list its folder, path.parent.ls()' if self.exists() else 'it does not exist'
            raise NotADirectoryError(f"ls(): '{self}' is not a folder ({why}).")
        exts = {file_exts} if isinstance(file_exts, str) else set(file_exts or ())
        exts = {e.lower() if e.startswith('.') else '.' + e.lower() for e in exts}
        found = []
        for o in sorted(os.scandir(self), key=lambda e: e.name):
            if (exts or file_type is not None) and not _wanted(o.name, exts, file_type):
                continue
            found.append(self / o.name)
            if n_max is not None and len(found) >= n_max:
                break
        return Listing(found)


DataPath = Path  # the name `untar_data`'s paths had first; kept for code that imports it


def _wanted(name: str, exts: set[str], file_type: str | None) -> bool:
    if os.path.splitext(name)[1].lower() in exts:
        return True
    return file_type is not None and (mimetypes.guess_type(name)[0] or '').startswith(file_type + '/')


def _walk(path: pathlib.Path, folders: set[str] | None,
          followlinks: bool) -> Iterator[tuple[pathlib.Path, list[str]]]:
    """Each visible folder under `path` with its file names, each real folder once: a link is followed only to a
    folder not already seen, after the tree itself, so a link loop (a link to a parent) is never walked again."""
    seen: set[tuple[int, int]] = set()
    links: list[pathlib.Path] = []
    yield from _walk_tree(path, folders, seen, links)
    while followlinks and links:
        yield from _walk_tree(links.pop(0), None, seen, links)


def _walk_tree(start: pathlib.Path, folders: set[str] | None, seen: set[tuple[int, int]],
               links: list[pathlib.Path]) -> Iterator[tuple[pathlib.Path, list[str]]]:
    for root, dirs, files in os.walk(start):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        top = root == str(start)
        kept = sorted(d for d in dirs if not d.startswith('.') and (not top or folders is None or d in folders))
        links += [pathlib.Path(root) / d for d in kept if os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in kept if not os.path.islink(os.path.join(root, d))]
        yield pathlib.Path(root), files


def _keep(root: pathlib.Path, files: Iterable[str], exts: set[str] | None) -> list[pathlib.Path]:
    return [root / f for f in files if not f.startswith('.') and (exts is None or os.path.splitext(f)[1].lower() in exts)]


class FileGetter:
    """`get_items` for a DataBlock: `get_files` with fixed arguments (picklable, unlike a lambda)."""

    def __init__(self, suf: str = '', extensions: Iterable[str] | None = None, recurse: bool = True,
                 folders: Iterable[str] | None = None):
        self.suf, self.extensions, self.recurse, self.folders = suf, extensions, recurse, folders

    def __call__(self, path: str | os.PathLike) -> list[pathlib.Path]:
        return get_files(pathlib.Path(path) / self.suf, self.extensions, self.recurse, self.folders)
