"""export / load_learner on the committed photos: weights plus a JSON recipe, and nothing that runs code on load."""
import json
import os
import re
import warnings

import pytest
import torch
import torch.nn as nn
from PIL import Image

from blocklearn.blocks.recipe import RecipeError
from blocklearn.blocks.safe_io import UnsafeFileError
from blocklearn.blocks.transform import Transform
from blocklearn.learner.export import EXPORT_FORMAT, ExportError, export_learner
from blocklearn.learner.load import load_learner
from blocklearn.learner.learner import Learner
from blocklearn.vision.all import (CategoryBlock, DataBlock, ImageBlock, MultiCategoryBlock, Normalize, RandomSplitter, Resize,
                        aug_transforms, cnn_learner, error_rate, get_image_files, imagenet_stats, resnet18)


class Grey(Transform):
    """A transform no module registered for recipes (this test file's)."""
    order = 5

    def encodes(self, img: Image.Image) -> Image.Image:
        return img.convert('L').convert('RGB')


def pets_learner(photos, tmp_path, item_tfms=None, **kwargs):
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                       get_y=lambda p: re.findall(r'(.+)_\d+.jpg$', p.name)[0],  # a lambda: export must not care
                       splitter=RandomSplitter(seed=42), item_tfms=item_tfms or Resize(64),
                       batch_tfms=[*aug_transforms(size=48), Normalize.from_stats(*imagenet_stats)])
    dls = dblock.dataloaders(photos, bs=16, num_workers=0)
    return cnn_learner(dls, resnet18, pretrained=False, metrics=error_rate, path=tmp_path, **kwargs)


@pytest.fixture(scope='module')
def trained(photos, tmp_path_factory):
    torch.manual_seed(0)
    learn = pets_learner(photos, tmp_path_factory.mktemp('pets'))
    learn.fit_one_cycle(1, 1e-3)
    return learn


def test_export_then_load_predicts_the_same(trained, photos):
    fname = get_image_files(photos)[3]
    file = trained.export('model.pkl')
    assert file == trained.path / 'model.pkl'
    learn2 = load_learner(trained.path / 'model.pkl')
    label, idx, probs = learn2.predict(fname)
    label1, idx1, probs1 = trained.predict(fname)
    assert (label, int(idx)) == (label1, int(idx1)) and label in trained.dls.vocab
    assert torch.allclose(probs, probs1, atol=1e-6) and abs(float(probs.sum()) - 1) < 1e-5
    assert list(learn2.dls.vocab) == list(trained.dls.vocab)
    # The batch transforms come back with their settings: the same Normalize stats, the augmentations for tta.
    norm = [t for t in learn2.dls.valid.after_batch if isinstance(t, Normalize)][0]
    assert torch.equal(norm.mean.flatten(), torch.tensor(imagenet_stats[0]))
    assert [t.name for t in learn2.dls.train.after_batch] == [t.name for t in trained.dls.train.after_batch]
    preds, _ = learn2.get_preds(dl=learn2.dls.test_dl(get_image_files(photos)[:5]))
    ref, _ = trained.get_preds(dl=trained.dls.test_dl(get_image_files(photos)[:5]))
    assert torch.allclose(preds, ref, atol=1e-6)


def test_export_holds_weights_and_json_only(trained):
    file = export_learner(trained, 'plain.pkl')
    assert file == trained.path / 'plain.pkl'
    # weights_only=True refuses any pickled code: the whole file is tensors, strings and dicts.
    state = torch.load(file, weights_only=True)
    assert state['format'] == EXPORT_FORMAT and set(state) == {'format', 'version', 'recipe', 'model'}
    recipe = json.loads(state['recipe'])
    assert recipe['model']['factory'] == 'blocklearn.vision.models:create_vision_model'
    assert recipe['data']['dropped'] == [{'input': False, 'name': 'pets_learner.<locals>.<lambda>'}]  # get_y, not needed to predict
    assert recipe['loss']['cls'] == 'blocklearn.blocks.losses:CrossEntropyLossFlat'


def test_tampered_recipe_is_refused_before_any_import(trained, tmp_path):
    state = torch.load(trained.export('t.pkl'), weights_only=True)
    recipe = json.loads(state['recipe'])
    recipe['loss'] = {'func': 'os:system'}
    state['recipe'] = json.dumps(recipe)
    torch.save(state, tmp_path / 'bad.pkl')
    with pytest.raises(RecipeError, match="'os:system' as a loss, which is not registered for recipes"):
        load_learner(tmp_path / 'bad.pkl')


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > pwned.txt',))


