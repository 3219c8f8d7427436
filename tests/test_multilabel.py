"""Multi-label classification end to end (fastbook ch6): MultiCategoryBlock from a DataFrame, BCE, threshold
metrics, decoding by threshold in predict/get_preds/show_results, `learn.metrics = ...`, export and load."""
import math
import types
from functools import partial

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
import torch.nn as nn
from PIL import Image

from blocklearn.vision.all import (AvgMetric, BCEWithLogitsLossFlat, ColReader, ColSplitter, DataBlock, F1Score,
                                   F1ScoreMulti, ImageBlock, Learner, MultiCategoryBlock, Precision, PrecisionMulti,
                                   RandomResizedCrop, RecallMulti, accuracy, accuracy_multi, error_rate,
                                   load_learner, resnet18, top_k_accuracy, vision_learner)
from synth import classification_dls

CLASSES = ['fishes', 'monuments', 'others', 'renewable', 'tools']


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


# ---- metrics, by hand ----------------------------------------------------------------------------------------
# targets and thresholded predictions of 3 samples over 3 labels:
#   targets      [1,0,0] [1,1,0] [0,0,0]
#   predictions  [1,1,0] [0,1,0] [0,0,0]
# label 0: tp 1, predicted 1, actual 2 -> P 1,   R 1/2, F1 2/3
# label 1: tp 1, predicted 2, actual 1 -> P 1/2, R 1,   F1 2/3
# label 2: nothing                     -> P 0,   R 0,   F1 0   (counted in the macro mean, as sklearn does)
# sample 0: P 1/2, R 1, F1 2/3; sample 1: P 1, R 1/2, F1 2/3; sample 2: nothing -> 0
TARGS = torch.tensor([[1., 0, 0], [1, 1, 0], [0, 0, 0]])
LOGITS = torch.tensor([[2., 2, -2], [-1, 2, -2], [-2, -2, -3]])  # sigmoid(-1) = 0.27: positive at thresh 0.2


def fake_learn(pred, targ):
    return types.SimpleNamespace(pred=pred, yb=(targ,), xb=())


def accumulate(metric, logits=LOGITS, targs=TARGS):
    metric.reset()
    metric.accumulate(fake_learn(logits[:2], targs[:2]))  # two batches: the counts add up
    metric.accumulate(fake_learn(logits[2:], targs[2:]))
    return metric.value


def test_accuracy_multi_thresholds_sigmoid_of_the_logits():
    # at 0.5 the predictions are as above: 2 + 2 + 3 of 9 elements right
    assert accuracy_multi(LOGITS, TARGS).item() == pytest.approx(7 / 9)
    # at 0.2, sigmoid(-1) = 0.27 turns sample 1's first label on: it is a target, so 8 of 9
    assert accuracy_multi(LOGITS, TARGS, thresh=0.2).item() == pytest.approx(8 / 9)
    probs = torch.tensor([[0.9, 0.3], [0.6, 0.05]])
    assert accuracy_multi(probs, torch.tensor([[1., 1], [0, 0]]), thresh=0.5, sigmoid=False).item() == 0.5
    assert accuracy_multi(probs, torch.tensor([[1., 1], [0, 0]]), thresh=0.2, sigmoid=False).item() == 0.75


def test_accuracy_multi_names_mismatched_shapes():
    with pytest.raises(ValueError, match='accuracy_multi'):
        accuracy_multi(torch.zeros(4, 3), torch.zeros(4, 2))


@pytest.mark.parametrize('average, p, r, f1', [
    ('macro', 1 / 2, 1 / 2, 4 / 9),
    ('micro', 2 / 3, 2 / 3, 2 / 3),
    ('weighted', (2 * 1 + 1 * 1 / 2) / 3, (2 * 1 / 2 + 1 * 1) / 3, (2 * 2 / 3 + 1 * 2 / 3) / 3),
    ('samples', 1 / 2, 1 / 2, 4 / 9),
])
def test_multi_label_precision_recall_f1(average, p, r, f1):
    assert accumulate(PrecisionMulti(average=average)) == pytest.approx(p)
    assert accumulate(RecallMulti(average=average)) == pytest.approx(r)
    assert accumulate(F1ScoreMulti(average=average)) == pytest.approx(f1)


