"""The README's table of fastai import lines: each blocklearn line it lists imports and brings the names a course
notebook uses after it; `blocklearn.vision.all`, the one module that star-imports, brings every package's names."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The names a notebook uses after each line (fastai's own examples for the line).
KEY_NAMES = {
    # with what fastai.basics, fastai.data.all and fastai.callback.all bring, which map to this line
    'from blocklearn.vision.all import *': ['DataBlock', 'ImageBlock', 'vision_learner', 'cnn_learner', 'Learner',
                                            'accuracy', 'MixedPrecision', 'untar_data', 'PILImage', 'Resize',
                                            'CategoryBlock', 'RegressionBlock', 'Datasets', 'DataLoaders',
                                            'RandomSplitter', 'ColReader', 'RegexLabeller', 'URLs', 'L', 'Transform',
                                            'CrossEntropyLossFlat', 'set_seed', 'Adam', 'SGD', 'load_learner',
                                            'SaveModelCallback', 'Callback', 'ClassificationInterpretation',
                                            'SuggestedLRs', 'EarlyStoppingCallback', 'ReduceLROnPlateau', 'MixUp',
                                            'CutMix', 'GradientAccumulation', 'GradientClip', 'ShowGraphCallback',
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
    assert set(ours) == set(KEY_NAMES)
    # the lines with no module of their own map to the one that re-exports everything
    mapped = dict(rows)
    for fastai in ('`from fastai.basics import *`', '`from fastai.data.all import *`',
                   '`from fastai.callback.all import *`'):
        assert mapped[fastai] == '`from blocklearn.vision.all import *`'

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
    ('learner', {'callback_host', 'fit', 'lr_find', 'predict', 'show_results', 'tta'}),  # Learner methods, as fastai
])
def test_vision_all_brings_every_module_of_each_package(package, left_out):
    everything = importlib.import_module('blocklearn.vision.all')
    for file in sorted((ROOT / package).glob('*.py')):
        if file.stem in {'__init__', '__main__'} | left_out:
            continue
        module = importlib.import_module(f'blocklearn.{package}.{file.stem}')
        missing = [n for n in getattr(module, '__all__', []) if not hasattr(everything, n)]
        assert missing == [], f'blocklearn.vision.all lacks {missing} of {package}/{file.name}'


def test_only_vision_all_star_imports():
    starred = [str(f.relative_to(ROOT)) for pkg in ('blocks', 'learner', 'callbacks', 'vision')
               for f in sorted((ROOT / pkg).glob('*.py')) if re.search(r'^from \S+ import \*', f.read_text(), re.M)]
    assert starred == ['vision/all.py']
