"""Hostile exports, made the way an attacker would: a clean export's JSON recipe edited to name code that harms.

Each must be refused with a RecipeError that names the reference, and what it names must never run, neither in
load_learner nor in predict: no sentinel file appears, the victim folder and file survive.
"""
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from torchvision.models import shufflenet_v2_x0_5

from blocklearn.blocks.recipe import MAX_TENSOR_ELEMENTS, RecipeError
from blocklearn.blocks.transform import Transform
from blocklearn.learner.export import model_recipe
from blocklearn.learner.learner import Learner
from blocklearn.learner.load import load_learner
from blocklearn.vision.all import (CategoryBlock, DataBlock, ImageBlock, Normalize, Resize, cnn_learner,
                                   get_image_files, imagenet_stats, parent_label)
from blocklearn.vision.core import PILImage

PAYLOAD_MODULE = 'blocklearn_hostile_payload'

# Reached through a module the old loader trusted by its package name, following its attributes.
THROUGH_TRUSTED = ['blocklearn.blocks.files:os.system', 'blocklearn.vision.core:os.system',
                   'torch.utils.cpp_extension:subprocess.call', 'torch.utils.cpp_extension:subprocess.Popen',
                   'blocklearn.blocks.recipe:importlib.import_module', 'torch:builtins.eval', 'torch:builtins.exec',
                   'torch:builtins.__import__', 'blocklearn.blocks.external:shutil.rmtree',
                   'blocklearn.blocks.files:Path.unlink', 'blocklearn.vision.models:torch.hub.load',
                   'blocklearn.vision.models:torch.load']
# Named directly: torch was trusted whole, and the stdlib must never be.
DIRECT = ['torch.hub:load', 'torch.utils.cpp_extension:load_inline', 'torch:load', 'posix:system', 'os:system',
          'subprocess:call', 'subprocess:Popen', 'importlib:import_module', 'builtins:eval', 'builtins:exec',
          'builtins:__import__', 'shutil:rmtree']


class Shade(Transform):
    """A user's transform, defined in a module of theirs (this test file) and registered nowhere."""
    order = 5

    def encodes(self, img: PILImage) -> PILImage:
        return img.point(lambda v: v // 2)


def tiny_net(n_out: int) -> nn.Module:
    """A user's model factory, registered nowhere."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(3 * 16, n_out))


@pytest.fixture(scope='module')
def images(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for label, colour in (('red', (200, 30, 30)), ('blue', (30, 30, 200))):
        (path / label).mkdir()
        for i in range(6):
            arr = np.clip(np.array(colour) + rng.integers(-40, 40, (24, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(path / label / f'{label}_{i}.png')
    return path


def dblock(item_tfms=None) -> DataBlock:
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                     item_tfms=item_tfms or Resize(24), batch_tfms=Normalize.from_stats(*imagenet_stats))


@pytest.fixture(scope='module')
def clean(images, tmp_path_factory):
    """A learner (trained on nothing), its export, and the export read back as an attacker would read it."""
    torch.manual_seed(0)
    dls = dblock().dataloaders(images, bs=4, num_workers=0)
    learn = cnn_learner(dls, shufflenet_v2_x0_5, pretrained=False, path=tmp_path_factory.mktemp('clean'))
    file = learn.export()
    return learn, file, torch.load(file, weights_only=True)


class Target:
    """What each payload would harm, all under one test's tmp_path."""

    def __init__(self, root: Path, image: Path):
        self.sentinel = root / 'pwned'
        self.victim = root / 'victim'
        self.victim.mkdir()
        (self.victim / 'keep.txt').write_text('keep')
        self.victim_image = self.victim / 'photo.png'
        self.victim_image.write_bytes(image.read_bytes())
        self.hub = root / 'hub'
        self.hub.mkdir()
        touch = f'import pathlib\npathlib.Path({str(self.sentinel)!r}).touch()\n'
        (self.hub / 'hubconf.py').write_text(touch + 'def evil():\n    return None\n')
        (root / f'{PAYLOAD_MODULE}.py').write_text(touch)
        self.pickle = root / 'evil.pt'
        torch.save(_Touch(self.sentinel), self.pickle)

    def payload(self, ref: str) -> dict:
        """Arguments that make the function `ref` names harm this target: `args`, `kwargs`, `value` and `item`."""
        name = ref.rpartition('.')[2].rpartition(':')[2]
        s = str(self.sentinel)
        if name == 'system':
            return _payload(f'touch {s}', 'command')
        if name in ('call', 'Popen'):
            return _payload(['touch', s], 'args')
        if name in ('import_module', '__import__'):
            return _payload(PAYLOAD_MODULE, 'name')
        if name in ('eval', 'exec'):
            return _payload(f'__import__("pathlib").Path({s!r}).touch()', 'source')
        if name == 'rmtree':
            return _payload(str(self.victim), 'path')
        if name == 'unlink':
            return {**_payload(str(self.victim_image), 'self'), 'item': self.victim_image}
        if 'hub' in ref:
            return {'args': [str(self.hub), 'evil', 'local'], 'kwargs': {'repo_or_dir': str(self.hub), 'model': 'evil',
                                                                         'source': 'local'},
                    'value': str(self.hub), 'item': str(self.hub)}
        if name == 'load':
            return {**_payload(str(self.pickle), 'f'), 'kwargs': {'f': str(self.pickle), 'weights_only': False}}
        return _payload('int main() { return 0; }', 'name')

    def unharmed(self) -> bool:
        return (not self.sentinel.exists() and (self.victim / 'keep.txt').exists() and self.victim_image.exists()
                and PAYLOAD_MODULE not in sys.modules)


class _Touch:
    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f'touch {self.path}',))


