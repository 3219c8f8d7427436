"""Segmentation data: MaskBlock and SegmentationDataLoaders (fastbook ch1 CamVid), masks moved with their image by
every transform, Dice/Jaccard over a whole pass, show_batch/show_results overlays, summary() and export."""
import random
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from synth import SEG_CODES as CODES
from synth import write_segmentation_set as write_set
from torch import nn

from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.losses import CrossEntropyLossFlat
from blocklearn.blocks.splitters import RandomSplitter
from blocklearn.learner.learner import Learner
from blocklearn.learner.load import load_learner
from blocklearn.learner.metrics import Dice, DiceMulti, JaccardCoeff, foreground_acc
from blocklearn.vision.augment import (AffineAugment, Brightness, Contrast, Flip, LightingAugment, Rotate, Warp,
                                       Zoom, aug_transforms)
from blocklearn.vision.block import ImageBlock, MaskBlock
from blocklearn.vision.core import PILMask, TensorImage, TensorMask, ToTensor
from blocklearn.vision.data import SegmentationDataLoaders, get_image_files
from blocklearn.vision.normalize import Normalize, imagenet_stats
from blocklearn.vision.resize import RandomResizedCrop, Resize

H, W = 48, 64  # the set's size (write_set's default): not square, so a swapped axis shows


@pytest.fixture(scope='module')
def path(tmp_path_factory):
    return write_set(tmp_path_factory.mktemp('camvid_tiny'))


class MaskOf:
    """label_func of the fastbook cell, as a class so an export could name it (a lambda is dropped, as here)."""

    def __init__(self, path):
        self.path = path

    def __call__(self, o):
        return self.path / 'labels' / f'{o.stem}_P{o.suffix}'


def seg_dls(path, **kwargs):
    kwargs = {'bs': 4, 'seed': 0, 'num_workers': 0, 'device': 'cpu', **kwargs}
    return SegmentationDataLoaders.from_label_func(path, fnames=get_image_files(path / 'images'),
                                                   label_func=lambda o: path / 'labels' / f'{o.stem}_P{o.suffix}',
                                                   codes=np.loadtxt(path / 'codes.txt', dtype=str), **kwargs)


def colour_codes(x):
    """The code each pixel's colour shows: red 1, blue 2, else (noise) 0, for a float batch (B,3,H,W) in [0, 1]."""
    r, b = x[:, 0], x[:, 2]
    return torch.where(r - b > 0.35, 1, torch.where(b - r > 0.35, 2, 0))


def interior(m):
    """Pixels of masks (B,H,W) whose 8 neighbours hold the same code, off the outer ring: colours there are unblended."""
    p = F.pad(m[:, None].float(), (1, 1, 1, 1), mode='replicate')
    same = F.max_pool2d(p, 3, 1) == -F.max_pool2d(-p, 3, 1)
    same = same[:, 0]
    same[:, [0, -1]] = False
    same[:, :, [0, -1]] = False
    return same


def agreement(x, y):
    """Fraction of interior mask pixels whose code is the one the image's colour shows there."""
    keep = interior(y)
    return (colour_codes(x)[keep] == y[keep]).float().mean().item()


def colour_model():
    """A 1x1 conv whose argmax is `colour_codes`: logits (0, 10(R-B)-3.5, 10(B-R)-3.5)."""
    m = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        m.weight.zero_()
        m.weight[1, 0], m.weight[1, 2], m.weight[2, 0], m.weight[2, 2] = 10., -10., -10., 10.
        m.bias.copy_(torch.tensor([0., -3.5, -3.5]))
    return m


# -- the DataLoaders -------------------------------------------------------------------------------------------------

