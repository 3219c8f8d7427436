"""TorchMetric: torchmetrics metrics accumulated over a pass, on a tiny learner trained on the committed photos."""
import subprocess
import sys
import types

import pytest
import torch
import torch.nn as nn

from blocklearn.blocks.tensors import TensorMultiCategory
from blocklearn.learner.learner import Learner
from blocklearn.learner.load import load_learner
from blocklearn.learner.metrics import accuracy
from blocklearn.learner.torchmetric import TorchMetric
from blocklearn.vision.all import ImageDataLoaders, Resize, get_image_files, resnet18, vision_learner

tm = pytest.importorskip('torchmetrics')
from torchmetrics.classification import (MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score,  # noqa: E402
                                         MultilabelAUROC)

PAT = r'(.+)_\d+.jpg$'


def photo_dls(photos, bs=8):
    return ImageDataLoaders.from_name_re(photos, get_image_files(photos), PAT, item_tfms=Resize(32), bs=bs,
                                         num_workers=0, seed=0)


def tiny_model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5))


@pytest.fixture(scope='module')
def trained(photos):
    """A tiny learner fit one epoch with bs=8: the 28 validation photos come in 4 batches."""
    torch.manual_seed(0)
    metrics = [TorchMetric(MulticlassAccuracy(num_classes=5)), TorchMetric(MulticlassAUROC(num_classes=5)),
               TorchMetric(MulticlassAccuracy(num_classes=5, average='micro'), name='micro_acc'), accuracy]
    learn = Learner(photo_dls(photos), tiny_model(), metrics=metrics)
    learn.fit(1, 1e-2)
    return learn


def whole_set(learn):
    """torchmetrics' values on every validation prediction at once."""
    probs, targs = learn.get_preds()
    targs = targs.as_subclass(torch.Tensor)
    return [MulticlassAccuracy(num_classes=5)(probs, targs).item(), MulticlassAUROC(num_classes=5)(probs, targs).item(),
            MulticlassAccuracy(num_classes=5, average='micro')(probs, targs).item()]


def test_recorder_reports_the_value_over_the_whole_validation_set(trained):
    assert len(trained.dls.valid) > 1  # several batches accumulate into one value
    names = trained.recorder.metric_names
    assert names[3:7] == ['multiclass_accuracy', 'multiclass_auroc', 'micro_acc', 'accuracy']
    row = trained.recorder.values[-1]
    assert row[2:5] == pytest.approx(whole_set(trained), abs=1e-6)
    assert row[4] == pytest.approx(row[5], abs=1e-6)  # micro accuracy is our accuracy


@pytest.mark.filterwarnings('ignore:No positive samples')  # a batch may lack a class: AUROC's per-batch flaw
def test_auroc_is_not_an_average_of_batch_values(trained):
    # What a per-batch metric averaged by batch size (AvgMetric) would report differs from the whole-set value.
    learn, batch_vals, sizes = trained, [], []
    for xb, yb in learn.dls.valid:
        with torch.no_grad():
            probs = learn.model(xb).softmax(-1)
        batch_vals.append(MulticlassAUROC(num_classes=5)(probs, yb.as_subclass(torch.Tensor)).item())
        sizes.append(len(yb))
    averaged = sum(v * n for v, n in zip(batch_vals, sizes)) / sum(sizes)
    reported = learn.recorder.values[-1][3]
    assert reported == pytest.approx(whole_set(learn)[1], abs=1e-6)
    assert abs(reported - averaged) > 1e-3


def test_validate_reports_the_torchmetrics(trained):
    res = trained.validate()
    assert res[1:4] == pytest.approx(whole_set(trained), abs=1e-6)
    assert res[1:4] == pytest.approx(trained.recorder.values[-1][2:5], abs=1e-6)
    # the metric was reset before this pass: a second validate reports the same, not twice the updates
    assert trained.validate()[1:4] == pytest.approx(res[1:4], abs=1e-6)


def test_export_and_load_with_a_torchmetric(photos, tmp_path):
    torch.manual_seed(0)
    learn = vision_learner(photo_dls(photos), resnet18, pretrained=False, path=tmp_path,
                           metrics=TorchMetric(MulticlassAUROC(num_classes=5)))
    auroc = learn.validate()[1]  # the metric holds a pass's state when exported
    assert isinstance(auroc, float) and 0 <= auroc <= 1
    learn.export('model.pkl')
    learn2 = load_learner(tmp_path / 'model.pkl')
    fname = get_image_files(photos)[0]
    assert torch.allclose(learn2.predict(fname)[2], learn.predict(fname)[2], atol=1e-6)


