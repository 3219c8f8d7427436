"""Course datasets: `URLs`, `download_url` and `untar_data` with checksums and safe, atomic extraction."""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

from fastprogress.fastprogress import progress_bar

from blocklearn.blocks.console import logger, progress_mode
from blocklearn.blocks.files import DataPath
from blocklearn.blocks.safe_io import atomic_write_text, remove_stale_leftovers, temp_prefix

__all__ = ['URLs', 'checksums', 'DownloadError', 'UnsafeArchiveError', 'blocklearn_home', 'download_url',
           'untar_data']

_ENV_VARS = ('BLOCKLEARN_HOME', 'FASTAI_HOME')
_ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar.bz2', '.tbz2', '.tar.xz', '.txz', '.tar', '.zip')
_SUBDIRS = {'data': 'data', 'model': 'models', 'archive': 'archive', 'storage': 'tmp'}
_CHUNK = 1 << 20
# How much an archive may expand to; generous, as a guard against a bomb (a small archive of huge members).
_MAX_EXTRACT_SIZE = 64 << 30
_MAX_SIZE_VAR = 'BLOCKLEARN_MAX_EXTRACT_SIZE'
_SIZE_UNITS = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
_TAR_FILTER_ERRORS = getattr(tarfile, 'FilterError', ())


class URLs:
    """The public addresses of the fastai course datasets (archives on the fast.ai S3 buckets)."""
    S3 = 'https://s3.amazonaws.com/fast-ai-'
    URL = f'{S3}sample/'
    S3_IMAGE = f'{S3}imageclas/'
    S3_IMAGELOC = f'{S3}imagelocal/'
    S3_NLP = f'{S3}nlp/'
    S3_COCO = f'{S3}coco/'

    # small samples, for lessons and tests
    MNIST_SAMPLE = f'{URL}mnist_sample.tgz'
    MNIST_TINY = f'{URL}mnist_tiny.tgz'
    CAMVID_TINY = f'{URL}camvid_tiny.tgz'
    DOGS = f'{URL}dogscats.tgz'
    CIFAR = f'{URL}cifar10.tgz'
    PLANET_SAMPLE = f'{URL}planet_sample.tgz'
    PLANET_TINY = f'{URL}planet_tiny.tgz'
    BIWI_SAMPLE = f'{URL}biwi_sample.tgz'
    ADULT_SAMPLE = f'{URL}adult_sample.tgz'
    HUMAN_NUMBERS = f'{URL}human_numbers.tgz'
    IMDB_SAMPLE = f'{URL}imdb_sample.tgz'
    ML_SAMPLE = f'{URL}movie_lens_sample.tgz'

    # image classification
    PETS = f'{S3_IMAGE}oxford-iiit-pet.tgz'
    MNIST = f'{S3_IMAGE}mnist_png.tgz'
    MNIST_VAR_SIZE_TINY = f'{S3_IMAGE}mnist_var_size_tiny.tgz'
    IMAGENETTE = f'{S3_IMAGE}imagenette2.tgz'
    IMAGENETTE_160 = f'{S3_IMAGE}imagenette2-160.tgz'
    IMAGENETTE_320 = f'{S3_IMAGE}imagenette2-320.tgz'
    IMAGEWOOF = f'{S3_IMAGE}imagewoof2.tgz'
    IMAGEWOOF_160 = f'{S3_IMAGE}imagewoof2-160.tgz'
    IMAGEWOOF_320 = f'{S3_IMAGE}imagewoof2-320.tgz'
    CIFAR_100 = f'{S3_IMAGE}cifar100.tgz'
    CALTECH_101 = f'{S3_IMAGE}caltech_101.tgz'
    CARS = f'{S3_IMAGE}stanford-cars.tgz'
    CUB_200_2011 = f'{S3_IMAGE}CUB_200_2011.tgz'
    FLOWERS = f'{S3_IMAGE}oxford-102-flowers.tgz'
    FOOD = f'{S3_IMAGE}food-101.tgz'

    # localisation and segmentation
    CAMVID = f'{S3_IMAGELOC}camvid.tgz'
    BIWI_HEAD_POSE = f'{S3_IMAGELOC}biwi_head_pose.tgz'
    PASCAL_2007 = f'{S3_IMAGELOC}pascal_2007.tgz'
    PASCAL_2012 = f'{S3_IMAGELOC}pascal_2012.tgz'
    COCO_SAMPLE = f'{S3_COCO}coco_sample.tgz'
    COCO_TINY = f'{S3_COCO}coco_tiny.tgz'

    # text
    IMDB = f'{S3_NLP}imdb.tgz'
    WIKITEXT = f'{S3_NLP}wikitext-103.tgz'
    WIKITEXT_TINY = f'{S3_NLP}wikitext-2.tgz'


