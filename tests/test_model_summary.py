"""learn.summary(): the layer table, the parameter totals, the setup lines; modes and random state untouched."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from torchvision.models import resnet18

from blocklearn.learner.learner import Learner
from blocklearn.learner.model_summary import ModelSummary
from blocklearn.vision.augment import aug_transforms
from blocklearn.vision.data import ImageDataLoaders
from blocklearn.vision.learner import vision_learner
from blocklearn.vision.resize import Resize
from synth import classification_dls


@pytest.fixture
def learn(tmp_path, write_image):
    for split, n in (('train', 4), ('valid', 2)):
        for label, color in (('red', (220, 30, 30)), ('blue', (30, 30, 220))):
            for i in range(n):
                write_image(tmp_path / split / label / f'{i}.png', (80, 70), color)
    dls = ImageDataLoaders.from_folder(tmp_path, item_tfms=Resize(72), batch_tfms=aug_transforms(size=64), bs=4,
                                       num_workers=0)
    torch.manual_seed(0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    learn.freeze()
    return learn


def test_summary_of_resnet18_at_64px(learn):
    s = learn.summary()
    assert isinstance(s, ModelSummary) and repr(s) == str(s)
    assert s.total_params == sum(p.numel() for p in learn.model.parameters())
    body, head = learn.model
    # frozen: the head and the body's BatchNorms train
    bn = sum(p.numel() for m in body.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert s.trainable_params == sum(p.numel() for p in head.parameters()) + bn
    shapes = {i.name: i.output_shape for i in s.layers}
    assert s.input_shape == (4, 3, 64, 64)
    assert shapes['0.0'] == (4, 64, 32, 32)            # conv1, stride 2
    assert shapes['0.3'] == (4, 64, 16, 16)            # max pool
    assert shapes['0.7.1.conv2'] == (4, 512, 2, 2)     # the last conv of layer4
    assert shapes['1.0.mp'] == (4, 512, 1, 1)
    assert shapes['1.8'] == (4, 2)                     # the logits
    conv1 = next(i for i in s.layers if i.name == '0.0')
    assert (conv1.type, conv1.params, conv1.trainable) == ('Conv2d', 64 * 3 * 7 * 7, False)
    assert sum(i.params for i in s.layers) == s.total_params
    text = str(s)
    assert text.startswith('Sequential (Input shape: 4 x 3 x 64 x 64)')
    assert f'Total params: {s.total_params:,}' in text and f'Total trainable params: {s.trainable_params:,}' in text
    assert '0.7.1.conv2 (Conv2d)' in text and '4 x 512 x 2 x 2' in text
    assert 'Optimizer used: Adam' in text and 'Loss function: FlattenedLoss of CrossEntropyLoss()' in text
    assert 'Model frozen up to parameter group #2' in text
    assert text.endswith('Callbacks:\n  - TrainEvalCallback\n  - Recorder\n  - ProgressCallback')


def test_summary_keeps_modes_and_random_state(learn):
    learn.model.train()
    learn.model[0][1].eval()                           # one BatchNorm in eval mode, as a user may set it
    modes = [m.training for m in learn.model.modules()]
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    learn.summary()
    assert [m.training for m in learn.model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), states[0])
    assert (np.random.get_state()[1] == states[1]).all() and random.getstate() == states[2]
    assert all(p.grad is None for p in learn.model.parameters())


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        return self.out(self.lin(self.lin(x)))


def test_a_module_called_twice_counts_its_parameters_once():
    learn = Learner(classification_dls(), Twice())
    s = learn.summary()
    assert [(i.name, i.output_shape, i.params) for i in s.layers] == [
        ('lin', (16, 4), 20), ('lin', (16, 4), 0), ('out', (16, 3), 15)]
    assert s.total_params == 35 == s.trainable_params
    assert 'Model unfrozen' not in str(s)              # no optimizer yet
