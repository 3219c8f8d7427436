"""summary(): the sections SPEC lists, and a diagnosis (files, shapes, fix) when collation fails."""
import random
import re

import torch

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import RegexLabeller, parent_label, using_attr
from blocklearn.blocks.loader import CollateError, DataLoader
from blocklearn.blocks.summary import summarize
from blocklearn.blocks.splitters import FuncSplitter, GrandparentSplitter, RandomSplitter
from blocklearn.vision.augment import aug_transforms
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.data import get_image_files
from blocklearn.vision.resize import Resize

PAT = r'(.+)_\d+.jpg$'


def run_summary(block, source, **kwargs):
    lines = []
    try:
        block.summary(source, print_fn=lines.append, **kwargs)
        err = None
    except Exception as e:
        err = e
    return '\n'.join(map(str, lines)), err


def test_pets1_summary_explains_the_collate_failure(photos):
    pets1 = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(seed=42), get_y=using_attr(RegexLabeller(PAT), 'name'))
    out, err = run_summary(pets1, photos)
    assert isinstance(err, CollateError)
    order = ['Setting-up type transforms pipelines', f'Collecting items from {photos}', 'Found 140 items',
             '2 datasets of sizes 112,28', 'Setting up Pipeline: PILImage.create',
             'Setting up Pipeline: using_attr', 'Building one sample', 'starting from', 'applying PILImage.create gives',
             'PILImage mode=RGB size=', 'TensorCategory(', 'Final sample: (PILImage mode=RGB', 'Building one batch',
             'Applying item_tfms to the first sample', 'applying ToTensor gives', 'TensorImage of size 3x',
             'Adding the next 3 samples', 'No before_batch transform to apply', 'Collating items in a batch',
             "Error! It's not possible to collate your items in a batch"]
    pos = [out.find(s) for s in order]
    assert -1 not in pos, [s for s, p in zip(order, pos) if p == -1]
    assert pos == sorted(pos)
    assert 'Could not collate the 0-th members of your tuples because got the following shapes' in out
    assert 'Labels: 5 classes on the training split: fishes (' in out
    # beyond fastai: the files, their shapes and the fix
    assert re.search(r'images/\w+_\d+\.jpg\)?\s+3x\d+x\d+', str(err))
    assert 'item_tfms=Resize(460)' in str(err)


def test_pets_summary_passes_and_narrates_batch_tfms(photos):
    pets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                     splitter=RandomSplitter(seed=42), get_y=using_attr(RegexLabeller(PAT), 'name'),
                     item_tfms=Resize(460), batch_tfms=aug_transforms(size=224, min_scale=0.75))
    out, err = run_summary(pets, photos)
    assert err is None, out
    assert 'applying Resize gives\n      (PILImage mode=RGB size=460x460, TensorCategory(' in out
    assert 'Applying batch_tfms to the batch built' in out
    assert 'TensorImage of size 4x3x224x224' in out
    assert 'Collating a full batch of 64 training samples' in out


def test_summary_reports_labels_only_in_valid_and_empty_split(tmp_path, write_image):
    for i in range(3):
        write_image(tmp_path / 'train' / 'cat' / f'{i}.png')
        write_image(tmp_path / 'valid' / 'cat' / f'{i}.png')
    write_image(tmp_path / 'valid' / 'fox' / '0.png')
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=GrandparentSplitter(),
                      get_y=parent_label, item_tfms=Resize(8))
    out, err = run_summary(block, tmp_path, bs=2)
    assert err is None
    assert 'labels never seen in training: fox (1)' in out
    misspelt = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                         splitter=GrandparentSplitter(valid_name='validation'), get_y=parent_label)
    out, err = run_summary(misspelt, tmp_path)
    assert isinstance(err, ValueError) and "no items in a 'validation' folder" in str(err)
    assert "Error! While splitting the items" in out


def test_summary_counts_file_names_the_regex_misses(pets_folder):
    (pets_folder / 'IMG_a.jpg').write_bytes((pets_folder / 'Bombay_0.jpg').read_bytes())
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(seed=0), get_y=using_attr(RegexLabeller(PAT), 'name'))
    out, err = run_summary(block, pets_folder)
    assert isinstance(err, ValueError) and 'failed on 1 of 13 items' in str(err) and 'IMG_a.jpg' in str(err)


def test_summary_names_an_unreadable_file(pets_folder):
    (pets_folder / 'Bombay_7.jpg').write_bytes(b'')
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=FuncSplitter(lambda p: p.name == 'great_pyrenees_0.jpg'),
                      get_y=using_attr(RegexLabeller(PAT), 'name'),
                      item_tfms=Resize(16))
    out, err = run_summary(block, pets_folder, bs=12)
    assert 'Warning: 1 item(s) are missing or empty files, e.g.' in out and 'Bombay_7.jpg' in out
    assert err is not None and 'Bombay_7.jpg' in str(err)


def reverse_samples(samples):
    return samples[::-1]


def test_summary_batch_is_the_loaders_one_batch(photos):
    """summary runs the train loader's own stages: a before_batch given to dataloaders(), the random train crop
    and the random batch augmentation come out exactly as in `dls.train.one_batch()` for the same seed."""
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=RandomSplitter(seed=42), get_y=using_attr(RegexLabeller(PAT), 'name'),
                      item_tfms=Resize(48), batch_tfms=aug_transforms(size=32))
    kw = dict(before_batch=[reverse_samples], device='cpu')
    random.seed(1), torch.manual_seed(1)
    got = summarize(block, photos, bs=4, print_fn=lambda *a: None, **kw)
    dls = block.dataloaders(photos, bs=4, num_workers=0, **kw)
    random.seed(1), torch.manual_seed(1)
    want = dls.train.one_batch()
    assert type(got[0]) is type(want[0]) and got[0].shape == (4, 3, 32, 32)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


class RecordingDL(DataLoader):
    """A loader that records its stages, so a test can see summary go through them rather than around them."""
    calls: list[str] = []

    def load_item(self, i, apply=None):
        RecordingDL.calls.append('load_item')
        return super().load_item(i, apply)

    def collate(self, samples, idxs=None, apply=None):
        RecordingDL.calls.append('collate')
        return super().collate(samples, idxs, apply)

    def finish_batch(self, b, apply=None):
        RecordingDL.calls.append('finish_batch')
        return super().finish_batch(b, apply)


def test_summary_drives_the_dl_type_stages(photos):
    RecordingDL.calls.clear()
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, dl_type=RecordingDL,
                      splitter=RandomSplitter(seed=42), get_y=using_attr(RegexLabeller(PAT), 'name'),
                      item_tfms=Resize(32))
    out, err = run_summary(block, photos, bs=4)
    assert err is None, out
    assert RecordingDL.calls[:6] == ['load_item'] * 4 + ['collate', 'finish_batch']
    assert isinstance(block.dataloaders(photos, num_workers=0).train, RecordingDL)


def test_summary_shows_a_file_name_that_is_not_utf8_with_its_escapes(pets_folder):
    import os
    raw = os.fsencode(pets_folder) + b'/caf\xe9_1.jpg'
    with open(raw, 'wb') as f:
        f.write((pets_folder / 'Bombay_0.jpg').read_bytes())
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      splitter=FuncSplitter(lambda p: p.name.startswith('caf')),
                      get_y=using_attr(RegexLabeller(PAT), 'name'), item_tfms=Resize(16))
    out, err = run_summary(block, pets_folder, bs=4)
    assert err is None and 'caf\\xe9' in out and '\udce9' not in out
    out.encode('utf-8')                                  # what a strict terminal would do: no surrogate left
