"""Inference runs through the learner's one loop: every item in order, callbacks applied, decoding from the target
block whatever the loss, and the loop's invariants kept when something fails."""
import pytest
import torch
import torch.nn as nn

from blocklearn.blocks.block import CategoryBlock, MultiCategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import RegexLabeller
from blocklearn.blocks.splitters import RandomSplitter
from blocklearn.callbacks.core import Callback
from blocklearn.learner.interpret import ClassificationInterpretation
from blocklearn.learner.learner import Learner
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.data import get_image_files
from blocklearn.vision.resize import Resize

PAT = r'(.+)_\d+.jpg$'


def photo_learner(photos, loss_func=None, bs=16, blocks=(ImageBlock, CategoryBlock), get_y=RegexLabeller(PAT),
                  n_out=5) -> Learner:
    torch.manual_seed(0)
    block = DataBlock(blocks=blocks, get_items=get_image_files, get_y=get_y, splitter=RandomSplitter(seed=1),
                      item_tfms=Resize(24))
    dls = block.dataloaders(photos, bs=bs, num_workers=0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 24 * 24, n_out)), loss_func=loss_func)


class CountBatches(Callback):
    def __init__(self):
        self.n = 0

    def after_batch(self):
        self.n += 1


def test_get_preds_on_the_training_set_returns_every_item_in_dataset_order(photos):
    learn = photo_learner(photos, bs=15)
    train_ds = learn.dls.train_ds
    assert len(train_ds) % 15 != 0                       # the shuffling loader drops a partial batch
    preds, targs = learn.get_preds(ds_idx=0)
    assert len(preds) == len(targs) == len(train_ds)
    assert targs.tolist() == [int(train_ds[i][1]) for i in range(len(train_ds))]
    assert learn.dls.train.shuffle and learn.dls.train.drop_last      # the learner's loader is left as it was


def test_callbacks_run_during_get_preds_and_predict(photos):
    learn = photo_learner(photos)
    counter = CountBatches()
    learn.add_cb(counter)
    learn.get_preds()
    n_valid = len(learn.dls.valid)
    assert counter.n == n_valid
    learn.predict(learn.dls.valid_ds.items[0])
    assert counter.n == n_valid + 1
    learn.validate()
    assert counter.n == 2 * n_valid + 1


def test_with_a_plain_torch_cross_entropy_the_target_block_decodes(photos):
    learn = photo_learner(photos, loss_func=nn.CrossEntropyLoss())
    preds, targs, decoded, losses = learn.get_preds(with_decoded=True, with_loss=True)
    n = len(learn.dls.valid_ds)
    assert torch.allclose(preds.sum(1), torch.ones(n), atol=1e-5)      # softmax from CategoryBlock
    assert torch.equal(decoded, preds.argmax(1)) and losses.shape == (n,)
    interp = ClassificationInterpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    assert cm.shape == (5, 5) and cm.sum() == n
    assert cm.trace() == int((decoded == targs).sum())
    label, idx, probs = learn.predict(learn.dls.valid_ds.items[0])
    assert label == learn.dls.vocab[int(idx)] and torch.allclose(probs, preds[0], atol=1e-5)


def test_with_a_plain_torch_bce_multi_label_decodes_by_threshold(photos):
    learn = photo_learner(photos, loss_func=nn.BCEWithLogitsLoss(), blocks=(ImageBlock, MultiCategoryBlock),
                          get_y=lambda p: RegexLabeller(PAT)(p).split('_')[:1])
    preds, targs, decoded = learn.get_preds(with_decoded=True)
    assert ((preds > 0) & (preds < 1)).all()                           # sigmoid, not softmax
    assert not torch.allclose(preds.sum(1), torch.ones(len(preds)))
    assert torch.equal(decoded, preds > 0.5)
    label, _, _ = learn.predict(learn.dls.valid_ds.items[0])
    assert all(lbl in learn.dls.vocab for lbl in label)


@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_an_error_during_get_preds_restores_the_loss_and_closes_the_bar(photos, exc):
    class FailSecond(Callback):
        def after_pred(self):
            if self.learn.iter == 1:
                raise exc('stop')
    learn = photo_learner(photos, loss_func=nn.CrossEntropyLoss())
    learn.model.train()
    learn.add_cb(FailSecond())
    with pytest.raises(exc):
        learn.get_preds(with_loss=True)                                  # default progress bar on
    assert learn.loss_func.reduction == 'mean' and not learn.model.training
    assert learn.progress.pbar is None and learn.dl is None


def test_ctrl_c_during_tta_leaves_loaders_model_and_bars_as_they_were(photos):
    class InterruptSecondPass(Callback):
        passes = 0

        def before_validate(self):
            type(self).passes += 1
            if self.passes == 2:
                raise KeyboardInterrupt()
    learn = photo_learner(photos)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.add_cb(InterruptSecondPass())
    with pytest.raises(KeyboardInterrupt):
        learn.tta(n=3)
    assert InterruptSecondPass.passes == 2 and not learn.model.training and learn.progress.pbar is None
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in before.items())
    assert learn.dls.valid.split_idx == 1 and not learn.dls.valid.shuffle
    learn.remove_cb(InterruptSecondPass)
    preds, targs = learn.tta(n=1)                            # and it runs again
    assert preds.shape == (len(learn.dls.valid_ds), 5)