def test_multi_label_scores_per_label_threshold_and_probabilities():
    assert accumulate(PrecisionMulti(average=None)) == pytest.approx([1, 1 / 2, 0])
    assert accumulate(RecallMulti(average=None)) == pytest.approx([1 / 2, 1, 0])
    # thresh 0.2 adds sample 1's first label: label 0 tp 2 of predicted 2, actual 2 -> F1 1
    assert accumulate(F1ScoreMulti(thresh=0.2, average=None)) == pytest.approx([1, 2 / 3, 0])
    # sigmoid=False reads the predictions as probabilities
    assert accumulate(F1ScoreMulti(sigmoid=False, average=None), logits=torch.sigmoid(LOGITS)) == \
        pytest.approx([2 / 3, 2 / 3, 0])
    assert (F1ScoreMulti().name, PrecisionMulti().name, RecallMulti().name) == \
        ('f1_score', 'precision_score', 'recall_score')
    assert accumulate(F1ScoreMulti()) == accumulate(F1ScoreMulti())  # reset starts afresh
    with pytest.raises(ValueError, match="'samples'"):
        F1ScoreMulti(average='binary')


# ---- learn.metrics = ... -----------------------------------------------------------------------------------
def synth_classifier(**kwargs):
    torch.manual_seed(0)
    return Learner(classification_dls(n_train=4), nn.Linear(4, 3), lr=1e-2, **kwargs)


def test_assigning_a_single_function_after_creation():
    learn = synth_classifier(metrics=accuracy)
    learn.metrics = error_rate
    assert len(learn.metrics) == 1 and isinstance(learn.metrics[0], AvgMetric)
    _, err = learn.validate()
    xs, ys = zip(*learn.dls.valid)
    wrong = sum(int(learn.model(x)[i].argmax() != y[i]) for x, y in zip(xs, ys) for i in range(len(y)))
    assert err == pytest.approx(wrong / sum(len(y) for y in ys))
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'valid_loss', 'error_rate', 'time']


def test_assigning_a_partial_a_list_and_metric_objects(capsys):
    learn = synth_classifier()
    learn.metrics = partial(top_k_accuracy, k=3)  # 3 classes: always right
    assert learn.validate()[1] == 1.0
    assert learn.recorder.metric_names[3:] == ['top_k_accuracy', 'time']
    f1 = F1Score()
    learn.metrics = [accuracy, f1]
    assert learn.metrics[1] is f1 and learn.recorder.metric_names[3:5] == ['accuracy', 'f1_score']
    learn.metrics = learn.metrics + [Precision()]
    assert learn.metrics[1] is f1
    learn.fit(1)
    out = capsys.readouterr().out
    assert 'accuracy' in out and 'f1_score' in out and 'precision_score' in out  # the results table
    assert len(learn.recorder.values[-1]) == 5 and len(learn.validate()) == 4
    learn.metrics = None
    assert learn.metrics == [] and learn.validate()[1:] == []


def test_assigning_something_that_is_not_a_metric_says_what_is_expected():
    learn = synth_classifier()
    with pytest.raises(TypeError, match="'accuracy'"):
        learn.metrics = 'accuracy'


# ---- the pipeline on the committed photos ------------------------------------------------------------------
def label_table(photos) -> pd.DataFrame:
    """PASCAL's train.csv layout: fname, space-delimited labels (class + orientation), is_valid."""
    rows = []
    for i, f in enumerate(sorted(photos.glob('*.jpg'))):
        w, h = Image.open(f).size
        rows.append((f.name, f"{f.name.rsplit('_', 1)[0]} {'wide' if w >= h else 'tall'}", i % 5 == 0))
    return pd.DataFrame(rows, columns=['fname', 'labels', 'is_valid'])


@pytest.fixture(scope='module')
def trained(photos):
    df = label_table(photos)
    dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), splitter=ColSplitter(),
                       get_x=ColReader(0, pref=photos), get_y=ColReader(1, label_delim=' '),
                       item_tfms=RandomResizedCrop(32, min_scale=0.35))
    dls = dblock.dataloaders(df, bs=16, num_workers=0)
    torch.manual_seed(0)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=partial(accuracy_multi, thresh=0.2))
    with learn.no_bar():
        learn.fine_tune(1, base_lr=1e-2)
    return df, dblock, dls, learn


def test_datablock_from_a_dataframe(trained):
    df, dblock, dls, _ = trained
    assert list(dls.vocab) == ['fishes', 'monuments', 'others', 'renewable', 'tall', 'tools', 'wide']
    assert isinstance(dls.loss_func, BCEWithLogitsLossFlat) and dls.loss_func.thresh == 0.5
    valid = df[df.is_valid].reset_index(drop=True)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (len(df) - len(valid), len(valid))
    x, y = dls.train.one_batch()
    assert x.shape == (16, 3, 32, 32) and y.shape == (16, 7) and y.dtype == torch.float32
    assert y.sum(1).tolist() == [2.] * 16  # a class and an orientation each
    _, y0 = dls.valid_ds[0]
    assert [dls.vocab[i] for i in range(7) if y0[i] == 1] == sorted(valid.labels[0].split(' '))
    # fastbook: idxs = torch.where(dsets.train[0][1]==1.)[0]; dsets.train.vocab[idxs]
    dsets = dblock.datasets(df)
    _, t = dsets.valid[0]
    assert dsets.train.vocab[torch.where(t == 1.)[0]] == sorted(valid.labels[0].split(' '))