def test_one_batch_is_float_images_and_int64_masks_of_the_codes(path):
    dls = seg_dls(path)
    x, y = dls.one_batch()
    assert type(x) is TensorImage and x.shape == (4, 3, H, W) and x.dtype == torch.float32
    assert type(y) is TensorMask and y.shape == (4, H, W) and y.dtype == torch.int64
    assert set(y.unique().tolist()) == {0, 1, 2}
    assert dls.c == 3 and list(dls.vocab) == list(CODES)
    assert agreement(x, y) > 0.99                  # the synthetic set itself: colour and mask agree
    assert agreement(x, y.flip(-1)) < 0.9          # ... and the check sees a mask that is not where its image is
    assert len(dls.train_ds) + len(dls.valid_ds) == 16 and len(dls.valid_ds) == 3


def test_loss_is_cross_entropy_over_the_class_axis(path):
    dls = seg_dls(path)
    loss = dls.loss_func
    assert isinstance(loss, CrossEntropyLossFlat) and loss.axis == 1
    acts, targ = torch.randn(2, 3, H, W), torch.randint(0, 3, (2, H, W))
    # each pixel's scores meet its own target (flattening (B,c,H,W) must swap the target's axes the same way)
    assert loss(acts, targ).item() == pytest.approx(F.cross_entropy(acts, targ).item(), rel=1e-6)


def test_without_codes_c_is_the_largest_training_code_plus_one(path):
    block = DataBlock(blocks=(ImageBlock, MaskBlock), get_items=get_image_files, get_y=MaskOf(path),
                      splitter=RandomSplitter(0.2, seed=0))
    dls = block.dataloaders(path / 'images', bs=4, num_workers=0)
    assert dls.c == 3 and dls.vocab is None
    assert dls.one_batch()[1].dtype == torch.int64


def test_a_code_beyond_the_codes_names_the_mask(path, tmp_path):
    root = write_set(tmp_path / 'bad', n=4)
    m = np.array(Image.open(root / 'labels' / 'scene00_P.png'))
    m[:2, :2] = 255  # 'void' in many datasets
    Image.fromarray(m).save(root / 'labels' / 'scene00_P.png')
    block = DataBlock(blocks=(ImageBlock, MaskBlock(CODES)), get_items=get_image_files, get_y=MaskOf(root),
                      splitter=RandomSplitter(0.25, seed=0))
    lines = []
    try:
        block.summary(root / 'images', print_fn=lines.append)
    except ValueError:  # its sample (or batch) may hold the bad mask: summary stops there, after the label report
        pass
    text = '\n'.join(map(str, lines))
    assert 'scene00_P.png (255)' in text and 'beyond 0..2' in text
    dls = block.dataloaders(root / 'images', bs=1, num_workers=0)
    ds = dls.train_ds if any(o.stem == 'scene00' for o in dls.train_ds.items) else dls.valid_ds
    i = [o.stem for o in ds.items].index('scene00')
    with pytest.raises(ValueError, match=r'scene00_P\.png holds code 255.*3 codes'):
        ds[i]


def test_int_to_float_and_normalize_leave_masks_alone(path):
    dls = seg_dls(path, batch_tfms=Normalize.from_stats(*imagenet_stats))
    b = dls.valid.one_batch()
    raw = ToTensor()(PILMask.create(path / 'labels' / f'{dls.valid_ds.items[0].stem}_P.png'))
    assert b[1].dtype == torch.int64 and torch.equal(b[1][0], raw)
    assert b[0].mean().abs() < 3 and b[0].min() < 0   # the image was normalised
    assert torch.equal(dls.decode(b)[1], b[1])


# -- masks move with their image ---------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def plain_batch(path):
    """The 4 validation items as a batch, not augmented: (TensorImage float, TensorMask int64)."""
    return seg_dls(path, valid_pct=0.25).valid.one_batch()


