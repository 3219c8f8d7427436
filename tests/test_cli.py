"""The command line: the README's main job, on the committed data, and its one-line errors."""
import shutil
import subprocess
import sys

from vision.__main__ import main


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
    assert (tmp_path / 'out' / 'lr_find.png').exists() and (tmp_path / 'out' / 'loss.png').exists()


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    for args in (['summary', str(tmp_path / 'missing')], ['train', str(tmp_path), '--arch', 'resnet9000'],
                 ['summary', str(tmp_path)]):
        res = subprocess.run([sys.executable, '-m', 'vision', *args], capture_output=True, text=True)
        assert res.returncode == 1, res.stderr
        assert res.stderr.startswith('error: ') and 'Traceback' not in res.stderr
