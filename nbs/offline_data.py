"""Build an offline data home from the committed photos, so the notebooks' `untar_data(URLs.PETS)` and
`untar_data(URLs.DOGS)` find their folders without a network.

    python nbs/offline_data.py /tmp/blhome
    export BLOCKLEARN_HOME=/tmp/blhome

`<base>/data/oxford-iiit-pet/images/` gets all 140 photos (pets-style names, `<class>_<n>.jpg`);
`<base>/data/dogscats/{train,valid}/<class>/` gets two visually distinct classes, fishes and monuments,
standing in for dogs and cats. Never point this at your real `~/.fastai`: untar_data would then return
these photos instead of downloading the real datasets.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from blocklearn.blocks.external import URLs

__all__ = ['make_offline_home', 'DOGSCATS_CLASSES', 'dataset_folder']

DATA = Path(__file__).resolve().parents[1] / 'data'
PHOTOS = DATA / 'photos' / 'images'
ATTRIBUTION = DATA / 'photos' / 'ATTRIBUTION.md'
DOGSCATS_CLASSES = ('fishes', 'monuments')
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
    return base


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
