"""Test-time augmentation on a tiny learner over the committed photos."""
import random

import pytest
import torch
import torch.nn as nn

from blocklearn.learner.learner import Learner
from blocklearn.vision.augment import aug_transforms
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.resize import Resize


@pytest.fixture(scope='module')
def learn(photos):
    torch.manual_seed(0)
    fnames = get_image_files(photos)[::3]  # 47 photos of the 5 classes: every pass stays quick
    dls = ImageDataLoaders.from_name_re(photos, fnames, r'(.+)_\d+.jpg$', item_tfms=Resize(40),
                                        batch_tfms=aug_transforms(size=32), bs=8, num_workers=0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, len(dls.vocab))))


def seeded_tta(learn, seed=0, **kwargs):
    random.seed(seed)
    torch.manual_seed(seed)
    return learn.tta(**kwargs)


def loader_state(dl):
    return (dl.shuffle, dl.drop_last, dl.bs, dl.split_idx, dl.after_item.split_idx, dl.after_batch.split_idx,
            [id(t) for t in dl.after_item.fs], [id(t) for t in dl.after_batch.fs])


def test_tta_keeps_order_and_targets_of_get_preds(learn):
    preds, targs = learn.get_preds()
    tta_preds, tta_targs = learn.tta(n=2)
    assert tta_preds.shape == preds.shape == (len(learn.dls.valid_ds), len(learn.dls.vocab))
    assert torch.equal(tta_targs, targs)
    assert torch.allclose(tta_preds.sum(1), torch.ones(len(preds)), atol=1e-5)


def test_tta_on_train_split_neither_shuffles_nor_drops(learn):
    _, targs = learn.tta(ds_idx=0, n=1)
    train_ds = learn.dls.train_ds
    assert targs.tolist() == [int(train_ds[i][1]) for i in range(len(train_ds))]  # every item, in order


def test_tta_blends_augmented_mean_and_plain_with_beta(learn):
    (aug, plain), targs = seeded_tta(learn, n=2, beta=None)
    assert torch.allclose(plain, learn.get_preds()[0], atol=1e-6)  # the plain pass: validation transforms
    assert not torch.allclose(aug, plain, atol=1e-3)  # the training augmentations were applied
    # aug is the mean of n passes with the training-split transforms over the validation items
    random.seed(0)
    torch.manual_seed(0)
    aug_dl = learn.dls.valid.new(split_idx=0)
    passes = torch.stack([learn.get_preds(dl=aug_dl)[0] for _ in range(2)])
    assert torch.allclose(aug, passes.mean(0), atol=1e-6)
    blended, _ = seeded_tta(learn, n=2, beta=0.25)
    assert torch.allclose(blended, 0.75 * aug + 0.25 * plain, atol=1e-6)


def test_tta_use_max_takes_the_elementwise_max(learn):
    random.seed(0)
    torch.manual_seed(0)
    aug_dl = learn.dls.valid.new(split_idx=0)
    passes = torch.stack([learn.get_preds(dl=aug_dl)[0] for _ in range(2)])
    plain = learn.get_preds()[0]
    maxed, _ = seeded_tta(learn, n=2, use_max=True)
    assert torch.allclose(maxed, torch.maximum(passes.max(0)[0], plain), atol=1e-6)
    mean, _ = seeded_tta(learn, n=2)
    assert not torch.allclose(maxed, mean, atol=1e-3)


def test_tta_leaves_the_loaders_as_they_were(learn):
    dls = learn.dls
    before = [loader_state(dl) for dl in dls.loaders]
    x0, y0 = dls.valid.one_batch()
    learn.tta(n=1)
    learn.tta(n=1, item_tfms=Resize(36), batch_tfms=aug_transforms(size=32, max_rotate=30))
    assert [loader_state(dl) for dl in dls.loaders] == before
    x1, y1 = dls.valid.one_batch()
    assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_tta_extra_tfms_replace_those_of_the_same_class(learn):
    model = learn.model
    # a lazy layer takes any input size and records the one that went through
    learn.model = nn.Sequential(nn.Flatten(), nn.LazyLinear(len(learn.dls.vocab)))
    try:
        preds, _ = learn.tta(n=1, batch_tfms=aug_transforms(size=24))
        assert preds.shape == (len(learn.dls.valid_ds), len(learn.dls.vocab))
        assert learn.model[1].in_features == 3 * 24 * 24
    finally:
        learn.model = model


def test_tta_needs_a_dataloader(learn):
    with pytest.raises(TypeError, match='tta needs a DataLoader'):
        learn.tta(dl=[learn.dls.valid.one_batch()])
    with pytest.raises(ValueError, match='n >= 1'):
        learn.tta(n=0)
