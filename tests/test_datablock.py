"""The pets DataBlock end to end on the committed photos, and DataBlock's argument checks."""
import re

import pytest
import torch

from blocklearn.blocks.block import CategoryBlock, MultiCategoryBlock, RegressionBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.datasets import Datasets
from blocklearn.blocks.labellers import RegexLabeller, parent_label, using_attr
from blocklearn.blocks.loader import CollateError
from blocklearn.blocks.splitters import GrandparentSplitter, RandomSplitter
from blocklearn.blocks.tensors import TensorCategory
from blocklearn.vision.augment import aug_transforms
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.core import PILImage, PILImageBW, TensorImage, ToTensor
from blocklearn.vision.data import get_image_files
from blocklearn.vision.normalize import IntToFloatTensor
from blocklearn.vision.resize import Resize

PAT = r'(.+)_\d+.jpg$'


def pets_block(**kwargs):
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                     splitter=RandomSplitter(seed=42), get_y=using_attr(RegexLabeller(PAT), 'name'), **kwargs)


def test_pets_datablock_with_presizing(photos):
    fname = get_image_files(photos)[0]
    assert re.findall(PAT, fname.name) == [fname.name.rsplit('_', 1)[0]]
    pets = pets_block(item_tfms=Resize(460), batch_tfms=aug_transforms(size=224, min_scale=0.75))
    dls = pets.dataloaders(photos, bs=8, num_workers=0)
    x, y = dls.one_batch()
    assert type(x) is TensorImage and x.shape == (8, 3, 224, 224) and x.dtype == torch.float32
    assert type(y) is TensorCategory and y.shape == (8,)
    assert dls.vocab == ['fishes', 'monuments', 'others', 'renewable', 'tools'] and dls.c == 5
    assert (len(dls.train_ds), len(dls.valid_ds)) == (112, 28)
    assert len(dls.train) == 14 and len(dls.valid) == 4        # train drops the partial batch, valid keeps it
    assert 0 <= x.min() and x.max() <= 1


def test_blocks_contribute_transforms_and_user_resize_wins():
    pets = pets_block(item_tfms=[Resize(460)], batch_tfms=[IntToFloatTensor(div=2.)])
    assert [type(t) for t in pets.item_tfms] == [ToTensor, Resize]
    assert len(pets.batch_tfms) == 1 and pets.batch_tfms[0].div == 2.
    assert pets.n_inp == 1 and isinstance(pets.splitter, RandomSplitter)
    assert DataBlock(blocks=(ImageBlock, ImageBlock, CategoryBlock)).n_inp == 2


def test_unknown_argument_and_wrong_get_y_count():
    with pytest.raises(TypeError, match=r"unknown argument\(s\) 'item_tfm'.*Did you mean 'item_tfm' -> 'item_tfms'"):
        DataBlock(blocks=(ImageBlock, CategoryBlock), item_tfm=Resize(10))
    with pytest.raises(ValueError, match='1 target block.*but 2 get_y function'):
        DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=[parent_label, parent_label])


def test_datasets_decode_to_labels(photos):
    dsets = pets_block().datasets(photos)
    x, y = dsets.train[0]
    assert isinstance(x, PILImage) and type(y) is TensorCategory
    assert dsets.decode((x, y))[1] in dsets.vocab


def test_lesson1_folder_layout(fashion):
    from blocklearn.vision.data import ImageDataLoaders
    dls = ImageDataLoaders.from_folder(fashion, train='train', valid='valid', item_tfms=Resize(32), bs=16,
                                       num_workers=0)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (300, 100) and dls.c == 10
    x, y = dls.one_batch()
    assert x.shape == (16, 3, 32, 32)


def test_bw_images_and_grandparent_splitter(fashion):
    block = DataBlock(blocks=(ImageBlock(PILImageBW), CategoryBlock), get_items=get_image_files,
                      splitter=GrandparentSplitter(), get_y=parent_label)
    dls = block.dataloaders(fashion, bs=10, num_workers=0)
    x, y = dls.valid.one_batch()
    assert x.shape == (10, 1, 28, 28) and dls.vocab[int(y[0])] == 'ankle_boot'


def test_multicategory_and_regression_blocks(pets_folder):
    labels = {'Bombay': ['cat', 'black'], 'great_pyrenees': ['dog', 'white']}
    block = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_items=get_image_files,
                      get_y=lambda p: labels[RegexLabeller(PAT)(p.name)], splitter=RandomSplitter(seed=0),
                      item_tfms=Resize(16))
    dls = block.dataloaders(pets_folder, bs=4, num_workers=0)
    x, y = dls.one_batch()
    assert dls.vocab == ['black', 'cat', 'dog', 'white'] and y.shape == (4, 4) and set(y.sum(1).tolist()) == {2.}
    reg = DataBlock(blocks=(ImageBlock, RegressionBlock), get_items=get_image_files,
                    get_y=lambda p: float(p.stem.rsplit('_', 1)[1]), item_tfms=Resize(16))
    x, y = reg.dataloaders(pets_folder, bs=4, num_workers=0).one_batch()
    assert y.dtype == torch.float32 and y.shape == (4,)


def test_without_resize_collate_names_the_files_and_the_fix(pets_folder):
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      get_y=using_attr(RegexLabeller(PAT), 'name'), splitter=RandomSplitter(seed=1))
    dls = block.dataloaders(pets_folder, bs=10, num_workers=0)   # the whole training split: sizes must differ
    with pytest.raises(CollateError) as e:
        next(iter(dls.train))
    msg = str(e.value)
    assert 'they have different sizes' in msg and 'item_tfms=Resize(460)' in msg
    assert re.search(r'(Bombay|great_pyrenees)_\d\.jpg\)?\s+3x(40x50|50x40)', msg)


def test_datasets_dataloaders_as_in_fastai(photos):
    dsets = pets_block().datasets(photos)
    dls = dsets.dataloaders(bs=8, num_workers=0, after_item=[Resize(32), ToTensor()])
    x, y = dls.one_batch()
    assert x.shape == (8, 3, 32, 32) and len(dls.train) == 112 // 8 and dls.vocab == dsets.vocab
    by_hand = Datasets(list(range(4)), [[lambda o: o * 2]], splits=[[0, 1, 2], [3]])
    with pytest.raises(TypeError, match=r'dls_type=DataLoaders.*DataLoaders.from_dsets'):
        by_hand.dataloaders()
    assert by_hand.train[2] == (4,)


def test_blocks_import_only_to_their_left():
    """In blocks/, transform <- datasets <- loader <- datablock: no import to the right, not even in a function."""
    import ast
    from pathlib import Path
    chain = ['transform', 'datasets', 'loader', 'datablock']
    folder = Path(__file__).resolve().parents[1] / 'blocks'
    for k, name in enumerate(chain):
        tree = ast.parse((folder / f'{name}.py').read_text())
        imported = {(node.module or '').rpartition('.')[2] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name.rpartition('.')[2] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                     for a in node.names}
        assert not imported & set(chain[k + 1:]), (name, imported & set(chain[k + 1:]))
