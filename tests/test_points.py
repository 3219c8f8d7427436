"""Key points (PointBlock) through the whole pipeline, and regression targets that decode."""
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from blocklearn.blocks.block import RegressionBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.vision.data import get_image_files
from blocklearn.blocks.losses import MSELossFlat
from blocklearn.blocks.splitters import FuncSplitter, IndexSplitter
from blocklearn.learner.learner import Learner
from blocklearn.learner.load import load_learner
from blocklearn.vision.augment import AffineAugment, Flip, Rotate, Warp, Zoom, aug_transforms
from blocklearn.vision.block import ImageBlock, PointBlock
from blocklearn.vision.core import PILImage, TensorPoint
from blocklearn.vision.learner import vision_learner
from blocklearn.vision.models import SigmoidRange
from blocklearn.vision.points import PointScaler
from blocklearn.vision.resize import CropPad, RandomResizedCrop, Resize
from torchvision.models import resnet18


# -- synthetic images: one bright square dot on black; the target is the dot's centre in pixels ----------------
def dot_array(wh, xy, r=1, noise=None, rng=None):
    """(h, w, 3) uint8, black (or uniform noise up to `noise`), with a white (2r+1)-pixel square centred on pixel xy."""
    w, h = wh
    a = np.zeros((h, w, 3), np.uint8) if noise is None else rng.integers(0, noise, (h, w, 3), dtype=np.uint8)
    x, y = xy
    a[y - r:y + r + 1, x - r:x + r + 1] = 255
    return a


def write_dots(folder, specs):
    """One PNG per (w, h, x, y) named so that `dot_target` reads the dot's centre back from the name."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h, x, y) in enumerate(specs):
        Image.fromarray(dot_array((w, h), (x, y))).save(folder / f'{i:03d}_{x}_{y}.png')
    return folder


def dot_target(f):
    """The centre of pixel (x, y), in TensorPoint's convention (pixel i covers [i, i+1))."""
    _, x, y = f.stem.split('_')
    return torch.tensor([[int(x) + 0.5, int(y) + 0.5]])


def brightest(img):
    """Centre (x, y) of the brightest blob of a decoded image: mean position of pixels over half the maximum."""
    a = np.asarray(img, dtype=np.float32).mean(-1)
    ys, xs = np.nonzero(a >= a.max() / 2)
    wts = a[ys, xs]
    return np.array([(xs * wts).sum() / wts.sum() + 0.5, (ys * wts).sum() / wts.sum() + 0.5])


def dot_dls(folder, item_tfms=None, batch_tfms=None, bs=8):
    block = DataBlock(blocks=(ImageBlock, PointBlock), get_items=get_image_files, get_y=dot_target,
                      splitter=FuncSplitter(lambda f: int(f.name[:3]) % 4 == 0),
                      item_tfms=item_tfms, batch_tfms=batch_tfms)
    return block.dataloaders(folder, bs=bs, num_workers=0, device='cpu')


def assert_points_on_dots(samples, tol=1.5, margin=3):
    """Each decoded (image, points): the point is within `tol` px of the dot, unless the dot left the image."""
    checked = 0
    for img, pts in samples:
        assert isinstance(pts, TensorPoint) and pts.shape == (1, 2)
        w, h = img.size
        x, y = pts[0].tolist()
        if not (margin <= x <= w - margin and margin <= y <= h - margin):
            continue  # the crop or rotation moved the dot out: nothing to look at (the point is kept, see below)
        assert np.abs(np.array([x, y]) - brightest(img)).max() < tol, (img.size, (x, y), brightest(img))
        checked += 1
    return checked


SPECS = [(48, 40, 12 + 3 * (i % 7), 10 + 2 * (i % 9)) for i in range(16)]


@pytest.fixture(autouse=True)
def seeded():
    """The random crops and augmentations draw the same on every run: the counts of dots checked are stable."""
    random.seed(0)
    torch.manual_seed(0)


# -- the type, the scaler, the block ---------------------------------------------------------------------------
def test_point_scaler_scales_x_by_width_and_y_by_height_and_decodes_back():
    img = PILImage.create(np.zeros((40, 60, 3), np.uint8))  # 60 wide, 40 high
    pts = TensorPoint.create([[15., 10.], [60., 0.]])
    scaler = PointScaler()
    _, scaled = scaler((img, pts))
    assert scaled.tolist() == [[-0.5, -0.5], [1., -1.]]
    _, back = scaler.decode((img, scaled))
    assert isinstance(back, TensorPoint) and back.tolist() == [[15., 10.], [60., 0.]]
    _, flipped = PointScaler(y_first=True)((img, TensorPoint.create([10., 15.])))
    assert flipped.tolist() == [[-0.5, -0.5]]


def test_point_block_gives_scaled_targets_mse_loss_and_c(tmp_path):
    dls = dot_dls(write_dots(tmp_path, SPECS))
    assert dls.c == 2
    assert isinstance(dls.loss_func, MSELossFlat)
    x, y = dls.valid.one_batch()
    assert isinstance(y, TensorPoint) and y.shape == (len(x), 1, 2)
    items = dls.valid_ds.items
    expected = torch.stack([dot_target(f)[0] * 2 / torch.tensor([48., 40.]) - 1 for f in list(items)[:len(x)]])
    assert torch.allclose(y[:, 0], expected)