# Known sha256 digests by URL. Empty here because this library cannot fetch the archives to measure them;
# add your own (checksums[URLs.PETS] = '...') and untar_data verifies every download against them.
checksums: dict[str, str] = {}


class DownloadError(OSError):
    """A download failed; the message names the URL and where to put the file by hand."""


class UnsafeArchiveError(ValueError):
    """An archive holds a member that could write outside its folder (or a link or device); nothing was extracted."""


class _NotAnArchive(ValueError):
    """The file is neither a tar nor a zip archive."""


def blocklearn_home() -> Path:
    """The base folder for archives and data: `$BLOCKLEARN_HOME`, else `$FASTAI_HOME`, else `~/.fastai`."""
    for var in _ENV_VARS:
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return Path.home() / '.fastai'


def download_url(url: str, dest: str | os.PathLike, show_progress: bool = True, *, timeout: float = 60,
                 sha256: str | None = None) -> Path:
    """Download `url` to the file `dest` (or into the folder `dest`) through a temp file, so it is never partial.

    With `sha256` (the hex digest, or a prefix of at least 6 digits such as torchvision puts in its file names), a
    download whose digest does not match raises DownloadError and `dest` is left as it was.
    """
    if sha256 is not None and not re.fullmatch(r'[0-9a-fA-F]{6,64}', sha256):
        raise ValueError(f'download_url(sha256={sha256!r}) for {url}: pass the hex sha256 digest of the file, '
                         f'or its first 6 or more hex digits.')
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / _archive_name(url)
    _download(url, dest, show_progress, timeout, expected=sha256)
    return dest


def untar_data(url: str, archive: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
               c_key: str = 'data', force_download: bool = False, base: str | os.PathLike | None = None,
               sha256: str | None = None, max_size: int | None = None) -> DataPath:
    """Download and extract the archive at `url` into `<data>/<name>` and return that folder; offline if it exists.

    `name` is the file name less .tgz/.tar.gz/.zip; `data` and `archive` default to `<base>/data` and
    `<base>/archive`, `base` to `blocklearn_home()`. The sha256 from `sha256=` or `checksums[url]` is verified;
    with none, the digest of the first archive that extracts is recorded in `<archive>.sha256` and later
    downloads must match it. `force_download=True` starts from scratch: archive, record and leftovers go first.
    Extraction is atomic, refuses absolute paths, `..`, links and devices, and archives that would expand past
    `max_size` bytes (default `$BLOCKLEARN_MAX_EXTRACT_SIZE`, e.g. `200G`, else 64 GiB).
    """
    base = Path(base).expanduser() if base is not None else blocklearn_home()
    if c_key not in _SUBDIRS:
        raise ValueError(f"untar_data(c_key={c_key!r}) for {url}: c_key must be one of {sorted(_SUBDIRS)}.")
    fname = _archive_name(url)
    name = _strip_archive_suffix(fname)
    archive_dir = Path(archive).expanduser() if archive is not None else base / _SUBDIRS['archive']
    data_dir = Path(data).expanduser() if data is not None else base / _SUBDIRS[c_key]
    arch, dest = archive_dir / fname, data_dir / name
    if dest.exists() and not force_download:
        return DataPath(dest)
    limit = _extract_limit(max_size)
    if force_download:
        _start_afresh(arch, dest)

    expected = (sha256 or checksums.get(url) or _recorded_digest(arch)).lower() or None
    downloaded = force_download or not arch.exists()
    if downloaded:
        archive_dir.mkdir(parents=True, exist_ok=True)
        try:
            digest = _download(url, arch, show_progress=True)
        except DownloadError as e:
            raise DownloadError(_offline_message(url, e, arch, dest, base)) from None
    else:
        digest = _file_digest(arch)
    _check_digest(url, arch, digest, expected, downloaded)
    data_dir.mkdir(parents=True, exist_ok=True)
    _extract_into_place(arch, dest, replace=force_download, downloaded=downloaded, limit=limit)
    # Recorded only now: a download cut short (with no Content-Length to tell) fails to extract, and its
    # digest would otherwise make every later, complete download look tampered with.
    if expected is None:
        atomic_write_text(_digest_file(arch), f'{digest}  {arch.name}\n')
    return DataPath(dest)


