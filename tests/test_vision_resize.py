import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from blocklearn.blocks.transform import Pipeline
from blocklearn.vision.core import PILImage, PILImageBW, PILMask, TensorImage, TensorMask, ToTensor
from blocklearn.vision.resize import CropPad, PadMode, RandomResizedCrop, Resize, ResizeMethod

PHOTO = Path(__file__).resolve().parents[1] / 'data' / 'photos' / 'images' / 'fishes_1.jpg'


@pytest.fixture
def ramp(tmp_path) -> PILImage:
    """A lossless 500x375 image whose red channel is the column (x*255/499) and green the row (y*255/374)."""
    x = np.linspace(0, 255, 500)
    y = np.linspace(0, 255, 375)
    arr = np.zeros((375, 500, 3), np.uint8)
    arr[..., 0] = np.rint(x)[None, :]
    arr[..., 1] = np.rint(y)[:, None]
    arr[..., 2] = 100
    Image.fromarray(arr).save(tmp_path / 'ramp.png')
    return PILImage.create(tmp_path / 'ramp.png')


@pytest.fixture
def flat(tmp_path) -> PILImage:
    """A 500x375 JPEG of one colour, 200 gray."""
    Image.new('RGB', (500, 375), (200, 200, 200)).save(tmp_path / 'flat.jpg')
    return PILImage.create(tmp_path / 'flat.jpg')


def px(img) -> np.ndarray:
    return np.asarray(img).astype(int)


def test_resize_valid_crops_the_centre_square(ramp):
    tfm = Resize(224)
    assert tfm.order == 1 and tfm.size == (224, 224)
    out = tfm(ramp, split_idx=1)
    assert type(out) is PILImage and out.size == (224, 224)
    assert tfm._box(ramp.size) == (62, 0, 437, 375)
    assert tfm._box((300, 230)) == (35, 0, 265, 230)            # 230/224*224 is 229.99... in floats
    # the box's left and right columns are x=62 and x=436: red 31.7 and 222.8
    assert abs(px(out)[112, 0, 0] - 32) <= 1 and abs(px(out)[112, -1, 0] - 223) <= 1
    assert px(out)[0, 112, 1] <= 1 and px(out)[-1, 112, 1] >= 254         # the full height is kept
    ref = ramp.resize((224, 224), Image.Resampling.BILINEAR, box=(62, 0, 437, 375))
    assert np.array_equal(px(out), px(ref))


def test_resize_460_upsamples_375(ramp):
    out = Resize(460)(ramp, split_idx=1)
    assert out.size == (460, 460)
    assert abs(px(out)[230, 0, 0] - 32) <= 1 and px(out)[-1, 230, 1] >= 254


def test_resize_position_is_random_on_train_and_centred_otherwise(ramp):
    tfm = Resize(224)
    random.seed(0)
    lefts = set()
    for _ in range(20):
        out = tfm(ramp, split_idx=0)
        left = tfm._box(ramp.size)[0]
        assert 0 <= left <= 125 and tfm._box(ramp.size)[1] == 0 and out.size == (224, 224)
        # the crop really moves: the first column's red follows the box
        assert abs(px(out)[100, 0, 0] - left * 255 / 499) <= 1.5
        lefts.add(left)
    assert len(lefts) > 10
    tfm(ramp)                                                   # no split: a direct call is reproducible
    assert tfm._box(ramp.size) == (62, 0, 437, 375)


