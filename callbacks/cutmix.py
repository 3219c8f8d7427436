"""CutMix (Yun et al. 2019): paste a random box of another image of the batch; the loss is mixed by area."""
from __future__ import annotations

import math

import torch

from blocklearn.callbacks.mixup import MixHandler

__all__ = ['CutMix']


class CutMix(MixHandler):
    """Paste the box `box = (x1, y1, x2, y2)` of `x[shuffle]` into each training image; `lam` is the area left.

    One box and one `lam` per batch: its side is `sqrt(1 - l)` of the image's for `l ~ Beta(alpha, alpha)`, its
    centre uniform, clipped to the image; `lam = 1 - box area / image area` then weighs the two losses."""

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)
        self.box: tuple[int, int, int, int] | None = None

    def before_batch(self) -> None:
        x = self.xb[0]
        bs, (h, w) = x.shape[0], x.shape[-2:]
        self.shuffle = torch.randperm(bs, device=x.device)
        self.box = x1, y1, x2, y2 = self.rand_bbox(w, h, float(self.distrib.sample()))
        self.lam = torch.tensor(1 - (x2 - x1) * (y2 - y1) / (w * h), device=x.device)
        self.learn.xb = tuple(self._paste(o) if o.ndim >= 3 else o for o in self.xb)
        self.mix_targets()

    def _paste(self, o: torch.Tensor) -> torch.Tensor:
        x1, y1, x2, y2 = self.box
        out = o.clone()  # the loader's batch (learn.b) shares this memory: never write into it
        out[..., y1:y2, x1:x2] = o[self.shuffle][..., y1:y2, x1:x2]
        return out

    def rand_bbox(self, w: int, h: int, lam: float) -> tuple[int, int, int, int]:
        """A box of `1 - lam` of the area (before clipping) at a uniform random centre: `(x1, y1, x2, y2)`."""
        ratio = math.sqrt(1.0 - lam)
        cut_w, cut_h = round(w * ratio), round(h * ratio)
        cx, cy = int(torch.randint(0, w, (1,))), int(torch.randint(0, h, (1,)))
        x1, x2 = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
        y1, y2 = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
        return x1, y1, x2, y2
