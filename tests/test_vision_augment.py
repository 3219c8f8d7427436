import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from blocklearn.blocks.tensors import TensorCategory
from blocklearn.blocks.transform import Pipeline
from blocklearn.vision.augment import (AffineAugment, Brightness, Contrast, Dihedral, Flip, LightingAugment,
                            RandomResizedCropGPU, Rotate, Warp, Zoom, aug_transforms, perspective_grid,
                            presize_comparison)
from blocklearn.vision.core import TensorImage, TensorImageBW
from blocklearn.vision.normalize import IntToFloatTensor, Normalize, imagenet_stats

PHOTOS = Path(__file__).resolve().parents[1] / 'data' / 'photos' / 'images'


def gradient(b=2, h=32, w=32):
    """Float images whose channels are x, y and a ripple: every pixel different, easy to reason about."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    ripple = 0.5 + 0.4 * torch.sin(6 * xs + 3 * ys)
    img = torch.stack([xs, ys, ripple])
    return img.expand(b, 3, h, w).clone().as_subclass(TensorImage)


def plain(t):
    return t.as_subclass(torch.Tensor)


def centre_crop_resize(x, size):
    h, w = x.shape[-2:]
    oh, ow = size
    cw, ch = min(w, round(h * ow / oh)), min(h, round(w * oh / ow))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = plain(x)[..., top:top + ch, left:left + cw]
    return F.interpolate(crop, size=size, mode='bilinear', align_corners=True)


def count_grid_samples(monkeypatch):
    calls = []
    real = F.grid_sample

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)
    monkeypatch.setattr(torch.nn.functional, 'grid_sample', counting)
    return calls


def test_aug_transforms_gives_224_batches_from_460_on_both_splits():
    torch.manual_seed(0)
    x = (torch.rand(2, 3, 460, 460)).as_subclass(TensorImage)
    tfms = aug_transforms(size=224, min_scale=0.75)
    assert [type(t).__name__ for t in tfms] == ['AffineAugment', 'LightingAugment']
    assert [t.order for t in tfms] == [30, 40]
    for split in (0, 1):
        out = Pipeline(tfms, split_idx=split)(x)
        assert type(out) is TensorImage and out.dtype == torch.float32
        assert out.shape == (2, 3, 224, 224)


def test_valid_split_is_deterministic_and_a_centre_crop_resize():
    x = gradient(b=3, h=40, w=60)
    aug = aug_transforms(size=16)[0]
    a, b = aug(x, split_idx=1), aug(x, split_idx=1)
    assert torch.equal(plain(a), plain(b))
    assert torch.allclose(plain(a), centre_crop_resize(x, (16, 16)), atol=1e-5)
    tall = gradient(b=1, h=50, w=30)
    out = AffineAugment(size=(12, 20))(tall, split_idx=1)
    assert out.shape == (1, 3, 12, 20)
    assert torch.allclose(plain(out), centre_crop_resize(tall, (12, 20)), atol=1e-5)


def test_valid_split_without_a_size_returns_the_batch_untouched(monkeypatch):
    calls = count_grid_samples(monkeypatch)
    x = gradient()
    assert aug_transforms()[0](x, split_idx=1) is x
    assert AffineAugment(size=32)(x, split_idx=1) is x
    assert calls == []


def test_train_split_draws_per_image_and_per_call():
    torch.manual_seed(1)
    x = gradient(b=8)
    aug = aug_transforms(size=24, p_affine=1., max_lighting=0.)[0]
    a, b = plain(aug(x, split_idx=0)), plain(aug(x, split_idx=0))
    diffs = [(a[i] - a[j]).abs().max().item() for i in range(8) for j in range(i + 1, 8)]
    assert min(diffs) > 1e-3
    assert (a - b).abs().amax((1, 2, 3)).min() > 1e-3


def test_batch_true_gives_every_image_the_same_draw():
    torch.manual_seed(2)
    x = gradient(b=4)
    aug, light = aug_transforms(size=24, p_affine=1., p_lighting=1., batch=True)
    out = plain(light(aug(x, split_idx=0), split_idx=0))
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)
    assert (out[0] - centre_crop_resize(x, (24, 24))[0]).abs().max() > 1e-2


def test_composed_augmentation_is_exactly_one_grid_sample(monkeypatch):
    calls = count_grid_samples(monkeypatch)
    torch.manual_seed(3)
    x = gradient(b=4, h=46, w=46)
    aug = aug_transforms(size=20, min_scale=0.75, p_affine=1., xtra_tfms=[Dihedral(p=1.)])[0]
    assert repr(aug) == 'AffineAugment(Flip -> Rotate -> Zoom -> Warp -> Dihedral, size=(20, 20), min_scale=0.75)'
    aug(x, split_idx=0)
    assert calls == [(4, 3, 46, 46)]
    aug(x, split_idx=1)
    assert len(calls) == 2


def test_flip_with_p1_mirrors_exactly():
    x = gradient(b=2, h=20, w=28)
    out = Flip(p=1.)(x, split_idx=0)
    assert type(out) is TensorImage
    assert torch.allclose(plain(out), plain(x).flip(-1), atol=1e-5)
    assert Flip(p=1.)(x, split_idx=1) is x
    assert Flip(p=0.)(x, split_idx=0) is x


def test_flip_coin_is_tossed_per_image():
    torch.manual_seed(10)
    x = gradient(b=64, h=8, w=8)
    out = plain(Flip(p=0.5)(x, split_idx=0))
    kept = (out - plain(x)).abs().amax((1, 2, 3)) < 1e-5
    flipped = (out - plain(x).flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    assert bool((kept ^ flipped).all())
    assert 10 < int(flipped.sum()) < 54


def test_rotate_90_matches_rot90_counter_clockwise():
    x = gradient(b=2, h=24, w=24)
    out = Rotate(p=1., draw=90.)(x, split_idx=0)
    assert torch.allclose(plain(out), torch.rot90(plain(x), 1, (-2, -1)), atol=1e-5)
    both = Rotate(p=1., draw=[90., -90.])(x, split_idx=0)
    assert torch.allclose(plain(both)[1], torch.rot90(plain(x)[1], -1, (-2, -1)), atol=1e-5)


def test_rotate_keeps_pixels_square_on_a_non_square_output():
    # turned 90 degrees, the 9 rows of a 9x17 output read 9/17 of the width: a turn, not a shear
    x = gradient(b=1, h=33, w=33)
    aug = AffineAugment([Rotate(p=1., draw=90.)], size=(9, 17), min_scale=1., ratio=(1., 1.))
    col = plain(aug(x, split_idx=0))[0, 0, :, 8]
    assert float(col[0] - col[-1]) == pytest.approx(9 / 17, abs=1e-5)
    assert float(col[0] + col[-1]) == pytest.approx(1., abs=1e-5)


def test_zoom_in_crops_the_centre():
    x = gradient(b=2, h=33, w=33)
    out = Zoom(p=1., draw=2., draw_x=0.5, draw_y=0.5)(x, split_idx=0)
    expected = F.interpolate(plain(x)[..., 8:25, 8:25], size=(33, 33), mode='bilinear', align_corners=True)
    assert torch.allclose(plain(out), expected, atol=1e-5)
    corner = Zoom(p=1., draw=2., draw_x=0., draw_y=0.)(x, split_idx=0)
    expected = F.interpolate(plain(x)[..., :17, :17], size=(33, 33), mode='bilinear', align_corners=True)
    assert torch.allclose(plain(corner), expected, atol=1e-5)


def test_dihedral_draws_flips_and_transposes():
    x = gradient(b=3, h=16, w=16)
    out = plain(Dihedral(p=1., draw=[1, 2, 4])(x, split_idx=0))
    px = plain(x)
    assert torch.allclose(out[0], px[0].flip(-1), atol=1e-5)
    assert torch.allclose(out[1], px[1].flip(-2), atol=1e-5)
    assert torch.allclose(out[2], px[2].transpose(-1, -2), atol=1e-5)


def test_warp_moves_the_corners_it_says():
    m = Warp(p=1., draw_x=0., draw_y=0.1).matrices(1, (8, 8))[0]
    corner = m @ torch.tensor([-1., -1., 1.])
    assert (corner[:2] / corner[2]).tolist() == pytest.approx([-1.1, -1.], abs=1e-5)
    corner = m @ torch.tensor([1., 1., 1.])
    assert (corner[:2] / corner[2]).tolist() == pytest.approx([0.9, 1.], abs=1e-5)
    assert torch.allclose(Warp(p=1., draw_x=0., draw_y=0.).matrices(2, (8, 8)), torch.eye(3).expand(2, 3, 3), atol=1e-6)


def test_perspective_grid_matches_affine_grid_for_affine_matrices():
    torch.manual_seed(4)
    m = torch.eye(3).repeat(3, 1, 1)
    m[:, :2] += 0.2 * torch.randn(3, 2, 3)
    for align in (True, False):
        ours = perspective_grid(m, (7, 11), align_corners=align)
        ref = F.affine_grid(m[:, :2], (3, 1, 7, 11), align_corners=align)
        assert torch.allclose(ours, ref, atol=1e-6)


def test_min_scale_one_on_a_square_image_is_a_plain_resize_on_train():
    x = gradient(b=4, h=40, w=40)
    out = AffineAugment(size=16)(x, split_idx=0)
    assert torch.allclose(plain(out), centre_crop_resize(x, (16, 16)), atol=1e-5)


def test_random_resized_crop_covers_min_scale_of_the_area():
    torch.manual_seed(5)
    x = gradient(b=16, h=41, w=41)
    out = plain(RandomResizedCropGPU(20, min_scale=0.5, ratio=(1., 1.))(x, split_idx=0))
    spans = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    assert spans.min() >= math.sqrt(0.5) - 1e-4 and spans.max() <= 1 + 1e-5
    assert spans.max() - spans.min() > 0.05
    assert torch.allclose(plain(RandomResizedCropGPU(20)(x, split_idx=1)), centre_crop_resize(x, (20, 20)), atol=1e-5)


def test_labels_and_bw_type_pass_through_unchanged():
    torch.manual_seed(6)
    x = gradient(b=4)[:, :1].as_subclass(TensorImageBW)
    y = TensorCategory(torch.tensor([0, 2, 1, 2]))
    for t in aug_transforms(size=16, p_affine=1., p_lighting=1.):
        ox, oy = t((x, y), split_idx=0)
        assert type(ox) is TensorImageBW and oy is y


def test_lighting_only_on_train_and_exact_in_logit_space():
    x = TensorImage(torch.full((2, 3, 4, 4), 0.5))
    light = LightingAugment([Brightness(p=1., draw=0.6), Contrast(p=1., draw=2.)])
    assert light(x, split_idx=1) is x
    # brightness moves 0.5 to 0.6, then contrast 2 in logit space: sigmoid(2 * logit(0.6)) = 0.36 / 0.52
    assert plain(light(x, split_idx=0)) == pytest.approx(torch.full((2, 3, 4, 4), 0.36 / 0.52), abs=1e-5)
    quarter = TensorImage(torch.full((1, 3, 2, 2), 0.75))
    contrast = plain(Contrast(p=1., draw=2.)(quarter, split_idx=0))
    assert contrast == pytest.approx(torch.full((1, 3, 2, 2), 0.9), abs=1e-5)


def test_lighting_coin_flip_is_per_image_and_skipped_images_are_bit_exact():
    torch.manual_seed(7)
    x = TensorImage(torch.rand(64, 3, 4, 4))
    out = plain(Brightness(max_lighting=0.5, p=0.5)(x, split_idx=0))
    same = (out == plain(x)).flatten(1).all(1)
    assert 10 < int(same.sum()) < 54
    assert ((out - plain(x)).abs().flatten(1).amax(1)[~same] > 1e-4).all()
    assert float(out.min()) > 0 and float(out.max()) < 1


def test_contrast_and_brightness_ranges_follow_max_lighting():
    torch.manual_seed(8)
    x = TensorImage(torch.full((256, 1, 1, 1), 0.5))
    bright = plain(Brightness(max_lighting=0.2, p=1.)(x, split_idx=0)).flatten()
    assert bright.min() >= 0.4 - 1e-6 and bright.max() <= 0.6 + 1e-6 and bright.std() > 0.04
    q = TensorImage(torch.full((256, 1, 1, 1), 0.75))
    c = plain(Contrast(max_lighting=0.2, p=1.)(q, split_idx=0)).flatten()
    lo, hi = torch.sigmoid(torch.tensor(0.8 * math.log(3))), torch.sigmoid(torch.tensor(1.25 * math.log(3)))
    assert c.min() >= lo - 1e-6 and c.max() <= hi + 1e-6


def test_errors_name_the_fix():
    with pytest.raises(TypeError, match='IntToFloatTensor'):
        Flip(p=1.)(TensorImage(torch.zeros(1, 3, 4, 4, dtype=torch.uint8)), split_idx=0)
    with pytest.raises(ValueError, match="pad_mode='mirror'"):
        aug_transforms(pad_mode='mirror')
    with pytest.raises(ValueError, match='2 values for a batch of 3'):
        Rotate(p=1., draw=[1., 2.])(gradient(b=3), split_idx=0)
    with pytest.raises(ValueError, match='min_scale'):
        aug_transforms(size=8, min_scale=0.)


def test_presize_comparison_shows_one_interpolation_is_sharper_on_real_photos():
    files = sorted(PHOTOS.glob('*.jpg'))[::20][:6]
    arrays = [np.asarray(Image.open(f).convert('RGB').resize((160, 120), Image.BILINEAR)) for f in files]
    x = TensorImage(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous())
    y = TensorCategory(torch.arange(len(files)))
    tfms = [IntToFloatTensor(), *aug_transforms(size=64, min_scale=0.75), Normalize.from_stats(*imagenet_stats)]
    torch.manual_seed(9)
    train = Pipeline(tfms, split_idx=0)
    bx, by = train((x, y))
    assert bx.shape == (6, 3, 64, 64) and type(bx) is TensorImage and by is y
    assert abs(float(plain(bx).mean())) < 1.5
    shown = train.decode((bx, by))[0]
    assert shown.dtype == torch.uint8 and shown.shape == (6, 3, 64, 64)
    vx = Pipeline(tfms, split_idx=1)((x, y))[0]
    expected = Normalize.from_stats(*imagenet_stats)(TensorImage(centre_crop_resize(x.float() / 255, (64, 64))))
    assert torch.allclose(plain(vx), plain(expected), atol=1e-4)

    composed, steps = presize_comparison(IntToFloatTensor()(x), size=64)
    assert composed.shape == steps.shape == (6, 3, 64, 64)

    def sharpness(t):
        t = plain(t)
        return float((t[..., 1:, :] - t[..., :-1, :]).abs().mean() + (t[..., :, 1:] - t[..., :, :-1]).abs().mean())
    assert sharpness(composed) > 1.1 * sharpness(steps)
