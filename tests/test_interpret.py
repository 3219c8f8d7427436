"""Interpretation views on synthetic predictions and on a tiny learner over the committed photos."""
import io
import types

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn as nn

from blocklearn.learner.interpret import ClassificationInterpretation, Interpretation
from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import F1Score, Precision, Recall, accuracy
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.resize import Resize

VOCAB = ['Birman', 'Ragdoll', 'Siamese', 'beagle']
CM = np.array([[10, 4, 0, 1], [4, 12, 0, 0], [4, 1, 9, 0], [0, 2, 0, 7]])


class _Dls:
    vocab = VOCAB


class _Learn:
    dls = _Dls()


def interp_from_cm(cm: np.ndarray) -> ClassificationInterpretation:
    targs, dec = [], []
    for i in range(len(cm)):
        for j in range(len(cm)):
            targs += [i] * int(cm[i, j])
            dec += [j] * int(cm[i, j])
    targs, dec = torch.tensor(targs), torch.tensor(dec)
    preds = torch.nn.functional.one_hot(dec, len(cm)).float()
    losses = torch.arange(len(targs), dtype=torch.float)
    return ClassificationInterpretation(_Learn(), None, None, preds, targs, dec, losses)


def test_most_confused_spec_example():
    interp = interp_from_cm(CM)
    assert interp.vocab == VOCAB
    assert interp.most_confused() == [('Birman', 'Ragdoll', 4), ('Ragdoll', 'Birman', 4), ('Siamese', 'Birman', 4),
                                      ('beagle', 'Ragdoll', 2), ('Birman', 'beagle', 1), ('Siamese', 'Ragdoll', 1)]
    assert interp.most_confused(min_val=3) == [('Birman', 'Ragdoll', 4), ('Ragdoll', 'Birman', 4),
                                               ('Siamese', 'Birman', 4)]
    assert interp.most_confused(min_val=4) == interp.most_confused(min_val=3)  # min_val itself is kept
    assert interp.most_confused(min_val=5) == []  # the diagonal (12 Ragdoll) never counts as confused


def test_confusion_matrix_orientation():
    # Two items of class 0 predicted as class 1: cm[actual=0, predicted=1] == 2.
    interp = ClassificationInterpretation(_Learn(), None, None, torch.zeros(3, 4), torch.tensor([0, 0, 2]),
                                          torch.tensor([1, 1, 2]), torch.zeros(3))
    cm = interp.confusion_matrix()
    assert cm.dtype.kind == 'i' and cm[0, 1] == 2 and cm[1, 0] == 0 and cm[2, 2] == 1
    assert np.array_equal(interp_from_cm(CM).confusion_matrix(), CM)


def test_classification_report_numbers(capsys):
    # class 0: tp 1, fp 1, fn 1 -> p .5 r .5; class 1: tp 2, fp 1, fn 0 -> p 2/3 r 1; class 2: tp 0, support 1.
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    interp = interp_from_cm(cm)
    interp.vocab = ['a', 'b', 'c']
    rep = interp.print_classification_report()
    assert rep['a'] == pytest.approx({'precision': .5, 'recall': .5, 'f1-score': .5, 'support': 2})
    assert rep['b'] == pytest.approx({'precision': 2 / 3, 'recall': 1., 'f1-score': .8, 'support': 2})
    assert rep['c'] == pytest.approx({'precision': 0., 'recall': 0., 'f1-score': 0., 'support': 1})
    assert rep['macro avg']['f1-score'] == pytest.approx(1.3 / 3)
    assert rep['weighted avg']['recall'] == pytest.approx((2 * .5 + 2 * 1.) / 5)
    out = capsys.readouterr().out
    assert 'precision' in out and 'macro avg' in out and 'weighted avg' in out


