"""Chapter 2's data API: DataBlock.new, show_batch(unique=True), ResizeMethod/PadMode geometry, aug_transforms(mult)."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from blocklearn.vision.all import (AffineAugment, Brightness, CategoryBlock, Contrast, DataBlock, ImageBlock,
                                   IntToFloatTensor, LightingAugment, PadMode, PILImage, RandomResizedCrop,
                                   RandomSplitter, Resize, ResizeMethod, Rotate, TensorImage, ToTensor, Warp, Zoom,
                                   aug_transforms, get_image_files, load_learner, parent_label, resnet18,
                                   vision_learner)

STRIPES = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]  # left to right, 20 px each


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


def stripes_image(w: int = 80, h: int = 40) -> PILImage:
    """A wide image of four vertical colour stripes: which stripes survive says what was cropped."""
    a = np.zeros((h, w, 3), np.uint8)
    for k, c in enumerate(STRIPES):
        a[:, k * w // 4:(k + 1) * w // 4] = c
    return PILImage.create(a)


def colour_at(img, row: int, col: int) -> tuple:
    return tuple(int(v) for v in np.asarray(img)[row, col])


# ---- ResizeMethod and PadMode -------------------------------------------------------------------------------
def test_resize_method_and_pad_mode_constants_as_fastai():
    assert (ResizeMethod.Squish, ResizeMethod.Crop, ResizeMethod.Pad) == ('squish', 'crop', 'pad')
    assert (PadMode.Zeros, PadMode.Border, PadMode.Reflection) == ('zeros', 'border', 'reflection')


def test_squish_keeps_every_stripe_at_its_place():
    out = Resize(32, ResizeMethod.Squish)(stripes_image(), split_idx=1)
    assert out.size == (32, 32)
    # each 20 px stripe of 80 becomes 8 px of 32, full height
    for k, c in enumerate(STRIPES):
        assert colour_at(out, 0, k * 8 + 4) == c and colour_at(out, 31, k * 8 + 4) == c
    assert colour_at(out, 0, 0) == STRIPES[0] and colour_at(out, 31, 31) == STRIPES[-1]


def test_crop_on_valid_takes_the_centred_square():
    out = Resize(32, ResizeMethod.Crop)(stripes_image(), split_idx=1)
    # the centred 40x40 box is x 20..60: the two middle stripes, 16 px each
    assert out.size == (32, 32)
    assert colour_at(out, 16, 2) == STRIPES[1] and colour_at(out, 16, 13) == STRIPES[1]
    assert colour_at(out, 16, 18) == STRIPES[2] and colour_at(out, 16, 29) == STRIPES[2]
    assert STRIPES[0] not in {colour_at(out, r, c) for r in range(32) for c in range(32)}


def test_pad_with_zeros_adds_black_bars_of_the_expected_width():
    out = np.asarray(Resize(32, ResizeMethod.Pad, pad_mode=PadMode.Zeros)(stripes_image(), split_idx=1))
    # 80x40 padded to 80x80 then shrunk 2.5x: 40 content rows become 16, 8 black rows above and below
    assert out.shape == (32, 32, 3)
    assert (out[:8] == 0).all() and (out[24:] == 0).all()
    content = out[8:24]
    assert (content.sum(-1) > 0).all()
    for k, c in enumerate(STRIPES):
        assert tuple(content[8, k * 8 + 4]) == c


def test_pad_reflection_fills_the_bars_with_the_picture():
    out = np.asarray(Resize(32, ResizeMethod.Pad)(stripes_image(), split_idx=1))
    assert (out.sum(-1) > 0).all()


def test_random_resized_crop_as_the_book_uses_it():
    img = stripes_image(200, 100)
    rrc = RandomResizedCrop(32, min_scale=0.3)
    train = [np.asarray(rrc(img, split_idx=0)) for _ in range(6)]
    assert all(a.shape == (32, 32, 3) for a in train)
    assert len({a.tobytes() for a in train}) > 1  # a different crop each time
    valid = np.asarray(rrc(img, split_idx=1))
    assert np.array_equal(valid, np.asarray(rrc(img, split_idx=1)))


# ---- DataBlock.new -----------------------------------------------------------------------------------------
@pytest.fixture
def bears(photos):
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                     splitter=RandomSplitter(valid_pct=0.2, seed=42), get_y=lambda p: p.name.rsplit('_', 1)[0],
                     item_tfms=Resize(48))


def test_new_is_a_copy_with_the_transforms_replaced(bears):
    squish = bears.new(item_tfms=Resize(32, ResizeMethod.Squish))
    # the original keeps its Resize(48); the copy has the blocks' own transforms plus the new one
    assert [type(t) for t in bears.item_tfms] == [ToTensor, Resize] and bears.item_tfms[1].size == (48, 48)
    assert [type(t) for t in squish.item_tfms] == [ToTensor, Resize]
    assert squish.item_tfms[1].size == (32, 32) and squish.item_tfms[1].method == 'squish'
    assert [type(t) for t in squish.batch_tfms] == [IntToFloatTensor]
    assert squish.splitter is bears.splitter and squish.getters is bears.getters


def test_new_without_item_tfms_keeps_only_the_blocks_defaults_like_fastai(bears):
    aug = bears.new(batch_tfms=aug_transforms(mult=2))
    assert [type(t) for t in aug.item_tfms] == [ToTensor]
    assert [type(t) for t in aug.batch_tfms] == [IntToFloatTensor, AffineAugment, LightingAugment]
    assert [type(t) for t in bears.batch_tfms] == [IntToFloatTensor]


def test_new_dataloaders_give_the_new_size(bears, photos):
    dls = bears.new(item_tfms=Resize(32, ResizeMethod.Pad, pad_mode='zeros')).dataloaders(photos, bs=8,
                                                                                          num_workers=0)
    x, _ = dls.valid.one_batch()
    assert x.shape == (8, 3, 32, 32)
    # photos are wider than tall (most of them): the padded rows at the top are black
    wide = [i for i in range(8) if Image.open(dls.valid.items[i]).size[0] > Image.open(dls.valid.items[i]).size[1]]
    assert wide and all(float(x[i, :, 0].abs().sum()) == 0 for i in wide)
    assert bears.dataloaders(photos, bs=8, num_workers=0).valid.one_batch()[0].shape == (8, 3, 48, 48)


def test_an_export_keeps_the_resize_method_and_the_augmentation(bears, photos, tmp_path):
    dls = bears.new(item_tfms=Resize(32, ResizeMethod.Pad, pad_mode=PadMode.Zeros),
                    batch_tfms=aug_transforms(mult=2)).dataloaders(photos, bs=8, num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    learn.export(tmp_path / 'bears.pkl')
    loaded = load_learner(tmp_path / 'bears.pkl')
    resize = find(Resize, loaded.dls.valid.after_item)
    assert (resize.size, resize.method, resize.pad_mode) == ((32, 32), 'pad', 'zeros')
    rotate, warp, _, bright, _ = steps(loaded.dls.train.after_batch)
    assert (rotate.max_deg, warp.magnitude, bright.max_lighting) == pytest.approx((20, 0.4, 0.4))
    label = loaded.predict(dls.valid.items[0])[0]
    assert label in dls.vocab


# ---- show_batch --------------------------------------------------------------------------------------------
@pytest.fixture
def own_label_dls(tmp_path):
    """Ten images, each its own class (a random pattern), so a title says which item is shown."""
    rng = np.random.default_rng(0)
    for i in range(10):
        (tmp_path / f'item{i}').mkdir()
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / f'item{i}' / 'x.png')
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=lambda items: (list(range(len(items))), list(range(len(items)))),
                       item_tfms=Resize(24), batch_tfms=aug_transforms(mult=2, p_affine=1.))
    return dblock.dataloaders(tmp_path, bs=10, num_workers=0)


def drawn(axs) -> list[np.ndarray]:
    return [np.asarray(ax.images[0].get_array()) for ax in axs]


def test_show_batch_unique_shows_the_first_item_augmented_each_time(own_label_dls):
    axs = own_label_dls.train.show_batch(max_n=8, nrows=2, unique=True)
    first_label = own_label_dls.train_ds.vocab[int(own_label_dls.train_ds[0][1])]
    assert len(axs) == 8 and {ax.get_title() for ax in axs} == {first_label}
    assert axs[0].get_subplotspec().get_geometry()[:2] == (2, 4)
    images = drawn(axs)
    assert len({a.tobytes() for a in images}) == 8  # rotated, warped and lit independently


def test_show_batch_without_unique_shows_different_items(own_label_dls):
    axs = own_label_dls.show_batch(max_n=8, nrows=2)
    assert len({ax.get_title() for ax in axs}) == 8


def test_show_batch_unique_on_valid_shows_the_same_image(own_label_dls):
    axs = own_label_dls.valid.show_batch(max_n=4, nrows=1, unique=True)
    images = drawn(axs)
    assert len(axs) == 4 and all(np.array_equal(images[0], a) for a in images)


def test_show_batch_grid_follows_max_n_nrows_ncols_and_figsize(own_label_dls):
    axs = own_label_dls.valid.show_batch(max_n=4, nrows=1)
    assert len(axs) == 4 and axs[0].get_subplotspec().get_geometry()[:2] == (1, 4)
    plt.close('all')
    axs = own_label_dls.valid.show_batch(max_n=4, nrows=3, ncols=3, figsize=(5, 4))
    fig = axs[0].figure
    assert len(axs) == 4 and axs[0].get_subplotspec().get_geometry()[:2] == (3, 3)
    assert sum(ax.axison or bool(ax.images) for ax in fig.axes) == 4  # the 5 cells left over are hidden
    assert tuple(fig.get_size_inches()) == (5, 4)
    plt.close('all')
    assert len(own_label_dls.valid.show_batch(max_n=20)) == 10  # no more than a batch holds
    plt.close('all')
    _, given = plt.subplots(1, 2)
    assert own_label_dls.valid.show_batch(max_n=2, ctxs=list(given)) == list(given)
    assert all(ax.images for ax in given)


def test_show_batch_show_false_returns_the_decoded_samples(own_label_dls):
    samples = own_label_dls.valid.show_batch(max_n=3, show=False)
    assert len(samples) == 3 and not plt.get_fignums()
    assert str(samples[0][1]) == own_label_dls.vocab[int(own_label_dls.valid_ds[0][1])]


# ---- aug_transforms(mult) ----------------------------------------------------------------------------------
def find(cls, tfms):
    return next(t for t in tfms if isinstance(t, cls))


def steps(tfms):
    """The Rotate, Warp, Zoom, Brightness and Contrast steps inside aug_transforms' two composed transforms."""
    affine, lighting = find(AffineAugment, tfms), find(LightingAugment, tfms)
    return (find(Rotate, affine.tfms), find(Warp, affine.tfms), find(Zoom, affine.tfms),
            find(Brightness, lighting.tfms), find(Contrast, lighting.tfms))


