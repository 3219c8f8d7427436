import pytest
import torch

from blocklearn.blocks.categories import CategoryMap, Categorize, MultiCategorize, OneHotEncode, RegressionSetup
from blocklearn.blocks.datasets import Datasets, TfmdLists
from blocklearn.blocks.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from blocklearn.blocks.tensors import TensorCategory


def test_category_map():
    assert CategoryMap([4, 2, 3, 4]) == [2, 3, 4]
    assert CategoryMap(['b', 'a'], add_na=True) == ['#na#', 'a', 'b']
    assert CategoryMap(['beagle', 'Siamese', 'Birman']) == ['Birman', 'Siamese', 'beagle']  # uppercase first


def test_categorize_vocab_from_training_split_only():
    tl = TfmdLists(['cat', 'dog', 'cat', 'bird'], [Categorize()], splits=[[0, 1, 2], [3]])
    cat = tl.tfms[0]
    assert cat.vocab == ['cat', 'dog']
    assert type(tl[1]) is TensorCategory and int(tl[1]) == 1
    assert cat.decode(tl[1]) == 'dog'
    with pytest.raises(KeyError, match="Label 'bird' was not included in the training dataset"):
        tl[3]


def test_multicategorize_one_hot_roundtrip():
    tl = TfmdLists([['a', 'c'], ['b'], ['c']], [MultiCategorize(), OneHotEncode()])
    assert tl.tfms[0].vocab == ['a', 'b', 'c']
    assert tl[0].tolist() == [1., 0., 1.]
    assert tl.decode(tl[0]) == ['a', 'c']


def test_regression_setup():
    tl = TfmdLists([1.5, 2.0], [RegressionSetup()])
    assert tl[0].dtype == torch.float32 and float(tl[0]) == 1.5 and tl.tfms[0].c == 1


def test_datasets_loss_follows_target():
    ds = Datasets(['a', 'b'], [[lambda o: 0.], [Categorize()]], splits=[[0, 1], []])
    assert isinstance(ds.loss_func, CrossEntropyLossFlat) and ds.c == 2
    ds = Datasets([['a'], ['b']], [[lambda o: 0.], [MultiCategorize(), OneHotEncode()]], splits=[[0, 1], []])
    assert isinstance(ds.loss_func, BCEWithLogitsLossFlat) and ds.c == 2
    ds = Datasets([1., 2.], [[lambda o: 0.], [RegressionSetup()]])
    assert isinstance(ds.loss_func, MSELossFlat)


def test_flat_cross_entropy_matches_torch_and_decodes():
    x, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    loss = CrossEntropyLossFlat()
    assert torch.allclose(loss(x, y), torch.nn.functional.cross_entropy(x, y))
    assert torch.allclose(loss.activation(x).sum(1), torch.ones(4))
    assert loss.decodes(x).tolist() == x.argmax(1).tolist()
