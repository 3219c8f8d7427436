"""FlipItem and DihedralItem: a sample's image, mask and points flipped together, on the training split only."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.splitters import FuncSplitter
from blocklearn.learner.load import load_learner
from blocklearn.vision.block import ImageBlock, PointBlock
from blocklearn.vision.core import PILImage, PILMask, TensorImage, TensorMask, TensorPoint, image2tensor
from blocklearn.vision.data import get_image_files
from blocklearn.vision.item_augment import DihedralItem, FlipItem
from blocklearn.vision.learner import vision_learner
from blocklearn.vision.resize import Resize
from torchvision.models import resnet18

W, H = 48, 40


@pytest.fixture(autouse=True)
def seeded():
    random.seed(0)
    torch.manual_seed(0)


def noise_image(w=W, h=H, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def mask_of(img):
    """A mask derived from an image's pixels: it moves with them only if it was moved exactly as they were."""
    return (np.asarray(img)[..., 0] // 64).astype(np.uint8)


def dot_array(xy, w=W, h=H):
    """(h, w, 3) black with a white 3x3 square centred on pixel xy."""
    a = np.zeros((h, w, 3), np.uint8)
    x, y = xy
    a[y - 1:y + 2, x - 1:x + 2] = 255
    return a


def brightest(img):
    """Centre (x, y) of the bright pixels of an image, in TensorPoint's convention (pixel i covers [i, i+1))."""
    a = np.asarray(img, dtype=np.float32)
    a = a.mean(-1) if a.ndim == 3 else a
    ys, xs = np.nonzero(a >= a.max() / 2)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def dot_target(f):
    _, x, y = f.stem.split('_')
    return torch.tensor([[int(x) + 0.5, int(y) + 0.5]])


# -- FlipItem on its own ------------------------------------------------------------------------------------------
def test_flip_item_flips_a_pil_image_on_the_training_split_only():
    arr = noise_image()
    img = PILImage.create(arr)
    flipped = FlipItem(p=1.)(img, split_idx=0)
    assert isinstance(flipped, PILImage) and flipped.size == (W, H)
    assert np.array_equal(np.asarray(flipped), np.fliplr(arr))
    assert np.array_equal(np.asarray(FlipItem(p=1.)(img, split_idx=1)), arr)   # validation: untouched
    assert np.array_equal(np.asarray(FlipItem(p=1.)(img)), arr)                # a direct call: validation, as fastai
    assert np.array_equal(np.asarray(FlipItem(p=0.)(img, split_idx=0)), arr)
    assert FlipItem().p == 0.5 and FlipItem.order == 0 and DihedralItem().p == 1.


def test_flip_item_flips_tensor_images_and_masks():
    t = image2tensor(noise_image()).as_subclass(TensorImage)
    m = torch.from_numpy(mask_of(noise_image())).long().as_subclass(TensorMask)
    ft, fm = FlipItem(p=1.)((t, m), split_idx=0)
    assert type(ft) is TensorImage and type(fm) is TensorMask
    assert torch.equal(ft, t.flip(-1)) and torch.equal(fm, m.flip(-1))


def test_flip_item_flips_a_mask_with_its_image_one_draw_per_sample():
    tfm, arr = FlipItem(p=0.5), noise_image()
    img, msk = PILImage.create(arr), PILMask.create(mask_of(arr))
    flips = []
    for _ in range(40):
        fi, fm = tfm((img, msk), split_idx=0)
        assert isinstance(fm, PILMask) and fm.mode == 'L'
        assert np.array_equal(np.asarray(fm), mask_of(fi))       # the mask moved exactly as its image did
        flips.append(np.array_equal(np.asarray(fi), np.fliplr(arr)))
    assert 5 < sum(flips) < 35                                   # each sample draws anew, with p = 0.5


def test_flip_item_moves_pixel_points_across_the_sample_image():
    img = PILImage.create(dot_array((10, 25)))
    pts = TensorPoint.create([[10.5, 25.5], [0., 0.]])
    fi, fp = FlipItem(p=1.)((img, pts), split_idx=0)
    assert isinstance(fp, TensorPoint) and fp.tolist() == [[W - 10.5, 25.5], [W, 0.]]
    assert np.allclose(brightest(fi), fp[0].numpy())
    with pytest.raises(ValueError, match='FlipItem moves points with the image of their sample.*PointBlock'):
        FlipItem(p=1.)(pts, split_idx=0)


# -- through a DataBlock -----------------------------------------------------------------------------------------
@pytest.fixture
def dots(tmp_path):
    """16 images with the dot in their left third, named `<i>_<x>_<y>.png`; 4 of them (i % 4 == 0) validate."""
    folder = tmp_path / 'dots'
    folder.mkdir()
    for i in range(16):
        x, y = 9 + i % 6, 8 + 2 * (i % 12)  # kept whole by any crop of Resize(32), flipped or not
        Image.fromarray(dot_array((x, y))).save(folder / f'{i:03d}_{x}_{y}.png')
    return folder


def test_flip_item_keeps_points_on_their_dot_through_a_datablock(dots):
    block = DataBlock(blocks=(ImageBlock, PointBlock), get_items=get_image_files, get_y=dot_target,
                      splitter=FuncSplitter(lambda f: int(f.name[:3]) % 4 == 0),
                      item_tfms=[FlipItem(p=1.), Resize(32)])
    dls = block.dataloaders(dots, bs=12, num_workers=0, device='cpu')
    for dl, flipped in ((dls.train, True), (dls.valid, False)):
        samples = dl.decode_batch(dl.one_batch(), max_n=12)
        assert len(samples) == (12 if flipped else 4)
        for img, pts in samples:
            assert img.size == (32, 32) and isinstance(pts, TensorPoint)
            dot = brightest(img)
            assert (dot[0] > 16) == flipped, (dot, flipped)     # the dots start in the left third of the photo
            assert np.abs(pts[0].numpy() - dot).max() < 1, (pts, dot)


def test_flip_item_survives_export_and_load_learner(dots, tmp_path):
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      get_y=lambda f: 'odd' if int(f.name[:3]) % 2 else 'even',
                      splitter=FuncSplitter(lambda f: int(f.name[:3]) % 4 == 0),
                      item_tfms=[FlipItem(p=1.), Resize(32)])
    dls = block.dataloaders(dots, bs=4, num_workers=0, device='cpu')
    learn = vision_learner(dls, resnet18, pretrained=False, path=tmp_path)
    learn.export()
    loaded = load_learner(tmp_path / 'export.pkl')
    flips = [t for t in loaded.dls.train.after_item if isinstance(t, FlipItem)]
    assert len(flips) == 1 and flips[0].p == 1.
    # validation (predict) does not flip: the same prediction as the learner that was exported
    f = get_image_files(dots)[0]
    assert torch.allclose(loaded.predict(f)[2], learn.predict(f)[2], atol=1e-5)


