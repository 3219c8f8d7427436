"""The command line: the README's main job, on the committed data, and its one-line errors."""
import shutil
import subprocess
import sys

import pytest

from blocklearn.learner.load import load_learner
from blocklearn.vision.__main__ import main


def test_summary_saves_show_batch(photos, tmp_path, capsys):
    assert main(['summary', str(photos), '--label-re', r'(.+)_\d+.jpg$', '--size', '64', '--out', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'Found 140 items' in out and 'Everything checks out' in out
    assert (tmp_path / 'show_batch.png').stat().st_size > 10_000


def test_train_on_folders_saves_plots(fashion, tmp_path, capsys):
    for split, n in (('train', 12), ('valid', 4)):       # a small lesson-1 folder keeps lr_find's 100 steps quick
        for label in ('bag', 'trouser'):
            dest = tmp_path / 'data' / split / label
            dest.mkdir(parents=True)
            for f in sorted((fashion / split / label).glob('*.png'))[:n]:
                shutil.copy(f, dest / f.name)
    code = main(['train', str(tmp_path / 'data'), '--folders', '--size', '32', '--bs', '8', '--epochs', '1',
                 '--arch', 'resnet18', '--out', str(tmp_path / 'out')])
    out = capsys.readouterr().out
    assert code == 0
    assert 'Minimum/10:' in out and 'steepest point:' in out and 'error_rate' in out
    assert 'Confusion matrix (validation set):' in out and 'predicted' in out and 'Most confused' in out
    for name in ('lr_find.png', 'loss.png', 'confusion_matrix.png', 'model.pkl'):
        assert (tmp_path / 'out' / name).stat().st_size > 0, name
    images = sorted((tmp_path / 'data' / 'valid' / 'bag').glob('*.png'))[:2]
    assert main(['predict', str(tmp_path / 'out' / 'model.pkl'), *map(str, images)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    exported = load_learner(tmp_path / 'out' / 'model.pkl')
    for line, img in zip(lines, images):
        name, label, prob = line.split()
        want_label, _, probs = exported.predict(img)
        assert (name, label) == (str(img), want_label) and float(prob) == pytest.approx(float(probs.max()), abs=1e-3)
    # failure modes of predict, each one line on stderr and exit 1
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(b'not a model')
    for args, says in ((['predict', str(tmp_path / 'nope.pkl'), str(images[0])], 'no export at'),
                       (['predict', str(bad), str(images[0])], 'bad.pkl'),
                       (['predict', str(tmp_path / 'out' / 'model.pkl'), str(tmp_path / 'missing.png')],
                        "image '"),
                       (['predict', str(tmp_path / 'out' / 'model.pkl'), str(bad)], 'bad.pkl')):
        assert main(args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith('error: ') and says in err and err.count('\n') == 1, err


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    for args in (['summary', str(tmp_path / 'missing')], ['train', str(tmp_path), '--arch', 'resnet9000'],
                 ['summary', str(tmp_path)], ['train', str(tmp_path), '--lr', 'fast'], ['predict', str(tmp_path)],
                 ['predict', str(tmp_path / 'model.pkl'), str(tmp_path / 'x.jpg')]):
        res = subprocess.run([sys.executable, '-m', 'blocklearn.vision', *args], capture_output=True, text=True)
        assert res.returncode in (1, 2), res.stderr  # 2: the arguments themselves (argparse's convention)
        assert res.stderr.startswith('error: ') and res.stderr.count('\n') == 1, res.stderr
