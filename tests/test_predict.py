"""get_preds and predict on a tiny learner over the committed photos; predict of a file on a learner built from rows."""
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import ColReader
from blocklearn.blocks.splitters import RandomSplitter
from blocklearn.learner.learner import Learner
from blocklearn.learner.load import load_learner
from blocklearn.learner.metrics import accuracy
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.core import PILImage
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


# -- predict a file or an image on a learner whose input getter reads rows ------------------------------------------
def rows_of(photos, step: int = 3) -> pd.DataFrame:
    files = get_image_files(photos)[::step]
    return pd.DataFrame({'fname': [f.name for f in files], 'label': [f.name.rsplit('_', 1)[0] for f in files]})


def rows_learner(dls) -> Learner:
    torch.manual_seed(0)
    return Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, len(dls.vocab))))


def from_df(photos, tmp_path):
    return ImageDataLoaders.from_df(rows_of(photos), photos, item_tfms=Resize(32), bs=8, num_workers=0, seed=0)


def from_csv(photos, tmp_path):
    df = rows_of(photos)
    (tmp_path / 'images').mkdir()
    for name in df.fname:                                              # the real files, beside their labels.csv
        shutil.copy(photos / name, tmp_path / 'images' / name)
    df.to_csv(tmp_path / 'labels.csv', index=False)
    return ImageDataLoaders.from_csv(tmp_path, folder='images', item_tfms=Resize(32), bs=8, num_workers=0, seed=0)


def from_col_reader_block(photos, tmp_path):
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('fname', pref=photos),
                      get_y=ColReader('label'), splitter=RandomSplitter(seed=0), item_tfms=Resize(32))
    return block.dataloaders(rows_of(photos), bs=8, num_workers=0)


@pytest.mark.parametrize('make_dls', [from_df, from_csv, from_col_reader_block])
def test_predict_takes_a_file_or_an_image_where_the_getter_reads_rows(make_dls, photos, tmp_path):
    learn = rows_learner(make_dls(photos, tmp_path))
    row = learn.dls.valid.dataset.items[0]
    file = Path(learn.dls.valid.dataset.tls[0].tfms.fs[0](row))        # what the getter reads from the row
    assert file.exists() and isinstance(row, pd.Series)
    label, idx, probs = learn.predict(row)                             # a row, as the dataset holds
    assert label in learn.dls.vocab and abs(float(probs.sum()) - 1) < 1e-5
    for item in (file, str(file), PILImage.create(file)):
        got = learn.predict(item)
        assert got[0] == label and int(got[1]) == int(idx) and torch.allclose(got[2], probs, atol=1e-6)
    preds, _ = learn.get_preds(dl=learn.dls.test_dl([file, file]))   # a list of files, as after load_learner
    assert torch.allclose(preds, probs.expand(2, -1), atol=1e-6)

    learn.export(tmp_path / 'export.pkl')
    with pytest.warns(UserWarning, match='input getter ColReader was not exported'):
        loaded = load_learner(tmp_path / 'export.pkl', model=nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5)))
    assert torch.allclose(loaded.predict(file)[2], probs, atol=1e-6)    # the live learner predicts as the loaded one
