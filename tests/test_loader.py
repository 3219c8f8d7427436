"""DataLoader behaviour: workers, errors from workers, shuffling, test_dl, decode, show_batch."""
import os

import matplotlib.pyplot as plt
import pytest
import torch

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import RegexLabeller, using_attr
from blocklearn.blocks.loader import DataLoader, collate, default_num_workers
from blocklearn.blocks.splitters import RandomSplitter
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.core import TensorImage
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.resize import Resize

PAT = r'(.+)_\d+.jpg$'


def small_dls(path, **kwargs):
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      get_y=using_attr(RegexLabeller(PAT), 'name'), splitter=RandomSplitter(seed=42),
                      item_tfms=Resize(32))
    return block.dataloaders(path, **kwargs)


def test_worker_processes_give_the_same_valid_batches(photos):
    one = small_dls(photos, bs=16, num_workers=0)
    two = small_dls(photos, bs=16, num_workers=2)
    for (x0, y0), (x2, y2) in zip(one.valid, two.valid):
        assert type(x2) is TensorImage and torch.equal(x0, x2) and torch.equal(y0, y2)
    seen = torch.cat([y for _, y in two.train])
    assert len(seen) == 112 and two.train.num_workers == 2


def test_train_shuffles_valid_keeps_order(photos):
    dls = small_dls(photos, bs=28, num_workers=0)
    first = [torch.cat([y for _, y in dls.train]) for _ in range(2)]
    assert not torch.equal(first[0], first[1])
    valid = [torch.cat([y for _, y in dls.valid]) for _ in range(2)]
    assert torch.equal(valid[0], valid[1])


def test_bad_file_in_a_worker_is_raised_cleanly_with_its_name(pets_folder):
    (pets_folder / 'Bombay_99.jpg').write_text('not an image')
    dls = small_dls(pets_folder, bs=13, num_workers=1, shuffle_train=False)
    with pytest.raises(Exception) as e:
        for dl in (dls.train, dls.valid):
            list(dl)
    msg = str(e.value)
    assert 'Bombay_99.jpg' in msg and 'DataLoader worker' not in msg and 'Traceback' not in msg


def test_label_only_in_valid_is_named(tmp_path, write_image):
    for i in range(4):
        write_image(tmp_path / 'train' / 'cat' / f'{i}.png')
        write_image(tmp_path / 'valid' / 'cat' / f'{i}.png')
    write_image(tmp_path / 'valid' / 'fox' / '0.png')
    dls = ImageDataLoaders.from_folder(tmp_path, bs=2, num_workers=0)
    assert dls.vocab == ['cat']
    with pytest.raises(KeyError, match=r"fox.*0.png.*Label 'fox' was not included in the training dataset"):
        list(dls.valid)


def test_test_dl_uses_validation_transforms(photos):
    dls = small_dls(photos, bs=8, num_workers=0)
    files = get_image_files(photos)[:5]
    dl = dls.test_dl(files)
    (x,) = dl.one_batch()
    assert x.shape == (5, 3, 32, 32) and len(dl) == 1
    assert torch.equal(x, torch.cat([dls.test_dl([f]).one_batch()[0] for f in files]))   # item by item, the same
    xv = dls.test_dl([dls.valid_ds.items[0]]).one_batch()[0]
    assert torch.equal(xv[0], dls.valid.one_batch()[0][0])       # same transforms as valid, centred crop


def test_decode_batch_and_show_batch(photos):
    dls = small_dls(photos, bs=8, num_workers=0)
    samples = dls.decode_batch(dls.valid.one_batch(), max_n=3)
    assert len(samples) == 3 and all(isinstance(y, str) and y in dls.vocab for _, y in samples)
    axs = dls.show_batch(nrows=1, ncols=3)
    assert len(axs) == 3 and all(ax.get_title() in dls.vocab for ax in axs)
    plt.close('all')


def test_from_name_re_func_lists_df_csv(photos, tmp_path):
    import pandas as pd
    fnames = get_image_files(photos)
    kw = dict(item_tfms=Resize(24), bs=8, num_workers=0, seed=1)
    by_re = ImageDataLoaders.from_name_re(photos, fnames, PAT, **kw)
    by_func = ImageDataLoaders.from_name_func(photos, fnames, lambda n: n.rsplit('_', 1)[0], **kw)
    labels = [f.name.rsplit('_', 1)[0] for f in fnames]
    by_lists = ImageDataLoaders.from_lists(photos, fnames, labels, **kw)
    df = pd.DataFrame({'fname': [f.name for f in fnames], 'label': labels})
    by_df = ImageDataLoaders.from_df(df, photos, **kw)
    df.to_csv(tmp_path / 'labels.csv', index=False)
    by_csv = ImageDataLoaders.from_csv(tmp_path, folder=str(photos), **kw)
    for dls in (by_re, by_func, by_lists, by_df, by_csv):
        assert dls.vocab == by_re.vocab and len(dls.valid_ds) == 28
        assert torch.equal(dls.valid.one_batch()[1], by_re.valid.one_batch()[1])


def test_collate_plain_values():
    b = collate([(torch.zeros(2), 1, 'a'), (torch.ones(2), 2, 'b')])
    assert b[0].shape == (2, 2) and b[1].tolist() == [1, 2] and b[2] == ['a', 'b']


