"""Recipes: every built-in transform and loss written as JSON and rebuilt to behave the same."""
import enum
import json
import random
import re

import numpy as np
import pytest
import torch
import torchvision

from blocklearn.blocks.categories import Categorize, CategoryMap, MultiCategorize, OneHotEncode, RegressionSetup
from blocklearn.blocks.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, L1LossFlat, MSELossFlat
from blocklearn.blocks.recipe import (MAX_TENSOR_ELEMENTS, RecipeError, decode_value, encode_value, from_ref,
                                      loss_from_recipe, loss_recipe, tfm_from_recipe, tfm_recipe, to_ref)
from blocklearn.blocks.registry import for_recipes, register_for_recipes, registered
from blocklearn.blocks.tensors import TensorCategory
from blocklearn.blocks.transform import Transform
from blocklearn.vision.augment import (AffineAugment, Brightness, Contrast, Dihedral, Flip, LightingAugment,
                            RandomResizedCropGPU, Rotate, Warp, Zoom, aug_transforms)
from blocklearn.vision.core import PILImage, TensorImage
from blocklearn.vision.models import create_vision_model  # noqa: F401 - registers torchvision's builders
from blocklearn.vision.normalize import IntToFloatTensor, Normalize, imagenet_stats
from blocklearn.vision.resize import CropPad, RandomResizedCrop, Resize


class Colour(enum.Enum):
    RED = 'red'


class Shouting(enum.Enum):
    """An enum whose class call would run code: a recipe finds its member by value without calling it."""
    LOUD = 'loud'

    @classmethod
    def _missing_(cls, value):
        raise AssertionError('an enum in a recipe was called')


class Grey(Transform):
    """A transform no module registered: a recipe names it only with trusted=[Grey]."""

    def encodes(self, x: PILImage) -> PILImage:
        return x.convert('L').convert('RGB')


@for_recipes('transform')
class AddOne(Transform):
    """A transform registered by its defining module, as a library of transforms would."""

    def encodes(self, x: int) -> int:
        return x + 1


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
    back = decode_value(json.loads(json.dumps(encode_value(v))), trusted=[Colour, torch.sigmoid])
    assert back['t'] == (1, 2.5, None) and back['c'] is Colour.RED and back['f'] is torch.sigmoid
    assert torch.equal(back['x'], v['x']) and back['i'].dtype == torch.int64 and back['l'] == [True, 'a']
    with pytest.raises(RecipeError, match='no plain form'):
        encode_value(object())


def test_refs_resolve_only_to_registered_objects():
    assert from_ref(to_ref(Resize), 'transform') is Resize and from_ref(to_ref(Resize)) is Resize
    assert registered(Resize, 'transform') and registered(torchvision.models.resnet18, 'model')
    assert to_ref(torchvision.models.resnet18) == 'torchvision.models.resnet:resnet18'
    assert from_ref('torchvision.models.resnet:ResNet18_Weights', 'enum') is torchvision.models.ResNet18_Weights
    assert from_ref('torch.nn.modules.loss:CrossEntropyLoss', 'loss') is torch.nn.CrossEntropyLoss
    for ref in ('os:system', 'subprocess:run', 'builtins:eval', 'blocklearn.blocks.files:os.system',
                'blocklearn.vision.resize:Resize.__init__', 'blocklearn.vision.resize:Nope', 'torch.hub:load',
                'blocklearn.vision.models:torch.hub.load', 'torch:builtins.eval', 'torch.nn:Linear'):
        with pytest.raises(RecipeError, match=re.escape(f"'{ref}'") + '.*not registered'):
            from_ref(ref)
    # registered, but as another kind: a transform is no loss, a model builder no Transform wrapper
    with pytest.raises(RecipeError, match="'blocklearn.vision.resize:Resize' as a loss"):
        from_ref(to_ref(Resize), 'loss')
    with pytest.raises(RecipeError, match=r'trusted=\[resnet18\]'):
        tfm_from_recipe({'func': 'torchvision.models.resnet:resnet18'})
    with pytest.raises(RecipeError, match='not a Transform class'):
        tfm_from_recipe({'cls': 'torch.nn.modules.linear:Linear', 'args': [], 'kwargs': {}, 'state': {}},
                        trusted=[torch.nn.Linear])