def test_names_snake_case_or_given():
    assert TorchMetric(MulticlassAUROC(num_classes=5)).name == 'multiclass_auroc'
    assert TorchMetric(MulticlassF1Score(num_classes=5)).name == 'multiclass_f1_score'
    assert TorchMetric(tm.MeanSquaredError()).name == 'mean_squared_error'
    assert TorchMetric(MulticlassAUROC(num_classes=5), name='auc').name == 'auc'


def test_mistakes_say_what_to_do(photos):
    with pytest.raises(TypeError, match=r'not the class MulticlassAUROC.*TorchMetric\(MulticlassAUROC\(...\)\)'):
        TorchMetric(MulticlassAUROC)
    with pytest.raises(TypeError, match='has no update, compute, reset'):
        TorchMetric(accuracy)
    with pytest.raises(ValueError, match="act='softmax'"):
        TorchMetric(MulticlassAUROC(num_classes=5), act='softmax')
    with pytest.raises(TypeError, match=r'wrap the torchmetrics metric MulticlassAUROC in TorchMetric'):
        Learner(photo_dls(photos), tiny_model(), metrics=MulticlassAUROC(num_classes=5))


def fake_learn(pred, targ, b_targ=None, act=None):
    """What TorchMetric reads of a learner at `after_batch`."""
    loss = types.SimpleNamespace(activation=act)
    return types.SimpleNamespace(pred=pred, yb=(targ,), xb=(torch.zeros(len(pred)),),
                                 b=(torch.zeros(len(pred)), targ if b_targ is None else b_targ), loss_func=loss,
                                 dls=None)


def test_no_batch_no_value_and_reset_forgets():
    m = TorchMetric(MulticlassAccuracy(num_classes=3))
    assert m.value is None
    m.accumulate(fake_learn(torch.tensor([[3., 0, 0]]), torch.tensor([1]), act=lambda x: x.softmax(-1)))
    assert m.value == 0.
    m.reset()
    assert m.value is None


def test_multilabel_targets_go_as_integers_and_act_choices():
    torch.manual_seed(0)
    logits, targ = torch.randn(12, 4) * 3, (torch.rand(12, 4) > .5).float()
    expected = MultilabelAUROC(num_labels=4)(logits.sigmoid(), targ.long()).item()
    m = TorchMetric(MultilabelAUROC(num_labels=4))
    for sl in (slice(0, 5), slice(5, 12)):
        m.accumulate(fake_learn(logits[sl], targ[sl], TensorMultiCategory(targ[sl]), act=torch.sigmoid))
    assert m.value == pytest.approx(expected, abs=1e-6)
    # act=None: the raw logits, which torchmetrics turns into probabilities itself
    raw = TorchMetric(MultilabelAUROC(num_labels=4), act=None)
    raw.accumulate(fake_learn(logits, targ, TensorMultiCategory(targ), act=torch.sigmoid))
    assert raw.value == pytest.approx(expected, abs=1e-6)


def test_metric_moves_to_the_batch_device():
    class OnMeta:
        """A torchmetrics-like metric that says it lives on another device and records where it is moved."""
        device = torch.device('meta')

        def __init__(self):
            self.moved, self.seen = [], []

        def to(self, device):
            self.moved.append(torch.device(device))
            self.device = torch.device(device)
            return self

        def update(self, preds, target):
            self.seen.append(preds.device)

        def compute(self):
            return torch.tensor(1.)

        def reset(self):
            pass

    metric = OnMeta()
    m = TorchMetric(metric, act=None)
    for _ in range(2):
        m.accumulate(fake_learn(torch.zeros(2, 3), torch.tensor([0, 1])))
    assert metric.moved == [torch.device('cpu')] and metric.seen == [torch.device('cpu')] * 2  # moved once
    assert m.value == 1.


def test_importing_blocklearn_needs_no_torchmetrics():
    code = ("import sys; sys.modules['torchmetrics'] = None\n"  # `import torchmetrics` would now fail
            "from blocklearn.vision.all import TorchMetric, Learner\n"
            "print('ok')")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == 'ok', res.stderr
