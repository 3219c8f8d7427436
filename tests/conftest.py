"""Shared fixtures: the committed sample data and small image folders written per test."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use('Agg')
os.environ.setdefault('MPLBACKEND', 'Agg')

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / 'data' / 'photos' / 'images'
FASHION = ROOT / 'data' / 'fashion_tiny'


@pytest.fixture
def photos() -> Path:
    """140 real photos named like pets (`<class>_<n>.jpg`), 5 classes."""
    return PHOTOS


@pytest.fixture
def fashion() -> Path:
    """Fashion-MNIST in the lesson-1 layout: train/<class>/*.png, valid/<class>/*.png."""
    return FASHION


def write_image(path: Path, size: tuple[int, int] = (40, 30), color: tuple = (200, 30, 30), mode: str = 'RGB') -> Path:
    """A small solid image at `path` (format from the extension)."""
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def pets_folder(tmp_path: Path) -> Path:
    """12 pets-style JPEGs of two sizes, two breeds with an upper-case and a lower-case name."""
    for i in range(6):
        write_image(tmp_path / f'Bombay_{i}.jpg', (50, 40) if i % 2 else (40, 50), (20, 20, 20))
        write_image(tmp_path / f'great_pyrenees_{i}.jpg', (50, 40), (240, 240, 240))
    return tmp_path
