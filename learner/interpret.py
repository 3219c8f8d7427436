"""Interpreting a trained model: top losses, confusion matrix, most confused pairs, per-class report."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from blocks.show import get_grid, show_sample

__all__ = ['Interpretation', 'ClassificationInterpretation']


class Interpretation:
    """Predictions of `learn` over `dl`, computed once, with the views that explain them."""

    def __init__(self, learn: Any, dl: Any, inputs: Any, preds: torch.Tensor, targs: torch.Tensor,
                 decoded: torch.Tensor, losses: torch.Tensor):
        self.learn, self.dl, self.inputs, self.preds = learn, dl, inputs, preds
        self.targs, self.decoded, self.losses = targs, decoded, losses

    @classmethod
    def from_learner(cls, learn: Any, ds_idx: int = 1, dl: Any = None) -> Interpretation:
        """Run inference once over `dl` (default `learn.dls[ds_idx]`) and keep everything the views need."""
        dl = learn.dls[ds_idx] if dl is None else dl
        inputs, preds, targs, decoded, losses = learn.get_preds(dl=dl, with_input=True, with_decoded=True,
                                                                with_loss=True)
        return cls(learn, dl, inputs, preds, targs, decoded, losses)

    def top_losses(self, k: int | None = None, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The `k` largest (or smallest) per-item losses and their indices (all items when `k` is None)."""
        k = len(self.losses) if k is None else min(k, len(self.losses))
        return self.losses.topk(k, largest=largest)


class ClassificationInterpretation(Interpretation):
    """Views for single-label classification: confusion matrix, most confused pairs, classification report."""

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
                              dpi: int | None = None, **kwargs) -> Any:
        """Draw the confusion matrix (rows actual, columns predicted), optionally row-normalized; returns the figure."""
        import matplotlib.pyplot as plt  # pyplot is slow to import and only drawing needs it
        cm = self.confusion_matrix()
        if normalize:
            cm = cm.astype(float) / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig = plt.figure(figsize=figsize, dpi=dpi, **kwargs)
        plt.imshow(cm, interpolation='nearest', cmap=cmap)
        plt.title(title)
        ticks = np.arange(len(self.vocab))
        plt.xticks(ticks, self.vocab, rotation=90)
        plt.yticks(ticks, self.vocab, rotation=0)
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
        return fig

    def plot_top_losses(self, k: int, nrows: int | None = None, largest: bool = True,
                        figsize: tuple | None = None, **kwargs) -> Any:
        """Show the `k` worst (or best) items, titled `pred/actual / loss / prob of the predicted class`."""
        losses, idx = self.top_losses(k, largest=largest)
        fig, axs = get_grid(len(idx), nrows=nrows, figsize=figsize, return_fig=True)
        inputs = self.inputs if isinstance(self.inputs, tuple) else (self.inputs,)
        for ax, loss, i in zip(axs, losses, idx.tolist()):
            sample = self._decoded_input(tuple(x[i:i + 1] for x in inputs))
            show_sample(sample, ctx=ax, **kwargs)
            pred, actual = int(self.decoded[i]), int(self.targs[i])
            ax.set_title(f'{self.vocab[pred]}/{self.vocab[actual]} / {float(loss):.2f} / '
                         f'{float(self.preds[i, pred]):.2f}')
        return fig

    def _decoded_input(self, xb: tuple) -> tuple:
        # The loader decodes batch transforms (Normalize, ...) and item transforms back to showable images.
        if hasattr(self.dl, 'decode_batch'):
            return tuple(self.dl.decode_batch(xb, max_n=1)[0])
        return xb

    def classification_report(self) -> dict[str, dict[str, float]]:
        """Precision, recall, f1 and support per class, plus 'macro avg' and 'weighted avg'."""
        cm = self.confusion_matrix().astype(float)
        tp, support = np.diag(cm), cm.sum(axis=1)
        predicted = cm.sum(axis=0)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
        report = {c: {'precision': float(p), 'recall': float(r), 'f1-score': float(f), 'support': int(s)}
                  for c, p, r, f, s in zip(self.vocab, precision, recall, f1, support)}
        total = support.sum()
        weights = support / total if total > 0 else np.zeros_like(support)
        report['macro avg'] = {'precision': float(precision.mean()), 'recall': float(recall.mean()),
                               'f1-score': float(f1.mean()), 'support': int(total)}
        report['weighted avg'] = {'precision': float((precision * weights).sum()),
                                  'recall': float((recall * weights).sum()),
                                  'f1-score': float((f1 * weights).sum()), 'support': int(total)}
        return report

    def print_classification_report(self) -> dict[str, dict[str, float]]:
        """Print `classification_report()` as a table (and return it)."""
        report = self.classification_report()
        width = max(12, *(len(str(c)) for c in report))
        lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
        for name, r in report.items():
            if name == 'macro avg':
                lines.append('')
            lines.append(f"{name:>{width}} {r['precision']:>9.2f} {r['recall']:>9.2f} {r['f1-score']:>9.2f} "
                         f"{r['support']:>9d}")
        print('\n'.join(lines))
        return report