@pytest.mark.parametrize('tfm', [
    Flip(p=1.),
    Rotate(max_deg=40, p=1., draw=[-35, -20, 25, 40]),
    Zoom(p=1., draw=1.6, draw_x=[0., 0.3, 0.7, 1.], draw_y=[1., 0.5, 0.2, 0.]),
    Warp(0.4, p=1., draw_x=[0.35, -0.35, 0.2, -0.1], draw_y=[-0.3, 0.3, 0.1, 0.35]),
    # zoomed out: a wide reflected border, whose shapes the mask labels too (padded as the image, as fastai does)
    Zoom(min_zoom=0.5, p=1., draw=0.55, draw_x=0.5, draw_y=0.5),
    AffineAugment([Flip(p=1.), Rotate(40, p=1., draw=30.), Zoom(p=1., draw=1.3), Warp(0.3, p=1., draw_x=0.3)],
                  size=(40, 56), min_scale=0.5),
    AffineAugment([Rotate(40, p=1., draw=-30.)], size=(36, 36), pad_mode='zeros'),
], ids=['flip', 'rotate', 'zoom', 'warp', 'zoom-out-reflection', 'affine-composed', 'affine-zeros-pad'])
def test_geometric_transforms_move_the_mask_with_its_image(plain_batch, tfm):
    x, y = plain_batch
    random.seed(0), torch.manual_seed(0)
    ax, ay = tfm((x, y), split_idx=0)
    assert type(ay) is TensorMask and ay.dtype == torch.int64 and ay.shape == (4, *ax.shape[-2:])
    assert set(ay.unique().tolist()) <= {0, 1, 2}                 # nearest: no blended codes
    assert agreement(ax, ay) > 0.97
    if ay.shape == y.shape:  # the check would see a mask left where it was
        assert agreement(ax, y) < 0.9


def test_aug_transforms_in_the_loader_move_masks_and_lighting_leaves_them(path):
    dls = seg_dls(path, batch_tfms=aug_transforms(size=(40, 56), min_scale=0.75, max_rotate=30, p_affine=1.,
                                                  max_lighting=0.3, p_lighting=1.))
    torch.manual_seed(1)
    for _ in range(2):
        x, y = dls.train.one_batch()
        assert x.shape == (4, 3, 40, 56) and y.shape == (4, 40, 56) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= {0, 1, 2}
        assert agreement(x, y) > 0.97
    vx, vy = dls.valid.one_batch()                      # valid: the centred crop to size, both alike
    assert vy.shape == (3, 40, 56) and agreement(vx, vy) > 0.97
    x, y = dls.valid.one_batch()
    lx, ly = LightingAugment([Brightness(0.4, p=1., draw=0.7), Contrast(0.4, p=1., draw=1.5)])((x, y), split_idx=0)
    assert not torch.equal(lx, x) and torch.equal(ly, y)


@pytest.mark.parametrize('item_tfm', [Resize(32), Resize((40, 40), method='pad', pad_mode='zeros'),
                                      Resize((40, 40), method='pad'), Resize(36, method='squish'),
                                      RandomResizedCrop(32, min_scale=0.3)],
                         ids=['crop', 'pad-zeros', 'pad-reflection', 'squish', 'random-resized-crop'])
def test_item_resizes_keep_codes_and_place_them_with_the_image(path, item_tfm):
    dls = seg_dls(path, item_tfms=item_tfm)
    for dl in (dls.train, dls.valid):
        x, y = dl.one_batch()
        assert y.shape == (len(y), *x.shape[-2:]) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= {0, 1, 2}
        assert agreement(x, y) > 0.97


def test_resize_of_a_tensor_mask_keeps_dtype_and_codes():
    m = torch.tensor([0, 1, 2, 1]).repeat_interleave(16)[None].repeat(48, 1).as_subclass(TensorMask)
    out = Resize((20, 30), method='squish')(m, split_idx=1)
    assert type(out) is TensorMask and out.dtype == torch.int64 and out.shape == (20, 30)
    assert set(out.unique().tolist()) == {0, 1, 2}


# -- metrics -------------------------------------------------------------------------------------------------------------

def fake_learn(pred_codes, targ, c=3):
    """A learner-shaped object whose `pred` are activations with argmax `pred_codes` (B,H,W)."""
    return SimpleNamespace(pred=F.one_hot(pred_codes, c).permute(0, 3, 1, 2).float(), yb=(targ,))