# -- moved with the image: batch augmentation ------------------------------------------------------------------
def test_flip_and_rotate_move_the_point_onto_the_dot(tmp_path):
    dls = dot_dls(write_dots(tmp_path, SPECS), batch_tfms=[Flip(p=1.), Rotate(p=1., draw=30.)])
    b = dls.train.one_batch()
    samples = dls.train.decode_batch(b, max_n=8)
    assert assert_points_on_dots(samples) == 8
    # a flip alone is exact: the dot at pixel x lands on pixel w - 1 - x, and so does the point
    flipped = dot_dls(tmp_path, batch_tfms=[Flip(p=1.)])
    img, pts = flipped.train.decode_batch(flipped.train.one_batch(), max_n=1)[0]
    assert np.abs(pts[0].numpy() - brightest(img)).max() < 1e-3


@pytest.mark.parametrize('seed', [0, 1])
def test_composed_flip_rotate_zoom_warp_and_crop_move_the_point_onto_the_dot(tmp_path, seed):
    torch.manual_seed(seed)
    steps = [Flip(p=1.), Rotate(p=1., max_deg=35.), Zoom(p=1., max_zoom=1.4), Warp(0.35, p=1.)]
    aug = AffineAugment(steps, size=(36, 44), min_scale=0.7, pad_mode='zeros')
    dls = dot_dls(write_dots(tmp_path, SPECS), batch_tfms=[aug], bs=12)
    samples = dls.train.decode_batch(dls.train.one_batch(), max_n=12)
    assert samples[0][0].size == (44, 36)
    assert assert_points_on_dots(samples) >= 9
    valid = dls.valid.decode_batch(dls.valid.one_batch())
    assert assert_points_on_dots(valid) == len(valid)


def test_aug_transforms_keep_points_on_dots_on_both_splits(tmp_path):
    torch.manual_seed(3)
    dls = dot_dls(write_dots(tmp_path, SPECS), batch_tfms=aug_transforms(size=(32, 40), max_rotate=30.,
                                                                          p_affine=1., pad_mode='zeros'), bs=12)
    assert assert_points_on_dots(dls.train.decode_batch(dls.train.one_batch(), max_n=12)) >= 9
    assert assert_points_on_dots(dls.valid.decode_batch(dls.valid.one_batch())) == 4


# -- moved with the image: item transforms ---------------------------------------------------------------------
WIDE_AND_TALL = [(60, 40, 30 + (i % 5) * 2 - 4, 20 + (i % 3) - 1) for i in range(8)] + \
                [(40, 60, 20 + (i % 3) - 1, 30 + (i % 5) * 2 - 4) for i in range(8)]


@pytest.mark.parametrize('method', ['crop', 'pad', 'squish'])
def test_resize_moves_the_point_onto_the_dot(tmp_path, method):
    dls = dot_dls(write_dots(tmp_path, WIDE_AND_TALL), item_tfms=Resize((24, 32), method=method, pad_mode='zeros'))
    for dl in (dls.train, dls.valid):
        samples = dl.decode_batch(dl.one_batch())
        assert samples[0][0].size == (32, 24)
        assert assert_points_on_dots(samples, tol=1.) >= len(samples) - 2  # a random crop may cut a dot


def test_random_resized_crop_and_crop_pad_move_the_point_onto_the_dot(tmp_path):
    folder = write_dots(tmp_path, WIDE_AND_TALL)
    for tfms in (RandomResizedCrop(32, min_scale=0.35), [CropPad(36), Resize(28)]):
        dls = dot_dls(folder, item_tfms=tfms)
        for dl in (dls.train, dls.valid):
            samples = dl.decode_batch(dl.one_batch())
            assert assert_points_on_dots(samples, tol=1.) >= len(samples) - 2


def test_points_that_leave_the_image_are_kept(tmp_path):
    # 80x40, valid centre crop to 40x40 keeps x in [20, 60): a dot at x=5 lands 15 px left of the crop
    dls = dot_dls(write_dots(tmp_path, [(80, 40, 5, 20)] * 4), item_tfms=Resize(40))
    _, pts = dls.valid.decode_batch(dls.valid.one_batch())[0]
    assert pts[0].tolist() == pytest.approx([5.5 - 20, 20.5])
    x, y = dls.valid.one_batch()
    assert y[0, 0, 0] < -1  # scaled, outside [-1, 1], not clipped


