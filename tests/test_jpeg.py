"""The tensor route for JPEGs (vision/jpeg.py) gives the PIL route's images: same geometry, same orientation,
pixels within a mean absolute difference of 0.5 (of 255) on the committed photos (measured: 0.008 on average)."""
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from blocklearn.vision.core import ImageReadError, PILImage, PILImageBW, TensorImage, ToTensor
from blocklearn.vision.jpeg import crop_resize_tensor, upright_tensor
from blocklearn.vision.resize import RandomResizedCrop, Resize, ResizeMethod

PHOTOS = sorted((Path(__file__).resolve().parents[1] / 'data' / 'photos' / 'images').glob('*.jpg'))
MAX_MEAN_ABS_DIFF = 0.5  # of 255: the two routes share libjpeg-turbo and a triangle filter; rounding differs


def both_routes(path: Path, tfm, split_idx: int, cls=PILImage) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(tensor route, PIL route, whether the first took the tensor route) for one file through `tfm`, ToTensor."""
    lazy, eager = cls.create(path), cls.create(path)
    eager.load()  # decoded by PIL: resize_box takes PIL's path
    random.seed(0)
    out_lazy = tfm(lazy, split_idx=split_idx)
    random.seed(0)  # the same random crop for both
    out_eager = tfm(eager, split_idx=split_idx)
    took = out_lazy._pixels is not None
    return ToTensor()(out_lazy), ToTensor()(out_eager), took


@pytest.mark.parametrize('tfm', [Resize(460), Resize(200), Resize((180, 240), method=ResizeMethod.Squish),
                                 RandomResizedCrop(224, min_scale=0.35)], ids=repr)
@pytest.mark.parametrize('split_idx', [0, 1])
def test_tensor_route_matches_pil_on_the_committed_photos(tfm, split_idx):
    diffs = []
    for path in PHOTOS[::7]:
        fast, ref, took = both_routes(path, tfm, split_idx)
        assert took, f'{path.name}: the JPEG was resized by PIL, not by the tensor route'
        assert type(fast) is TensorImage and fast.dtype == torch.uint8 and fast.shape == ref.shape
        diffs.append((fast.float() - ref.float()).abs().mean().item())
    assert max(diffs) < MAX_MEAN_ABS_DIFF, diffs


def test_same_random_crop_on_both_routes():
    # the random box is drawn before the route is chosen: the same draw gives the same crop
    path = PHOTOS[0]
    random.seed(3)
    out = Resize(150)(PILImage.create(path), split_idx=0)
    assert out._pixels is not None
    random.seed(3)
    eager = PILImage.create(path)
    eager.load()
    ref = ToTensor()(Resize(150)(eager, split_idx=0))
    assert (ToTensor()(out).float() - ref.float()).abs().mean() < MAX_MEAN_ABS_DIFF
    random.seed(5)  # another draw, another crop: the check above can tell crops apart
    other = ToTensor()(Resize(150)(eager, split_idx=0))
    assert (ToTensor()(out).float() - other.float()).abs().mean() > 5


def test_grey_images_take_the_route_too():
    fast, ref, took = both_routes(PHOTOS[1], Resize(300), 1, cls=PILImageBW)
    assert took and fast.shape == ref.shape == (1, 300, 300)
    assert (fast.float() - ref.float()).abs().mean() < MAX_MEAN_ABS_DIFF


def asymmetric(w: int = 60, h: int = 40) -> Image.Image:
    """A picture no flip or turn maps to itself: a gradient with a bright block in one corner."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 60)], -1).astype(np.uint8)
    arr[:10, :15] = 255
    return Image.fromarray(arr)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_every_exif_orientation_comes_out_as_pil_turns_it(tmp_path, orientation):
    path = tmp_path / f'o{orientation}.jpg'
    exif = Image.Exif()
    exif[0x0112] = orientation
    asymmetric().save(path, quality=95, exif=exif)
    upright = ImageOps.exif_transpose(Image.open(path)).convert('RGB')
    size = upright.size[::-1]
    fast, ref, took = both_routes(path, Resize(size, method=ResizeMethod.Squish), 1)
    # Squish to a size that differs from the source by one pixel, so the route runs (a same-size box is a copy)
    fast2, ref2, took2 = both_routes(path, Resize((size[0] + 1, size[1] + 1), method=ResizeMethod.Squish), 1)
    assert took2
    assert fast2.shape == ref2.shape == (3, size[0] + 1, size[1] + 1)
    assert (fast2.float() - ref2.float()).abs().mean() < MAX_MEAN_ABS_DIFF
    assert torch.equal(ref, torch.from_numpy(np.asarray(upright).copy()).permute(2, 0, 1))