# cm[actual, predicted] over a..e: b is never predicted, c never occurs in the targets, d in neither.
#   a: tp 2, predicted 3, actual 4 -> P 2/3, R 1/2, F1 4/7
#   b: tp 0, predicted 0, actual 2 -> P 0 (undefined), R 0, F1 0
#   c: tp 0, predicted 2, actual 0 -> P 0, R 0 (undefined), F1 0
#   d: nothing at all -> no score: left out of the macro average, as by sklearn (a report that divided by 5
#      classes and metrics that divided by 4 used to disagree here)
#   e: tp 3, predicted 5, actual 4 -> P 3/5, R 3/4, F1 2/3
ABSENT_CM = np.array([[2, 0, 1, 0, 1], [1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 3]])
BY_HAND = {'macro': {'precision': (2 / 3 + 3 / 5) / 4, 'recall': (1 / 2 + 3 / 4) / 4, 'f1-score': (4 / 7 + 2 / 3) / 4},
           'weighted': {'precision': (4 * 2 / 3 + 4 * 3 / 5) / 10, 'recall': (4 / 2 + 4 * 3 / 4) / 10,
                        'f1-score': (4 * 4 / 7 + 4 * 2 / 3) / 10}}


def test_classification_report_and_metrics_agree_on_absent_classes():
    interp = interp_from_cm(ABSENT_CM)
    interp.vocab = list('abcde')
    rep = interp.classification_report()
    assert [rep[c]['precision'] for c in 'abcde'] == pytest.approx([2 / 3, 0, 0, 0, 3 / 5])
    assert [rep[c]['recall'] for c in 'abcde'] == pytest.approx([1 / 2, 0, 0, 0, 3 / 4])
    assert [rep[c]['f1-score'] for c in 'abcde'] == pytest.approx([4 / 7, 0, 0, 0, 2 / 3])
    assert [rep[c]['support'] for c in 'abcde'] == [4, 2, 0, 0, 4]
    metrics = {'precision': Precision, 'recall': Recall, 'f1-score': F1Score}
    logits = interp.preds  # one-hot rows of the decoded class
    for average in ('macro', 'weighted'):
        assert {k: rep[f'{average} avg'][k] for k in metrics} == pytest.approx(BY_HAND[average])
        for key, cls in metrics.items():
            m = cls(average=average)
            m.reset()
            m.accumulate(types.SimpleNamespace(pred=logits[:7], yb=(interp.targs[:7],)))
            m.accumulate(types.SimpleNamespace(pred=logits[7:], yb=(interp.targs[7:],)))
            assert m.value == rep[f'{average} avg'][key], (average, key)
    per_class = F1Score(average=None)
    per_class.reset()
    per_class.accumulate(types.SimpleNamespace(pred=logits, yb=(interp.targs,)))
    assert per_class.value == [rep[c]['f1-score'] for c in 'abcde']


def test_top_losses():
    interp = interp_from_cm(CM)
    vals, idx = interp.top_losses(3)
    assert vals.tolist() == [53., 52., 51.] and idx.tolist() == [53, 52, 51]
    vals, idx = interp.top_losses(2, largest=False)
    assert idx.tolist() == [0, 1]
    assert len(interp.top_losses()[0]) == CM.sum()


class _CountForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.calls = nn.Linear(3 * 32 * 32, 5), 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x.flatten(1))


@pytest.fixture(scope='module')
def interp_learn(photos):
    torch.manual_seed(0)
    dls = ImageDataLoaders.from_name_re(photos, get_image_files(photos), r'(.+)_\d+.jpg$', item_tfms=Resize(32),
                                        bs=16, num_workers=0)
    learn = Learner(dls, _CountForward(), metrics=accuracy)
    interp = ClassificationInterpretation.from_learner(learn)
    return interp, learn


def test_from_learner_runs_inference_once(interp_learn):
    interp, learn = interp_learn
    calls = learn.model.calls
    assert calls == len(learn.dls.valid)
    interp.confusion_matrix(), interp.most_confused(), interp.top_losses(3), interp.classification_report()
    plt.close(interp.plot_confusion_matrix())
    plt.close(interp.plot_top_losses(2))
    assert learn.model.calls == calls
    assert isinstance(interp, Interpretation) and interp.vocab == list(learn.dls.vocab)
    assert interp.confusion_matrix().sum() == len(learn.dls.valid_ds)