def test_trusted_takes_objects_for_one_call():
    r = tfm_recipe(Grey())
    with pytest.raises(RecipeError, match=r"'test_recipe:Grey'.*trusted=\[Grey\]"):
        tfm_from_recipe(r)
    assert isinstance(tfm_from_recipe(r, trusted=[Grey]), Grey)
    with pytest.raises(RecipeError, match='not registered'):  # trusting was for that call only
        tfm_from_recipe(r)
    for names in (['test_recipe'], 'test_recipe', ['os']):
        with pytest.raises(TypeError, match='not names'):
            tfm_from_recipe(r, trusted=names)
    with pytest.raises(TypeError, match='not the module'):
        tfm_from_recipe(r, trusted=[enum])


def test_registration_by_the_defining_module():
    assert tfm_from_recipe(json.loads(json.dumps(tfm_recipe(AddOne()))))(1) == 2
    with pytest.raises(RecipeError, match='lambda'):
        register_for_recipes('function', lambda x: x)
    with pytest.raises(TypeError, match='not an Enum'):
        register_for_recipes('enum', Grey)
    with pytest.raises(ValueError, match='kind'):
        register_for_recipes('anything', Grey)


def test_enum_found_by_value_never_called():
    r = encode_value(Shouting.LOUD)
    assert r == {'__enum__': 'test_recipe:Shouting', 'value': 'loud'}
    assert decode_value(r, trusted=[Shouting]) is Shouting.LOUD
    with pytest.raises(RecipeError, match="no member of value 'quiet'"):
        decode_value({**r, 'value': 'quiet'}, trusted=[Shouting])
    with pytest.raises(RecipeError, match="'blocklearn.vision.resize:Resize' as an enum, which is not registered"):
        decode_value({'__enum__': 'blocklearn.vision.resize:Resize', 'value': 1})
    with pytest.raises(RecipeError, match='not an Enum class'):
        decode_value({'__enum__': 'blocklearn.vision.resize:Resize', 'value': 1}, trusted=[Resize])


def test_recipe_values_are_bounded_data():
    assert decode_value({'__tensor__': [[1, 2]], 'dtype': 'uint8'}).dtype == torch.uint8
    for dtype in ('load', 'float64 ', 'complex64', 'qint8', None, ['float32']):
        with pytest.raises(RecipeError, match='dtype'):
            decode_value({'__tensor__': [1.], 'dtype': dtype})
    with pytest.raises(RecipeError, match=f'more than {MAX_TENSOR_ELEMENTS:,}'):
        decode_value({'__tensor__': [0.] * (MAX_TENSOR_ELEMENTS + 1), 'dtype': 'float64'})
    for bad in ([['a']], [{'__ref__': 'os:system'}], [[1., 2.], [3.]]):
        with pytest.raises(RecipeError, match='tensor'):
            decode_value({'__tensor__': bad, 'dtype': 'float32'})
    for bad in ({'__tensor__': [1.], 'dtype': 'float32', 'shape': [10 ** 12]}, {'__path__': 1}, {'x': 1},
                {'__dict__': [1]}, {'__tuple__': 'ab'}, object()):
        with pytest.raises(RecipeError):
            decode_value(bad)


def test_state_is_only_what_setup_fills():
    r = tfm_recipe(Categorize(vocab=['a', 'b']))
    r['state'] = {'__dict__': {'encodes': 'x'}}
    with pytest.raises(RecipeError, match=r"\['encodes'\] on transform 'blocklearn.blocks.categories:Categorize'"):
        tfm_from_recipe(r)