# -- DihedralItem -------------------------------------------------------------------------------------------------
def test_dihedral_item_moves_image_mask_points_and_tensors_alike():
    arr = dot_array((10, 25))
    arr[..., 1] = np.maximum(arr[..., 1], noise_image()[..., 1] // 2)   # texture, so every op looks different
    img, msk = PILImage.create(arr), PILMask.create(mask_of(arr))
    t = image2tensor(arr).as_subclass(TensorImage)
    pts = TensorPoint.create([[10.5, 25.5]])
    tfm, seen = DihedralItem(), set()
    for _ in range(60):
        fi, fm, ft, fp = tfm((img, msk, t, pts), split_idx=0)
        seen.add(np.asarray(fi).tobytes())
        assert isinstance(fi, PILImage) and isinstance(fm, PILMask) and type(ft) is TensorImage
        assert fi.size in ((W, H), (H, W)) and tuple(ft.shape[-2:]) == fi.shape
        assert np.array_equal(np.asarray(fm), mask_of(fi))
        assert torch.equal(ft, image2tensor(fi))                    # tensors move as PIL images do
        assert np.abs(fp[0].numpy() - brightest(np.asarray(fi)[..., 0])).max() < 1e-6
    assert len(seen) == 8                                           # all 8 flips and turns are drawn
    assert np.array_equal(np.asarray(tfm(img, split_idx=1)), arr)