def test_plots_make_figures(interp_learn):
    interp, _ = interp_learn
    fig = interp.plot_confusion_matrix(normalize=True, figsize=(4, 4), dpi=50, return_fig=True)
    assert fig.axes and len(fig.axes[0].texts) == 25
    plt.close(fig)
    fig = interp.plot_top_losses(4, nrows=2, return_fig=True)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4
    # the first cell is the item with the largest loss, found here without top_losses
    worst = int(interp.losses.argmax())
    probs = interp.preds.as_subclass(torch.Tensor)[worst]
    pred, actual = interp.vocab[int(probs.argmax())], interp.vocab[int(interp.targs[worst])]
    assert titles[0] == f'{pred}/{actual} / {float(interp.losses.max()):.2f} / {float(probs.max()):.2f}'
    assert fig.axes[0].images  # the decoded input image is drawn
    plt.close(fig)


def interp_from_preds(preds: list, targs: list, vocab=('a', 'b', 'c')) -> ClassificationInterpretation:
    preds, targs = torch.tensor(preds), torch.tensor(targs)
    interp = ClassificationInterpretation(_Learn(), None, None, preds, targs, preds.argmax(1), torch.zeros(len(targs)))
    interp.vocab = list(vocab)
    return interp


#                actual a: right .6, right .9, wrong (c .7), wrong (b .5); actual b: right .8; actual c: wrong (a .4)
PREDS = [[.6, .3, .1], [.9, .05, .05], [.2, .1, .7], [.3, .5, .2], [.1, .8, .1], [.4, .3, .3]]
TARGS = [0, 0, 0, 0, 1, 2]


def test_most_confident_correct_ranks_by_probability_of_the_actual_class():
    interp = interp_from_preds(PREDS, TARGS)
    assert interp.most_confident('a').tolist() == [1, 0]
    assert interp.most_confident(0, k=1).tolist() == [1]
    assert interp.most_confident('b').tolist() == [4]
    assert interp.most_confident('c').tolist() == []
    assert type(interp.most_confident('a')) is torch.Tensor


def test_most_confident_incorrect_ranks_by_confidence_of_the_wrong_prediction():
    interp = interp_from_preds(PREDS, TARGS)
    assert interp.most_confident('a', correct=False).tolist() == [2, 3]
    assert interp.most_confident('c', correct=False).tolist() == [5]
    assert interp.most_confident('b', correct=False).tolist() == []


def test_most_confident_unknown_label_names_the_vocab():
    interp = interp_from_preds(PREDS, TARGS, vocab=('Birman', 'Ragdoll', 'Siamese'))
    with pytest.raises(ValueError, match=r"Unknown label 'siamese'.*\['Birman', 'Ragdoll', 'Siamese'\].*'Siamese'"):
        interp.most_confident('siamese')
    with pytest.raises(ValueError, match='out of range.*3 classes'):
        interp.most_confident(3)


def test_most_uncertain_smallest_margin_first():
    # margins: .3, .85, .5, .2, .7, .1
    interp = interp_from_preds(PREDS, TARGS)
    assert interp.most_uncertain(3).tolist() == [5, 3, 0]
    assert len(interp.most_uncertain(10)) == len(TARGS)
    # two classes: the probability nearest 0.5 first
    two = interp_from_preds([[.9, .1], [.45, .55], [.3, .7], [.62, .38]], [0, 1, 1, 0], vocab=('cat', 'dog'))
    assert two.most_uncertain(4).tolist() == [1, 3, 2, 0]


def test_random_predictions_pick_right_or_wrong_items_repeatably():
    interp = interp_from_preds(PREDS, TARGS)
    right, wrong = {0, 1, 4}, {2, 3, 5}
    idx = interp.random_predictions(2, seed=3)
    assert len(idx) == 2 and set(idx.tolist()) <= right and idx.tolist() == sorted(idx.tolist())
    assert torch.equal(idx, interp.random_predictions(2, seed=3))
    assert set(interp.random_predictions(10, correct=False).tolist()) == wrong
    draws = {tuple(interp.random_predictions(1, seed=s).tolist()) for s in range(20)}
    assert draws == {(0,), (1,), (4,)}


