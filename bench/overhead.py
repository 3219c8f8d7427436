"""Learner overhead: `Learner.fit` (default callbacks + accuracy) against a hand-written torch loop.

Both train the same tiny MLP on the same pre-batched tensors with the same optimizer numbers (torch AdamW with
fastai's hyper-parameters and wd 0.01 on weights only, which the Learner's Adam matches bit for bit), and both
report train loss, valid loss and accuracy each epoch. Runs are interleaved and medians compared.
Target: ratio <= 1.10 (fastai 2.8.12: 2.27x, +0.9 ms per batch).

    python bench/overhead.py [--epochs 3] [--repeats 15] [--n-train 200] [--hidden 50]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from blocklearn.learner.learner import Learner
from blocklearn.learner.metrics import accuracy

__all__ = ['PreBatched', 'make_data', 'make_model', 'torch_loop', 'learner_loop', 'fastai_loop', 'main']


class PreBatched:
    """The DataLoaders duck type over lists of ready batches."""

    def __init__(self, train: list, valid: list):
        self.train, self.valid, self.n_inp, self.device = train, valid, 1, None
        self.loss_func = F.cross_entropy

    def __getitem__(self, i: int) -> list:
        return (self.train, self.valid)[i]


def make_data(n_train: int, n_valid: int, bs: int, n_in: int = 20, n_out: int = 10) -> PreBatched:
    """Random inputs with labels from a random linear teacher, as lists of (x, y) batches."""
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(n_in, n_out, generator=g)

    def batches(n: int) -> list:
        out = []
        for _ in range(n):
            x = torch.randn(bs, n_in, generator=g)
            out.append((x, (x @ teacher).argmax(1)))
        return out
    return PreBatched(batches(n_train), batches(n_valid))


def make_model(hidden: int, n_in: int = 20, n_out: int = 10) -> nn.Module:
    """A two-layer MLP with a fixed initialisation."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def torch_loop(dls: PreBatched, model: nn.Module, epochs: int, lr: float) -> list:
    """What one writes by hand: train, then validate with loss and accuracy, one row per epoch."""
    decay = [p for n, p in model.named_parameters() if not n.endswith('bias')]
    no_decay = [p for n, p in model.named_parameters() if n.endswith('bias')]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.01}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=lr, betas=(0.9, 0.99), eps=1e-5)
    rows = []
    for _ in range(epochs):
        model.train()
        train_loss = 0.0
        for x, y in dls.train:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            train_loss += loss.item()
        model.eval()
        losses, accs, counts = [], [], []
        with torch.no_grad():
            for x, y in dls.valid:
                pred = model(x)
                losses.append(F.cross_entropy(pred, y))
                accs.append(accuracy(pred, y))
                counts.append(len(y))
        n = torch.tensor(counts, dtype=torch.float64)
        rows.append([train_loss / len(dls.train), (torch.stack(losses).double() * n).sum().item() / n.sum().item(),
                     (torch.stack(accs).double() * n).sum().item() / n.sum().item()])
        print(rows[-1])
    return rows


def learner_loop(dls: PreBatched, model: nn.Module, epochs: int, lr: float) -> list:
    """`Learner.fit` with the default callbacks (TrainEval, Recorder, Progress) and `accuracy`."""
    learn = Learner(dls, model, metrics=accuracy, lr=lr)
    learn.fit(epochs)
    return learn.recorder.values


def fastai_loop(dls: PreBatched, model: nn.Module, epochs: int, lr: float) -> list:
    """fastai 2.8.12's `Learner.fit` with its default callbacks and `accuracy`, on the same batches (when installed)."""
    from fastai.learner import Learner as FastaiLearner
    from fastai.metrics import accuracy as fastai_accuracy
    learn = FastaiLearner(dls, model, loss_func=F.cross_entropy, metrics=fastai_accuracy, lr=lr)
    learn.fit(epochs)
    return learn.recorder.values


def _fastai_installed() -> bool:
    try:
        import fastai
    except ImportError:
        return False
    return fastai.__version__ == '2.8.12'


def _timed(fn, *args) -> float:
    # Both loops print their table; sending it to a buffer keeps the terminal out of the timing.
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        fn(*args)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--n-train', type=int, default=200)
    parser.add_argument('--n-valid', type=int, default=50)
    parser.add_argument('--bs', type=int, default=64)
    parser.add_argument('--hidden', type=int, default=50)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dls = make_data(args.n_train, args.n_valid, args.bs)
    lr = 1e-3
    _timed(torch_loop, dls, make_model(args.hidden), 1, lr)
    _timed(learner_loop, dls, make_model(args.hidden), 1, lr)
    plain, learner, fastai = [], [], []
    order = [(plain, torch_loop), (learner, learner_loop)]
    if _fastai_installed():
        _timed(fastai_loop, dls, make_model(args.hidden), 1, lr)
        order.append((fastai, fastai_loop))
    for r in range(args.repeats):
        # Rotate which goes first so drifts in machine load hit all alike.
        k = r % len(order)
        for times, fn in order[k:] + order[:k]:
            times.append(_timed(fn, dls, make_model(args.hidden), args.epochs, lr))
    t_plain, t_learn = statistics.median(plain), statistics.median(learner)
    n_batches = args.epochs * (args.n_train + args.n_valid)
    print(f'torch loop  : {t_plain * 1e3:8.1f} ms  ({t_plain / n_batches * 1e3:.3f} ms/batch)')
    print(f'Learner.fit : {t_learn * 1e3:8.1f} ms  ({t_learn / n_batches * 1e3:.3f} ms/batch)')
    print(f'ratio       : {t_learn / t_plain:.3f}  (target <= 1.10; best runs: {min(learner) / min(plain):.3f})')
    print(f'overhead    : {(t_learn - t_plain) / n_batches * 1e3:.4f} ms per batch '
          f'({args.epochs} epochs x {args.n_train} train + {args.n_valid} valid batches, bs {args.bs})')
    if fastai:
        t_fastai = statistics.median(fastai)
        print(f'fastai 2.8.12 Learner.fit: {t_fastai * 1e3:8.1f} ms  ({t_fastai / n_batches * 1e3:.3f} ms/batch), '
              f'ratio {t_fastai / t_plain:.3f}, overhead {(t_fastai - t_plain) / n_batches * 1e3:.4f} ms per batch')
    else:
        print('fastai 2.8.12 not installed in this venv: no side-by-side figure')


if __name__ == '__main__':
    main()
