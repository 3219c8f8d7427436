"""get_preds and predict on a tiny learner over the committed photos."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import accuracy
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.resize import Resize


@pytest.fixture(scope='module')
def learn(photos):
    torch.manual_seed(0)
    dls = ImageDataLoaders.from_name_re(photos, get_image_files(photos), r'(.+)_\d+.jpg$', item_tfms=Resize(32),
                                        bs=16, num_workers=0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5)), metrics=accuracy)


def test_get_preds_probs_and_targets(learn):
    preds, targs = learn.get_preds()
    n = len(learn.dls.valid_ds)
    assert preds.shape == (n, 5) and torch.allclose(preds.sum(1), torch.ones(n), atol=1e-5)
    assert targs.tolist() == [int(learn.dls.valid_ds[i][1]) for i in range(n)]


def test_get_preds_decoded_loss_and_input(learn):
    x, preds, targs, dec, losses = learn.get_preds(with_input=True, with_decoded=True, with_loss=True)
    assert x.shape[0] == len(preds) and x.shape[1:] == (3, 32, 32)
    assert torch.equal(dec, preds.argmax(1))
    with torch.no_grad():
        logits = learn.model(x.as_subclass(torch.Tensor))
    assert torch.allclose(losses, F.cross_entropy(logits, targs.as_subclass(torch.Tensor).long(), reduction='none'),
                          atol=1e-5)
    assert learn.loss_func.reduction == 'mean'


def test_get_preds_plain_list_and_act(learn):
    x, y = learn.dls.valid.one_batch()
    preds, targs = learn.get_preds(dl=[(x, y)])
    assert preds.shape == (len(x), 5) and torch.equal(targs, y)
    raw, _ = learn.get_preds(dl=[(x, y)], act=lambda t: t)
    assert torch.allclose(raw.softmax(1), preds, atol=1e-6)


def test_predict_matches_get_preds(learn):
    fname = learn.dls.valid.dataset.items[0]
    label, idx, probs = learn.predict(fname)
    assert label in learn.dls.vocab and int(idx) == learn.dls.vocab.index(label)
    assert probs.shape == (5,) and abs(float(probs.sum()) - 1) < 1e-5
    preds, _ = learn.get_preds()
    assert torch.allclose(probs, preds[0], atol=1e-5)
