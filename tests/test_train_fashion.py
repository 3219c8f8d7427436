"""Real training from random init on the committed Fashion-MNIST sample (lesson-1 folder layout)."""
import torch
from torch import nn

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import parent_label
from blocklearn.blocks.splitters import GrandparentSplitter
from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import accuracy
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.core import PILImageBW
from blocklearn.vision.data import get_image_files


def small_cnn(n_out: int) -> nn.Module:
    def block(ni, nf):
        return nn.Sequential(nn.Conv2d(ni, nf, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(nf), nn.ReLU())
    return nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, n_out))


def test_small_cnn_from_scratch_learns_fashion(fashion):
    torch.manual_seed(0)
    block = DataBlock(blocks=(ImageBlock(PILImageBW), CategoryBlock), get_items=get_image_files,
                      splitter=GrandparentSplitter(), get_y=parent_label)
    dls = block.dataloaders(fashion, bs=32, num_workers=0)
    learn = Learner(dls, small_cnn(dls.c), metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(6, 1e-2)
    acc = learn.recorder.values[-1][-1]
    # 10 classes (chance 0.10), 300 training images, 6 epochs; measured 0.63 and 0.66 with seeds 1 and 2.
    assert acc >= 0.55, learn.recorder.values
