"""Collecting items: files under a folder, filtered by extension, in a stable order."""
from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Iterable, Iterator

from .collection import L

__all__ = ['get_files', 'FileGetter', 'DataPath', 'Listing']


def get_files(path: str | os.PathLike, extensions: Iterable[str] | None = None, recurse: bool = True,
              folders: Iterable[str] | None = None, followlinks: bool = True) -> list[Path]:
    """Files under `path` with one of `extensions`, hidden files and folders skipped, sorted.

    Sorted (fastai keeps file-system order) so that a seeded split is the same on every machine.
    """
    path = Path(path)
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


class DataPath(type(Path())):
    """A `Path` (what `untar_data` returns) with `ls()`; joining with `/` keeps the type, so `(path/'images').ls()` works.

    After fastbook's `Path.BASE_PATH = path`, its repr is relative to that folder: `Path('train/3')`."""

    def __repr__(self) -> str:
        base = getattr(Path, 'BASE_PATH', None)
        if base is not None:
            try:
                return f"Path({str(self.relative_to(base))!r})"
            except (ValueError, TypeError):  # not under BASE_PATH: shown in full
                pass
        return super().__repr__()

    def ls(self, n_max: int | None = None, file_type: str | None = None,
           file_exts: Iterable[str] | str | None = None) -> Listing:
        """The folder's entries, sorted; filter by mime-like `file_type` ('image') or `file_exts`, at most `n_max`."""
        if not self.is_dir():
            raise NotADirectoryError(f"ls(): '{self}' is not a folder" + (' (it is a file).' if self.exists()
                                                                           else ' (it does not exist).'))
        exts = {file_exts} if isinstance(file_exts, str) else set(file_exts or ())
        exts = {e.lower() if e.startswith('.') else '.' + e.lower() for e in exts}
        found = []
        for o in sorted(os.scandir(self), key=lambda e: e.name):
            suffix = os.path.splitext(o.name)[1].lower()
            if exts and suffix not in exts:
                continue
            if file_type is not None and not (mimetypes.guess_type(o.name)[0] or '').startswith(file_type):
                continue
            found.append(self / o.name)
            if n_max is not None and len(found) >= n_max:
                break
        return Listing(found)


def _walk(path: Path, folders: set[str] | None, followlinks: bool) -> Iterator[tuple[Path, list[str]]]:
    """Each visible folder under `path` with its file names, each real folder once: a link is followed only to a
    folder not already seen, after the tree itself, so a link loop (a link to a parent) is never walked again."""
    seen: set[tuple[int, int]] = set()
    links: list[Path] = []
    yield from _walk_tree(path, folders, seen, links)
    while followlinks and links:
        yield from _walk_tree(links.pop(0), None, seen, links)


def _walk_tree(start: Path, folders: set[str] | None, seen: set[tuple[int, int]],
               links: list[Path]) -> Iterator[tuple[Path, list[str]]]:
    for root, dirs, files in os.walk(start):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        top = root == str(start)
        kept = sorted(d for d in dirs if not d.startswith('.') and (not top or folders is None or d in folders))
        links += [Path(root) / d for d in kept if os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in kept if not os.path.islink(os.path.join(root, d))]
        yield Path(root), files


def _keep(root: Path, files: Iterable[str], exts: set[str] | None) -> list[Path]:
    return [root / f for f in files if not f.startswith('.') and (exts is None or os.path.splitext(f)[1].lower() in exts)]


class FileGetter:
    """`get_items` for a DataBlock: `get_files` with fixed arguments (picklable, unlike a lambda)."""

    def __init__(self, suf: str = '', extensions: Iterable[str] | None = None, recurse: bool = True,
                 folders: Iterable[str] | None = None):
        self.suf, self.extensions, self.recurse, self.folders = suf, extensions, recurse, folders

    def __call__(self, path: str | os.PathLike) -> list[Path]:
        return get_files(Path(path) / self.suf, self.extensions, self.recurse, self.folders)
