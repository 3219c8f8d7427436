"""Fastbook chapter 4 as the book types it: `L`, `first`, `tensor`, a DataLoader over a plain list of (x, y) tuples,
`DataLoaders(dl, valid_dl)`, and a Learner with the user's own loss and metric trained by plain SGD."""
import functools
import string
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from blocklearn.blocks.basics import first
from blocklearn.blocks.collection import L
from blocklearn.blocks.convert import tensor, to_np
from blocklearn.blocks.files import DataPath
from blocklearn.blocks.loader import DataLoader, DataLoaders
from blocklearn.callbacks.recorder import Recorder
from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import AvgMetric, accuracy, as_metric
from blocklearn.learner.optimizer import SGD

PAIRS = Path(__file__).resolve().parents[1] / 'data' / 'fashion_pairs'


# ---- the user's code, as chapter 4 types it --------------------------------------------------------------------
def mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(xb, yb):
    preds = xb.sigmoid()
    correct = (preds > 0.5) == yb
    return correct.float().mean()


def stacked(folder: Path) -> torch.Tensor:
    return torch.stack([tensor(Image.open(o)) for o in sorted(folder.iterdir())]).float() / 255


@pytest.fixture(scope='module')
def sandals_vs_dresses():
    """Chapter 4's `train_x, train_y, valid_x, valid_y` on the committed pairs: sandals (target 1), dresses (0)."""
    def split(name):
        a, b = stacked(PAIRS / name / 'sandal'), stacked(PAIRS / name / 'dress')
        return torch.cat([a, b]).view(-1, 28 * 28), tensor([1] * len(a) + [0] * len(b)).unsqueeze(1)
    return (*split('train'), *split('valid'))


# ---- L, first, tensor ------------------------------------------------------------------------------------------
def test_L_reprs_like_the_book():
    assert repr(L(range(3))) == '(#3) [0,1,2]'
    assert repr(L(range(12))) == '(#12) [0,1,2,3,4,5,6,7,8,9,...]'
    assert repr(L()) == '(#0) []'


def test_L_makes_a_list_of_what_it_is_given():
    assert L(1, 2, 3) == [1, 2, 3] and L(None) == [] and L(5) == [5] and L((1, 2)) == [1, 2]
    assert L('ab') == ['ab'] and L({'a': 1}) == [{'a': 1}]
    t = torch.tensor([1, 2, 3])
    assert len(L(t)) == 1 and L(t)[0] is t              # an array is one item, as in fastcore
    assert L(enumerate('ab')) == [(0, 'a'), (1, 'b')]
    assert L.range(2, 5) == [2, 3, 4]


def test_L_indexes_with_lists_masks_and_slices():
    t = L('a b c d'.split())
    assert t[1] == 'b' and t[-1] == 'd' and t[torch.tensor(2)] == 'c'
    assert t[[0, 2]] == ['a', 'c'] and type(t[[0, 2]]) is L
    assert t[[True, False, True, False]] == ['a', 'c']
    assert t[torch.tensor([False, True, False, True])] == ['b', 'd']
    assert t[np.array([3, 0])] == ['d', 'a']
    assert t[1:3] == ['b', 'c'] and type(t[1:3]) is L
    with pytest.raises(IndexError, match='one value per item'):
        t[[True, False]]


def test_L_map_sorted_and_friends():
    t = L([3, 1, 2])
    assert t.map(lambda x: x * 10) == [30, 10, 20] and type(t.map(str)) is L
    assert t.sorted() == [1, 2, 3] and t.sorted(reverse=True) == [3, 2, 1] and t == [3, 1, 2]
    assert L(['bb', 'a', 'ccc']).sorted(len) == ['a', 'bb', 'ccc']
    assert L([(1, 'b'), (0, 'a')]).sorted(0) == [(0, 'a'), (1, 'b')]
    assert L([Path('b'), Path('a')]).sorted('name') == [Path('a'), Path('b')]
    assert t.filter(lambda x: x > 1) == [3, 2] and t.argwhere(lambda x: x > 1) == [0, 2]
    assert L([1, 2, 1, 3]).unique() == [1, 2, 3]
    assert L(enumerate('ab')).itemgot(1) == ['a', 'b']
    assert L([[1, 2], [3]]).concat() == [1, 2, 3] and L([(1, 'a'), (2, 'b')]).zip() == [(1, 2), ('a', 'b')]
    assert t.sum() == 6 and len(t) == 3
    both = t + [4]
    assert type(both) is L and both == [3, 1, 2, 4] and type([0] + t) is L and [0] + t == [0, 3, 1, 2]


def test_first_is_the_first_item_or_none():
    assert first([5, 6]) == 5 and first([]) is None and first(iter('ab')) == 'a'
    assert first(range(10), lambda x: x > 3) == 4 and first(range(10), lambda x: x > 3, negate=True) == 0


