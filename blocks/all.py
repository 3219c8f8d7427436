"""The data half of the library in one import, for notebooks: `from blocklearn.blocks.all import *`
(what `from fastai.data.all import *` brings). It re-exports each module's `__all__`, and nothing else."""
# ruff: noqa: F401, F403
from blocklearn.blocks.basics import *
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
from blocklearn.blocks.printable import *
from blocklearn.blocks.rng import *
from blocklearn.blocks.safe_io import *
from blocklearn.blocks.show import *
from blocklearn.blocks.splitters import *
from blocklearn.blocks.tensors import *
from blocklearn.blocks.transform import *
