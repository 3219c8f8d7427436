"""The course notebooks in nbs/, run top to bottom in a fresh kernel on the committed sample data, offline.

Deselect the slow ones with `-m 'not notebooks'`; run one with `-k pet_breeds`.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
NOTEBOOKS = sorted(NBS.glob('*.ipynb'))
CELL_TIMEOUT = 300
# Figures are rendered to PNG as in Jupyter, headless: a plot that only fails when drawn fails the test too.
INLINE_BACKEND = 'module://matplotlib_inline.backend_inline'
_ANSI = re.compile(r'\x1b\[[0-9;]*m')


@pytest.mark.notebooks
@pytest.mark.parametrize('nb_path', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(nb_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nbformat = pytest.importorskip('nbformat')
    nbclient = pytest.importorskip('nbclient')
    home = _offline_data().make_offline_home(tmp_path / 'home')
    # The kernel inherits this process's environment: untar_data finds the offline folders, nothing is downloaded.
    monkeypatch.setenv('BLOCKLEARN_HOME', str(home))
    monkeypatch.setenv('MPLBACKEND', INLINE_BACKEND)
    # JUPYTER_PATH comes first in the kernelspec search: 'python3' is this interpreter, whatever else is installed.
    monkeypatch.setenv('JUPYTER_PATH', str(_this_python_kernelspec(tmp_path / 'jupyter')))
    nb = nbformat.read(nb_path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name='python3',
                                     resources={'metadata': {'path': str(NBS)}})
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        # nbclient's message holds the failing cell's source and its traceback (coloured by IPython)
        failure = f'{nb_path.name}: a cell failed after {time.perf_counter() - start:.0f} s\n{_ANSI.sub("", str(e))}'
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    for i, cell in enumerate(nb.cells):
        if 'raises-exception' in cell.get('metadata', {}).get('tags', []):
            errors = [o for o in cell.outputs if o.output_type == 'error']
            assert errors, f'{nb_path.name}, cell {i}: tagged raises-exception but raised nothing:\n{cell.source}'


def test_committed_notebooks_have_no_outputs():
    nbformat = pytest.importorskip('nbformat')
    assert NOTEBOOKS, f'no notebooks in {NBS}'
    dirty = []
    for nb_path in NOTEBOOKS:
        nb = nbformat.read(nb_path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == 'code' and (cell.outputs or cell.execution_count is not None):
                dirty.append(f'{nb_path.name} cell {i}')
    assert not dirty, ('Notebooks are committed without outputs; clear them (Jupyter: Edit > Clear Outputs of All '
                       'Cells, or `jupyter nbconvert --clear-output --inplace nbs/*.ipynb`): ' + ', '.join(dirty))


def test_offline_home_has_the_course_folders(tmp_path: Path):
    from blocklearn.blocks.external import URLs, untar_data
    home = _offline_data().make_offline_home(tmp_path)
    pets = untar_data(URLs.PETS, base=home)
    assert len(list((pets / 'images').glob('*.jpg'))) == 140
    dogs = untar_data(URLs.DOGS, base=home)
    counts = {f'{split}/{label}': len(list((dogs / split / label).glob('*.jpg')))
              for split in ('train', 'valid') for label in ('fishes', 'monuments')}
    assert counts == {'train/fishes': 23, 'train/monuments': 22, 'valid/fishes': 5, 'valid/monuments': 5}
    mnist = untar_data(URLs.MNIST_SAMPLE, base=home)
    counts = {f'{split}/{digit}': len(list((mnist / split / digit).glob('*.png')))
              for split in ('train', 'valid') for digit in ('3', '7')}
    assert counts == {'train/3': 300, 'train/7': 300, 'valid/3': 100, 'valid/7': 100}
    labels = (mnist / 'labels.csv').read_text().splitlines()
    assert labels[0] == 'name,label' and len(labels) == 801 and labels[1].startswith('train/3/')
    assert {row.split(',')[1] for row in labels[1:] if '/7/' in row} == {'1'}
    imagenette = untar_data(URLs.IMAGENETTE, base=home)
    counts = {split: {d.name: len(list(d.glob('*.jpg'))) for d in sorted((imagenette / split).iterdir())}
              for split in ('train', 'val')}
    assert counts == {'train': {'fishes': 23, 'monuments': 22, 'others': 14, 'renewable': 24, 'tools': 32},
                      'val': {'fishes': 5, 'monuments': 5, 'others': 3, 'renewable': 5, 'tools': 7}}
    import numpy as np
    import pandas as pd
    from PIL import Image
    pascal = untar_data(URLs.PASCAL_2007, base=home)
    df = pd.read_csv(pascal / 'train.csv')
    assert list(df.columns) == ['fname', 'labels', 'is_valid'] and len(df) == 140 and df['is_valid'].sum() == 25
    assert all((pascal / 'train' / f).is_file() for f in df['fname'])
    tags = [set(labels.split(' ')) for labels in df['labels']]
    assert set().union(*tags) == {'fishes', 'monuments', 'others', 'renewable', 'tools', 'bright'}
    assert sum('bright' in t for t in tags) == 70  # the brighter half
    biwi = untar_data(URLs.BIWI_HEAD_POSE, base=home)
    assert sorted(d.name for d in biwi.iterdir()) == [f'{k:02d}' for k in range(1, 14)]
    frames = sorted((biwi / '13').glob('*_rgb.jpg'))
    assert len(frames) == 20 and all(Path(f'{str(f)[:-7]}pose.txt').is_file() for f in frames)
    cal = np.genfromtxt(biwi / '01' / 'rgb.cal', skip_footer=6)  # the book's get_ctr: the pose projects on the dot
    ctr = np.genfromtxt(Path(f'{str(frames[0])[:-7]}pose.txt'), skip_header=3)
    x, y = ctr[0] * cal[0][0] / ctr[2] + cal[0][2], ctr[1] * cal[1][1] / ctr[2] + cal[1][2]
    pixels = np.asarray(Image.open(frames[0]).convert('L'), dtype=np.float32)
    assert pixels[int(y), int(x)] > 200 and pixels.shape == (72, 96)
    assert _offline_data().make_offline_home(tmp_path) == home  # a second call keeps what is there


def _this_python_kernelspec(root: Path) -> Path:
    """A `python3` kernelspec under `root/kernels` that runs ipykernel in the interpreter running the tests."""
    spec = root / 'kernels' / 'python3'
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'Python 3 (tests)', 'language': 'python'}))
    return root


def _offline_data():
    """nbs/offline_data.py as a module (nbs/ is not a package)."""
    if 'offline_data' not in sys.modules:
        spec = importlib.util.spec_from_file_location('offline_data', NBS / 'offline_data.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules['offline_data'] = module
        spec.loader.exec_module(module)
    return sys.modules['offline_data']
