"""Everything but images in one import, for notebooks: `from blocklearn.learner.all import *` (what
`from fastai.basics import *` brings): the data blocks, the callbacks, the Learner, its metrics and tools.

The learner's methods (`lr_find`, `fit_one_cycle`, `predict`, ...) come as methods, not as bare functions."""
# ruff: noqa: F401, F403
from blocklearn.blocks.all import *
from blocklearn.callbacks.all import *
from blocklearn.learner.export import *
from blocklearn.learner.interpret import *
from blocklearn.learner.learner import *
from blocklearn.learner.load import *
from blocklearn.learner.lr_find import SuggestedLRs, minimum, slide, steep, suggestion_points, valley
from blocklearn.learner.metrics import *
from blocklearn.learner.model_summary import *
from blocklearn.learner.optimizer import *
from blocklearn.learner.schedules import *
from blocklearn.learner.torchmetric import *
