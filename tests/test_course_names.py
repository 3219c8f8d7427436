"""The everyday names of fastbook chapters 1-7 after `from blocklearn.vision.all import *`: `Path(...).ls()`,
`to_thumb`, `subplots`, `to_cpu`, `tensor(img)`, `vocab[idxs]`, and `recorder.plot_loss()` with both curves."""
import pathlib
import pickle
import tarfile

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import blocklearn.vision.all as va
from blocklearn.blocks.external import untar_data
from synth import classification_dls

matplotlib.use('Agg')


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


@pytest.fixture
def folder(tmp_path):
    """A folder like a course dataset: images, a pickle, a text file and a sub-folder of images."""
    for name in ('b.png', 'a.jpg', 'C.JPG', 'model.pkl', 'notes.txt', 'labels.csv'):
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'train' / '3').mkdir(parents=True)
    (tmp_path / 'train' / '3' / '1.png').write_bytes(b'')
    return tmp_path


# ---- Path(...).ls() -----------------------------------------------------------------------------------------------
def test_path_is_a_pathlib_subclass_and_pathlib_is_untouched(folder):
    assert va.Path is not pathlib.Path and issubclass(va.Path, pathlib.Path)
    assert not hasattr(pathlib.Path, 'ls') and not hasattr(pathlib.PosixPath, 'ls')  # a subclass, not a patch
    p = va.Path(str(folder))
    assert p == pathlib.Path(folder) and repr(p) == f"Path('{folder.as_posix()}')"
    assert pickle.loads(pickle.dumps(p)) == p and type(pickle.loads(pickle.dumps(p))) is va.Path
    assert type(p / 'train') is va.Path and type(p.parent) is va.Path


def test_ls_lists_sorted_children_that_chain(folder):
    listing = va.Path(folder).ls()
    assert [o.name for o in listing] == ['C.JPG', 'a.jpg', 'b.png', 'labels.csv', 'model.pkl', 'notes.txt', 'train']
    assert repr(listing).startswith('(#7) [') and listing.map(lambda o: o.suffix)[:2] == ['.JPG', '.jpg']
    assert all(type(o) is va.Path for o in listing)
    train = next(o for o in listing if o.name == 'train')
    assert [o.name for o in train.ls()[0].ls()] == ['1.png']          # `(path/'train').ls()[0].ls()`
    assert len(va.Path(folder).ls(n_max=2)) == 2


def test_ls_filters_like_fastai(folder):
    def names(listing):
        return [o.name for o in listing]
    p = va.Path(folder)
    assert names(p.ls(file_exts='.pkl')) == ['model.pkl']
    assert names(p.ls(file_exts=['.csv', 'txt'])) == ['labels.csv', 'notes.txt']   # a list; the dot optional
    assert names(p.ls(file_type='image')) == ['C.JPG', 'a.jpg', 'b.png']           # mimetype image/*, any case
    assert names(p.ls(file_type='text')) == ['labels.csv', 'notes.txt']
    # fastai adds file_type's extensions to file_exts: either one matches
    assert names(p.ls(file_type='image', file_exts='.pkl')) == ['C.JPG', 'a.jpg', 'b.png', 'model.pkl']
    assert names(p.ls(n_max=1, file_type='image')) == ['C.JPG']
    with pytest.raises(NotADirectoryError, match=r"model\.pkl.*path\.parent\.ls\(\)"):
        (p / 'model.pkl').ls()


def test_untar_data_returns_the_same_path_class(tmp_path, monkeypatch):
    src = tmp_path / 'tiny'
    (src / 'images').mkdir(parents=True)
    (src / 'images' / 'x.png').write_bytes(b'')
    with tarfile.open(tmp_path / 'tiny.tgz', 'w:gz') as tf:
        tf.add(src, arcname='tiny')
    path = untar_data((tmp_path / 'tiny.tgz').as_uri(), base=tmp_path / 'home')
    assert type(path) is va.Path and va.DataPath is va.Path
    # fastbook ch5: `Path.BASE_PATH = path`, set on the notebook's Path, makes reprs relative to the dataset
    monkeypatch.setattr(va.Path, 'BASE_PATH', path, raising=False)
    assert repr(path.ls()) == "(#1) [Path('images')]" and repr((path / 'images').ls()[0]) == "Path('images/x.png')"
    assert repr(va.Path('/elsewhere')) == "Path('/elsewhere')"


# ---- to_thumb ----------------------------------------------------------------------------------------------------
def test_to_thumb_keeps_the_aspect_and_the_class(photos, tmp_path, write_image):
    f = min(photos.glob('*.jpg'))
    img = va.PILImage.create(f)
    thumb = img.to_thumb(192)
    assert type(thumb) is va.PILImage and img.size == (320, 213)                      # the original is kept
    assert thumb.size == (192, 128)                                                   # 213 * 192/320 = 127.8
    assert np.asarray(thumb).mean() == pytest.approx(np.asarray(img).mean(), abs=3)   # the same picture, smaller
    tall = va.PILImageBW.create(write_image(tmp_path / 'tall.png', (200, 400)))
    assert type(tall.to_thumb(100)) is va.PILImageBW and tall.to_thumb(100).size == (50, 100)
    assert tall.to_thumb(100, 300).size == (50, 100) and tall.to_thumb(300, 60).size == (60, 120)  # fits h x w
    assert tall.to_thumb(1000).size == (200, 400)                                     # never enlarged


