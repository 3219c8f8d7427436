"""The README's table of fastai import lines: each blocklearn line it lists imports and brings the names a course
notebook uses after it; the package-wide `all` modules stay a part of `blocklearn.vision.all`."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The names a notebook uses after each line (fastai's own examples for the line).
KEY_NAMES = {
    'from blocklearn.vision.all import *': ['DataBlock', 'ImageBlock', 'vision_learner', 'cnn_learner', 'Learner',
                                            'accuracy', 'MixedPrecision', 'untar_data', 'PILImage', 'Resize'],
    'from blocklearn.learner.all import *': ['Learner', 'DataBlock', 'CategoryBlock', 'DataLoaders', 'accuracy',
                                             'Adam', 'SGD', 'load_learner', 'SaveModelCallback', 'Callback', 'L',
                                             'ClassificationInterpretation', 'SuggestedLRs'],
    'from blocklearn.blocks.all import *': ['DataBlock', 'CategoryBlock', 'RegressionBlock', 'Datasets', 'DataLoaders',
                                            'RandomSplitter', 'ColReader', 'RegexLabeller', 'untar_data', 'URLs', 'L',
                                            'Transform', 'CrossEntropyLossFlat', 'set_seed'],
    'from blocklearn.callbacks.all import *': ['Callback', 'MixedPrecision', 'SaveModelCallback',
                                               'EarlyStoppingCallback', 'ReduceLROnPlateau', 'MixUp', 'CutMix',
                                               'GradientAccumulation', 'GradientClip', 'ShowGraphCallback',
                                               'CSVLogger', 'CancelFitException'],
    'from blocklearn.callbacks.fp16 import *': ['MixedPrecision'],
    'from blocklearn.learner.metrics import *': ['accuracy', 'error_rate', 'top_k_accuracy', 'F1Score',
                                                 'accuracy_multi', 'F1ScoreMulti'],
}


def readme_rows() -> list[tuple[str, str]]:
    """(fastai cell, blocklearn cell) of each row of the README's import-line table."""
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    section = text.split('## The import lines', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'^\| (`[^|]*`) \| ([^|]*) \|$', section, flags=re.M)


def test_the_readme_table_lists_each_line_tested_here():
    rows = readme_rows()
    ours = [m.group(1) for _, cell in rows if (m := re.match(r'`(from blocklearn\S* import \*)`', cell))]
    assert sorted(ours) == sorted(KEY_NAMES)
    no_equivalent = [fastai for fastai, cell in rows if cell.startswith('none')]
    assert '`from fastai.vision.widgets import *`' in no_equivalent and '`from fastbook import *`' in no_equivalent


@pytest.mark.parametrize('line', list(KEY_NAMES))
def test_each_blocklearn_line_imports_and_brings_its_key_names(line):
    ns: dict = {}
    exec(line, ns)                                                       # noqa: S102 - the line a notebook runs
    assert [n for n in KEY_NAMES[line] if n not in ns] == []
    assert not [n for n in ns if n in ('blocks', 'learner', 'callbacks', 'vision')]   # no bare package names


@pytest.mark.parametrize('package, left_out', [
    ('blocks', {'console', 'recipe', 'registry', 'shard', 'summary'}),   # plumbing, reached through methods
    ('callbacks', {'distributed'}),                                     # as fastai: its own import line
])
def test_an_all_module_brings_every_module_of_its_package(package, left_out):
    everything = importlib.import_module(f'blocklearn.{package}.all')
    for file in sorted((ROOT / package).glob('*.py')):
        if file.stem in {'__init__', '__main__', 'all'} | left_out:
            continue
        module = importlib.import_module(f'blocklearn.{package}.{file.stem}')
        missing = [n for n in getattr(module, '__all__', []) if not hasattr(everything, n)]
        assert missing == [], f'blocklearn.{package}.all lacks {missing} of {file.name}'


def test_the_package_all_modules_are_part_of_vision_all():
    vision = importlib.import_module('blocklearn.vision.all')
    for name in ('blocks', 'callbacks', 'learner'):
        module = importlib.import_module(f'blocklearn.{name}.all')
        missing = [n for n in dir(module) if not n.startswith('_') and not hasattr(vision, n)]
        assert missing == [], f'blocklearn.vision.all lacks {missing} of blocklearn.{name}.all'
