"""Metrics: accuracy family, batch-size weighting, and multi-class F1 / precision / recall."""
import types

import pytest
import torch
import torch.nn as nn

from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import AvgMetric, F1Score, Precision, Recall, accuracy, error_rate, top_k_accuracy
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.resize import Resize


def logits_for(preds, n_classes):
    return torch.nn.functional.one_hot(torch.tensor(preds), n_classes).float()


def fake_learn(preds, targs, n_classes=3):
    return types.SimpleNamespace(pred=logits_for(preds, n_classes), yb=(torch.tensor(targs),), xb=())


def test_accuracy_error_rate_top_k():
    inp = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    targ = torch.tensor([1, 1, 2, 2])
    assert accuracy(inp, targ).item() == pytest.approx(0.5)
    assert error_rate(inp, targ).item() == pytest.approx(0.5)
    assert top_k_accuracy(inp, targ, k=2).item() == pytest.approx(0.75)


def test_avg_metric_weights_batches_by_size():
    m = AvgMetric(accuracy)
    m.reset()
    m.accumulate(fake_learn([0, 1], [0, 1]))                 # 2 samples, accuracy 1
    m.accumulate(fake_learn([0, 0, 0, 0], [0, 1, 0, 1]))     # 4 samples, accuracy 0.5
    assert m.value == pytest.approx(4 / 6) and m.name == 'accuracy'


# targets [0,0,1,1,2,2], predictions [0,1,1,1,2,0]:
#   class 0: tp 1, predicted 2, actual 2 -> P 1/2, R 1/2, F1 1/2
#   class 1: tp 2, predicted 3, actual 2 -> P 2/3, R 1,   F1 4/5
#   class 2: tp 1, predicted 1, actual 2 -> P 1,   R 1/2, F1 2/3
def accumulate(metric):
    metric.reset()
    metric.accumulate(fake_learn([0, 1, 1], [0, 0, 1]))
    metric.accumulate(fake_learn([1, 2, 0], [1, 2, 2]))
    return metric.value


def test_macro_precision_recall_f1():
    assert accumulate(Precision()) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert accumulate(Recall()) == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert accumulate(F1Score()) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)


def test_micro_weighted_and_per_class():
    assert accumulate(F1Score(average='micro')) == pytest.approx(4 / 6)
    assert accumulate(F1Score(average='weighted')) == pytest.approx((2 * 1 / 2 + 2 * 4 / 5 + 2 * 2 / 3) / 6)
    assert accumulate(Recall(average=None)) == pytest.approx([1 / 2, 1, 1 / 2])


def test_absent_classes_are_left_out_of_the_macro_average():
    m = F1Score()
    m.reset()
    m.accumulate(fake_learn([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 2, 2], n_classes=5))
    assert m.value == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert (F1Score().name, Precision().name, Recall().name) == ('f1_score', 'precision_score', 'recall_score')


def test_bad_average_names_the_choices():
    with pytest.raises(ValueError, match="'macro', 'micro', 'weighted' or None"):
        F1Score(average='binary')


def test_assigning_one_metric_function_to_a_learner_on_photos(photos):
    dls = ImageDataLoaders.from_name_re(photos, get_image_files(photos)[::3], r'(.+)_\d+.jpg$', item_tfms=Resize(16),
                                        bs=8, num_workers=0, seed=0)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, len(dls.vocab))))
    learn.metrics = accuracy                                             # one callable, as fastai takes it
    loss, acc = learn.validate()
    preds, targs = learn.get_preds()
    assert acc == pytest.approx((preds.argmax(1) == targs).float().mean().item())
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']