def test_tensor_takes_a_pil_image_numbers_and_arrays(tmp_path):
    pixels = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    Image.fromarray(pixels).save(tmp_path / 'im.png')
    t = tensor(Image.open(tmp_path / 'im.png'))
    assert t.dtype == torch.uint8 and t.shape == (28, 28) and t[4, 10].item() == pixels[4, 10]
    assert tensor(1, 2, 3).tolist() == [1, 2, 3] and tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert tensor(np.array([0.5, 1.5])).dtype == torch.float32       # float64 becomes the model's float32
    x = torch.ones(2)
    assert tensor(x) is x
    assert to_np((x, [x]))[1][0].tolist() == [1.0, 1.0]


def test_ls_sorted_and_base_path_repr(tmp_path, monkeypatch):
    for name in ('b.png', 'a.png', 'c.png'):
        (tmp_path / name).touch()
    listing = DataPath(tmp_path).ls()
    assert listing.sorted(reverse=True).map(lambda p: p.name) == ['c.png', 'b.png', 'a.png']
    assert repr(listing).startswith('(#3) [')
    monkeypatch.setattr(Path, 'BASE_PATH', DataPath(tmp_path), raising=False)
    assert repr(listing[0]) == "Path('a.png')"


# ---- DataLoader over a plain list ------------------------------------------------------------------------------
def test_dataloader_batches_a_list_of_tuples_like_the_book():
    x, y = torch.randn(600, 28 * 28), tensor([1] * 300 + [0] * 300).unsqueeze(1)
    dset = list(zip(x, y))
    dl = DataLoader(dset, batch_size=256)
    xb, yb = first(dl)
    assert xb.shape == (256, 784) and yb.shape == (256, 1)
    assert torch.equal(xb, x[:256]) and torch.equal(yb, y[:256])
    assert dl.bs == 256 and len(dl) == 3 and [len(b[0]) for b in dl] == [256, 256, 88]
    assert dl.num_workers == 0                               # an in-memory list loads in this process


def test_dataloader_makes_numbers_tensors():
    xb, yb = first(DataLoader([(1, 0.5), (2, 1.5), (3, 2.5)], bs=2))
    assert xb.tolist() == [1, 2] and yb.tolist() == [0.5, 1.5] and yb.dtype == torch.float32


def test_dataloader_of_bare_items_gives_bare_batches():
    torch.manual_seed(0)
    dl = DataLoader(range(15), batch_size=5, shuffle=True)
    batches = list(dl)
    assert all(isinstance(b, torch.Tensor) and b.shape == (5,) for b in batches)
    assert sorted(torch.cat(batches).tolist()) == list(range(15)) and torch.cat(batches).tolist() != list(range(15))


def test_dataloader_of_L_of_enumerate_pairs_numbers_with_letters():
    ds = L(enumerate(string.ascii_lowercase))
    batches = list(DataLoader(ds, batch_size=6, shuffle=True))
    assert [len(b[0]) for b in batches] == [6, 6, 6, 6, 2]
    for idxs, letters in batches:
        assert list(letters) == [string.ascii_lowercase[i] for i in idxs.tolist()]


def test_dataloaders_of_two_plain_loaders():
    dset = [(torch.randn(4), tensor([1])) for _ in range(10)]
    dl, valid_dl = DataLoader(dset, batch_size=4), DataLoader(dset[:6], batch_size=4)
    dls = DataLoaders(dl, valid_dl)
    assert dls.train is dl and dls.valid is valid_dl and dls[0] is dl and dls[1] is valid_dl
    assert dls.device is None and dls.n_inp == 1 and dls.loss_func is None   # the user passes the loss


# ---- the Learner of chapter 4 ----------------------------------------------------------------------------------
def ch4_dls(data, valid_bs=256):
    train_x, train_y, valid_x, valid_y = data
    dl = DataLoader(list(zip(train_x, train_y)), batch_size=256)
    valid_dl = DataLoader(list(zip(valid_x, valid_y)), batch_size=valid_bs)
    return DataLoaders(dl, valid_dl)


