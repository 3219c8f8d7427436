"""Build an offline data home from the committed photos, so the notebooks' `untar_data(URLs.PETS)` and
`untar_data(URLs.DOGS)` find their folders without a network.

    python nbs/offline_data.py /tmp/blhome
    export BLOCKLEARN_HOME=/tmp/blhome

`<base>/data/oxford-iiit-pet/images/` gets all 140 photos (pets-style names, `<class>_<n>.jpg`);
`<base>/data/dogscats/{train,valid}/<class>/` gets two visually distinct classes, fishes and monuments,
standing in for dogs and cats. `<base>/data/mnist_sample/{train,valid}/{3,7}/` (fastbook chapter 4) gets the
committed Fashion-MNIST pairs, sandals standing in for the digit 3 and dresses for 7, with fastai's `labels.csv`.
`<base>/data/imagenette2/{train,val}/<class>/` (chapter 7) gets the 140 photos in their 5 classes.
`<base>/data/pascal_2007/` (chapter 6, multi-label) gets the photos with a `train.csv` of labels, and
`<base>/data/biwi_head_pose/` (chapter 6, key points) synthetic frames with a dot for the head, laid out as BIWI.
Never point this at your real `~/.fastai`: untar_data would then return
these photos instead of downloading the real datasets.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from blocklearn.blocks.external import URLs

__all__ = ['make_offline_home', 'DOGSCATS_CLASSES', 'dataset_folder', 'make_mnist_sample', 'MNIST_STAND_INS',
           'make_pascal_2007', 'make_biwi_head_pose', 'BIWI_SIZE', 'BIWI_FOLDERS', 'make_imagenette']

DATA = Path(__file__).resolve().parents[1] / 'data'
PHOTOS = DATA / 'photos' / 'images'
ATTRIBUTION = DATA / 'photos' / 'ATTRIBUTION.md'
DOGSCATS_CLASSES = ('fishes', 'monuments')
FASHION_PAIRS = DATA / 'fashion_pairs'
MNIST_STAND_INS = {'3': 'sandal', '7': 'dress'}  # digit folder -> the Fashion-MNIST class that stands in for it
_NUMBER = re.compile(r'_(\d+)\.jpg$')


def make_offline_home(base: Path) -> Path:
    """Fill `base/data` with the offline pets and dogscats folders (idempotent) and return `base`."""
    base = Path(base)
    pets = base / 'data' / dataset_folder(URLs.PETS)
    for photo in sorted(PHOTOS.glob('*.jpg')):
        _copy(photo, pets / 'images' / photo.name)
    _copy(ATTRIBUTION, pets / ATTRIBUTION.name)

    dogscats = base / 'data' / dataset_folder(URLs.DOGS)
    for label in DOGSCATS_CLASSES:
        for photo in sorted(PHOTOS.glob(f'{label}_*.jpg')):
            # every fifth photo by number goes to valid: about 80/20, the same on every machine
            split = 'valid' if int(_NUMBER.search(photo.name).group(1)) % 5 == 0 else 'train'
            _copy(photo, dogscats / split / label / photo.name)
    _copy(ATTRIBUTION, dogscats / ATTRIBUTION.name)
    make_mnist_sample(base)
    make_pascal_2007(base)
    make_biwi_head_pose(base)
    make_imagenette(base)
    return base


def make_mnist_sample(base: Path) -> Path:
    """`base/data/mnist_sample/{train,valid}/{3,7}/*.png` from data/fashion_pairs (sandals for 3, dresses for 7)
    and `labels.csv` as fastai's (`name,label`, 3 -> 0 and 7 -> 1); returns the folder."""
    mnist = Path(base) / 'data' / dataset_folder(URLs.MNIST_SAMPLE)
    rows = []
    for split in ('train', 'valid'):
        for label, (digit, stand_in) in enumerate(MNIST_STAND_INS.items()):
            for image in sorted((FASHION_PAIRS / split / stand_in).glob('*.png')):
                _copy(image, mnist / split / digit / image.name)
                rows.append(f'{split}/{digit}/{image.name},{label}')
    labels = mnist / 'labels.csv'
    if not labels.exists():
        labels.write_text('name,label\n' + '\n'.join(rows) + '\n')
    _copy(FASHION_PAIRS / 'LICENSE.md', mnist / 'LICENSE.md')
    return mnist


def make_pascal_2007(base: Path) -> Path:
    """`base/data/pascal_2007/` as fastbook chapter 6 reads it: `train/<n>.jpg` (the 140 photos) and `train.csv`
    with `fname`, space-separated `labels` (the photo's class, plus `bright` for the brighter half) and
    `is_valid` (every fifth photo by number). Returns the folder."""
    pascal = Path(base) / 'data' / dataset_folder(URLs.PASCAL_2007)
    csv = pascal / 'train.csv'
    if csv.exists():
        return pascal
    photos = sorted(PHOTOS.glob('*.jpg'))
    brightness = [_brightness(p) for p in photos]
    threshold = float(np.median(brightness))
    rows = []
    for i, (photo, level) in enumerate(zip(photos, brightness)):
        fname = f'{i:06d}.jpg'
        _copy(photo, pascal / 'train' / fname)
        labels = photo.name.rsplit('_', 1)[0] + (' bright' if level > threshold else '')
        is_valid = int(_NUMBER.search(photo.name).group(1)) % 5 == 0
        rows.append(f'{fname},{labels},{is_valid}')
    _copy(ATTRIBUTION, pascal / ATTRIBUTION.name)
    _write_atomic(csv, 'fname,labels,is_valid\n' + '\n'.join(rows) + '\n')
    return pascal