def test_dice_and_jaccard_on_hand_made_masks_accumulate_over_the_pass():
    # batch 1: predicted foreground 4 pixels, target 2, overlap 2 -> dice 4/6 alone
    p1 = torch.tensor([[[1, 1, 0], [2, 2, 0]]])
    t1 = torch.tensor([[[1, 2, 0], [0, 0, 0]]])
    # batch 2: predicted 1 pixel, target 5, overlap 1 -> dice 2/6 alone
    p2 = torch.tensor([[[0, 0, 0], [0, 1, 0]]])
    t2 = torch.tensor([[[1, 1, 1], [2, 2, 0]]])
    # batch 3: nothing predicted, target 1 pixel -> dice 0 alone
    p3 = torch.zeros(1, 2, 3, dtype=torch.long)
    t3 = torch.tensor([[[0, 0, 0], [0, 0, 2]]])
    dice, jac, multi = Dice(), JaccardCoeff(), DiceMulti()
    for m in (dice, jac, multi):
        assert m.value is None
        for p, t in ((p1, t1), (p2, t2), (p3, t3)):
            m.accumulate(fake_learn(p, t))
    inter, total = 2 + 1 + 0, 6 + 6 + 1                  # foreground = code > 0, codes need not match
    assert dice.value == pytest.approx(2 * inter / total)
    assert dice.value != pytest.approx((4 / 6 + 2 / 6 + 0) / 3)  # the pooled value, not a mean of batch values
    assert jac.value == pytest.approx(inter / (total - inter))
    assert dice.name == 'dice' and jac.name == 'jaccard_coeff' and multi.name == 'dice_multi'
    # per code over the 3 batches (pred, targ, agree): code 0 (13, 10, 8); code 1 (3, 4, 1); code 2 (2, 4, 0)
    assert multi.value == pytest.approx(np.mean([2 * 8 / 23, 2 * 1 / 7, 0.]))
    dice.reset()
    assert dice.value is None


def test_foreground_acc_ignores_the_background():
    pred = torch.tensor([[[0, 1, 2, 2]]])
    targ = torch.tensor([[[0, 1, 1, 0]]])
    acts = fake_learn(pred, targ).pred
    assert foreground_acc(acts, targ).item() == pytest.approx(0.5)           # pixels 1 (right) and 2 (wrong)
    with pytest.raises(ValueError, match='masks'):
        Dice().accumulate(SimpleNamespace(pred=torch.randn(2, 3, 4, 4), yb=(torch.zeros(2, 5, 5),)))


def test_learner_metrics_equal_the_whole_validation_set(path):
    dls = seg_dls(path, valid_pct=0.4, bs=2)                                   # 6 valid items: 3 batches
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 1)
    learn = Learner(dls, model, metrics=[Dice(), JaccardCoeff(), DiceMulti()])
    _, dice, jac, multi = learn.validate()
    preds, targs = learn.get_preds()
    pred, fg = preds.argmax(1) > 0, targs > 0
    inter, total = (pred & fg).sum().item(), (pred.sum() + fg.sum()).item()
    assert dice == pytest.approx(2 * inter / total) and jac == pytest.approx(inter / (total - inter))
    per_code = [2 * ((preds.argmax(1) == k) & (targs == k)).sum().item()
                / ((preds.argmax(1) == k).sum() + (targs == k).sum()).item() for k in range(3)]
    assert multi == pytest.approx(np.mean(per_code))


# -- showing, summary, export ------------------------------------------------------------------------------------------

def overlays(ax):
    """(image array, mask array, mask AxesImage) drawn on one Axes."""
    assert len(ax.images) == 2
    return ax.images[0].get_array(), np.asarray(ax.images[1].get_array()), ax.images[1]