def _payload(value, kwarg: str) -> dict:
    return {'args': [value], 'kwargs': {kwarg: value}, 'value': value, 'item': value}


@pytest.fixture
def target(tmp_path, monkeypatch, images) -> Target:
    monkeypatch.syspath_prepend(str(tmp_path))  # so a payload module could be imported, were anything to try
    yield Target(tmp_path, get_image_files(images)[0])
    sys.modules.pop(PAYLOAD_MODULE, None)  # had one been imported, the next test would see it


def _tfm(where: list, cls_name: str) -> dict:
    return next(t for t in where if t.get('cls', '').endswith(f':{cls_name}'))


def _valid_item_tfms(recipe: dict) -> list:
    return recipe['data']['loaders'][1]['after_item']


def _set(recipe: dict, ref: str, p: dict, position: str) -> None:
    """Make `recipe` name `ref` in `position`, called with the payload `p`."""
    data = recipe['data']
    if position == 'model factory':
        recipe['model'] = {'factory': ref, 'kwargs': {'__dict__': p['kwargs']}}
    elif position == 'model argument':
        recipe['model']['kwargs']['__dict__']['arch'] = {'__ref__': ref}
    elif position == 'getter function':
        data['tls'][0][0] = {'func': ref, 'split_idx': None, 'order': 0}
    elif position == 'wrapped getter':
        data['tls'][0].insert(0, {'cls': 'blocklearn.blocks.datablock:_Getter', 'args': [{'__ref__': ref}],
                                  'kwargs': {'__dict__': {}}, 'state': {'__dict__': {}}})
    elif position == 'enum':
        _tfm(_valid_item_tfms(recipe), 'Resize')['kwargs']['__dict__']['method'] = \
            {'__enum__': ref, 'value': p['value']}
    elif position == 'transform state':
        _tfm(data['tls'][1], 'Categorize')['state']['__dict__']['vocab'] = {'__enum__': ref, 'value': p['value']}
    elif position == 'transform argument':
        _tfm(_valid_item_tfms(recipe), 'Resize')['kwargs']['__dict__']['method'] = {'__ref__': ref}
    elif position == 'transform class':
        _valid_item_tfms(recipe)[0] = {'cls': ref, 'args': p['args'], 'kwargs': {'__dict__': p['kwargs']},
                                       'state': {'__dict__': {}}}
    elif position == 'loss class':
        recipe['loss'] = {'cls': ref, 'args': p['args'], 'kwargs': {'__dict__': {}}}
    elif position == 'loss function':
        recipe['loss'] = {'func': ref}
    else:
        raise ValueError(position)


def _write(state: dict, recipe: dict, file: Path) -> Path:
    torch.save({**state, 'recipe': json.dumps(recipe)}, file)
    return file


POSITIONS = ['model factory', 'model argument', 'getter function', 'wrapped getter', 'enum', 'transform state',
             'transform argument', 'transform class', 'loss class', 'loss function']


@pytest.mark.parametrize('ref', THROUGH_TRUSTED + DIRECT)
@pytest.mark.parametrize('position', POSITIONS)
def test_hostile_reference_is_refused_and_runs_nothing(clean, target, tmp_path, ref, position):
    learn, _, state = clean
    recipe = json.loads(state['recipe'])
    p = target.payload(ref)
    _set(recipe, ref, p, position)
    file = _write(state, recipe, tmp_path / 'hostile.pkl')
    with pytest.raises(RecipeError, match=re.escape(f"'{ref}'")):
        learn2 = load_learner(file)
        learn2.predict(p['item'])  # reached only if load_learner let the recipe through
    assert target.unharmed()


@pytest.mark.parametrize('tensor', [{'__tensor__': [0.] * (MAX_TENSOR_ELEMENTS + 1), 'dtype': 'float64'},
                                    {'__tensor__': [0.485, 0.456, 0.406], 'dtype': 'load'},
                                    {'__tensor__': [0.485], 'dtype': 'float64', 'shape': [10 ** 12]},
                                    {'__tensor__': [{'__ref__': 'os:system'}], 'dtype': 'float32'}],
                         ids=['huge', 'dtype_load', 'claimed_shape', 'ref_inside'])
