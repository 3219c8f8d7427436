"""The job tests/test_distributed.py runs under torchrun (and, for the reference, in one plain process).

`python ddp_job.py train OUT`: two learners on data/fashion_tiny (a small MLP, no batch norm, dropout or
augmentation), global batch 32 split over the ranks; each rank writes what it ends with to OUT/rank<r>.pt.
`fit OUT`: the first learner's training only. `fail OUT`: rank 1 raises in the middle of the second epoch, after
the first epoch's checkpoint was written."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn

from blocklearn.blocks.block import CategoryBlock
from blocklearn.blocks.datablock import DataBlock
from blocklearn.blocks.labellers import parent_label
from blocklearn.blocks.rng import set_seed
from blocklearn.blocks.splitters import GrandparentSplitter
from blocklearn.callbacks.core import Callback
from blocklearn.callbacks.csv_logger import CSVLogger
from blocklearn.callbacks.distributed import num_distrib, rank_distrib
from blocklearn.callbacks.tracker import SaveModelCallback
from blocklearn.learner.interpret import ClassificationInterpretation
from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import F1Score, accuracy
from blocklearn.vision.block import ImageBlock
from blocklearn.vision.core import PILImageBW
from blocklearn.vision.data import get_image_files

FASHION = Path(__file__).resolve().parents[1] / 'data' / 'fashion_tiny'
GLOBAL_BS = 32


def make_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 10))


def make_learner(out: Path, drop_last: bool = True, cbs: list | None = None) -> Learner:
    """Global batch 32 whatever the number of processes: bs 32 // world each."""
    bs = GLOBAL_BS // max(num_distrib(), 1)
    block = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=get_image_files,
                      splitter=GrandparentSplitter(), get_y=parent_label)
    dls = block.dataloaders(FASHION, bs=bs, num_workers=0, device='cpu')
    dls.train.drop_last = drop_last
    return Learner(dls, make_model(), metrics=[accuracy, F1Score()], path=out, cbs=cbs)


def fit(out: Path) -> dict:
    """The weights fit_one_cycle ends with, on every rank."""
    set_seed(0)
    learn = make_learner(out)
    with learn.distrib_ctx():
        learn.fit_one_cycle(2, 1e-2)
    return {'weights': learn.model.state_dict()}


def train(out: Path) -> dict:
    """Both learners' weights and results; what every rank (and the reference process) ends with."""
    set_seed(0)
    learn = make_learner(out, cbs=SaveModelCallback(monitor='accuracy'))
    res: dict = {}
    with learn.distrib_ctx():
        learn.fit_one_cycle(2, 1e-2, cbs=CSVLogger())
        res['valid'] = learn.validate()
        res['preds'], res['targs'] = learn.get_preds()
        res['tta'] = learn.tta(n=1)[0]
        res['inputs'] = learn.get_preds(with_input=True)[0]
        interp = ClassificationInterpretation.from_learner(learn)
        res['confusion'], res['losses'] = interp.confusion_matrix(), interp.losses
        res['values'] = learn.recorder.values
        res['weights'] = {k: v.clone() for k, v in learn.model.state_dict().items()}
        res['lr_find'] = tuple(learn.lr_find(num_it=12, show_plot=False))
    learn.export('export.pkl')
    res['run_weights'], res['resumed_weights'] = resume(out / 'resume')
    # drop_last=False: the last global batch (300 = 9 * 32 + 12) is partial, so rank 1 holds only padding there.
    set_seed(1)
    partial = make_learner(out / 'partial', drop_last=False)
    with partial.distrib_ctx():
        partial.fit(1, 1e-2)
    res['partial_weights'] = {k: v.clone() for k, v in partial.model.state_dict().items()}
    return res


def resume(out: Path) -> tuple[dict, dict]:
    """fit_one_cycle(3) with a checkpoint every epoch, and the same run resumed from its first checkpoint."""
    set_seed(2)
    run = make_learner(out, cbs=SaveModelCallback(every_epoch=True))
    with run.distrib_ctx():
        run.fit_one_cycle(3, 1e-2)
    set_seed(3)  # the resumed run gets the random state of the first only from the checkpoint
    resumed = make_learner(out)
    with resumed.distrib_ctx():
        resumed.load('model_0')
        resumed.fit_one_cycle(3, 1e-2, start_epoch=1)
    return run.model.state_dict(), resumed.model.state_dict()


class _FailOnRank1(Callback):
    def after_batch(self) -> None:
        if self.learn.training and rank_distrib() == 1 and self.learn.epoch == 1 and self.learn.iter == 3:
            raise RuntimeError('rank 1 fails at batch 3 on purpose')


def fail(out: Path) -> None:
    learn = make_learner(out, cbs=[SaveModelCallback(every_epoch=True), _FailOnRank1()])
    with learn.distrib_ctx():
        learn.fit(2)


if __name__ == '__main__':
    mode, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    if mode == 'fail':
        fail(out)
    else:
        torch.save({'train': train, 'fit': fit}[mode](out), out / f'rank{rank_distrib()}.pt')
