"""Everything a notebook needs, in one import: `from vision.all import *`.

The one module that star-imports; it also brings the names course notebooks use unqualified.
"""
# ruff: noqa: F401, F403
import math
import os
import random
import re
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn, tensor
from torchvision.models import (alexnet, densenet121, densenet169, mobilenet_v3_large, mobilenet_v3_small, resnet18,
                                resnet34, resnet50, resnet101, resnet152, squeezenet1_1, vgg16_bn)

from blocks.block import *
from blocks.categories import *
from blocks.datablock import *
from blocks.datasets import *
from blocks.external import *
from blocks.files import *
from blocks.labellers import *
from blocks.loader import *
from blocks.losses import *
from blocks.safe_io import *
from blocks.show import *
from blocks.splitters import *
from blocks.tensors import *
from blocks.transform import *
from callbacks.core import *
from callbacks.csv_logger import *
from callbacks.fp16 import *
from callbacks.grad_clip import *
from callbacks.lr_finder import *
from callbacks.progress import *
from callbacks.recorder import *
from callbacks.schedule import *
from callbacks.terminate import *
from callbacks.tracker import *
from callbacks.train_eval import *
from learner.callback_host import *
from learner.export import *
from learner.fit import *
from learner.interpret import *
from learner.learner import *
from learner.lr_find import *
from learner.metrics import *
from learner.optimizer import *
from learner.predict import *
from learner.schedules import *
from learner.show_results import *
from learner.tta import *
from vision.augment import *
from vision.block import *
from vision.core import *
from vision.data import *
from vision.learner import *
from vision.models import *
from vision.normalize import *
from vision.resize import *
from vision.show import *
from vision.utils import *
from blocks.labellers import noop