def test_show_batch_overlays_each_mask_on_its_image(path):
    dls = seg_dls(path)
    b = dls.valid.one_batch()
    axs = dls.valid.show_batch(b, max_n=3)
    assert len(axs) == 3
    for i, ax in enumerate(axs):
        img, mask, im = overlays(ax)
        assert img.shape == (H, W, 3)
        assert np.array_equal(mask, b[1][i].numpy())
        assert im.get_alpha() == 0.5 and im.get_clim() == (0, 2) and im.get_cmap().name == 'tab20'
    plt.close('all')


def test_show_results_draws_target_and_prediction_over_the_image(path):
    dls = seg_dls(path)
    learn = Learner(dls, colour_model())
    axs = learn.show_results(max_n=3, figsize=(7, 8), shuffle=False)
    y = dls.valid.one_batch()[1]
    assert len(axs) == 6
    for i in range(3):
        _, target, _ = overlays(axs[2 * i])
        _, pred, im = overlays(axs[2 * i + 1])
        assert np.array_equal(target, y[i].numpy())
        keep = interior(y[i:i + 1])[0].numpy()
        assert (pred[keep] == target[keep]).mean() > 0.97        # the colour model is right away from edges
        assert im.get_clim() == (0, 2)
    assert axs[0].figure.get_size_inches().tolist() == [7, 8]
    # one item a row, as fastai: target left, prediction right, the next item below
    boxes = [ax.get_position() for ax in axs]
    assert boxes[0].y0 == boxes[1].y0 and boxes[0].x0 < boxes[1].x0 and boxes[2].y0 < boxes[0].y0
    plt.close('all')


def test_summary_narrates_the_mask(path):
    block = DataBlock(blocks=(ImageBlock, MaskBlock(CODES)), get_items=get_image_files, get_y=MaskOf(path),
                      splitter=RandomSplitter(0.2, seed=0))
    lines = []
    block.summary(path / 'images', bs=4, print_fn=lines.append)
    text = '\n'.join(map(str, lines))
    assert 'Mask codes: 3' in text and '1 square (' in text and '2 disc (' in text
    assert 'applying PILMask.create gives\n      PILMask mode=L size=64x48, codes present: 0, 1, 2' in text
    assert 'TensorMask of size 48x64 (int64), codes present: 0, 1, 2' in text
    assert 'TensorMask of size 4x48x64 (int64)' in text
    assert 'beyond 0..2' not in text and 'could not be opened' not in text and 'never seen' not in text


def test_export_rebuilds_the_mask_block_and_predict_returns_a_mask(path, tmp_path):
    block = DataBlock(blocks=(ImageBlock, MaskBlock(np.loadtxt(path / 'codes.txt', dtype=str))),
                      get_items=get_image_files, get_y=lambda o: path / 'labels' / f'{o.stem}_P{o.suffix}',
                      splitter=RandomSplitter(0.2, seed=0))
    dls = block.dataloaders(path / 'images', bs=4, num_workers=0)
    learn = Learner(dls, colour_model(), loss_func=CrossEntropyLossFlat(axis=1), path=tmp_path)
    learn.export('seg.pkl')
    loaded = load_learner(tmp_path / 'seg.pkl', model=nn.Conv2d(3, 3, 1))  # get_y, a lambda, is left out
    assert loaded.dls.c == 3 and list(loaded.dls.vocab) == list(CODES)
    assert isinstance(loaded.loss_func, CrossEntropyLossFlat) and loaded.loss_func.axis == 1
    img = path / 'images' / 'scene05.png'
    mask, dec, probs = loaded.predict(img)
    truth = ToTensor()(PILMask.create(path / 'labels' / 'scene05_P.png'))
    assert type(mask) is TensorMask and mask.shape == (H, W) and mask.dtype == torch.int64
    assert list(mask.codes) == list(CODES) and probs.shape == (3, H, W)
    assert torch.equal(mask.as_subclass(torch.Tensor), dec)
    keep = interior(truth[None])[0]
    assert (mask[keep] == truth[keep]).float().mean() > 0.97