def test_empty_views_plot_a_message_instead_of_failing():
    interp = interp_from_preds([[.9, .1], [.2, .8]], [0, 1], vocab=('cat', 'dog'))
    assert interp.random_predictions(correct=False).tolist() == []
    fig = interp.plot_random(correct=False, return_fig=True)
    assert fig._suptitle.get_text() == 'No incorrect predictions to show.'
    plt.close(fig)
    fig = interp.plot_most_confident('dog', correct=False, return_fig=True)
    assert fig._suptitle.get_text() == 'No dog item was predicted wrong.'
    plt.close(fig)


def test_lesson1_views_plot_from_stored_predictions(interp_learn):
    interp, learn = interp_learn
    calls = learn.model.calls
    targs, dec = interp.targs.as_subclass(torch.Tensor), interp.decoded.as_subclass(torch.Tensor)
    right, wrong = [interp.vocab[int(targs[(dec == targs) == ok].mode().values)] for ok in (True, False)]
    figs = [interp.plot_random(3, seed=0, return_fig=True), interp.plot_random(2, correct=False, seed=0, return_fig=True),
            interp.plot_most_confident(right, 2, return_fig=True),
            interp.plot_most_confident(wrong, 2, correct=False, return_fig=True), interp.plot_most_uncertain(4, return_fig=True)]
    assert interp.plot_most_uncertain(4) is None  # a notebook shows the figure once, not once more as the result
    views = [interp.random_predictions(3, seed=0), interp.random_predictions(2, correct=False, seed=0),
             interp.most_confident(right, 2), interp.most_confident(wrong, 2, correct=False), interp.most_uncertain(4)]
    assert all(len(v) for v in views)
    assert learn.model.calls == calls  # every view reuses the predictions of from_learner
    probs = interp.preds.gather(1, dec.long()[:, None]).flatten()
    for fig, idx in zip(figs, views):
        titled = [ax for ax in fig.axes if ax.get_title()]
        assert len(titled) == len(idx)
        for ax, i in zip(titled, idx.tolist()):
            actual, pred, prob = ax.get_title().split(' / ')
            assert actual == interp.vocab[int(interp.targs[i])] and pred == interp.vocab[int(interp.decoded[i])]
            assert float(prob) == pytest.approx(float(probs[i]), abs=0.006)
            assert ax.images
        plt.close(fig)


def test_labels_from_file_names_that_are_not_utf8_are_drawn_escaped(capsys):
    # b'caf\xe9' read from a Latin-1 file name: Python gives the str 'caf\udce9', which matplotlib cannot draw
    cafe = b'caf\xe9'.decode('utf-8', 'surrogateescape')
    interp = interp_from_preds([[.9, .1], [.8, .2], [.3, .7]], [0, 1, 1], vocab=(cafe, 'tea'))
    figs = [interp.plot_confusion_matrix(return_fig=True), interp.plot_top_losses(2, return_fig=True),
            interp.plot_most_uncertain(2, return_fig=True), interp.plot_most_confident(1, 1, return_fig=True)]
    for fig in figs:
        fig.savefig(io.BytesIO(), format='png')  # text is laid out (and fails) only when drawn
    ticks = [t.get_text() for t in figs[0].axes[0].get_xticklabels()]
    assert ticks == ['caf\\xe9', 'tea']
    titles = [ax.get_title() for fig in figs[1:] for ax in fig.axes if ax.get_title()]
    assert len(titles) == 5 and all(t.startswith(('caf\\xe9/', 'tea/', 'caf\\xe9 / ', 'tea / ')) for t in titles)
    for fig in figs:
        plt.close(fig)
    interp.print_classification_report()
    assert 'caf\\xe9' in capsys.readouterr().out


# -- memory: an interpretation keeps predictions, not inputs -------------------------------------------------------
N_GEN, GEN_CLASSES, GEN_PX = 300, 4, 64