def test_tensor_that_is_not_bounded_data_is_refused(clean, tmp_path, tensor):
    _, _, state = clean
    recipe = json.loads(state['recipe'])
    norm = _tfm(recipe['data']['loaders'][1]['after_batch'], 'Normalize')
    norm['state']['__dict__']['mean'] = tensor
    with pytest.raises(RecipeError, match='tensor|Unknown value'):
        load_learner(_write(state, recipe, tmp_path / 'tensor.pkl'))


def test_state_key_outside_the_transforms_own_is_refused(clean, tmp_path):
    _, _, state = clean
    recipe = json.loads(state['recipe'])
    _tfm(recipe['data']['tls'][1], 'Categorize')['state']['__dict__']['_encodes'] = 1
    with pytest.raises(RecipeError, match=r"\['_encodes'\] on transform 'blocklearn.blocks.categories:Categorize'"):
        load_learner(_write(state, recipe, tmp_path / 'state.pkl'))


def test_clean_export_predicts_as_the_original(clean, images):
    learn, file, _ = clean
    learn2 = load_learner(file)
    for fname in get_image_files(images)[::3]:
        label, idx, probs = learn2.predict(fname)
        label1, idx1, probs1 = learn.predict(fname)
        assert (label, int(idx)) == (label1, int(idx1))
        assert torch.allclose(probs, probs1, atol=1e-6)


def test_user_objects_load_only_when_trusted(images, tmp_path):
    dls = dblock(item_tfms=[Resize(24), Shade()]).dataloaders(images, bs=4, num_workers=0)
    learn = Learner(dls, tiny_net(2), path=tmp_path)
    learn.model_recipe = model_recipe(tiny_net, n_out=2)
    file = learn.export()
    with pytest.raises(RecipeError, match=r"'test_export_hostile:Shade'.*trusted=\[Shade\]"):
        load_learner(file)
    with pytest.raises(RecipeError, match=r"'test_export_hostile:tiny_net' as a model factory.*trusted=\[tiny_net\]"):
        load_learner(file, trusted=[Shade])
    learn2 = load_learner(file, trusted=[Shade, tiny_net])
    fname = get_image_files(images)[0]
    assert torch.allclose(learn2.predict(fname)[2], learn.predict(fname)[2], atol=1e-6)
    assert any(isinstance(t, Shade) for t in learn2.dls.valid.after_item)


@pytest.mark.parametrize('trusted', [['os'], 'os', ['test_export_hostile'], [os]], ids=repr)
def test_trusted_names_are_refused(clean, trusted):
    _, file, _ = clean
    with pytest.raises(TypeError, match='trusted= takes'):
        load_learner(file, trusted=trusted)


def _one_line_naming(err: BaseException, file: Path) -> str:
    msg = str(err)
    assert str(file) in msg and '\n' not in msg, msg
    return msg


@pytest.mark.parametrize('edit', ['version is a string', 'version is a dict', 'recipe without data',
                                  'recipe is a list', 'dtype load'])
def test_damaged_recipe_is_one_line_naming_the_file(clean, tmp_path, edit):
    _, _, state = clean
    state, recipe = dict(state), json.loads(state['recipe'])
    if edit == 'version is a string':
        state['version'] = '2'
    elif edit == 'version is a dict':
        state['version'] = {'major': 1}
    elif edit == 'recipe without data':
        del recipe['data']
    elif edit == 'recipe is a list':
        recipe = [recipe]
    else:
        _tfm(recipe['data']['loaders'][1]['after_batch'], 'Normalize')['state']['__dict__']['mean'] = \
            {'__tensor__': [0.485, 0.456, 0.406], 'dtype': 'load'}
    file = _write(state, recipe, tmp_path / 'edited.pkl')
    with pytest.raises(RecipeError) as err:
        load_learner(file)
    msg = _one_line_naming(err.value, file)
    assert 'upgrade' not in msg  # nothing here is from a newer blocklearn


def test_export_with_flipped_or_overwritten_bytes_is_refused(clean, tmp_path):
    _, file, _ = clean
    good = file.read_bytes()
    weights = next(v for v in clean[2]['model'].values() if v.numel() > 100).numpy().tobytes()
    at = good.index(weights[:64])
    for damaged in (good[:at] + b'\x00' * 64 + good[at + 64:],          # weights overwritten: would predict nan
                    good[:at + 10] + bytes([good[at + 10] ^ 1]) + good[at + 11:]):  # one flipped bit
        bad = tmp_path / 'damaged.pkl'
        bad.write_bytes(damaged)
        with pytest.raises(ValueError) as err:
            load_learner(bad)
        assert 'damaged' in _one_line_naming(err.value, bad)


def test_an_image_given_as_the_export_is_named_as_one(tmp_path, images):
    photo = tmp_path / 'photo.jpg'
    Image.open(get_image_files(images)[0]).convert('RGB').save(photo)
    with pytest.raises(RecipeError) as err:
        load_learner(photo)
    msg = _one_line_naming(err.value, photo)
    assert 'not a blocklearn export' in msg and 'JPEG image' in msg and 'pickle' not in msg
