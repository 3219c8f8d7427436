"""Everything a notebook needs, in one import: `from blocklearn.vision.all import *`.

The one module that star-imports (each module's `__all__`); it also brings the names course notebooks use
unqualified. fastai's other lines (`fastai.basics`, `fastai.data.all`, `fastai.callback.all`) map to this one.
"""
# ruff: noqa: F401, F403
import math
import os
import random
import re
import string
from functools import partial
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from numpy import array
from PIL import Image
from torch import nn
from torchvision.models import (alexnet, densenet121, densenet169, mobilenet_v3_large, mobilenet_v3_small, resnet18,
                                resnet34, resnet50, resnet101, resnet152, squeezenet1_1, vgg16_bn)

from blocklearn.blocks.block import *
from blocklearn.blocks.categories import *
from blocklearn.blocks.collection import *
from blocklearn.blocks.convert import *
from blocklearn.blocks.datablock import *
from blocklearn.blocks.datasets import *
from blocklearn.blocks.doc import *
from blocklearn.blocks.external import *
from blocklearn.blocks.files import *
from blocklearn.blocks.labellers import *
from blocklearn.blocks.loader import *
from blocklearn.blocks.losses import *
from blocklearn.blocks.plot import *
from blocklearn.blocks.rng import *
from blocklearn.blocks.printable import *
from blocklearn.blocks.safe_io import *
from blocklearn.blocks.shard import *
from blocklearn.blocks.show import *
from blocklearn.blocks.splitters import *
from blocklearn.blocks.tensors import *
from blocklearn.blocks.transform import *
from blocklearn.callbacks.channels_last import *
from blocklearn.callbacks.core import *
from blocklearn.callbacks.csv_logger import *
from blocklearn.callbacks.cutmix import *
from blocklearn.callbacks.distributed import *
from blocklearn.callbacks.fp16 import *
from blocklearn.callbacks.gather_preds import *
from blocklearn.callbacks.grad_accum import *
from blocklearn.callbacks.grad_clip import *
from blocklearn.callbacks.lr_finder import *
from blocklearn.callbacks.mixup import *
from blocklearn.callbacks.progress import *
from blocklearn.callbacks.recorder import *
from blocklearn.callbacks.schedule import *
from blocklearn.callbacks.show_graph import *
from blocklearn.callbacks.terminate import *
from blocklearn.callbacks.tracker import *
from blocklearn.callbacks.train_eval import *
from blocklearn.learner.distributed import *
from blocklearn.learner.export import *
from blocklearn.learner.load import *
from blocklearn.learner.interpret import *
from blocklearn.learner.learner import *
from blocklearn.learner.lr_find import SuggestedLRs, minimum, slide, steep, suggestion_points, valley
from blocklearn.learner.metrics import *
from blocklearn.learner.model_summary import *
from blocklearn.learner.optimizer import *
from blocklearn.learner.schedules import *
from blocklearn.learner.torchmetric import *
from blocklearn.vision.augment import *
from blocklearn.vision.block import *
from blocklearn.vision.core import *
from blocklearn.vision.data import *
from blocklearn.vision.efficientnet import *
from blocklearn.vision.extras import *
from blocklearn.vision.item_augment import *
from blocklearn.vision.learner import *
from blocklearn.vision.mask import *
from blocklearn.vision.models import *
from blocklearn.vision.normalize import *
from blocklearn.vision.points import *
from blocklearn.vision.resize import *
from blocklearn.vision.show import *
from blocklearn.vision.timm_models import *
from blocklearn.vision.unet import *
from blocklearn.vision.utils import *
from blocklearn.vision.xresnet import *
from blocklearn.blocks.basics import *
# Last, so it replaces pathlib's imported above: notebooks' `Path` is the subclass with fastai's `ls()`.
from blocklearn.blocks.files import Path  # noqa: F811