@pytest.fixture(scope='module')
def generated_interp(tmp_path_factory):
    """The interpretation of 300 generated JPEGs (4 classes, 64 px), each a colour of its own, and the learner."""
    from PIL import Image
    root = tmp_path_factory.mktemp('generated')
    for split, n in (('train', 64), ('valid', N_GEN)):
        for i in range(n):
            folder = root / split / f'c{i % GEN_CLASSES}'
            folder.mkdir(parents=True, exist_ok=True)
            Image.new('RGB', (GEN_PX, GEN_PX), (i % 256, (7 * i) % 256, (31 * i) % 256)).save(folder / f'{i}.jpg')
    torch.manual_seed(0)
    dls = ImageDataLoaders.from_folder(root, item_tfms=Resize(GEN_PX), bs=64, num_workers=0)
    learn = Learner(dls, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, GEN_CLASSES)))
    return ClassificationInterpretation.from_learner(learn), learn


def _tensor_bytes(o, seen=None) -> int:
    """Bytes of the tensors reachable from `o` through containers and plain objects' attributes."""
    seen = set() if seen is None else seen
    if id(o) in seen:
        return 0
    seen.add(id(o))
    if isinstance(o, torch.Tensor):
        return o.untyped_storage().nbytes()
    if isinstance(o, dict):
        return sum(_tensor_bytes(v, seen) for v in o.values())
    if isinstance(o, (list, tuple, set)):
        return sum(_tensor_bytes(v, seen) for v in o)
    if hasattr(o, '__dict__') and not isinstance(o, (type, nn.Module)):
        return sum(_tensor_bytes(v, seen) for v in vars(o).values())
    return 0


def test_interpretation_keeps_no_inputs(generated_interp):
    interp, learn = generated_interp
    assert len(interp.losses) == N_GEN and interp.inputs is None
    held = _tensor_bytes({k: v for k, v in vars(interp).items() if k not in ('learn', 'dl')})
    # preds (n x c floats) plus targets, decoded and losses (n each, at most 8 bytes): O(n * n_classes)
    assert held <= N_GEN * (GEN_CLASSES + 3) * 8
    assert held < N_GEN * 3 * GEN_PX * GEN_PX * 4 / 100  # the inputs, kept, would have been 14.7 MB


def test_plot_top_losses_loads_and_shows_the_right_items(generated_interp):
    interp, learn = generated_interp
    inputs, *rest = learn.get_preds(dl=interp.dl, with_input=True, with_decoded=True, with_loss=True)
    kept = ClassificationInterpretation(learn, interp.dl, inputs, *rest)  # what an interpretation used to hold
    losses, idx = interp.top_losses(6)
    fig, ref = interp.plot_top_losses(6, return_fig=True), kept.plot_top_losses(6, return_fig=True)
    cells = [ax for ax in fig.axes if ax.get_title()]
    assert len(cells) == 6
    for ax, ref_ax, loss, i in zip(cells, [ax for ax in ref.axes if ax.get_title()], losses, idx.tolist()):
        pred, actual = interp.vocab[int(interp.decoded[i])], interp.vocab[int(interp.targs[i])]
        prob = float(interp.preds[i, int(interp.decoded[i])])
        assert ax.get_title() == f'{pred}/{actual} / {float(loss):.2f} / {prob:.2f}' == ref_ax.get_title()
        # the pixels drawn are those of item i, as the model saw it: each generated item has a colour of its own
        assert np.array_equal(np.asarray(ax.images[0].get_array()), np.asarray(ref_ax.images[0].get_array()))
        shown = np.asarray(ax.images[0].get_array()).reshape(-1, 3)[0]
        item = np.asarray(learn.dls.valid_ds[i][0])[0, 0]
        assert np.abs(shown.astype(float) * (255 if shown.dtype.kind == 'f' else 1) - item).max() <= 2
    plt.close(fig)
    plt.close(ref)


def test_a_plain_iterable_of_batches_keeps_its_inputs_to_show_them(interp_learn):
    # Batches that cannot be loaded again one item at a time: the inputs are kept, and drawn as the model saw them.
    _, learn = interp_learn
    batches = list(learn.dls.valid)
    interp = ClassificationInterpretation.from_learner(learn, dl=batches)
    assert interp.inputs.shape[0] == len(interp.losses) == len(learn.dls.valid_ds)
    fig = interp.plot_top_losses(2, return_fig=True)
    assert all(ax.images for ax in fig.axes if ax.get_title())
    plt.close(fig)