def test_foreign_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({'format': EXPORT_FORMAT, 'model': _Evil()}, tmp_path / 'evil.pkl')
    with pytest.raises(UnsafeFileError, match='evil.pkl'):
        load_learner(tmp_path / 'evil.pkl')
    assert not (tmp_path / 'pwned.txt').exists()


def test_a_saved_model_is_not_an_export(trained):
    trained.save('stage-1')
    with pytest.raises(ExportError, match='not a blocklearn export'):
        load_learner(trained.path / 'models' / 'stage-1.pth')
    with pytest.raises(FileNotFoundError, match="learn.export"):
        load_learner(trained.path / 'nothing.pkl')


def test_custom_transform_needs_trust(photos, tmp_path):
    learn = pets_learner(photos, tmp_path, item_tfms=[Resize(64), Grey()])
    learn.export()
    with pytest.raises(RecipeError, match=r"'test_export:Grey' as a Transform class.*trusted=\[Grey\]"):
        load_learner(tmp_path / 'export.pkl')
    with pytest.raises(TypeError, match=r"not names: got 'test_export'.*trusted=\[MyTransform\]"):
        load_learner(tmp_path / 'export.pkl', trusted=['test_export'])
    learn2 = load_learner(tmp_path / 'export.pkl', trusted=[Grey])
    assert any(isinstance(t, Grey) for t in learn2.dls.valid.after_item)
    with pytest.raises(RecipeError, match='not registered'):  # trusted for that load only
        load_learner(tmp_path / 'export.pkl')


def test_lambda_transform_cannot_be_exported(photos, tmp_path):
    learn = pets_learner(photos, tmp_path, item_tfms=[Resize(64), Transform(lambda img: img)])
    with pytest.raises(ExportError, match='lambda'):
        learn.export()
    assert not (tmp_path / 'export.pkl').exists()


def test_hand_built_model_is_given_at_load(photos, tmp_path):
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_x=lambda p: p,
                    get_y=lambda p: p.name.rsplit('_', 1)[0], item_tfms=Resize(16)).dataloaders(photos, bs=8,
                                                                                                num_workers=0)
    make = lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 5))  # noqa: E731
    learn = Learner(dls, make(), path=tmp_path)
    learn.export()
    with pytest.raises(ExportError, match=r'model=<the same model'):
        load_learner(tmp_path / 'export.pkl')
    with pytest.warns(UserWarning, match='input getter'):
        learn2 = load_learner(tmp_path / 'export.pkl', model=make())
    fname = get_image_files(photos)[0]
    assert learn2.predict(fname)[0] == learn.predict(fname)[0]
    with pytest.raises(ExportError, match='do not fit the model'):
        load_learner(tmp_path / 'export.pkl', model=nn.Sequential(nn.Flatten(), nn.Linear(3, 5)))


def test_multi_label_export_keeps_threshold(photos, tmp_path):
    from blocklearn.blocks.losses import BCEWithLogitsLossFlat
    dls = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_items=get_image_files,
                    get_y=lambda p: [p.name.rsplit('_', 1)[0], 'photo'], item_tfms=Resize(32)).dataloaders(
                        photos, bs=8, num_workers=0)
    learn = cnn_learner(dls, resnet18, pretrained=False, loss_func=BCEWithLogitsLossFlat(thresh=0.3), path=tmp_path)
    learn.export()
    learn2 = load_learner(tmp_path / 'export.pkl')
    assert learn2.loss_func.thresh == 0.3 and list(learn2.dls.vocab) == list(dls.vocab)
    fname = get_image_files(photos)[0]
    labels, dec, probs = learn2.predict(fname)
    assert list(labels) == list(learn.predict(fname)[0]) and probs.shape == (len(dls.vocab),)


def test_export_is_atomic(trained, monkeypatch):
    file = trained.export('keep.pkl')
    before = file.read_bytes()

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 half a file')
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        trained.export('keep.pkl')
    monkeypatch.undo()
    assert file.read_bytes() == before
    assert [p.name for p in file.parent.iterdir() if 'keep' in p.name] == ['keep.pkl']
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_learner(file)


def test_a_process_that_did_not_import_vision_is_told_to(trained):
    import subprocess
    import sys
    file = trained.export('novision.pkl')
    code = ('import sys; from blocklearn.learner.load import load_learner\n'
            'try:\n    load_learner(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n'
            'import blocklearn.vision\nprint(load_learner(sys.argv[1]).dls.vocab)')
    out = subprocess.run([sys.executable, '-c', code, str(file)], capture_output=True, text=True, check=True).stdout
    first, second = out.splitlines()[:2]
    assert first.startswith('RecipeError') and 'import blocklearn.vision' in first
    assert second == str(list(trained.dls.vocab))