def test_empty_folder_and_no_matching_regex(tmp_path, pets_folder):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match="found no items in '.*empty'"):
        small_dls(tmp_path / 'empty')
    for name in ('scan.jpg', 'IMG-0001.jpg', 'photo (2).jpg'):
        (pets_folder / name).write_bytes((pets_folder / 'Bombay_0.jpg').read_bytes())
    with pytest.raises(ValueError, match=r'(?s)failed on 3 of 15 items: IMG-0001.jpg, photo \(2\).jpg, scan.jpg.*the regex') as e:
        small_dls(pets_folder)
    assert "does not match 'IMG-0001.jpg'" in str(e.value)


class FlipDL(DataLoader):
    """A loader whose per-item stage mirrors each image: the override must reach the workers and one_batch."""

    def load_item(self, i, apply=None):
        x, y = super().load_item(i, apply)
        return x.flip(-1), y


def test_stages_build_one_batch_and_the_worker_batches(photos):
    dls = small_dls(photos, bs=8, num_workers=0)
    valid = dls.valid
    idxs = valid.first_indices(8)
    staged = valid.finish_batch(valid.collate([valid.load_item(i) for i in idxs], idxs))
    x, y = valid.one_batch()
    assert idxs == list(range(8)) and torch.equal(staged[0], x) and torch.equal(staged[1], y)
    flip = FlipDL(valid.dataset, bs=8, num_workers=1, after_item=valid.after_item, after_batch=valid.after_batch)
    xf, yf = next(iter(flip))                       # built in a worker process
    assert type(xf) is TensorImage and torch.equal(xf, x.flip(-1)) and torch.equal(yf, y)
    assert torch.equal(flip.one_batch()[0], xf)


def test_load_item_names_the_item(pets_folder):
    (pets_folder / 'Bombay_99.jpg').write_text('not an image')
    dls = small_dls(pets_folder, bs=4, num_workers=0)
    dl, bad = next((dl, i) for dl in dls.loaders for i, o in enumerate(dl.items) if o.name == 'Bombay_99.jpg')
    with pytest.raises(Exception, match=rf'Could not load item {bad} \(.*Bombay_99.jpg\)'):
        dl.load_item(bad)


def _worker_processes(dl):
    return list(dl._torch_dl._iterator._workers)


def test_dropping_a_loader_stops_its_workers_without_waiting_for_the_garbage_collector(photos):
    import gc
    dl = small_dls(photos, bs=16, num_workers=2).train
    list(dl)
    workers = _worker_processes(dl)
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    gc.disable()          # a reference cycle would keep them running (then stall 5 s each) until a collection
    try:
        del dl
        assert all(w.exitcode is not None for w in workers)
    finally:
        gc.enable()


def test_a_killed_worker_is_replaced_at_the_next_epoch(photos):
    import os
    import signal
    dls = small_dls(photos, bs=16, num_workers=2)
    first = torch.cat([y for _, y in dls.train])
    for w in _worker_processes(dls.train):
        os.kill(w.pid, signal.SIGKILL)           # the OOM killer, or a user's kill, between two epochs
        w.join()
    second = torch.cat([y for _, y in dls.train])
    assert len(first) == len(second) == 112
    assert all(w.is_alive() for w in _worker_processes(dls.train))


def test_a_loader_pickles_for_spawned_workers(photos):
    import pickle
    from blocklearn.blocks.loader import _ItemDataset
    dls = small_dls(photos, bs=16, num_workers=0)
    copy = pickle.loads(pickle.dumps(_ItemDataset(dls.valid)))    # what a spawned worker receives
    i, (x, _) = copy[(3, None)]
    assert i == 3 and torch.equal(x, dls.valid.load_item(3)[0])


def test_an_items_random_transforms_depend_on_the_epoch_and_the_item_not_the_worker(photos):
    from blocklearn.vision.resize import RandomResizedCrop
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      get_y=using_attr(RegexLabeller(PAT), 'name'), splitter=RandomSplitter(seed=42),
                      item_tfms=RandomResizedCrop(24, min_scale=0.3))
    batches = []
    for workers in (1, 2):
        torch.manual_seed(5)
        dls = block.dataloaders(photos, bs=16, num_workers=workers)
        batches.append([x for x, _ in dls.train])
    assert len(batches[0]) == 7 and all(torch.equal(a, b) for a, b in zip(*batches))
    torch.manual_seed(6)
    assert not torch.equal(next(iter(dls.train))[0], batches[1][0])   # another epoch draw, other crops


@pytest.mark.parametrize('cores, device, expected', [(2, 'cpu', 0), (2, None, 0), (1, 'cpu', 0), (2, 'cuda', 1),
                                                     (4, 'cpu', 3), (16, 'cuda', 8)])
def test_default_workers_leave_a_small_cpu_to_the_model(monkeypatch, cores, device, expected):
    # on 2 cores a worker slowed CPU training more than loading in between steps did (bench/finetune.py)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(cores)), raising=False)
    assert default_num_workers(device) == expected


def test_a_loader_takes_its_default_workers_from_its_device(monkeypatch, photos):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1}, raising=False)
    assert small_dls(photos, bs=8).train.num_workers == 0  # device='cpu'
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3}, raising=False)
    assert small_dls(photos, bs=8).train.num_workers == 3