BIWI_SIZE = (96, 72)  # (w, h): BIWI's 640x480 frames at 15%
BIWI_FOLDERS = 13  # '01'..'13'; the book's splitter puts folder '13' in valid
_BIWI_FRAMES = 20  # frames per folder
_BIWI_NOISE, _BIWI_RAMP, _BIWI_DOT = 60, 150, 2.5  # noise and ramp amplitudes (of 255), dot radius in pixels
_BIWI_FOCAL = 77.652  # BIWI's rgb.cal focal length (517.679) at 15%; the principal point is the centre


def make_biwi_head_pose(base: Path) -> Path:
    """`base/data/biwi_head_pose/<01..13>/` laid out as BIWI: `frame_<n>_rgb.jpg` (96x72, a bright dot, the
    'head', on noise and colour ramps), `frame_<n>_pose.txt` (rotation, then the head centre in mm) and `rgb.cal`
    (camera intrinsics), so the book's `get_ctr` projects each pose back onto the dot's centre. Seeded: the same
    on every machine."""
    biwi = Path(base) / 'data' / dataset_folder(URLs.BIWI_HEAD_POSE)
    if (biwi / f'{BIWI_FOLDERS:02d}' / 'rgb.cal').exists():
        return biwi
    w, h = BIWI_SIZE
    cx, cy = w / 2, h / 2
    rng = np.random.default_rng(6)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5  # pixel centres
    for k in range(1, BIWI_FOLDERS + 1):
        folder = biwi / f'{k:02d}'
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(_BIWI_FRAMES):
            x, y = rng.uniform(8, w - 8), rng.uniform(8, h - 8)
            # noise over a red ramp to the right and a green one downwards: a scene a small model can get its
            # bearings in from scratch, as a pretrained one does in BIWI's room
            ramps = np.stack([_BIWI_RAMP * xs / w, _BIWI_RAMP * ys / h, 0 * xs], -1).astype(int)
            img = rng.integers(0, _BIWI_NOISE, (h, w, 3)) + ramps
            img[(xs - x) ** 2 + (ys - y) ** 2 <= _BIWI_DOT ** 2] = 255
            img = img.astype(np.uint8)
            Image.fromarray(img).save(folder / f'frame_{n:05d}_rgb.jpg', quality=95)
            z = rng.uniform(800, 1200)
            centre = ((x - cx) * z / _BIWI_FOCAL, (y - cy) * z / _BIWI_FOCAL, z)
            (folder / f'frame_{n:05d}_pose.txt').write_text(
                '1 0 0 \n0 1 0 \n0 0 1 \n\n' + ' '.join(f'{c:.4f}' for c in centre) + ' \n')
        # written last: its presence says the folder is complete
        _write_atomic(folder / 'rgb.cal', f'{_BIWI_FOCAL} 0 {cx} \n0 {_BIWI_FOCAL} {cy} \n0 0 1 \n\n0 0 0 0 \n\n'
                      '1 0 0 \n0 1 0 \n0 0 1 \n\n0 0 0 \n')
    return biwi


def _brightness(photo: Path) -> float:
    """Mean grey level of a JPEG, decoded at 1/8 scale (enough for a mean, 10x faster)."""
    with Image.open(photo) as img:
        img.draft('L', (img.width // 8, img.height // 8))
        return float(np.asarray(img.convert('L')).mean())


def _write_atomic(dest: Path, text: str) -> None:
    tmp = dest.with_name(dest.name + '.tmp')
    tmp.write_text(text)
    tmp.replace(dest)


def make_imagenette(base: Path) -> Path:
    """`base/data/imagenette2/{train,val}/<class>/*.jpg` as fastbook chapter 7 reads it (Imagenette's `val`, not
    `valid`): the 140 photos in their 5 classes, every fifth by number in `val`. Returns the folder."""
    imagenette = Path(base) / 'data' / dataset_folder(URLs.IMAGENETTE)
    for photo in sorted(PHOTOS.glob('*.jpg')):
        label, number = photo.name.rsplit('_', 1)[0], int(_NUMBER.search(photo.name).group(1))
        _copy(photo, imagenette / ('val' if number % 5 == 0 else 'train') / label / photo.name)
    _copy(ATTRIBUTION, imagenette / ATTRIBUTION.name)
    return imagenette


def dataset_folder(url: str) -> str:
    """The folder untar_data extracts `url` to: the archive's file name less `.tgz`."""
    return url.rsplit('/', 1)[-1].removesuffix('.tgz')


def _copy(src: Path, dest: Path) -> None:
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(f'usage: python {sys.argv[0]} BASE   (then: export BLOCKLEARN_HOME=BASE)')
    home = make_offline_home(Path(sys.argv[1]))
    print(f'Offline data in {home / "data"}; now run: export BLOCKLEARN_HOME={home}')