def _start_afresh(arch: Path, dest: Path) -> None:
    """What force_download discards before downloading: the archive's recorded digest, and the leftovers of
    killed downloads and extractions. The archive and the folder are replaced only by a download that succeeds
    (so a file:// URL naming the cached archive itself still works)."""
    _digest_file(arch).unlink(missing_ok=True)
    remove_stale_leftovers(arch, '.part')
    for suffix in ('.extracting', '.old'):
        remove_stale_leftovers(dest, suffix)


def _extract_limit(max_size: int | None) -> int:
    """The most bytes an archive may expand to: `max_size`, else `$BLOCKLEARN_MAX_EXTRACT_SIZE`, else 64 GiB."""
    if max_size is not None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
            raise ValueError(f'untar_data(max_size={max_size!r}): give the most bytes an archive may expand to, '
                             f'e.g. max_size=200 * 2**30.')
        return max_size
    text = os.environ.get(_MAX_SIZE_VAR, '').strip()
    if not text:
        return _MAX_EXTRACT_SIZE
    m = re.fullmatch(r'(\d+)\s*([KMGT]?)(?:i?B)?', text, re.IGNORECASE)
    if m is None:
        raise ValueError(f'${_MAX_SIZE_VAR}={text!r} is not a size: give bytes, or a number with K, M, G or T '
                         f'(powers of 1024), e.g. {_MAX_SIZE_VAR}=200G.')
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]


def _download(url: str, dest: Path, show_progress: bool, timeout: float = 60, expected: str | None = None) -> str:
    """Stream `url` into a temp file next to `dest`, rename it into place, and return its sha256.

    With `expected` (a sha256 or a prefix of it), a mismatch deletes the temp file: `dest` is never touched.
    """
    tmp = None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            size = int(resp.headers.get('Content-Length') or 0) or None
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=temp_prefix(dest), suffix='.part')
            digest = hashlib.sha256()
            bar = None
            if show_progress and progress_mode() == 'bar':
                bar = progress_bar(range(size or 0), total=size or 'noinfer')
                bar.update(0)
            elif show_progress:  # a log file gets one line, not a redrawn bar
                logger.info(f'Downloading {url}' + (f' ({size:,} bytes)' if size else ''))
            done = 0
            with os.fdopen(fd, 'wb') as f:
                while chunk := resp.read(_CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if bar is not None:
                        bar.update(done)
                f.flush()
                os.fsync(f.fileno())
            if bar is not None and size is None:
                bar.on_iter_end()
        if size is not None and done != size:
            raise DownloadError(f'the server announced {size} bytes but sent {done}')
        if expected is not None and not digest.hexdigest().startswith(expected.lower()):
            raise DownloadError(f'its sha256 is {digest.hexdigest()}, expected {expected.lower()}...: the download '
                                f'is corrupt or the file changed; nothing was kept, try again')
        os.replace(tmp, dest)
        remove_stale_leftovers(dest, '.part')
        return digest.hexdigest()
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        # HTTPException: IncompleteRead, a chunked body cut short
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, FileNotFoundError) and tmp is None and not dest.parent.exists():
            raise DownloadError(f'Could not download {url}: the folder {dest.parent} does not exist; '
                                f'create it first.') from None
        # an HTTPError's own text carries the status code; other URLErrors wrap the socket error in .reason
        reason = e.reason if type(e) is urllib.error.URLError else e
        raise DownloadError(f'Could not download {url} to {dest}: {reason}') from None


