"""Recipes: every built-in transform and loss written as JSON and rebuilt to behave the same."""
import enum
import json
import random

import numpy as np
import pytest
import torch

from blocklearn.blocks.categories import Categorize, CategoryMap, MultiCategorize, OneHotEncode, RegressionSetup
from blocklearn.blocks.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, L1LossFlat, MSELossFlat
from blocklearn.blocks.recipe import (RecipeError, decode_value, encode_value, from_ref, loss_from_recipe, loss_recipe,
                           tfm_from_recipe, tfm_recipe, to_ref)
from blocklearn.blocks.tensors import TensorCategory
from blocklearn.blocks.transform import Transform
from blocklearn.vision.augment import (AffineAugment, Brightness, Contrast, Dihedral, Flip, LightingAugment,
                            RandomResizedCropGPU, Rotate, Warp, Zoom, aug_transforms)
from blocklearn.vision.core import PILImage, TensorImage
from blocklearn.vision.normalize import IntToFloatTensor, Normalize, imagenet_stats
from blocklearn.vision.resize import CropPad, RandomResizedCrop, Resize


class Colour(enum.Enum):
    RED = 'red'


def roundtrip(t):
    return tfm_from_recipe(json.loads(json.dumps(tfm_recipe(t))))


def batch():
    return TensorImage(torch.rand(4, 3, 24, 32))


@pytest.mark.parametrize('make', [
    lambda: aug_transforms(size=16, min_scale=0.75, flip_vert=True, max_zoom=1.3)[0],
    lambda: aug_transforms()[1],
    lambda: AffineAugment([Flip(p=1.), Rotate(30, p=1.), Zoom(1, 2, p=1.), Warp(0.3, p=1.)], size=(12, 20)),
    lambda: AffineAugment([Dihedral(p=1.)], size=16, pad_mode='zeros'),
    lambda: RandomResizedCropGPU(16, min_scale=0.5),
    lambda: LightingAugment([Brightness(0.4, p=1.), Contrast(0.4, p=1.)]),
    lambda: Normalize.from_stats(*imagenet_stats),
    lambda: IntToFloatTensor(),
], ids=['aug', 'lighting', 'affine', 'dihedral', 'rrc_gpu', 'lighting_steps', 'normalize', 'int2float'])
def test_batch_transforms_rebuild_to_the_same_output(make):
    t = make()
    t2 = roundtrip(t)
    assert type(t2) is type(t) and t2.order == t.order and t2.split_idx == t.split_idx
    x = batch()
    for split_idx in (0, 1):
        torch.manual_seed(1), random.seed(1)
        a = t(x, split_idx=split_idx)
        torch.manual_seed(1), random.seed(1)
        assert torch.equal(t2(x, split_idx=split_idx), a)


@pytest.mark.parametrize('t', [Resize(20), Resize((16, 24), method='pad', pad_mode='zeros'),
                               RandomResizedCrop(16, min_scale=0.5), CropPad(18)], ids=repr)
def test_item_transforms_rebuild(t):
    img = PILImage.create(torch.randint(0, 255, (3, 30, 40), dtype=torch.uint8))
    t2 = roundtrip(t)
    random.seed(3)
    a = t(img, split_idx=1)
    random.seed(3)
    assert np.array_equal(np.asarray(t2(img, split_idx=1)), np.asarray(a))


def test_set_up_state_travels():
    cat = Categorize()
    cat.setup(['b', 'a', 'b'])
    cat2 = roundtrip(cat)
    assert cat2.vocab == ['a', 'b'] and isinstance(cat2.vocab, CategoryMap)
    assert cat2.decode(TensorCategory(torch.tensor(1))) == 'b'
    multi = MultiCategorize()
    multi.setup([['x', 'y'], ['z']])
    assert roundtrip(multi).vocab == ['x', 'y', 'z']
    assert roundtrip(OneHotEncode(c=3)).c == 3 and roundtrip(RegressionSetup(c=2)).c == 2
    norm = Normalize()
    norm.setup(batch())
    assert torch.equal(roundtrip(norm).mean, norm.mean)


def test_functions_and_classmethods_are_refs():
    t = Transform(PILImage.create)
    assert tfm_recipe(t)['func'] == 'blocklearn.vision.core:PILImage.create'
    assert roundtrip(t).func == PILImage.create
    with pytest.raises(RecipeError, match='lambda'):
        tfm_recipe(Transform(lambda x: x))


@pytest.mark.parametrize('loss', [CrossEntropyLossFlat(label_smoothing=0.1), BCEWithLogitsLossFlat(thresh=0.2),
                                  MSELossFlat(), L1LossFlat(), torch.nn.CrossEntropyLoss(ignore_index=3),
                                  torch.nn.functional.cross_entropy], ids=repr)
def test_losses_rebuild(loss):
    loss2 = loss_from_recipe(json.loads(json.dumps(loss_recipe(loss))))
    pred, targ = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 3, 1])
    if isinstance(loss, BCEWithLogitsLossFlat):
        targ = torch.randint(0, 2, (6, 4)).float()
        assert loss2.thresh == 0.2
    if isinstance(loss, (MSELossFlat, L1LossFlat)):
        targ = torch.randn(6, 4)
    assert torch.equal(loss2(pred, targ), loss(pred, targ))


def test_values_roundtrip():
    v = {'t': (1, 2.5, None), 'x': torch.tensor([[1., 2.]]), 'i': torch.tensor([1, 2]), 'c': Colour.RED,
         'f': torch.sigmoid, 'l': [True, 'a']}
    back = decode_value(json.loads(json.dumps(encode_value(v))), trusted=['test_recipe'])
    assert back['t'] == (1, 2.5, None) and back['c'] is Colour.RED and back['f'] is torch.sigmoid
    assert torch.equal(back['x'], v['x']) and back['i'].dtype == torch.int64 and back['l'] == [True, 'a']
    with pytest.raises(RecipeError, match='no plain form'):
        encode_value(object())


def test_refs_are_only_followed_into_trusted_packages():
    assert from_ref(to_ref(Resize)) is Resize
    for ref, says in (('os:system', 'outside the trusted packages'), ('subprocess:run', 'outside'),
                      ('blocklearn.vision.resize:Resize.__init__', 'dunder'), ('blocklearn.vision.resize:Nope', 'does not define'),
                      ('builtins:eval', 'outside')):
        with pytest.raises(RecipeError, match=says):
            from_ref(ref)
    with pytest.raises(RecipeError, match='not a Transform class'):
        tfm_from_recipe({'cls': 'torch.nn:Linear', 'args': [], 'kwargs': {}, 'state': {}})
