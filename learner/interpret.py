"""Interpreting a trained model: top losses, confusion matrix, most confused pairs, per-class report, and the
lesson-1 views (random, most confident, most uncertain predictions)."""
from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import torch

from blocklearn.blocks.printable import printable
from blocklearn.blocks.show import get_grid, show_sample
from blocklearn.learner.metrics import precision_recall_f1

__all__ = ['Interpretation', 'ClassificationInterpretation']


class Interpretation:
    """Predictions of `learn` over `dl`, computed once, with the views that explain them.

    Holds per item only its prediction (probabilities), target, decoded prediction and loss; item `i` of these is
    item `i` of `dl.dataset`. A plot loads the few inputs it shows from the dataset, through the loader's stages
    (a pets-sized validation set at 224 px would otherwise hold about 0.9 GB of images). `inputs`, when given
    (a loader that cannot load one item, or a test), are kept and shown instead."""

    def __init__(self, learn: Any, dl: Any, inputs: Any, preds: torch.Tensor, targs: torch.Tensor,
                 decoded: torch.Tensor, losses: torch.Tensor):
        self.learn, self.dl, self.inputs, self.preds = learn, dl, inputs, preds
        self.targs, self.decoded, self.losses = targs, decoded, losses

    @classmethod
    def from_learner(cls, learn: Any, ds_idx: int = 1, dl: Any = None) -> Interpretation:
        """Run inference once over `dl` (default `learn.dls[ds_idx]`) and keep the predictions the views need."""
        dl = learn.dls[ds_idx] if dl is None else dl
        # Any iterable of batches may be interpreted; only one that can reload an item lets its inputs go.
        keep_inputs = not _can_load_items(dl)
        res = learn.get_preds(dl=dl, with_input=keep_inputs, with_decoded=True, with_loss=True)
        inputs, (preds, targs, decoded, losses) = (res[0], res[1:]) if keep_inputs else (None, res)
        return cls(learn, dl, inputs, preds, targs, decoded, losses)

    def load_inputs(self, idx: torch.Tensor | list[int]) -> tuple | None:
        """The inputs of items `idx` as the model saw them (after the batch transforms), as one batch tuple.

        Loaded again from `dl.dataset` through `load_item`, `collate` and `finish_batch` (on the validation split
        the transforms are not random, so these are the very inputs); None when there is nothing to show."""
        idx = [int(i) for i in idx]
        if self.inputs is not None:
            inputs = self.inputs if isinstance(self.inputs, tuple) else (self.inputs,)
            return tuple(x[idx] for x in inputs) if idx else None
        if not idx or not _can_load_items(self.dl):
            return None
        dl = self.dl
        b = dl.finish_batch(dl.collate([dl.load_item(i) for i in idx], idx))
        b = b if isinstance(b, tuple) else (b,)
        return tuple(_cpu(x) for x in b[:dl.n_inp])

    def top_losses(self, k: int | None = None, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The `k` largest (or smallest) per-item losses and their indices (all items when `k` is None)."""
        k = len(self.losses) if k is None else min(k, len(self.losses))
        return self.losses.topk(k, largest=largest)


class ClassificationInterpretation(Interpretation):
    """Views for single-label classification: confusion matrix, most confused pairs, classification report, and
    random / most confident / most uncertain predictions (each returns indices; its `plot_*` twin draws them)."""

    def __init__(self, learn: Any, dl: Any, inputs: Any, preds: torch.Tensor, targs: torch.Tensor,
                 decoded: torch.Tensor, losses: torch.Tensor):
        super().__init__(learn, dl, inputs, preds, targs, decoded, losses)
        vocab = getattr(dl, 'vocab', None)
        if vocab is None and learn is not None:
            vocab = getattr(learn.dls, 'vocab', None)
        self.vocab = list(vocab) if vocab is not None else [str(i) for i in range(preds.shape[-1])]

    def confusion_matrix(self) -> np.ndarray:
        """`cm[actual, predicted]`: how many items of each actual class got each predicted class."""
        n = len(self.vocab)
        t = torch.as_tensor(self.targs).long().flatten().cpu()
        d = torch.as_tensor(self.decoded).long().flatten().cpu()
        return torch.bincount(t * n + d, minlength=n * n).reshape(n, n).numpy().astype(np.int64)

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """Off-diagonal `(actual, predicted, count)` with count >= `min_val`, most frequent first (ties row-major)."""
        cm = self.confusion_matrix()
        pairs = [(self.vocab[i], self.vocab[j], int(cm[i, j])) for i in range(len(cm)) for j in range(len(cm))
                 if i != j and cm[i, j] >= min_val]
        return sorted(pairs, key=lambda p: -p[2])  # stable sort keeps row-major order among ties

    def plot_confusion_matrix(self, normalize: bool = False, title: str = 'Confusion matrix', cmap: str = 'Blues',
                              norm_dec: int = 2, plot_txt: bool = True, figsize: tuple | None = None,
                              dpi: int | None = None, return_fig: bool = False, **kwargs) -> Any:
        """Draw the confusion matrix (rows actual, columns predicted), optionally row-normalized.

        Returns the figure only with `return_fig` (a returned figure would show twice in a notebook)."""
        import matplotlib.pyplot as plt  # pyplot is slow to import and only drawing needs it
        cm = self.confusion_matrix()
        if normalize:
            cm = cm.astype(float) / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig = plt.figure(figsize=figsize, dpi=dpi, **kwargs)
        plt.imshow(cm, interpolation='nearest', cmap=cmap)
        plt.title(printable(title))
        ticks = np.arange(len(self.vocab))
        labels = [printable(v) for v in self.vocab]  # a label from a file name that is not UTF-8 cannot be drawn
        plt.xticks(ticks, labels, rotation=90)
        plt.yticks(ticks, labels, rotation=0)
        if plot_txt:
            thresh = cm.max() / 2.
            for i in range(cm.shape[0]):
                for j in range(cm.shape[1]):
                    txt = f'{cm[i, j]:.{norm_dec}f}' if normalize else f'{cm[i, j]}'
                    plt.text(j, i, txt, horizontalalignment='center', verticalalignment='center',
                             color='white' if cm[i, j] > thresh else 'black')
        ax = fig.gca()
        ax.set_ylim(len(self.vocab) - .5, -.5)
        plt.tight_layout()
        plt.ylabel('Actual')
        plt.xlabel('Predicted')
        plt.grid(False)
        return fig if return_fig else None

    def plot_top_losses(self, k: int, nrows: int | None = None, largest: bool = True,
                        figsize: tuple | None = None, return_fig: bool = False, **kwargs) -> Any:
        """Show the `k` worst (or best) items, titled `pred/actual / loss / prob of the predicted class`."""
        losses, idx = self.top_losses(k, largest=largest)
        titles = [f'{self.vocab[int(self.decoded[i])]}/{self.vocab[int(self.targs[i])]} / {float(loss):.2f} / '
                  f'{float(self.preds[i, int(self.decoded[i])]):.2f}' for loss, i in zip(losses, idx.tolist())]
        fig = self._plot_items(idx, titles, nrows=nrows, figsize=figsize, **kwargs)
        return fig if return_fig else None

    # -- lesson-1 views: random, most confident and most uncertain predictions ---------------------------
    def random_predictions(self, k: int = 4, correct: bool = True, seed: int | None = None) -> torch.Tensor:
        """Indices (ascending) of up to `k` random items predicted right (`correct`) or wrong; `seed` repeats a draw."""
        pool = torch.nonzero(self._is_correct() == correct).flatten()
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return pool[torch.randperm(len(pool), generator=g)[:max(k, 0)]].sort().values

    def plot_random(self, k: int = 4, correct: bool = True, seed: int | None = None, return_fig: bool = False,
                    **kwargs) -> Any:
        """Draw `random_predictions(k, correct, seed)` titled `actual / predicted / prob` (the figure with `return_fig`)."""
        idx = self.random_predictions(k, correct, seed)
        what = 'correct' if correct else 'incorrect'
        return self._plot_view(idx, f'Random {what} predictions', f'No {what} predictions to show.', return_fig,
                               **kwargs)

    def most_confident(self, label: str | int, k: int = 4, correct: bool = True) -> torch.Tensor:
        """Indices of up to `k` items whose actual class is `label` (a vocab entry or its index).

        `correct`: the ones predicted right, highest probability of `label` first; else the ones predicted wrong,
        most confident wrong prediction first."""
        c = self._class_index(label)
        is_c = self._targ_idx() == c
        if correct:
            pool, conf = is_c & self._is_correct(), self.preds[:, c]
        else:
            pool, conf = is_c & ~self._is_correct(), self._pred_prob()
        return _top(pool, conf, k, largest=True)

    def plot_most_confident(self, label: str | int, k: int = 4, correct: bool = True, return_fig: bool = False,
                            **kwargs) -> Any:
        """Draw `most_confident(label, k, correct)` titled `actual / predicted / prob` (the figure with `return_fig`)."""
        idx = self.most_confident(label, k, correct)
        name = self.vocab[self._class_index(label)]
        what = 'correct' if correct else 'incorrect'
        empty = f'No {name} item was predicted {"right" if correct else "wrong"}.'
        return self._plot_view(idx, f'Most confident {what}: {name}', empty, return_fig, **kwargs)

    def most_uncertain(self, k: int = 4) -> torch.Tensor:
        """Indices of the `k` items with the smallest margin between their top two class probabilities.

        With two classes that is the probability nearest 0.5."""
        if self.preds.shape[-1] < 2:
            raise ValueError('most_uncertain needs predictions over at least two classes.')
        top2 = self.preds.float().cpu().topk(2, dim=1).values
        return _top(torch.ones(len(top2), dtype=torch.bool), top2[:, 0] - top2[:, 1], k, largest=False)

    def plot_most_uncertain(self, k: int = 4, return_fig: bool = False, **kwargs) -> Any:
        """Draw `most_uncertain(k)` titled `actual / predicted / prob` (the figure with `return_fig`)."""
        return self._plot_view(self.most_uncertain(k), 'Most uncertain predictions', 'No predictions to show.',
                               return_fig, **kwargs)

    def _is_correct(self) -> torch.Tensor:
        return self._targ_idx() == self._dec_idx()

    def _targ_idx(self) -> torch.Tensor:
        return _plain_long(self.targs)

    def _dec_idx(self) -> torch.Tensor:
        return _plain_long(self.decoded)

    def _pred_prob(self) -> torch.Tensor:
        """The probability each item's predicted class got."""
        return self.preds.float().cpu().gather(1, self._dec_idx()[:, None]).flatten()

    def _class_index(self, label: str | int) -> int:
        if isinstance(label, str):
            if label in self.vocab:
                return self.vocab.index(label)
            close = difflib.get_close_matches(label, self.vocab, n=1)
            hint = f' Did you mean {close[0]!r}?' if close else ''
            raise ValueError(f'Unknown label {label!r}: it is not in the vocab {self.vocab}.{hint}')
        i = int(label)
        if not 0 <= i < len(self.vocab):
            raise ValueError(f'Label index {i} is out of range: the vocab has {len(self.vocab)} classes {self.vocab}.')
        return i

    def _plot_view(self, idx: torch.Tensor, title: str, empty: str, return_fig: bool, **kwargs) -> Any:
        # An empty view still draws a figure: its title says why nothing is shown.
        dec, targs, probs = self.decoded, self.targs, self._pred_prob()
        titles = [f'{self.vocab[int(targs[i])]} / {self.vocab[int(dec[i])]} / {float(probs[i]):.2f}'
                  for i in idx.tolist()]
        fig = self._plot_items(idx, titles, suptitle=title if len(idx) else empty, **kwargs)
        return fig if return_fig else None

    def _plot_items(self, idx: torch.Tensor, titles: list[str], nrows: int | None = None,
                    figsize: tuple | None = None, suptitle: str | None = None, **kwargs) -> Any:
        """One cell per item of `idx`: its decoded input, titled with `titles`; returns the figure."""
        fig, axs = get_grid(len(idx), nrows=nrows, figsize=figsize, title=suptitle, return_fig=True)
        inputs = self.load_inputs(idx)  # only the items shown are loaded
        for n, (ax, title) in enumerate(zip(axs, titles)):
            if inputs is not None:  # an interpretation built from predictions alone has titles only
                show_sample(self._decoded_input(tuple(x[n:n + 1] for x in inputs)), ctx=ax, **kwargs)
            ax.set_title(printable(title))
        return fig

    def _decoded_input(self, xb: tuple) -> tuple:
        # The loader decodes batch transforms (Normalize, ...) and item transforms back to showable images.
        if hasattr(self.dl, 'decode_batch'):
            return tuple(self.dl.decode_batch(xb, max_n=1)[0])
        return tuple(x[0] for x in xb)  # a plain iterable of batches: the item as the model saw it

    def classification_report(self) -> dict[str, dict[str, float]]:
        """Precision, recall, f1 and support per class, plus 'macro avg' and 'weighted avg'.

        Computed by `precision_recall_f1`, as the `Precision`, `Recall` and `F1Score` metrics are: the same numbers.
        So the macro average leaves out a class absent from both targets and predictions (its row shows zeros)."""
        cm = self.confusion_matrix()
        support = cm.sum(axis=1)
        per_class = precision_recall_f1(cm, average=None)
        report = {c: {'precision': float(p), 'recall': float(r), 'f1-score': float(f), 'support': int(s)}
                  for c, p, r, f, s in zip(self.vocab, *per_class, support)}
        for name, average in (('macro avg', 'macro'), ('weighted avg', 'weighted')):
            p, r, f = precision_recall_f1(cm, average=average)
            report[name] = {'precision': float(p), 'recall': float(r), 'f1-score': float(f),
                            'support': int(support.sum())}
        return report

    def print_classification_report(self) -> dict[str, dict[str, float]]:
        """Print `classification_report()` as a table (and return it)."""
        report = self.classification_report()
        width = max(12, *(len(printable(c)) for c in report))
        lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
        for name, r in report.items():
            if name == 'macro avg':
                lines.append('')
            lines.append(f"{printable(name):>{width}} {r['precision']:>9.2f} {r['recall']:>9.2f} {r['f1-score']:>9.2f} "
                         f"{r['support']:>9d}")
        print('\n'.join(lines))
        return report


def _top(pool: torch.Tensor, score: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Indices of up to `k` items of the boolean `pool`, by `score` (ties keep item order)."""
    cand = torch.nonzero(pool).flatten()
    order = score.as_subclass(torch.Tensor).float().cpu()[cand].sort(descending=largest, stable=True).indices
    return cand[order[:max(k, 0)]]


def _can_load_items(dl: Any) -> bool:
    """Whether `dl` can rebuild one item's input batch (a blocklearn DataLoader over an indexable dataset)."""
    return all(hasattr(dl, a) for a in ('dataset', 'load_item', 'collate', 'finish_batch', 'n_inp'))


def _cpu(o: Any) -> Any:
    # On the CPU, as get_preds gathers inputs: decoding and drawing then happen where they always did.
    return o.detach().cpu() if isinstance(o, torch.Tensor) else o


def _plain_long(t: Any) -> torch.Tensor:
    # Plain tensors out: indices typed TensorCategory would print and index like labels.
    return torch.as_tensor(t).as_subclass(torch.Tensor).long().flatten().cpu()
