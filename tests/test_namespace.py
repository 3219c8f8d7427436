"""One namespace: blocklearn's packages never answer to the bare names a user's own files may have."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

BARE_NAMES = ('blocks', 'learner', 'callbacks', 'vision')
NOTEBOOK_NAMES = ('Learner', 'vision_learner', 'cnn_learner', 'DataBlock', 'ImageBlock', 'CategoryBlock',
                  'untar_data', 'URLs', 'get_image_files', 'Callback', 'ClassificationInterpretation')


def run_python(code: str, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    """`python -c code` in a fresh interpreter of this venv, started in `cwd`, with `extra_path` as PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONSAFEPATH', 'PYTHONSTARTUP')}
    env['MPLBACKEND'] = 'Agg'
    if extra_path is not None:
        env['PYTHONPATH'] = str(extra_path)
    return subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A user's project whose own modules have the names of blocklearn's four folders, and break on import."""
    for name in BARE_NAMES:
        (tmp_path / f'{name}.py').write_text(f"raise ImportError('user file {name}.py imported')\n")
    return tmp_path


def test_user_files_named_like_our_packages_do_not_shadow_them(user_folder):
    code = ('from blocklearn.vision.all import *\n'
            f'missing = [n for n in {NOTEBOOK_NAMES!r} if n not in globals()]\n'
            'assert not missing, missing\n'
            'import sys\n'
            f'assert not [m for m in {BARE_NAMES!r} if m in sys.modules], "a bare name was imported"\n'
            'print("ok")\n')
    proc = run_python(code, cwd=user_folder, extra_path=user_folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'ok'
    # the user's files are still theirs to import: blocklearn took nothing from them, nor they from blocklearn
    proc = run_python('import learner', cwd=user_folder, extra_path=user_folder)
    assert proc.returncode == 1 and 'user file learner.py imported' in proc.stderr


def test_bare_package_names_are_not_installed(tmp_path):
    # from an unrelated folder: the repository root holds folders with these names, and '' is on sys.path there
    code = ('import importlib.util\n'
            f'print([n for n in {BARE_NAMES!r} if importlib.util.find_spec(n) is not None])\n'
            'print(importlib.util.find_spec("blocklearn.vision") is not None)\n')
    proc = run_python(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split('\n')[:2] == ['[]', 'True']


def test_console_script_and_module_help(tmp_path):
    script = Path(sys.executable).parent / 'blocklearn'
    assert script.is_file(), f'{script} is missing: reinstall with `pip install -e .` (pyproject [project.scripts])'
    env = {**os.environ, 'MPLBACKEND': 'Agg'}
    env.pop('PYTHONPATH', None)
    for cmd in ([str(script), '--help'], [sys.executable, '-m', 'blocklearn.vision', '--help']):
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (cmd, proc.stderr)
        for command in ('train', 'predict', 'summary'):
            assert command in proc.stdout, (cmd, command, proc.stdout)
