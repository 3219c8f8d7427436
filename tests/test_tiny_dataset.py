"""A batch size larger than the training split: summary, dataloaders, fit, lr_find and the CLI all say so, with
the fix, instead of training on no batch at all."""
import re
import subprocess
import sys

import pytest

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import RegexLabeller, using_attr
from blocklearn.blocks.splitters import RandomSplitter
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.data import get_image_files
from blocklearn.vision.learner import vision_learner
from blocklearn.vision.resize import Resize
from torchvision.models import resnet18

PAT = r'(.+)_\d+.jpg$'
SAYS = r'training split has 10 items and bs is 64.*no batch.*bs=8'


def tiny_block() -> DataBlock:
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=RandomSplitter(seed=0),
                     get_y=using_attr(RegexLabeller(PAT), 'name'), item_tfms=Resize(16))


def test_dataloaders_and_summary_warn_with_the_fix(pets_folder):
    with pytest.warns(UserWarning, match=SAYS):
        dls = tiny_block().dataloaders(pets_folder, bs=64, num_workers=0)
    assert len(dls.train) == 0 and len(dls.train_ds) == 10
    lines = []
    tiny_block().summary(pets_folder, bs=4, print_fn=lines.append)   # the loaders' bs is dataloaders()' default
    assert not any('Everything checks out' in line for line in lines)
    assert re.search(r'Warning! With dataloaders\(bs=64\): The ' + SAYS, lines[-1])


def test_fit_and_lr_find_refuse_instead_of_training_nothing(pets_folder):
    with pytest.warns(UserWarning):
        dls = tiny_block().dataloaders(pets_folder, bs=64, num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    before = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match=SAYS):
        learn.fit_one_cycle(1)
    with pytest.raises(ValueError, match=SAYS):
        learn.lr_find(show_plot=False)
    assert all((a == b).all() for a, b in zip(before, learn.model.parameters()))


def test_cli_default_bs_on_a_small_folder_is_one_line(pets_folder):
    # A real process: Python's own warning printout must not add lines around the error.
    proc = subprocess.run([sys.executable, '-m', 'blocklearn.vision', 'train', str(pets_folder), '--label-re', PAT,
                           '--size', '16', '--epochs', '1'], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and re.search(SAYS, proc.stderr) and 'Traceback' not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert 'Warning! With dataloaders(bs=64)' in proc.stdout        # summary said it first
