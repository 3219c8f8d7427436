"""Every callback in one import, for notebooks: `from blocklearn.callbacks.all import *`
(what `from fastai.callback.all import *` brings). It re-exports each module's `__all__`, and nothing else."""
# ruff: noqa: F401, F403
from blocklearn.callbacks.channels_last import *
from blocklearn.callbacks.core import *
from blocklearn.callbacks.csv_logger import *
from blocklearn.callbacks.cutmix import *
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