def test_linear_learner_with_sgd_learns_sandals_from_dresses(sandals_vs_dresses):
    torch.manual_seed(0)
    learn = Learner(ch4_dls(sandals_vs_dresses), nn.Linear(28 * 28, 1), opt_func=SGD, loss_func=mnist_loss,
                    metrics=batch_accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit(10, lr=1.)
    values = learn.recorder.values
    assert learn.recorder.metric_names == ['epoch', 'train_loss', 'valid_loss', 'batch_accuracy', 'time']
    assert values[-1][1] < values[0][1] / 3                  # the valid loss goes down ...
    assert values[-1][2] > 0.95 and values[-1][2] > values[0][2]   # ... and accuracy up (0.5 is chance)
    _, _, valid_x, valid_y = sandals_vs_dresses
    with torch.no_grad():
        by_hand = ((learn.model(valid_x) > 0) == valid_y).float().mean().item()
    assert values[-1][2] == pytest.approx(by_hand)


def test_simple_net_learns_too(sandals_vs_dresses):
    torch.manual_seed(0)
    simple_net = nn.Sequential(nn.Linear(28 * 28, 30), nn.ReLU(), nn.Linear(30, 1))
    learn = Learner(ch4_dls(sandals_vs_dresses), simple_net, opt_func=SGD, loss_func=mnist_loss,
                    metrics=batch_accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit(20, 0.1)
    assert learn.recorder.values[-1][2] > 0.95
    assert L(learn.recorder.values).itemgot(2)[-1] == learn.recorder.values[-1][2]


def test_user_metric_is_averaged_weighted_by_batch_size(sandals_vs_dresses):
    # Validation in batches of 64, 64, 64 and 8: the mean of the four batch accuracies is not the accuracy.
    torch.manual_seed(0)
    model = nn.Linear(28 * 28, 1)
    learn = Learner(ch4_dls(sandals_vs_dresses, valid_bs=64), model, opt_func=SGD, loss_func=mnist_loss,
                    metrics=batch_accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=0.01)
    _, _, valid_x, valid_y = sandals_vs_dresses
    with torch.no_grad():
        right = ((model(valid_x) > 0) == valid_y).float()
    per_batch = [right[i:i + 64].mean().item() for i in range(0, len(right), 64)]
    assert sum(per_batch) / 4 != pytest.approx(right.mean().item())
    assert learn.recorder.values[-1][2] == pytest.approx(right.mean().item())


def test_sgd_step_is_the_hand_update():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    model = nn.Linear(4, 1)
    w0, b0 = model.weight.detach().clone().requires_grad_(), model.bias.detach().clone().requires_grad_()
    gw, gb = torch.autograd.grad(F.mse_loss(x @ w0.T + b0, y), [w0, b0])
    w0, b0 = w0.detach(), b0.detach()
    dls = DataLoaders(DataLoader(list(zip(x, y)), batch_size=8), DataLoader(list(zip(x, y)), batch_size=8))
    learn = Learner(dls, model, opt_func=SGD, loss_func=F.mse_loss)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1.)                                  # one batch: one step
    assert torch.allclose(model.weight, w0 - 1. * gw, atol=1e-6) and torch.allclose(model.bias, b0 - gb, atol=1e-6)


def test_sgd_by_hand_loop_matches_basic_optim():
    # The chapter's `opt = SGD(linear_model.parameters(), lr)` in its own train loop, against `p -= lr * grad`.
    torch.manual_seed(0)
    a = nn.Linear(4, 1)
    b = nn.Linear(4, 1)
    b.load_state_dict(a.state_dict())
    opt = SGD(a.parameters(), 0.5)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(3):
        F.mse_loss(a(x), y).backward()
        opt.step()
        opt.zero_grad()
        F.mse_loss(b(x), y).backward()
        with torch.no_grad():
            for p in b.parameters():
                p -= 0.5 * p.grad
                p.grad = None
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


# ---- metric names ----------------------------------------------------------------------------------------------
def test_metric_names_for_functions_partials_and_lambdas():
    assert as_metric(batch_accuracy).name == 'batch_accuracy'
    assert as_metric(functools.partial(accuracy, axis=-1)).name == 'accuracy'
    assert as_metric(lambda p, t: (p == t).float().mean()).name == 'metric'
    assert AvgMetric(lambda p, t: p.mean(), name='mean_pred').name == 'mean_pred'
    assert as_metric(nn.L1Loss()).name == 'L1Loss'


def test_metric_of_training_predictions_keeps_no_graph():
    torch.manual_seed(0)
    dset = [(torch.randn(4), torch.randn(1)) for _ in range(32)]
    dls = DataLoaders(DataLoader(dset, batch_size=8), DataLoader(dset, batch_size=8))
    kept = []

    class Keep(AvgMetric):
        def accumulate(self, learn):
            super().accumulate(learn)
            kept.append(self._values[-1])
    learn = Learner(dls, nn.Linear(4, 1), loss_func=F.mse_loss, metrics=Keep(F.mse_loss), cbs=None,
                    default_cbs=False)
    learn.add_cb(Recorder(train_metrics=True))
    with learn.no_logging():
        learn.fit(1)
    assert len(kept) == 8 and not any(v.requires_grad for v in kept)


def test_the_chapter_names_come_with_the_one_import():
    ns = {}
    exec('from blocklearn.vision.all import *', ns)
    names = 'tensor Image Path SGD DataLoader DataLoaders Learner L first torch nn F array to_np string matplotlib'
    assert [n for n in names.split() if n not in ns] == []
    assert ns['tensor'] is tensor and ns['L'] is L and ns['first'] is first and ns['Image'] is Image
    assert ns['DataLoader'] is DataLoader and ns['SGD'] is SGD
