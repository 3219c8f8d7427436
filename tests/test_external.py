import hashlib
import http.server
import io
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from blocklearn.blocks.external import (URLs, DownloadError, UnsafeArchiveError, blocklearn_home, checksums, download_url,
                             untar_data)
from blocklearn.blocks.files import DataPath

FILES = {'mnist_tiny/labels.csv': b'name,label\ntrain/3/1.png,3\n',
         'mnist_tiny/train/3/1.png': b'not really a png',
         'mnist_tiny/models/': None}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Every test gets its own base folder, so none can touch the real ~/.fastai."""
    monkeypatch.setenv('BLOCKLEARN_HOME', str(tmp_path / 'home'))
    monkeypatch.delenv('FASTAI_HOME', raising=False)
    return tmp_path / 'home'


def make_tar(path: Path, files: dict, mode: str = 'w:gz') -> Path:
    """A tar archive of `files` (name -> bytes, or None for a folder)."""
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name.rstrip('/'))
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, 'w') as zf:
        for name, data in files.items():
            zf.writestr(name, b'' if data is None else data)
    return path


def tar_with(path: Path, *members: tarfile.TarInfo) -> Path:
    """A .tgz with one good file first (so a half-extraction would show), then the given members."""
    with tarfile.open(path, 'w:gz') as tf:
        good = tarfile.TarInfo('ds/good.txt')
        good.size = 4
        tf.addfile(good, io.BytesIO(b'good'))
        for m in members:
            tf.addfile(m, io.BytesIO(b'evil') if m.isreg() else None)
    return path


def member(name: str, kind=tarfile.REGTYPE, linkname: str = '') -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize('suffix', ['.tgz', '.tar.gz', '.tar', '.zip'])
def test_untar_data_extracts_single_top_folder(tmp_path, home, suffix):
    src = tmp_path / f'mnist_tiny{suffix}'
    make_zip(src, FILES) if suffix == '.zip' else make_tar(src, FILES, 'w' if suffix == '.tar' else 'w:gz')
    path = untar_data(src.as_uri())
    assert path == home / 'data' / 'mnist_tiny'
    assert (path / 'labels.csv').read_bytes() == FILES['mnist_tiny/labels.csv']
    assert (path / 'train' / '3' / '1.png').exists() and (path / 'models').is_dir()
    assert (home / 'archive' / src.name).read_bytes() == src.read_bytes()
    assert leftovers(home / 'data') == ['mnist_tiny']


def test_untar_data_path_lists_like_a_notebook(tmp_path, home):
    path = untar_data(make_tar(tmp_path / 'mnist_tiny.tgz', FILES).as_uri())
    assert [p.name for p in path.ls()] == sorted(p.name for p in path.iterdir())
    listing = (path / 'train').ls()  # joining keeps the type, as in `(path/'images').ls()`
    assert isinstance(listing[0], DataPath) and repr(listing).startswith(f'(#{len(listing)}) [')
    assert [p.name for p in (path / 'train' / '3').ls(file_exts='.png')] == ['1.png']
    assert (path / 'train' / '3').ls(file_exts='jpg') == [] and len(path.ls(n_max=1)) == 1
    with pytest.raises(NotADirectoryError, match='labels.csv'):
        (path / 'labels.csv').ls()


def test_second_call_needs_no_network(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    first = untar_data(src.as_uri())
    src.unlink()
    (home / 'archive' / 'mnist_tiny.tgz').unlink()
    assert untar_data(src.as_uri()) == first
    assert (first / 'labels.csv').exists()


def test_cached_archive_is_extracted_without_download(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    path = untar_data(src.as_uri())
    src.unlink()
    (path / 'labels.csv').unlink()
    path.rename(tmp_path / 'moved')
    assert (untar_data(src.as_uri()) / 'labels.csv').exists()


def test_archive_without_single_folder_extracts_under_its_name(tmp_path):
    src = make_tar(tmp_path / 'flat.tar.gz', {'a.txt': b'a', 'sub/b.txt': b'b'})
    path = untar_data(src.as_uri())
    assert path.name == 'flat' and (path / 'a.txt').read_bytes() == b'a' and (path / 'sub' / 'b.txt').exists()


def test_single_folder_is_renamed_to_archive_name(tmp_path):
    src = make_tar(tmp_path / 'pets.tgz', {'oxford-iiit-pet/images/a.jpg': b'x'})
    path = untar_data(src.as_uri())
    assert path.name == 'pets' and (path / 'images' / 'a.jpg').exists()


def test_force_download_fetches_again(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    path = untar_data(src.as_uri())
    (path / 'stale.txt').write_text('from an old version')
    make_tar(src, {**FILES, 'mnist_tiny/new.txt': b'new'})
    assert untar_data(src.as_uri(), force_download=True, sha256=sha(src)) == path
    assert (path / 'new.txt').read_bytes() == b'new' and not (path / 'stale.txt').exists()
    assert (home / 'archive' / 'mnist_tiny.tgz').read_bytes() == src.read_bytes()
    assert leftovers(home / 'data') == ['mnist_tiny']


def test_first_digest_is_recorded_and_checks_later_downloads(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    path = untar_data(src.as_uri())
    record = home / 'archive' / 'mnist_tiny.tgz.sha256'
    assert record.read_text() == f'{sha(src)}  mnist_tiny.tgz\n'
    make_tar(src, {**FILES, 'mnist_tiny/changed.txt': b'changed'})
    (home / 'archive' / 'mnist_tiny.tgz').unlink()  # the folder and the archive gone: the next call downloads
    path.rename(path.with_name('moved'))
    with pytest.raises(ValueError, match=r'sha256 mismatch.*mnist_tiny\.tgz\.sha256'):
        untar_data(src.as_uri())
    assert not path.exists() and not (home / 'archive' / 'mnist_tiny.tgz').exists()
    # force_download starts from scratch, the record included: the new archive is trusted and recorded
    assert (untar_data(src.as_uri(), force_download=True) / 'changed.txt').exists()
    assert record.read_text() == f'{sha(src)}  mnist_tiny.tgz\n'


def test_sha256_mismatch_leaves_nothing(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    with pytest.raises(ValueError, match=f'sha256 mismatch.*expected {"0" * 64}, got {sha(src)}'):
        untar_data(src.as_uri(), sha256='0' * 64)
    assert leftovers(home / 'archive') == [] and not (home / 'data' / 'mnist_tiny').exists()
    assert leftovers(home / 'data') == []


def test_checksums_table_is_used(tmp_path, home, monkeypatch):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    monkeypatch.setitem(checksums, src.as_uri(), 'f' * 64)
    with pytest.raises(ValueError, match='sha256 mismatch'):
        untar_data(src.as_uri())
    monkeypatch.setitem(checksums, src.as_uri(), sha(src).upper())
    assert (untar_data(src.as_uri()) / 'labels.csv').exists()
    assert not (home / 'archive' / 'mnist_tiny.tgz.sha256').exists()


def test_cached_archive_with_wrong_digest_is_refused(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    path = untar_data(src.as_uri())
    path.rename(tmp_path / 'moved')
    (home / 'archive' / 'mnist_tiny.tgz').write_bytes(b'tampered')
    with pytest.raises(ValueError, match='force_download=True'):
        untar_data(src.as_uri())
    assert not path.exists()


def test_damaged_archive_names_file_and_fix(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', {'mnist_tiny/big.bin': bytes(range(256)) * 4000})
    src.write_bytes(src.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r'Could not extract .*mnist_tiny\.tgz.*download was deleted.*again'):
        untar_data(src.as_uri())
    assert leftovers(home / 'data') == [] and leftovers(home / 'archive') == []


@pytest.mark.parametrize('hostile', ['absolute', 'dotdot', 'symlink', 'hardlink_abs', 'hardlink_rel', 'device'])
def test_hostile_tar_is_refused(tmp_path, home, hostile):
    outside = tmp_path / 'outside'
    outside.mkdir()
    secret = outside / 'secret.txt'
    secret.write_text('keep me')
    bad = {'absolute': member(str(outside / 'evil.txt')),
           'dotdot': member('ds/../../outside/evil.txt'),
           'symlink': member('ds/passwd', tarfile.SYMTYPE, '/etc/passwd'),
           'hardlink_abs': member('ds/secret', tarfile.LNKTYPE, str(secret)),
           'hardlink_rel': member('ds/secret', tarfile.LNKTYPE, '../outside/secret.txt'),
           'device': member('ds/null', tarfile.CHRTYPE)}[hostile]
    src = tar_with(tmp_path / 'ds.tgz', bad)
    with pytest.raises(UnsafeArchiveError) as err:
        untar_data(src.as_uri())
    assert repr(bad.name) in str(err.value) and 'ds.tgz' in str(err.value)
    assert leftovers(outside) == ['secret.txt'] and secret.read_text() == 'keep me'
    assert not (home / 'data' / 'ds').exists() and leftovers(home / 'data') == []


def test_symlink_then_write_through_it_is_refused(tmp_path, home):
    outside = tmp_path / 'outside'
    outside.mkdir()
    src = tar_with(tmp_path / 'ds.tgz', member('ds/link', tarfile.SYMTYPE, str(outside)),
                   member('ds/link/evil.txt'))
    with pytest.raises(UnsafeArchiveError, match="'ds/link'"):
        untar_data(src.as_uri())
    assert leftovers(outside) == [] and leftovers(home / 'data') == []


@pytest.mark.parametrize('name', ['../evil.txt', '/abs_evil.txt', 'ds/../../evil.txt'])
def test_hostile_zip_is_refused(tmp_path, home, name):
    src = tmp_path / 'ds.zip'
    with zipfile.ZipFile(src, 'w') as zf:
        zf.writestr('ds/good.txt', b'good')
        zf.writestr(zipfile.ZipInfo(name), b'evil')
    with pytest.raises(UnsafeArchiveError, match=repr(name)):
        untar_data(src.as_uri())
    assert not (tmp_path / 'evil.txt').exists() and not (home / 'evil.txt').exists()
    assert leftovers(home / 'data') == []


def test_zip_symlink_is_refused(tmp_path, home):
    src = tmp_path / 'ds.zip'
    with zipfile.ZipFile(src, 'w') as zf:
        link = zipfile.ZipInfo('ds/passwd')
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, '/etc/passwd')
    with pytest.raises(UnsafeArchiveError, match="'ds/passwd'.*symlink"):
        untar_data(src.as_uri())
    assert leftovers(home / 'data') == []


def test_offline_missing_file_says_where_to_put_it(tmp_path, home):
    url = (tmp_path / 'nowhere' / 'oxford-iiit-pet.tgz').as_uri()
    with pytest.raises(DownloadError) as err:
        untar_data(url)
    msg = str(err.value)
    assert url in msg and 'BLOCKLEARN_HOME' in msg
    assert str(home / 'archive' / 'oxford-iiit-pet.tgz') in msg and str(home / 'data' / 'oxford-iiit-pet') in msg
    assert leftovers(home / 'archive') == [] and not (home / 'data').exists()


def test_offline_closed_port(home):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = f'http://127.0.0.1:{port}/fast-ai-imageclas/imagenette2-160.tgz'
    with pytest.raises(DownloadError) as err:
        untar_data(url)
    assert url in str(err.value) and str(home / 'data' / 'imagenette2-160') in str(err.value)
    assert leftovers(home / 'archive') == []


def test_folder_put_by_hand_is_used_offline(home):
    (home / 'data' / 'oxford-iiit-pet' / 'images').mkdir(parents=True)
    assert untar_data(URLs.PETS) == home / 'data' / 'oxford-iiit-pet'


def test_archive_put_by_hand_is_used_offline(tmp_path, home):
    (home / 'archive').mkdir(parents=True)
    make_tar(home / 'archive' / 'mnist_tiny.tgz', FILES)
    path = untar_data(URLs.MNIST_TINY)
    assert path == home / 'data' / 'mnist_tiny' and (path / 'labels.csv').exists()


def test_home_from_env_vars(tmp_path, monkeypatch):
    monkeypatch.delenv('BLOCKLEARN_HOME')
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path / 'course'))
    assert blocklearn_home() == tmp_path / 'course'
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    assert untar_data(src.as_uri()) == tmp_path / 'course' / 'data' / 'mnist_tiny'
    monkeypatch.setenv('BLOCKLEARN_HOME', str(tmp_path / 'mine'))
    assert blocklearn_home() == tmp_path / 'mine'
    monkeypatch.delenv('BLOCKLEARN_HOME')
    monkeypatch.delenv('FASTAI_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'user'))
    assert blocklearn_home() == tmp_path / 'user' / '.fastai'


def test_explicit_folders_and_c_key(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    path = untar_data(src.as_uri(), archive=tmp_path / 'arch', data=tmp_path / 'ds')
    assert path == tmp_path / 'ds' / 'mnist_tiny' and (tmp_path / 'arch' / 'mnist_tiny.tgz').exists()
    assert untar_data(src.as_uri(), c_key='model') == home / 'models' / 'mnist_tiny'
    assert untar_data(src.as_uri(), base=tmp_path / 'b') == tmp_path / 'b' / 'data' / 'mnist_tiny'
    with pytest.raises(ValueError, match="c_key='weights'"):
        untar_data(src.as_uri(), c_key='weights')


def test_download_url_to_file_and_folder(tmp_path):
    src = tmp_path / 'weights.bin'
    src.write_bytes(bytes(range(256)) * 5000)
    assert download_url(src.as_uri(), tmp_path / 'copy.bin', show_progress=False).read_bytes() == src.read_bytes()
    (tmp_path / 'dl').mkdir()
    assert download_url(src.as_uri(), tmp_path / 'dl') == tmp_path / 'dl' / 'weights.bin'
    assert leftovers(tmp_path / 'dl') == ['weights.bin']


def test_urls_are_course_archives():
    assert URLs.PETS == 'https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz'
    assert URLs.MNIST_SAMPLE == 'https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz'
    assert URLs.IMAGENETTE_160.endswith('/imagenette2-160.tgz')


def test_not_an_archive_is_named(tmp_path, home):
    src = tmp_path / 'mnist_tiny.tgz'
    src.write_text('an error page saved under the archive name')
    with pytest.raises(ValueError, match=r'mnist_tiny\.tgz is neither a tar nor a zip'):
        untar_data(src.as_uri())
    assert leftovers(home / 'data') == []


@pytest.mark.parametrize('url', ['https://example.com/datasets/', 'https://example.com/..'])
def test_url_without_file_name_is_refused(url):
    with pytest.raises(ValueError, match='does not end with a file name'):
        untar_data(url)


def test_download_url_checks_sha256_or_its_prefix_before_writing(tmp_path):
    src = tmp_path / 'weights.bin'
    src.write_bytes(bytes(range(256)) * 100)
    digest = sha(src)
    assert download_url(src.as_uri(), tmp_path / 'full.bin', show_progress=False, sha256=digest.upper()).exists()
    assert download_url(src.as_uri(), tmp_path / 'prefix.bin', show_progress=False, sha256=digest[:8]).exists()
    (tmp_path / 'dl').mkdir()
    (tmp_path / 'dl' / 'old.bin').write_bytes(b'the previous good file')
    wrong = ('0' if digest[0] != '0' else '1') + digest[1:8]
    with pytest.raises(DownloadError, match=f'sha256 is {digest}, expected {wrong}'):
        download_url(src.as_uri(), tmp_path / 'dl' / 'old.bin', show_progress=False, sha256=wrong)
    assert leftovers(tmp_path / 'dl') == ['old.bin']
    assert (tmp_path / 'dl' / 'old.bin').read_bytes() == b'the previous good file'
    with pytest.raises(ValueError, match=r"sha256='abc'.*6 or more hex digits"):
        download_url(src.as_uri(), tmp_path / 'x.bin', sha256='abc')


def test_download_url_gives_up_after_timeout(tmp_path):
    # a server that accepts the connection and never answers: only the timeout ends the wait
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen(1)
        url = f'http://127.0.0.1:{server.getsockname()[1]}/slow.bin'
        with pytest.raises(DownloadError, match='timed out'):
            download_url(url, tmp_path / 'slow.bin', show_progress=False, timeout=0.2)
    assert leftovers(tmp_path) == []


class _Server(http.server.ThreadingHTTPServer):
    """Serves `bodies` in turn (the last one from then on), the way `mode` says: 'close' sends no Content-Length
    and ends the body by closing the connection (a cut there looks like the end); 'chunked' uses chunks."""

    def __init__(self, bodies: list, mode: str = 'close'):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.bodies, self.mode = list(bodies), mode

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return f'http://127.0.0.1:{self.server_address[1]}/mnist_tiny.tgz'

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'

    def do_GET(self):
        body, cut = self.server.bodies.pop(0) if len(self.server.bodies) > 1 else self.server.bodies[0]
        self.send_response(200)
        if self.server.mode == 'chunked':
            self.protocol_version = 'HTTP/1.1'
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            self.wfile.write(b'%x\r\n%s\r\n' % (len(body), body[:cut]))  # announces all, sends `cut`, hangs up
        else:
            self.end_headers()
            self.wfile.write(body[:cut])

    def log_message(self, *args):
        pass


def test_download_cut_short_is_not_recorded_and_the_next_call_recovers(tmp_path, home):
    good = make_tar(tmp_path / 'mnist_tiny.tgz', {'mnist_tiny/big.bin': bytes(range(256)) * 4000}).read_bytes()
    with _Server([(good, len(good) // 2), (good, len(good))]) as url:
        with pytest.raises(ValueError, match=r'Could not extract .*mnist_tiny\.tgz.*download was deleted'):
            untar_data(url)
        assert leftovers(home / 'archive') == [] and leftovers(home / 'data') == []  # no record of the bad one
        path = untar_data(url)
    assert (path / 'big.bin').read_bytes() == bytes(range(256)) * 4000
    assert (home / 'archive' / 'mnist_tiny.tgz.sha256').read_text().split()[0] == hashlib.sha256(good).hexdigest()


def test_chunked_download_cut_short_names_the_url(tmp_path, home):
    good = make_tar(tmp_path / 'mnist_tiny.tgz', FILES).read_bytes()
    with _Server([(good, 10)], mode='chunked') as url:
        with pytest.raises(DownloadError, match=f'Could not download {url}'):
            untar_data(url)
    assert leftovers(home / 'archive') == []


def test_archive_copied_in_part_then_force_download(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', {'mnist_tiny/big.bin': bytes(range(256)) * 4000})
    (home / 'archive').mkdir(parents=True)
    (home / 'archive' / 'mnist_tiny.tgz').write_bytes(src.read_bytes()[:-200])  # a copy interrupted by hand
    with pytest.raises(ValueError, match=r'Could not extract .*force_download=True'):
        untar_data(src.as_uri())
    assert leftovers(home / 'archive') == ['mnist_tiny.tgz']  # put there by hand: kept, but its digest not recorded
    path = untar_data(src.as_uri(), force_download=True)  # its own advice works
    assert (path / 'big.bin').exists() and (home / 'archive' / 'mnist_tiny.tgz').read_bytes() == src.read_bytes()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_downloads_and_extractions_are_removed(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    archive, data = home / 'archive', home / 'data'
    archive.mkdir(parents=True)
    (data / f'.mnist_tiny.{_dead_pid()}-k2j4h5g6.extracting' / 'mnist_tiny').mkdir(parents=True)
    (data / '.mnist_tiny.x7y8z9w0.extracting').mkdir()                      # older: a name with no pid
    (data / '.mnist_tiny.0a1b2c3d.old').mkdir()
    live = [archive / f'.mnist_tiny.tgz.{os.getppid()}-abcdefgh.part', data / '.mnist_tiny.abcdefgh.extracting']
    for p in (archive / f'.mnist_tiny.tgz.{_dead_pid()}-q1w2e3r4.part', archive / '.mnist_tiny.tgz.t5y6u7i8.part',
              archive / '.other.tgz.t5y6u7i8.part', live[0]):
        p.write_bytes(b'x' * 100)
    live[1].mkdir()
    hour_ago = time.time() - 3600
    for p in (data / '.mnist_tiny.x7y8z9w0.extracting', data / '.mnist_tiny.0a1b2c3d.old',
              archive / '.mnist_tiny.tgz.t5y6u7i8.part', live[0]):
        os.utime(p, (hour_ago, hour_ago))
    untar_data(src.as_uri())
    assert leftovers(archive) == sorted(['.other.tgz.t5y6u7i8.part', live[0].name, 'mnist_tiny.tgz',
                                         'mnist_tiny.tgz.sha256'])
    assert leftovers(data) == sorted([live[1].name, 'mnist_tiny'])


def test_force_download_starts_from_scratch(tmp_path, home):
    src = make_tar(tmp_path / 'mnist_tiny.tgz', FILES)
    untar_data(src.as_uri())
    stale = home / 'archive' / '.mnist_tiny.tgz.t5y6u7i8.part'
    stale.write_bytes(b'half')
    os.utime(stale, (time.time() - 3600,) * 2)
    (home / 'archive' / 'mnist_tiny.tgz.sha256').write_text('0' * 64 + '  mnist_tiny.tgz\n')  # a bad record
    make_tar(src, {**FILES, 'mnist_tiny/new.txt': b'new'})
    assert (untar_data(src.as_uri(), force_download=True) / 'new.txt').read_bytes() == b'new'
    assert leftovers(home / 'archive') == ['mnist_tiny.tgz', 'mnist_tiny.tgz.sha256']
    assert (home / 'archive' / 'mnist_tiny.tgz.sha256').read_text().split()[0] == sha(src)
    # the archive is replaced only by a download that worked: a URL naming the cached archive itself works too
    assert (untar_data((home / 'archive' / 'mnist_tiny.tgz').as_uri(), force_download=True) / 'new.txt').exists()


def test_archive_that_expands_past_the_limit_is_refused(tmp_path, home, monkeypatch):
    many = make_tar(tmp_path / 'many.tgz', {f'many/{i}.bin': bytes(400) for i in range(3)})  # 1200 bytes in all
    with pytest.raises(UnsafeArchiveError, match=r'many\.tgz.*more than 1,000 bytes.*max_size='):
        untar_data(many.as_uri(), max_size=1000)
    assert leftovers(home / 'data') == []
    assert (untar_data(many.as_uri(), max_size=1200) / '2.bin').stat().st_size == 400
    # a gzip bomb: 8 MB of zeros in 8 kB; refused from the sizes the tar headers declare, before writing them
    bomb = make_tar(tmp_path / 'bomb.tgz', {'bomb/zeros.bin': bytes(8 << 20)})
    assert bomb.stat().st_size < 20_000
    monkeypatch.setenv('BLOCKLEARN_MAX_EXTRACT_SIZE', '1M')
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.tgz.*more than 1,048,576 bytes.*'bomb/zeros\.bin'"):
        untar_data(bomb.as_uri())
    assert leftovers(home / 'data') == ['many']
    zipped = make_zip(tmp_path / 'zipped.zip', {'zipped/a.bin': bytes(600), 'zipped/b.bin': bytes(600)})
    with pytest.raises(UnsafeArchiveError, match=r'zipped\.zip.*more than 1,000 bytes'):
        untar_data(zipped.as_uri(), max_size=1000)
    monkeypatch.setenv('BLOCKLEARN_MAX_EXTRACT_SIZE', 'lots')
    with pytest.raises(ValueError, match='BLOCKLEARN_MAX_EXTRACT_SIZE'):
        untar_data(zipped.as_uri())