def test_show_batch_titles_the_labels_joined_by_semicolons(trained):
    df, _, dls, _ = trained
    valid = df[df.is_valid].reset_index(drop=True)
    axs = dls.valid.show_batch(max_n=4, nrows=1)
    assert [ax.get_title() for ax in axs] == [';'.join(sorted(valid.labels[i].split(' '))) for i in range(4)]


def test_training_records_accuracy_multi_and_reassigned_metrics(trained):
    _, _, dls, learn = trained
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'valid_loss', 'accuracy_multi', 'time']
    assert all(math.isfinite(v) for v in learn.recorder.values[-1])
    probs, targs = learn.get_preds()
    assert probs.shape == (len(dls.valid_ds), 7) and 0 <= float(probs.min()) and float(probs.max()) <= 1
    n, c = probs.shape
    learn.metrics = [partial(accuracy_multi, thresh=0.1), F1ScoreMulti(thresh=0.1, average='micro')]
    assert learn.recorder.metric_names[3:5] == ['accuracy_multi', 'f1_score']
    loss, acc, f1 = learn.validate()
    p, t = probs.tolist(), targs.tolist()
    right = sum((p[i][j] > 0.1) == (t[i][j] == 1) for i in range(n) for j in range(c))
    assert acc == pytest.approx(right / (n * c))
    tp = sum(p[i][j] > 0.1 and t[i][j] == 1 for i in range(n) for j in range(c))
    predicted, actual = sum(p[i][j] > 0.1 for i in range(n) for j in range(c)), sum(map(sum, t))
    assert f1 == pytest.approx(2 * tp / (predicted + actual))
    bce = -sum(math.log(p[i][j]) if t[i][j] else math.log(1 - p[i][j]) for i in range(n) for j in range(c))
    assert loss == pytest.approx(bce / (n * c), rel=1e-4)
    # the book's threshold sweep on the gathered probabilities
    assert accuracy_multi(probs, targs, thresh=0.1, sigmoid=False).item() == pytest.approx(acc)


def test_decoding_by_threshold(trained, photos):
    df, _, dls, learn = trained
    vocab = list(dls.vocab)
    valid = df[df.is_valid].reset_index(drop=True)
    probs, _, decoded = learn.get_preds(with_decoded=True)
    assert decoded.dtype == torch.bool and decoded.shape == probs.shape
    assert decoded.tolist() == [[v > 0.5 for v in row] for row in probs.tolist()]
    labels, dec, p = learn.predict(valid.iloc[0])
    assert isinstance(labels, list) and all(isinstance(s, str) for s in labels)
    assert p.tolist() == pytest.approx(probs[0].tolist(), abs=1e-5)
    assert labels == [vocab[i] for i in range(7) if p[i] > 0.5] and dec.tolist() == [v > 0.5 for v in p.tolist()]
    try:
        learn.loss_func.thresh = 0.
        assert learn.predict(valid.iloc[0])[0] == vocab
        learn.loss_func.thresh = 1.
        assert learn.predict(valid.iloc[0])[0] == []
    finally:
        learn.loss_func.thresh = 0.5


def test_show_results_titles_actual_and_predicted_label_lists(trained):
    df, _, dls, learn = trained
    vocab = list(dls.vocab)
    valid = df[df.is_valid].reset_index(drop=True)
    _, _, decoded = learn.get_preds(with_decoded=True)
    axs = learn.show_results(max_n=4, shuffle=False)
    for i, ax in enumerate(axs):
        actual, pred = ax.get_title().split('\n')
        assert actual == ';'.join(sorted(valid.labels[i].split(' ')))
        assert pred == ';'.join(vocab[j] for j in range(7) if decoded[i, j])
        assert ax.title.get_color() == ('green' if actual == pred else 'red')


def test_export_and_load_learner_round_trip(trained, photos, tmp_path):
    df, _, dls, learn = trained
    valid = df[df.is_valid].reset_index(drop=True)
    learn.export(tmp_path / 'multi.pkl')
    # ColReader is not written into the recipe: the loaded learner predicts from what get_x returned, the path
    with pytest.warns(UserWarning, match='getter'):
        loaded = load_learner(tmp_path / 'multi.pkl')
    assert list(loaded.dls.vocab) == list(dls.vocab) and isinstance(loaded.loss_func, BCEWithLogitsLossFlat)
    for i in range(3):
        labels, dec, p = learn.predict(valid.iloc[i])
        labels2, dec2, p2 = loaded.predict(str(photos / valid.fname[i]))
        assert labels2 == labels and torch.equal(dec2, dec)
        assert p2.tolist() == pytest.approx(p.tolist(), abs=1e-5)