@pytest.mark.parametrize('orientation', range(1, 9))
def test_upright_tensor_turns_as_pil_transposes(orientation):
    img = asymmetric(7, 5)
    t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info['exif'] = exif.tobytes()
    ref = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(upright_tensor(t, orientation).permute(1, 2, 0).numpy(), ref)


def test_crop_resize_tensor_is_pil_resize_with_a_box():
    img = Image.open(PHOTOS[2]).convert('RGB')
    t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    box = (17, 9, 217, 189)
    for wh in ((90, 81), (400, 360)):  # down and up
        ours = crop_resize_tensor(t, box, wh).permute(1, 2, 0).numpy().astype(float)
        ref = np.asarray(img.resize(wh, Image.Resampling.BILINEAR, box=box)).astype(float)
        assert ours.shape == ref.shape and np.abs(ours - ref).mean() < MAX_MEAN_ABS_DIFF


def test_pil_operations_after_the_route_see_the_same_pixels():
    out = Resize(128)(PILImage.create(PHOTOS[3]), split_idx=1)
    pixels = ToTensor()(out).permute(1, 2, 0).numpy().copy()
    assert out._pixels is not None
    cropped = out.crop((0, 0, 64, 64))  # PIL makes its own copy of the pixels here
    assert np.array_equal(np.asarray(cropped), pixels[:64, :64])
    assert np.array_equal(np.asarray(out), pixels) and out._pixels is None
    assert out.size == (128, 128) and type(cropped) is Image.Image and out.mode == 'RGB'


def test_a_big_reduction_stays_with_pil_reduced_decoding(tmp_path):
    path = tmp_path / 'big.jpg'
    asymmetric(800, 600).save(path, quality=90)
    out = Resize(100)(PILImage.create(path), split_idx=1)
    assert out._pixels is None and out.size == (100, 100)


def test_damage_inside_the_data_is_the_same_error_on_the_route(tmp_path):
    data = bytearray(PHOTOS[0].read_bytes())
    start = data.find(b'\xff\xda')  # start of scan: overwrite the compressed data after its header
    data[start + 20:start + 4000] = b'\x00\xff' * 1990
    path = tmp_path / 'damaged.jpg'
    path.write_bytes(bytes(data))
    try:
        out = Resize(64)(PILImage.create(path), split_idx=1)
        ToTensor()(out)  # libjpeg may decode damage as grey blocks with a warning, as PIL does; it must not crash
    except ImageReadError as e:
        assert 'damaged.jpg' in str(e)


def test_without_torchvision_decoders_pil_decodes(monkeypatch):
    # torchvision 0.29 deprecated its decoders: when they are gone the same call falls back to PIL
    monkeypatch.setattr('blocklearn.vision.jpeg.decode_jpeg', None)
    out = Resize(128)(PILImage.create(PHOTOS[0]), split_idx=1)
    assert out._pixels is None and ToTensor()(out).shape == (3, 128, 128)


def test_the_route_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ToTensor()(Resize(128)(PILImage.create(PHOTOS[0]), split_idx=1))


def test_a_box_leaving_the_image_is_left_to_pil():
    img = PILImage.create(PHOTOS[0])  # 320x213
    with pytest.raises(ValueError):  # PIL refuses a box beyond the image; the tensor route must not crop it quietly
        img.resize_box((50, 50), (-10, 0, 200, 213))
    fractional = PILImage.create(PHOTOS[0]).resize_box((50, 50), (0.5, 0, 200.5, 213))
    assert fractional._pixels is None and fractional.size == (50, 50)
