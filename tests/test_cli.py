"""The command line: the README's main job, on the committed data, and its one-line errors."""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

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
    # --lr auto: one line of suggestions that says which one trains, the one its help names
    lr_line = next(line for line in out.splitlines() if line.startswith('Minimum/10:'))
    valley = re.search(r'valley: (\S+); using the valley, lr (\S+)$', lr_line)
    assert valley and valley.group(1) == valley.group(2), lr_line
    assert '\r' not in out                              # captured, so no terminal: lines, no bars
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


def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    # One real process (what a shell sees), the rest in this one: each new process spends ~8 s importing torch.
    res = subprocess.run([sys.executable, '-m', 'blocklearn.vision', 'summary', str(tmp_path / 'missing')],
                         capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.startswith('error: ') and res.stderr.count('\n') == 1, res.stderr
    for args in (['train', str(tmp_path), '--arch', 'resnet9000'], ['summary', str(tmp_path)],
                 ['train', str(tmp_path), '--lr', 'fast'], ['predict', str(tmp_path)],
                 ['predict', str(tmp_path / 'model.pkl'), str(tmp_path / 'x.jpg')]):
        code, _, err = _cli(args, capsys)
        assert code in (1, 2), err  # 2: the arguments themselves (argparse's convention)
        assert err.startswith('error: ') and err.count('\n') == 1, err


def _cli(args, capsys):
    """`main(args)` in this process: its exit status (argparse exits 2), stdout and stderr."""
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('bad, names', [
    (['--bs', '0'], '--bs'), (['--bs', '-1'], '--bs'), (['--size', '0'], '--size'),
    (['--epochs', '0'], '--epochs'), (['--epochs', '-3'], '--epochs'),
    (['--lr', 'nan'], '--lr'), (['--lr', 'inf'], '--lr'), (['--lr', '-0.01'], '--lr'),
    (['--seed', '99999999999999999999'], '--seed'), (['--seed', '-1'], '--seed'),
    (['--label-re', '('], '--label-re'), (['--label-re', r'\w+\.jpg$'], 'no group'),
    (['--label-re', r'^(\w+)+_\d+\.jpg$'], 'nested quantifier'),
    (['--arch', 'get_model'], '--arch'), (['--arch', 'list_models'], '--arch'), (['--arch', 'ResNet'], '--arch'),
    (['--device', 'tpu'], '--device'), (['--num-workers', '-1'], '--num-workers'),
    (['--num-workers', 'two'], '--num-workers')])
def test_bad_train_arguments_are_one_line_naming_them(tmp_path, write_image, capsys, bad, names):
    write_image(tmp_path / 'cat_1.jpg')
    args = ['train', str(tmp_path), '--label-re', r'(.+)_\d+.jpg$', '--out', str(tmp_path / 'out')]
    code, out, err = _cli(args + bad, capsys)
    assert code != 0 and err.startswith('error: ') and err.count('\n') == 1, err
    assert names in err and 'Epoch' not in out and not (tmp_path / 'out').exists(), err


def test_catastrophic_label_regex_cannot_hang(tmp_path, write_image):
    write_image(tmp_path / ('a' * 60 + '.jpg'))  # a long name it cannot match: (\w+)+ would try 2**60 splits
    res = subprocess.run([sys.executable, '-m', 'blocklearn.vision', 'summary', str(tmp_path), '--label-re',
                          r'^(\w+)+_\d+\.jpg$'], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and 'nested quantifier' in res.stderr and res.stderr.count('\n') == 1, res.stderr


def test_predict_says_what_was_given_instead(tmp_path, write_image, capsys):
    photo = write_image(tmp_path / 'cat.jpg')
    code, _, err = _cli(['predict', str(photo), str(photo)], capsys)  # the image given as the model
    assert code == 1 and err.count('\n') == 1 and 'cat.jpg is not a blocklearn export' in err, err
    assert 'JPEG image' in err and 'pickle' not in err
    code, _, err = _cli(['predict', str(tmp_path / 'model.pkl'), str(tmp_path)], capsys)  # a folder as an image
    assert code == 1 and err.count('\n') == 1 and f"image '{tmp_path}' is a folder" in err, err


def test_train_with_a_file_name_that_is_not_utf8(tmp_path, capsys):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for label, colour in ((b'caf\xe9', (200, 30, 30)), (b'tea', (30, 30, 200))):
        for i in range(8):  # a Latin-1 name, as a camera or an old archive writes it: not valid UTF-8
            name = os.path.join(os.fsencode(folder), label + b'_%d.jpg' % i)
            arr = np.clip(np.array(colour) + rng.integers(-40, 40, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(os.fsdecode(name), format='JPEG')
    out_dir = tmp_path / 'out'
    code, out, err = _cli(['train', str(folder), '--label-re', r'(.+)_\d+\.jpg$', '--size', '32', '--bs', '4',
                           '--epochs', '1', '--out', str(out_dir)], capsys)
    assert code == 0, err
    for name in ('model.pkl', 'lr_find.png', 'loss.png', 'confusion_matrix.png'):
        assert (out_dir / name).stat().st_size > 0, name
    assert out.index('Exported') < out.index('Confusion matrix')  # the model is safe before any report
    report = out[out.index('Confusion matrix'):]
    assert 'caf\\xe9' in report and '\udce9' not in out + err and '\\udce9' not in out  # one escape everywhere
    code, out, err = _cli(['predict', str(out_dir / 'model.pkl'), os.fsdecode(os.path.join(
        os.fsencode(folder), b'caf\xe9_0.jpg'))], capsys)
    assert code == 0 and 'caf\\xe9_0.jpg' in out and '\udce9' not in out, err


def test_piped_train_output_is_whole_lines_without_bars(photos, tmp_path):
    # As `blocklearn train ... > log.txt`, CI or SLURM see it: stdout a pipe. --lr skips lr_find.
    data = tmp_path / 'data'
    data.mkdir()
    for label in ('fishes', 'monuments', 'others', 'renewable', 'tools'):
        for f in sorted(photos.glob(f'{label}_*.jpg'))[:6]:
            shutil.copy(f, data / f.name)
    env = {k: v for k, v in os.environ.items() if k not in ('BLOCKLEARN_PROGRESS', 'PYCHARM_HOSTED')}
    res = subprocess.run([sys.executable, '-m', 'blocklearn.vision', 'train', str(data), '--label-re', r'(.+)_\d+.jpg$',
                          '--size', '32', '--bs', '8', '--epochs', '1', '--lr', '1e-3', '--device', 'cpu',
                          '--num-workers', '0', '--out', str(tmp_path / 'out')],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    out, err = res.stdout, res.stderr
    assert '\r' not in out + err and '\u2588' not in out and out.endswith('\n')
    lines = out.splitlines()
    assert len(lines) < 100, len(lines)                 # 81 for a one-epoch run before (of 22 KB of bars)
    assert 'Using lr 1.00e-03 from --lr (no lr_find)' in lines and 'Minimum/10' not in out
    assert not (tmp_path / 'out' / 'lr_find.png').exists() and (tmp_path / 'out' / 'model.pkl').exists()
    # each fit: its header, then one whole row per epoch (the frozen epoch, then --epochs 1)
    tables = [i for i, line in enumerate(lines) if line.split()[:2] == ['epoch', 'train_loss']]
    assert len(tables) == 2
    for i in tables:
        row = lines[i + 1].split()
        assert row[0] == '0' and len(row) == 5 and all(float(v) >= 0 for v in row[1:4]), lines[i + 1]
    assert lines[tables[1] + 2].startswith('Exported ')  # nothing else, no bar fragment, between the tables
    assert lines[-1].startswith('Saved ') and 'lr_find.png' not in lines[-1]


def test_version_prints_the_installed_version(capsys):
    code, out, err = _cli(['--version'], capsys)
    assert code == 0 and out.split()[-1] == importlib.metadata.version('blocklearn') and out.count('\n') == 1


def test_an_unavailable_device_is_one_line(tmp_path, write_image, capsys, monkeypatch):
    import torch
    write_image(tmp_path / 'cat_1.jpg')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    for device in ('cuda', 'mps'):
        code, out, err = _cli(['train', str(tmp_path), '--label-re', r'(.+)_\d+.jpg$', '--device', device,
                               '--out', str(tmp_path / 'out')], capsys)
        assert code == 2 and err.count('\n') == 1 and f'--device: {device} is not available' in err, err
        assert 'use --device cpu' in err and not (tmp_path / 'out').exists()


def test_default_device_is_cuda_then_mps_then_cpu(monkeypatch):
    import torch

    from blocklearn.blocks.loader import default_device
    for cuda, mps, want in ((True, True, 'cuda'), (False, True, 'mps'), (False, False, 'cpu')):
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: mps)
        assert default_device() == torch.device(want)


def test_lr_help_names_the_suggestion_the_code_uses(capsys):
    code, out, _ = _cli(['train', '-h'], capsys)
    help_text = ' '.join(out.split())
    assert code == 0 and 'learning rate (lr_find is skipped)' in help_text and 'its valley suggestion' in help_text