def test_resize_on_a_sample_tuple_shares_the_crop(ramp):
    mask = PILMask.create(np.asarray(ramp)[..., 0] // 64 * 50)  # classes 0, 50, 100, 150 by column
    random.seed(1)
    x, y = Resize(100)((ramp, mask), split_idx=0)
    assert type(x) is PILImage and type(y) is PILMask and x.size == y.size == (100, 100)
    assert set(np.unique(px(y))) <= {0, 50, 100, 150}           # nearest: no blended classes
    assert np.abs(px(x)[:, :, 0] // 64 * 50 - px(y)).mean() < 5


def test_resize_pad_modes(flat):
    out = Resize(224, method=ResizeMethod.Pad, pad_mode=PadMode.Zeros)(flat, split_idx=1)
    arr = px(out)
    assert out.size == (224, 224)
    # 500x375 in 224x224: 168 rows of image centred, 28 rows of zeros above and below
    assert arr[:28].max() == 0 and arr[-28:].max() == 0 and np.abs(arr[29:195] - 200).max() <= 2
    refl = px(Resize(224, method='pad', pad_mode='reflection')(flat, split_idx=1))
    assert np.abs(refl - 200).max() <= 2                        # a flat image reflects into itself
    border = px(Resize(224, method='pad', pad_mode='border')(flat, split_idx=1))
    assert np.array_equal(border[0], border[28])


def test_reflection_pad_mirrors_about_the_edge(ramp):
    out = px(Resize(224, method='pad', pad_mode='reflection')(ramp, split_idx=1))
    assert np.array_equal(out[27, :, 1], out[29, :, 1]) and np.array_equal(out[0, :, 1], out[56, :, 1])
    tall = PILImage.create(np.asarray(ramp)[:, :5])           # 5x375: pads far wider than the image
    wide = px(Resize(100, method='pad', pad_mode='reflection')(tall, split_idx=1))
    assert wide.shape == (100, 100, 3) and wide[50, :, 2].min() == 100


def test_resize_squish_and_rectangular_sizes(ramp):
    out = Resize((100, 200), method='squish')(ramp, split_idx=1)
    assert out.size == (200, 100)                               # size is (h, w); PIL sizes are (w, h)
    assert px(out)[50, 0, 0] <= 2 and px(out)[50, -1, 0] >= 253 and px(out)[-1, 100, 1] >= 253
    crop = Resize((100, 300))(ramp, split_idx=1)
    assert crop.size == (300, 100)


def test_resize_tensor_matches_pil(ramp):
    t = ToTensor()(ramp)
    for method in ('crop', 'pad', 'squish'):
        out = Resize((224, 300), method=method)(t, split_idx=1)
        ref = ToTensor()(Resize((224, 300), method=method)(ramp, split_idx=1))
        assert type(out) is TensorImage and out.dtype == torch.uint8 and out.shape == (3, 224, 300)
        assert (out.float() - ref.float()).abs().mean() < 0.5
    classes = torch.tensor([0, 100, 200, 50], dtype=torch.uint8)
    mask = classes.repeat_interleave(125)[None].repeat(375, 1).as_subclass(TensorMask)
    small = Resize(50)(mask, split_idx=1)
    assert type(small) is TensorMask and small.shape == (50, 50) and set(small.unique().tolist()) <= {0, 100, 200, 50}


def test_resize_large_jpeg_uses_a_reduced_decode_with_the_same_result(tmp_path):
    Image.open(PHOTO).resize((1600, 1066), Image.Resampling.BICUBIC).save(tmp_path / 'big.jpg', quality=95)
    lazy = PILImage.create(tmp_path / 'big.jpg')
    full = PILImage.create(tmp_path / 'big.jpg')
    full.load()
    for tfm in (Resize(224), Resize(460), RandomResizedCrop(128)):
        a, b = tfm(lazy, split_idx=1), tfm(full, split_idx=1)
        assert a.size == b.size and np.abs(px(a) - px(b)).mean() < 2.5
    bw = Resize(100)(PILImageBW.create(tmp_path / 'big.jpg'), split_idx=1)
    assert bw.mode == 'L' and bw.size == (100, 100)


def test_random_resized_crop(ramp):
    tfm = RandomResizedCrop(224)
    random.seed(2)
    areas = []
    for _ in range(30):
        out = tfm(ramp, split_idx=0)
        l, t, r, b = tfm.box
        assert out.size == (224, 224) and 0 <= l < r <= 500 and 0 <= t < b <= 375
        assert 0.7 <= (r - l) / (b - t) <= 1.4
        areas.append((r - l) * (b - t) / (500 * 375))
    assert min(areas) >= 0.07 and max(areas) <= 1 and max(areas) - min(areas) > 0.3
    out = tfm(ramp, split_idx=1)
    # valid: 224/256 of the centre 375x375 square
    assert tfm.box == (86, 23, 414, 351) and out.size == (224, 224)
    assert abs(px(out)[100, 0, 0] - 86 * 255 / 499) <= 1.5
    rect = RandomResizedCrop((100, 150))
    assert rect(ramp, split_idx=0).size == (150, 100) and rect(ramp, split_idx=1).size == (150, 100)
    assert RandomResizedCrop(64)(ToTensor()(ramp), split_idx=0).shape == (3, 64, 64)


def test_crop_pad(ramp):
    out = CropPad(400)(ramp)
    arr = px(out)
    assert out.size == (400, 400)
    # box (50, -13, 450, 387): 13 zero rows above, 12 below; column 0 is x=50
    assert arr[:13].max() == 0 and arr[-12:].max() == 0 and arr[13, :, 2].min() == arr[-13, :, 2].min() == 100
    assert abs(arr[200, 0, 0] - round(50 * 255 / 499)) <= 1
    t = CropPad((100, 50), pad_mode='border')(ToTensor()(ramp))
    assert t.shape == (3, 100, 50) and torch.equal(t, ToTensor()(ramp)[:, 137:237, 225:275])


def test_pipeline_runs_resize_before_to_tensor(flat):
    pipe = Pipeline([ToTensor(), Resize(64)], split_idx=0)
    assert repr(pipe) == 'Pipeline: Resize -> ToTensor'
    out = pipe(flat)
    assert type(out) is TensorImage and out.shape == (3, 64, 64)


def test_bad_arguments_say_what_to_pass():
    with pytest.raises(ValueError, match=r"method='bogus'.*'squish', 'crop', 'pad'"):
        Resize(224, method='bogus')
    with pytest.raises(ValueError, match="pad_mode='edge'"):
        Resize(224, pad_mode='edge')
    with pytest.raises(ValueError, match=r'height, width'):
        Resize(0)
    with pytest.raises(ValueError, match='min_scale'):
        RandomResizedCrop(224, min_scale=0)
    with pytest.raises(TypeError, match='needs an image'):
        RandomResizedCrop(224)(3, split_idx=0)