# -- shown over the image --------------------------------------------------------------------------------------
def test_show_batch_scatters_the_decoded_points_over_the_image(tmp_path):
    dls = dot_dls(write_dots(tmp_path, SPECS))
    axs = dls.valid.show_batch(max_n=4)
    samples = dls.valid.decode_batch(dls.valid.one_batch(), max_n=4)
    for ax, (img, pts) in zip(axs, samples):
        assert len(ax.images) == 1 and len(ax.collections) == 1
        drawn = ax.collections[0].get_offsets()
        # imshow draws pixel i's centre at i: the dot's centre (i + 0.5) is drawn at i
        assert np.allclose(np.asarray(drawn) + 0.5, pts.numpy())
        assert np.abs(np.asarray(drawn[0]) - (brightest(img) - 0.5)).max() < 0.6


# -- learning ---------------------------------------------------------------------------------------------------
def noisy_dot_dls(n=320, size=32, seed=0):
    """Noise images with a dot whose centre is the target; 80% train."""
    rng = np.random.default_rng(seed)
    xy = rng.integers(4, size - 4, (n, 2))
    arrays = [dot_array((size, size), tuple(p), r=1, noise=120, rng=rng) for p in xy]
    block = DataBlock(blocks=(ImageBlock, PointBlock), get_x=lambda i: arrays[i],
                      get_y=lambda i: torch.tensor(xy[i] + 0.5, dtype=torch.float32),
                      splitter=IndexSplitter(list(range(int(n * 0.8), n))))
    return block.dataloaders(list(range(n)), bs=32, num_workers=0, device='cpu')


def small_cnn(n_out=2):
    """Convolutions that keep where things are, then a linear layer that reads the position off."""
    def conv(ni, nf):
        return nn.Sequential(nn.Conv2d(ni, nf, 3, stride=2, padding=1), nn.BatchNorm2d(nf), nn.ReLU())
    return nn.Sequential(conv(3, 16), conv(16, 32), conv(32, 32), nn.Flatten(), nn.Linear(32 * 16, n_out),
                         SigmoidRange(-1, 1))


def test_small_model_learns_the_dot_far_better_than_predicting_the_mean(tmp_path):
    torch.manual_seed(0)
    dls = noisy_dot_dls()
    learn = Learner(dls, small_cnn(), path=tmp_path)
    assert isinstance(learn.loss_func, MSELossFlat)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(6, 1e-2)
    preds, targs = learn.get_preds()
    assert preds.shape == (64, 2) and targs.shape == (64, 1, 2)
    targs = targs.view(-1, 2)
    mse = ((preds - targs) ** 2).mean().item()
    baseline = ((targs - targs.mean(0)) ** 2).mean().item()  # the best constant prediction
    assert mse < baseline / 4, (mse, baseline)
    assert learn.validate()[0] == pytest.approx(mse, rel=1e-4)

    assert ((preds - targs).abs() * 16).mean() < 3  # pixels of the 32x32 input (predicting the mean: ~6)

    # predict gives the point in pixels of the input, the prediction get_preds made for that item
    pts, raw, _ = learn.predict(len(dls.train_ds))
    assert isinstance(pts, TensorPoint) and pts.shape == (1, 2)
    assert torch.allclose(raw, preds[0], atol=1e-5) and torch.allclose(pts[0], (preds[0] + 1) * 16, atol=1e-4)

    axs = learn.show_results(max_n=4)
    assert len(axs) == 8  # target and prediction side by side
    assert all(len(ax.collections) == 1 for ax in axs)


def test_vision_learner_y_range_squashes_point_predictions(tmp_path):
    dls = dot_dls(write_dots(tmp_path, SPECS))
    learn = vision_learner(dls, resnet18, y_range=(-1, 1), pretrained=False, path=tmp_path)
    assert isinstance(learn.model[-1][-1], SigmoidRange) and learn.model[-1][-2].out_features == 2
    preds, _ = learn.get_preds()
    assert preds.shape == (4, 2) and preds.abs().max() < 1
    pts, _, _ = learn.predict(dls.valid_ds.items[0])
    assert isinstance(pts, TensorPoint) and 0 <= pts[0, 0] <= 48 and 0 <= pts[0, 1] <= 40

    learn.export()
    loaded = load_learner(tmp_path / 'export.pkl', trusted=[dot_target])
    again, _, _ = loaded.predict(dls.valid_ds.items[0])
    assert torch.allclose(again, pts, atol=1e-5)


# -- regression targets decode ----------------------------------------------------------------------------------
def test_regression_block_decodes_for_show_batch_and_predict(tmp_path):
    folder = write_dots(tmp_path, SPECS)
    block = DataBlock(blocks=(ImageBlock, RegressionBlock), get_items=get_image_files,
                      get_y=lambda f: float(f.stem.split('_')[1]), splitter=FuncSplitter(lambda f: f.name < '004'))
    dls = block.dataloaders(folder, bs=4, num_workers=0, device='cpu')
    axs = dls.valid.show_batch(max_n=2)
    assert [ax.get_title() for ax in axs] == [str(float(f.stem.split('_')[1])) for f in list(dls.valid_ds.items)[:2]]
    learn = vision_learner(dls, resnet18, pretrained=False)
    value, raw, _ = learn.predict(dls.valid_ds.items[0])
    assert value == pytest.approx(raw.tolist())
    assert math.isfinite(value[0])
