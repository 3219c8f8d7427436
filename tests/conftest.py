"""Shared fixtures: the committed sample data and small image folders written per test.

Tests take what they need as fixtures (`photos`, `write_image`, ...) and never import this module: pytest loads
it as a plugin, and importing it again (`from conftest import ...`) would make a second copy of every fixture.
"""
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


@pytest.fixture(scope='session')
def photos() -> Path:
    """140 real photos named like pets (`<class>_<n>.jpg`), 5 classes."""
    return PHOTOS


@pytest.fixture(scope='session')
def fashion() -> Path:
    """Fashion-MNIST in the lesson-1 layout: train/<class>/*.png, valid/<class>/*.png."""
    return FASHION


def _write_image(path: Path, size: tuple[int, int] = (40, 30), color: tuple = (200, 30, 30), mode: str = 'RGB') -> Path:
    """A small solid image at `path` (format from the extension)."""
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def write_image():
    """The function `write_image(path, size=(40, 30), color=(200, 30, 30), mode='RGB')`: a small solid image."""
    return _write_image


@pytest.fixture
def pets_folder(tmp_path: Path) -> Path:
    """12 pets-style JPEGs of two sizes, two breeds with an upper-case and a lower-case name."""
    for i in range(6):
        _write_image(tmp_path / f'Bombay_{i}.jpg', (50, 40) if i % 2 else (40, 50), (20, 20, 20))
        _write_image(tmp_path / f'great_pyrenees_{i}.jpg', (50, 40), (240, 240, 240))
    return tmp_path
