"""show_results on a tiny learner over the committed photos; a regression target decoded for show and predict."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from blocklearn.blocks.block import RegressionBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.splitters import RandomSplitter
from blocklearn.learner.learner import Learner
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.resize import Resize


@pytest.fixture(scope='module')
def learn(photos):
    torch.manual_seed(0)
    fnames = get_image_files(photos)[::3]
    dls = ImageDataLoaders.from_name_re(photos, fnames, r'(.+)_\d+.jpg$', item_tfms=Resize(32), bs=8, num_workers=0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, len(dls.vocab))))


def test_show_results_draws_max_n_items_with_actual_and_predicted(learn):
    axs = learn.show_results(max_n=4, shuffle=False)
    assert len(axs) == 4 and all(ax.images for ax in axs)
    valid = learn.dls.valid_ds
    preds, _ = learn.get_preds()
    for i, ax in enumerate(axs):
        actual, pred = ax.get_title().split('\n')
        assert actual == learn.dls.vocab[int(valid[i][1])]  # not shuffled: the first items, in order
        assert pred == learn.dls.vocab[int(preds[i].argmax())]
        assert ax.title.get_color() == ('green' if actual == pred else 'red')
    plt.close('all')


def test_show_results_defaults_to_a_shuffled_batch_of_nine(learn):
    axs = learn.show_results(ds_idx=0)
    assert len(axs) == min(9, learn.dls.train.bs)
    for ax in axs:  # shuffled, so which items is unknown; what each title says about its item is not
        actual, pred = ax.get_title().split('\n')
        assert actual in learn.dls.vocab and pred in learn.dls.vocab
        assert ax.title.get_color() == ('green' if actual == pred else 'red')
    plt.close('all')


def test_show_results_without_targets_titles_the_prediction(learn):
    items = learn.dls.valid.dataset.items
    dl = learn.dls.test_dl([items[i] for i in range(3)])
    axs = learn.show_results(dl=dl, shuffle=False)
    assert len(axs) == 3 and all(ax.get_title() in learn.dls.vocab for ax in axs)
    plt.close('all')


# -- a regression target (brightness of a real photo) decodes for show_batch, show_results and predict --------------
def brightness(file) -> float:
    """The mean grey level of the photo, in [0, 1]."""
    with Image.open(file) as im:
        return float(np.asarray(im.convert('L').resize((16, 16)), dtype=np.float32).mean() / 255)


def test_regression_targets_decode_in_show_batch_show_results_and_predict(photos):
    files = get_image_files(photos)[::4]
    targets = {f: brightness(f) for f in files}
    block = DataBlock(blocks=(ImageBlock, RegressionBlock), get_items=lambda _: files, get_y=targets.__getitem__,
                      splitter=RandomSplitter(seed=0), item_tfms=Resize(32))
    dls = block.dataloaders(photos, bs=8, num_workers=0)
    valid = list(dls.valid_ds.items)
    axs = dls.valid.show_batch(max_n=3)
    assert [float(ax.get_title()) for ax in axs] == pytest.approx([targets[f] for f in valid[:3]], abs=1e-6)
    plt.close('all')

    torch.manual_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1)))
    preds, _ = learn.get_preds()
    axs = learn.show_results(max_n=3, shuffle=False)
    for i, ax in enumerate(axs):
        actual, pred = map(float, ax.get_title().split('\n'))
        assert actual == pytest.approx(targets[valid[i]], abs=1e-6) and pred == pytest.approx(float(preds[i]), abs=1e-5)
        assert ax.title.get_color() not in ('green', 'red')               # a number is neither right nor wrong
    plt.close('all')

    value, raw, _ = learn.predict(valid[0])
    assert value == pytest.approx([float(preds[0])], abs=1e-5) and raw.tolist() == pytest.approx(value)
