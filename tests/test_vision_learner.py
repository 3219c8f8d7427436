"""vision_learner: head sized from dls.c, resnet split, freezing, and the pretrained Normalize added once."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision

from blocklearn.learner.learner import Learner
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.learner import cnn_learner, vision_learner
from blocklearn.vision.models import model_meta
from blocklearn.vision.normalize import Normalize, imagenet_stats
from blocklearn.vision.resize import Resize

resnet18 = torchvision.models.resnet18


@pytest.fixture
def dls(pets_folder: Path) -> ImageDataLoaders:
    return ImageDataLoaders.from_name_re(pets_folder, get_image_files(pets_folder), r'(.+)_\d+.jpg$',
                                        item_tfms=Resize(32), bs=4, seed=0, num_workers=0, device='cpu')


@pytest.fixture
def r18_weights(tmp_path: Path, monkeypatch) -> dict[str, torch.Tensor]:
    """A resnet18 state_dict where torchvision looks for its ImageNet weights, under a fresh TORCH_HOME."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    torch.manual_seed(1)
    state = resnet18(weights=None).state_dict()
    folder = tmp_path / 'torch' / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    torch.save(state, folder / 'resnet18-f37072fd.pth')
    return state


def normalizes(dl) -> list[Normalize]:
    return [t for t in dl.after_batch if isinstance(t, Normalize)]


def test_pretrained_learner_loads_weights_freezes_and_normalizes_once(dls, r18_weights):
    learn = vision_learner(dls, resnet18)
    assert isinstance(learn, Learner)
    assert torch.equal(learn.model[0][0].weight, r18_weights['conv1.weight'])
    assert learn.model[1][-1].out_features == 2  # dls.c: Bombay, great_pyrenees
    assert len(learn.opt.param_groups) == 3
    for dl in (dls.train, dls.valid):
        (norm,) = normalizes(dl)
        assert torch.allclose(norm.mean.flatten(), torch.tensor(imagenet_stats[0]))
        assert dl.after_batch.fs[-1] is norm
    vision_learner(dls, resnet18)
    assert len(normalizes(dls.train)) == 1 and len(normalizes(dls.valid)) == 1
    assert -3 < dls.one_batch()[0].mean().item() < 3


def test_frozen_pretrained_body_trains_only_its_norm_layers(dls, r18_weights):
    learn = vision_learner(dls, resnet18, lr=1e-2)
    body, head = learn.model
    assert not body[0].weight.requires_grad and body[1].weight.requires_grad  # conv1 frozen, bn1 trainable
    assert all(p.requires_grad for p in head.parameters())
    conv, bn, lin = body[7][1].conv2.weight.clone(), body[7][1].bn2.weight.clone(), head[4].weight.clone()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
    assert torch.equal(body[7][1].conv2.weight, conv)
    assert not torch.equal(body[7][1].bn2.weight, bn) and not torch.equal(head[4].weight, lin)
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())


def test_random_init_needs_no_weights_and_adds_no_normalize(dls, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    monkeypatch.setenv('BLOCKLEARN_OFFLINE', '1')
    learn = cnn_learner(dls, resnet18, pretrained=False, metrics=None)
    assert normalizes(dls.train) == [] and normalizes(dls.valid) == []
    assert all(p.requires_grad for p in learn.model.parameters())
    assert list((tmp_path / 'empty').glob('**/*.pth')) == []


def test_weights_file_counts_as_pretrained(dls, tmp_path, monkeypatch):
    monkeypatch.setenv('BLOCKLEARN_OFFLINE', '1')
    torch.manual_seed(2)
    state = resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / 'mine.pth')
    learn = vision_learner(dls, resnet18, pretrained=False, weights=tmp_path / 'mine.pth', n_out=7)
    assert torch.equal(learn.model[0][7][1].bn2.running_var, state['layer4.1.bn2.running_var'])
    assert learn.model[1][-1].out_features == 7
    assert not learn.model[0][0].weight.requires_grad and len(normalizes(dls.valid)) == 1


def test_stats_come_from_the_arch_meta(dls, tmp_path, monkeypatch):
    def tiny(pretrained: bool = False) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    monkeypatch.setitem(model_meta, tiny, {'stats': ([0.5] * 3, [0.25] * 3)})
    torch.save(tiny().state_dict(), tmp_path / 'tiny.pth')
    learn = vision_learner(dls, tiny, weights=tmp_path / 'tiny.pth')
    (norm,) = normalizes(dls.train)
    assert norm.std.flatten().tolist() == [0.25] * 3
    assert len(learn.opt.param_groups) == 2  # default split: body, head


def test_other_channel_counts_get_no_rgb_normalize(dls, tmp_path):
    torch.save(resnet18(weights=None).state_dict(), tmp_path / 'r18.pth')
    learn = vision_learner(dls, resnet18, weights=tmp_path / 'r18.pth', n_in=1)
    assert learn.model[0][0].in_channels == 1 and normalizes(dls.train) == []


def test_no_c_on_the_dls_asks_for_n_out():
    class Bare:
        loaders: list = []
    with pytest.raises(ValueError, match=r'has no `c`.*n_out='):
        vision_learner(Bare(), resnet18, pretrained=False)


def test_cnn_learner_is_the_old_name():
    assert cnn_learner is vision_learner
