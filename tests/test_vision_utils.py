from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blocklearn.vision.data import get_image_files
from blocklearn.vision.utils import download_images, resize_image, resize_images, resize_to, verify_image, verify_images


def noise(w: int, h: int, mode: str = 'RGB', seed: int = 0) -> Image.Image:
    """Random pixels, so JPEG cannot compress them to almost nothing and truncation hits image data."""
    channels = len(Image.new(mode, (1, 1)).getbands())
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode)


@pytest.fixture
def images(tmp_path) -> Path:
    """Good images of several formats and modes, one in a subfolder, and two broken .jpg files."""
    root = tmp_path / 'images'
    (root / 'sub').mkdir(parents=True)
    noise(200, 100).save(root / 'wide.jpg', quality=90)
    noise(50, 60, 'L').save(root / 'small_gray.png')
    noise(120, 300, 'RGBA').save(root / 'tall_alpha.png')
    noise(90, 90).save(root / 'sub' / 'square.png')
    data = (root / 'wide.jpg').read_bytes()
    (root / 'truncated.jpg').write_bytes(data[:len(data) // 2])
    (root / 'notes.jpg').write_text('this is a text file with an image name')
    (root / 'readme.txt').write_text('not an image extension, never looked at')
    return root


def test_verify_image(images):
    assert verify_image(images / 'wide.jpg') and verify_image(images / 'small_gray.png')
    assert not verify_image(images / 'truncated.jpg')
    assert not verify_image(images / 'notes.jpg')
    assert not verify_image(images / 'missing.jpg')


@pytest.mark.parametrize('n_workers', [None, 0])
def test_verify_images_returns_the_broken_ones_in_order(images, n_workers):
    fns = sorted(images.rglob('*.jpg')) + sorted(images.rglob('*.png'))
    assert verify_images(fns, n_workers=n_workers) == [images / 'notes.jpg', images / 'truncated.jpg']
    assert verify_images([str(images / 'wide.jpg')]) == []


def test_resize_to():
    img = Image.new('RGB', (200, 100))
    assert resize_to(img, 64) == (64, 32)
    assert resize_to(img, 64, use_min=True) == (128, 64)
    assert resize_to(Image.new('RGB', (1000, 1)), 10) == (10, 1)


def test_resize_images_shrinks_and_keeps_formats(images, tmp_path):
    dest = tmp_path / 'small'
    failed = resize_images(images, dest, max_size=64)
    assert failed == [images / 'notes.jpg', images / 'truncated.jpg']
    assert sorted(p.name for p in dest.iterdir()) == ['small_gray.png', 'tall_alpha.png', 'wide.jpg']
    with Image.open(dest / 'wide.jpg') as img:
        assert (img.format, img.mode, img.size) == ('JPEG', 'RGB', (64, 32))
    with Image.open(dest / 'tall_alpha.png') as img:
        assert (img.format, img.mode, img.size) == ('PNG', 'RGB', (26, 64))
    with Image.open(dest / 'small_gray.png') as img:  # small enough, but converted to 3 channels
        assert (img.format, img.mode, img.size) == ('PNG', 'RGB', (50, 60))


def test_resize_images_recurse_keeps_relative_paths(images, tmp_path):
    dest = tmp_path / 'small'
    resize_images(images, dest, max_size=64, recurse=True, n_channels=None)
    with Image.open(dest / 'sub' / 'square.png') as img:
        assert img.size == (64, 64)
    with Image.open(dest / 'tall_alpha.png') as img:
        assert img.mode == 'RGBA'
    # already small, and n_channels=None keeps its mode: copied untouched
    assert (dest / 'small_gray.png').read_bytes() == (images / 'small_gray.png').read_bytes()
    assert not (dest / 'readme.txt').exists()


def test_resize_images_in_place(images):
    assert resize_images(images, images, max_size=40, recurse=True) == [images / 'notes.jpg',
                                                                        images / 'truncated.jpg']
    for f in ['wide.jpg', 'tall_alpha.png', 'sub/square.png']:
        with Image.open(images / f) as img:
            assert max(img.size) == 40
    assert not [p for p in images.rglob('.*')]


def test_resize_image_changes_format_with_ext(images, tmp_path):
    out = resize_image('tall_alpha.png', tmp_path / 'out', src=images, max_size=100, ext='.jpg')
    assert out == tmp_path / 'out' / 'tall_alpha.jpg'
    with Image.open(out) as img:
        assert (img.format, img.mode, img.size) == ('JPEG', 'RGB', (40, 100))
    out = resize_image(images / 'small_gray.png', tmp_path / 'out', src=images, ext='webp', n_channels=None)
    with Image.open(out) as img:
        assert (out.name, img.format, img.size) == ('small_gray.webp', 'WEBP', (50, 60))


def test_resize_image_refuses_unknown_ext(images, tmp_path):
    with pytest.raises(ValueError, match=r"'\.xyz'.*ext="):
        resize_image('wide.jpg', tmp_path, src=images, max_size=10, ext='.xyz')


def test_resize_image_unreadable_and_resume(images, tmp_path):
    assert resize_image('notes.jpg', tmp_path / 'out', src=images, max_size=10) is None
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'wide.jpg').write_bytes(b'already done')
    resize_image('wide.jpg', tmp_path / 'out', src=images, max_size=10, resume=True)
    assert (tmp_path / 'out' / 'wide.jpg').read_bytes() == b'already done'


def test_resize_keeps_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: losing this tag turns the photo on its side
    noise(300, 200).save(tmp_path / 'phone.jpg', exif=exif)
    out = resize_image('phone.jpg', tmp_path / 'out', src=tmp_path, max_size=60)
    with Image.open(out) as img:
        assert img.size == (60, 40) and img.getexif()[0x0112] == 6


def test_download_images_from_file_urls(images, tmp_path):
    urls = [(images / 'wide.jpg').as_uri(), (images / 'gone.png').as_uri(), (images / 'sub/square.png').as_uri()]
    failed = download_images(tmp_path / 'dl', urls=urls)
    assert failed == [urls[1]]
    assert sorted(p.name for p in (tmp_path / 'dl').iterdir()) == ['00000000.jpg', '00000002.png']
    assert (tmp_path / 'dl' / '00000000.jpg').read_bytes() == (images / 'wide.jpg').read_bytes()
    (tmp_path / 'urls.txt').write_text('\n'.join(urls) + '\n')
    assert download_images(tmp_path / 'named', url_file=tmp_path / 'urls.txt', max_pics=1,
                           preserve_filename=True) == []
    assert [p.name for p in (tmp_path / 'named').iterdir()] == ['wide.jpg']
    with pytest.raises(ValueError, match='exactly one of url_file= .* or urls='):
        download_images(tmp_path / 'dl')


def test_resize_images_sees_exactly_the_files_get_image_files_sees(tmp_path):
    # every file is unreadable, so resize_images reports each one it looked at, in order: its walk, laid bare
    names = ['a.JPG', 'b.jpe', 'c.ico', 'd.webp', 'e.jfif', 'f.pnm', 'g.TIFF', 'sub/h.png', '.hidden.jpg',
             '.cache/i.jpg', 'notes.txt', 'logo.svg', 'sub/.j.png']
    for name in names:
        (tmp_path / 'src' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'src' / name).write_bytes(b'not an image')
    src = tmp_path / 'src'
    images = [src / n for n in ['a.JPG', 'b.jpe', 'c.ico', 'd.webp', 'e.jfif', 'f.pnm', 'g.TIFF', 'sub/h.png']]
    assert get_image_files(src) == images
    assert resize_images(src, tmp_path / 'out', max_size=8, recurse=True) == images
    assert get_image_files(src, recurse=False) == images[:-1]
    assert resize_images(src, tmp_path / 'out', max_size=8) == images[:-1]
    assert not (tmp_path / 'out').exists()


def test_download_images_keeps_any_image_extension(tmp_path):
    src = tmp_path / 'photo.jfif'  # an extension get_image_files knows, so it must survive the renaming
    noise(8, 8).save(src, format='JPEG')
    urls = [src.as_uri(), (tmp_path / 'page.html').as_uri()]
    (tmp_path / 'page.html').write_text('<html></html>')
    assert download_images(tmp_path / 'dl', urls=urls) == []
    assert sorted(p.name for p in (tmp_path / 'dl').iterdir()) == ['00000000.jfif', '00000001.jpg']