@pytest.mark.parametrize('mult', [1., 2.])
def test_aug_transforms_mult_scales_rotate_warp_and_lighting(mult):
    torch.manual_seed(0)
    rotate, warp, zoom, bright, contrast = steps(aug_transforms(mult=mult))
    n = 4000
    m = rotate.matrices(n, (32, 32))
    degrees = torch.rad2deg(torch.atan2(m[:, 1, 0], m[:, 0, 0]))
    assert degrees.abs().max() <= 10 * mult + 1e-4 and degrees.abs().max() > 10 * mult * 0.98
    assert (degrees != 0).float().mean() == pytest.approx(0.75, abs=0.03)  # p_affine
    # Warp: the output's top-left corner (-1, -1) reads from (-(1 + my), -(1 + mx))
    corner = warp.matrices(n, (32, 32)) @ torch.tensor([-1., -1., 1.])
    mx, my = -corner[:, 1] / corner[:, 2] - 1, -corner[:, 0] / corner[:, 2] - 1
    for v in (mx, my):
        assert v.abs().max() <= 0.2 * mult + 1e-4 and v.abs().max() > 0.2 * mult * 0.97
    # zoom is not scaled by mult (fastai scales rotate, lighting and warp only)
    z = 1 / zoom.matrices(n, (32, 32))[:, 0, 0]
    assert z.max() <= 1.1 + 1e-4 and z.max() > 1.09
    # brightness: y = sigmoid(logit(x) + logit(b)), b in 0.5 -+ max_lighting/2
    _, shift, applied = bright.logit_affine(n)
    b = torch.sigmoid(shift[applied])
    assert b.min() >= 0.5 - 0.1 * mult - 1e-4 and b.min() < 0.5 - 0.1 * mult + 0.005
    assert b.max() <= 0.5 + 0.1 * mult + 1e-4 and b.max() > 0.5 + 0.1 * mult - 0.005
    scale, _, applied = contrast.logit_affine(n)
    lo = 1 - 0.2 * mult
    assert scale[applied].min() >= lo - 1e-4 and scale[applied].min() < lo * 1.01
    assert scale[applied].max() <= 1 / lo + 1e-4 and scale[applied].max() > 1 / lo * 0.99


def test_aug_transforms_mult_2_in_a_batch_keeps_the_image_range():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 32, 32).as_subclass(TensorImage)
    out = x
    for t in aug_transforms(mult=2):
        out = t(out, split_idx=0)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, x)
    assert math.isfinite(float(out.sum()))