def _offline_message(url: str, err: DownloadError, arch: Path, dest: Path, base: Path) -> str:
    return (f"{str(err).rstrip('.')}.\n"
            f"If this machine is offline, get the archive elsewhere and put either\n"
            f"  the archive at:             {arch}\n"
            f"  or its extracted folder at: {dest}\n"
            f"then call untar_data again. To keep datasets in another folder, set the environment variable "
            f"BLOCKLEARN_HOME (or FASTAI_HOME), or pass base= (now {base}).")


def _check_digest(url: str, arch: Path, digest: str, expected: str | None, downloaded: bool) -> None:
    if expected is None or digest == expected:
        return
    if downloaded:
        arch.unlink(missing_ok=True)
        what = 'The download was deleted.'
    else:
        what = f'Delete {arch} (or pass force_download=True) to download it again.'
    raise ValueError(f"sha256 mismatch for {arch.name} from {url}: expected {expected}, got {digest}. {what} "
                     f"If the dataset was legitimately updated, pass the new sha256= or delete "
                     f"{_digest_file(arch)}.")


def _extract_into_place(arch: Path, dest: Path, replace: bool, downloaded: bool = False,
                        limit: int = _MAX_EXTRACT_SIZE) -> None:
    """Extract into a temp folder beside `dest`, then rename; a single top-level folder becomes `dest`.

    An archive that cannot be read is deleted if it was `downloaded` just now (likely cut short), so the next
    call downloads it again; one put there by hand is kept for its owner to look at."""
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=temp_prefix(dest), suffix='.extracting'))
    old = None
    try:
        try:
            _extract(arch, tmp, limit)
        except _TAR_FILTER_ERRORS as e:
            raise UnsafeArchiveError(f'Refused to extract {arch}: {e}. Nothing was kept.') from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, _NotAnArchive) as e:
            if downloaded:
                arch.unlink(missing_ok=True)
                fix = 'The download was deleted (it may have been cut short): call untar_data again.'
            else:
                fix = 'The archive may be incomplete or damaged: delete it, or call untar_data again with ' \
                      'force_download=True.'
            raise ValueError(f"Could not extract {arch}: {str(e).rstrip('.')}. {fix}") from None
        entries = list(tmp.iterdir())
        single = len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink()
        src = entries[0] if single else tmp
        if dest.exists():
            if not replace:
                # another process finished the same extraction first; theirs is as good as ours
                return
            old = dest.with_name(f'{temp_prefix(dest)}{secrets.token_hex(4)}.old')
            os.replace(dest, old)
        os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    for suffix in ('.extracting', '.old'):  # what killed extractions of this folder left behind
        remove_stale_leftovers(dest, suffix)


