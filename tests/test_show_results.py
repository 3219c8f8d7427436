"""show_results on a tiny learner over the committed photos."""
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn as nn

from blocklearn.learner.learner import Learner
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