# ---- subplots ----------------------------------------------------------------------------------------------------
def test_subplots_sizes_cells_by_imsize_and_returns_an_array():
    fig, axs = va.subplots()
    assert tuple(fig.get_size_inches()) == (3, 3) and isinstance(axs, np.ndarray) and axs.shape == (1,)
    assert axs[0] is fig.axes[0]
    fig, axs = va.subplots(2, 3, imsize=2)
    assert tuple(fig.get_size_inches()) == (6, 4) and axs.shape == (2, 3)
    fig, axs = va.subplots(1, 3, figsize=(12, 4), suptitle='three')
    assert tuple(fig.get_size_inches()) == (12, 4) and axs.shape == (3,) and fig._suptitle.get_text() == 'three'
    fig, axs = va.subplots(1, 2, imsize=2, suptitle='small cells')
    assert fig.get_size_inches()[1] > 2                                               # room for the title
    _, axs = va.subplots(1, 2, squeeze=False)
    assert axs.shape == (1, 2)


def test_get_grid_is_built_on_subplots():
    fig, axs = va.get_grid(5, return_fig=True, imsize=2)
    assert len(axs) == 5 and tuple(fig.get_size_inches()) == (6, 4)                  # 2 rows of 3 cells
    assert sum(ax.axison for ax in fig.axes) == 5


# ---- to_cpu and tensor ------------------------------------------------------------------------------------------
def test_to_cpu_maps_nested_tuples_lists_and_dicts():
    x, y = torch.ones(2), torch.tensor([1, 0]).as_subclass(va.TensorCategory)
    out = va.to_cpu((x, [y, {'a': x, 'b': (y, 3)}], 'name'))
    assert type(out) is tuple and type(out[1]) is list and type(out[1][1]) is dict
    assert out[0] is x and out[1][1]['b'][1] == 3 and out[2] == 'name'
    assert type(out[1][0]) is va.TensorCategory and out[1][1]['b'][0].device.type == 'cpu'


def test_tensor_of_an_image_is_uint8_hwc(photos):
    img = va.PILImage.create(min(photos.glob('*.jpg')))
    t = va.tensor(img)
    assert t.dtype == torch.uint8 and t.shape == (213, 320, 3)
    assert torch.equal(t, torch.from_numpy(np.array(img)))
    scaled = va.tensor(img).float() / 255                                              # ch7's MixUp by hand
    assert scaled.dtype == torch.float32 and 0 <= scaled.min() and scaled.max() <= 1 and scaled.max() > 0.5
    assert va.tensor([[1, 2], [3, 4]]).shape == (2, 2) and va.tensor(np.arange(3)).tolist() == [0, 1, 2]


# ---- vocab[idxs] -------------------------------------------------------------------------------------------------
def test_vocab_indexed_by_many_gives_an_L_of_labels():
    vocab = va.CategoryMap(['dog', 'cat', 'bird'])
    assert vocab[1] == 'cat' and vocab[torch.tensor(2)] == 'dog' and vocab[np.int64(0)] == 'bird'
    for idxs in (torch.tensor([0, 2]), np.array([0, 2]), [0, 2], (0, 2)):
        labels = vocab[idxs]
        assert isinstance(labels, va.L) and labels == ['bird', 'dog'], idxs
    assert repr(vocab[torch.tensor([0, 2])]) == "(#2) ['bird','dog']"
    assert vocab[torch.tensor([True, False, True])] == ['bird', 'dog'] and vocab[1:] == ['cat', 'dog']
    assert isinstance(vocab[1:], va.L) and vocab[torch.tensor([], dtype=torch.long)] == []


def test_fastbook_decodes_a_one_hot_target_with_the_vocab(tmp_path, write_image):
    for i in range(4):
        write_image(tmp_path / f'{i}.png', (16, 16))
    df = pd.DataFrame({'fname': [f'{i}.png' for i in range(4)], 'labels': ['person cat', 'dog', 'cat', 'dog bird']})
    dblock = va.DataBlock(blocks=(va.ImageBlock, va.MultiCategoryBlock), splitter=va.IndexSplitter([3]),
                          get_x=lambda r: tmp_path / r['fname'], get_y=lambda r: r['labels'].split(' '))
    dsets = dblock.datasets(df)
    idxs = torch.where(dsets.train[0][1] == 1.)[0]
    assert dsets.train.vocab == ['cat', 'dog', 'person'] and dsets.train.vocab[idxs] == ['cat', 'person']


# ---- recorder.plot_loss ------------------------------------------------------------------------------------------
def fitted(n_epochs=3, n_batches=6):
    torch.manual_seed(0)
    learn = va.Learner(classification_dls(n_train=n_batches, n_valid=2), nn.Linear(4, 3))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(n_epochs, 1e-2)
    return learn


def test_plot_loss_draws_train_per_batch_and_valid_per_epoch():
    learn = fitted()
    rec = learn.recorder
    rec.plot_loss()
    train, valid = plt.gca().lines
    assert list(train.get_xdata()) == list(range(5, 18)) and list(train.get_ydata()) == rec.losses[5:]
    assert list(valid.get_xdata()) == [6, 12, 18]                                  # batches trained at each end
    assert list(valid.get_ydata()) == [row[1] for row in rec.values]
    assert [t.get_text() for t in plt.gca().get_legend().get_texts()] == ['train', 'valid']


def test_plot_loss_options():
    learn = fitted(n_epochs=2, n_batches=4)
    _, ax = plt.subplots()
    learn.recorder.plot_loss(skip_start=5, ax=ax)
    train, valid = ax.lines
    assert list(train.get_xdata()) == [5, 6, 7] and list(valid.get_xdata()) == [8]   # epoch 1 ended at batch 4
    fig = learn.recorder.plot_loss(skip_start=0, with_valid=False, return_fig=True)
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[0].lines[0].get_xdata()) == 8
    fig = learn.recorder.plot_loss(skip_start=0, log=True, show_epochs=True, return_fig=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == 'log'
    assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ':'] == [4, 8]