def _extract(arch: Path, target: Path, limit: int = _MAX_EXTRACT_SIZE) -> None:
    # tar is tried first: a plain .tar whose last member is a zip can look like a zip from its end
    if tarfile.is_tarfile(arch):
        with tarfile.open(arch, 'r:*') as tf:
            # members are checked as the stream is read, so a gzip archive is decompressed once
            # 'data' also strips setuid bits; Pythons older than 3.10.12 lack filters and rely on our checks alone
            kwargs = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
            tf.extractall(target, members=_checked_tar_members(arch, tf, limit), **kwargs)
    elif zipfile.is_zipfile(arch):
        with zipfile.ZipFile(arch) as zf:
            total = 0
            for info in zf.infolist():
                _check_member(arch, info.filename, _zip_kind(info))
                total += info.file_size  # zipfile stops reading a member at its declared size
                _check_size(arch, info.filename, total, limit)
            zf.extractall(target)
    else:
        raise _NotAnArchive(f'{arch.name} is neither a tar nor a zip archive (an error page saved under its name?); '
                            f'untar_data reads .tgz/.tar.gz/.tar/.zip archives.')


def _checked_tar_members(arch: Path, tf: tarfile.TarFile, limit: int) -> Iterator[tarfile.TarInfo]:
    total = 0
    for member in tf:
        kind = 'dir' if member.isdir() else 'file' if member.isreg() else (
            'symlink' if member.issym() else 'hard link' if member.islnk() else 'device or special file')
        _check_member(arch, member.name, kind)
        # tarfile writes exactly the size a header declares (less fails), so counting headers before each member
        # is written bounds the bytes on disk, and a bomb is refused before its members are decompressed
        total += member.size if member.isreg() else 0
        _check_size(arch, member.name, total, limit)
        yield member


def _check_size(arch: Path, name: str, total: int, limit: int) -> None:
    if total > limit:
        raise UnsafeArchiveError(f"Refused to extract {arch}: it expands to more than {limit:,} bytes (at member "
                                 f"{name!r}), the limit. Nothing was kept. If you trust it and have the space, "
                                 f"raise the limit: untar_data(..., max_size=...) or ${_MAX_SIZE_VAR}.")


def _zip_kind(info: zipfile.ZipInfo) -> str:
    # zips made on Unix keep the file type in the high 16 bits; zero means a plain DOS entry
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir() or file_type == stat.S_IFDIR:
        return 'dir'
    if file_type == stat.S_IFLNK:
        return 'symlink'
    if file_type not in (0, stat.S_IFREG):
        return 'device or special file'
    return 'file'


def _check_member(arch: Path, name: str, kind: str) -> None:
    """Refuse any member that is not a plain file or folder strictly inside the target."""
    parts = PurePosixPath(name.replace('\\', '/')).parts
    if kind in ('symlink', 'hard link'):
        why = f'is a {kind}, which can point outside the target folder; only plain files and folders are extracted'
    elif kind not in ('file', 'dir'):
        why = f'is a {kind}; only plain files and folders are extracted'
    elif name.startswith(('/', '\\')) or (parts and parts[0].endswith(':')):
        why = 'has an absolute path, which would be written outside the target folder'
    elif '..' in parts:
        why = "has '..' in its path, which could write outside the target folder"
    else:
        return
    raise UnsafeArchiveError(f"Refused to extract {arch}: member {name!r} {why}. Nothing was kept. "
                             f"Get the archive from a trusted source, or extract it yourself after checking "
                             f"its contents.")


def _archive_name(url: str) -> str:
    url_path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
    name = '' if url_path.endswith('/') else Path(url_path).name
    if name in ('', '.', '..'):
        raise ValueError(f'untar_data({url!r}): the URL does not end with a file name, so the archive cannot be '
                         f'named. Pass the URL of the archive itself, e.g. {URLs.MNIST_TINY}.')
    return name


def _strip_archive_suffix(fname: str) -> str:
    for suffix in _ARCHIVE_SUFFIXES:
        if fname.lower().endswith(suffix) and len(fname) > len(suffix):
            return fname[:-len(suffix)]
    return Path(fname).stem


def _digest_file(arch: Path) -> Path:
    return arch.with_name(arch.name + '.sha256')


def _recorded_digest(arch: Path) -> str:
    path = _digest_file(arch)
    text = path.read_text() if path.exists() else ''
    return text.split()[0] if text.strip() else ''


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
