"""Mixed precision: one epoch of resnet18 (random weights) on real images, in float32 and after `to_fp16()`.

`to_fp16()` autocasts only where that is faster (CUDA; CPUs with fast bfloat16 kernels); elsewhere it trains in
float32. The ratio float32 time / to_fp16 time must be >= 0.9 (never a slowdown). With `--forced` it also times
`to_fp16(force=True)`, the bfloat16 autocast every CPU got before, and with fastai 2.8.12 importable its two
figures too. Runs alternate and medians are compared; run it on an otherwise idle machine.

    python bench/fp16.py [--data data/fashion_tiny] [--size 28] [--bs 64] [--repeats 3] [--forced]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from blocklearn.callbacks.fp16 import amp_dtype
from blocklearn.vision.all import ImageDataLoaders, Resize, resnet18, vision_learner

__all__ = ['blocklearn_epoch', 'fastai_epoch', 'main']

ROOT = Path(__file__).resolve().parents[1]


def blocklearn_epoch(data: Path, size: int, bs: int, mode: str) -> float:
    """Seconds for `fit(1)` of a fresh resnet18 learner; `mode` is 'fp32', 'fp16' (to_fp16()) or 'forced'."""
    dls = ImageDataLoaders.from_folder(data, train='train', valid='valid', item_tfms=Resize(size), bs=bs,
                                       num_workers=0, device='cpu')
    torch.manual_seed(0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    if mode != 'fp32':
        learn.to_fp16(force=mode == 'forced')
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        learn.fit(1)
        return time.perf_counter() - start


def fastai_epoch(data: Path, size: int, bs: int, mode: str) -> float:
    """The same epoch with fastai 2.8.12 (its `to_fp16()` for 'fp16')."""
    from fastai.vision.all import ImageDataLoaders as FastaiLoaders
    from fastai.vision.all import Resize as FastaiResize
    from fastai.vision.all import vision_learner as fastai_learner
    dls = FastaiLoaders.from_folder(data, train='train', valid='valid', item_tfms=FastaiResize(size), bs=bs,
                                    num_workers=0, device='cpu')
    torch.manual_seed(0)
    learn = fastai_learner(dls, resnet18, pretrained=False)
    if mode != 'fp32':
        learn.to_fp16()
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        learn.fit(1)
        return time.perf_counter() - start


def _fastai_installed() -> bool:
    try:
        import fastai
    except ImportError:
        return False
    return fastai.__version__ == '2.8.12'


def _median_times(runs: list[tuple[str, Callable[[], float]]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for r in range(repeats):
        k = r % len(runs)                       # rotate who goes first, so drifts in load hit all alike
        for name, fn in runs[k:] + runs[:k]:
            times[name].append(fn())
            print(f'  {name:<28} {times[name][-1]:7.2f} s', flush=True)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=ROOT / 'data' / 'fashion_tiny')
    parser.add_argument('--size', type=int, default=28)
    parser.add_argument('--bs', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--forced', action='store_true', help='also time to_fp16(force=True), once (slow on CPU)')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    dtype, notice = amp_dtype('cpu')
    print(f'torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, '
          f'{torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}, '
          f'load average {os.getloadavg()[0]:.2f}')
    print(f'to_fp16() here: {dtype or torch.float32}' + (f' ({notice})' if notice else ''))
    print(f'{args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data}, {args.size} px, '
          f'bs {args.bs}, resnet18 from random weights, one epoch (train + valid)')
    logging.getLogger('blocklearn').setLevel(logging.WARNING)   # the notice above, not once per learner built
    a = (args.data, args.size, args.bs)
    blocklearn_epoch(*a, 'fp32')                # warm-up: first-call costs (kernels, file cache) out of the timing
    runs = [('blocklearn float32', lambda: blocklearn_epoch(*a, 'fp32')),
            ('blocklearn to_fp16()', lambda: blocklearn_epoch(*a, 'fp16'))]
    t = _median_times(runs, args.repeats)
    fp32, fp16 = t['blocklearn float32'], t['blocklearn to_fp16()']
    print(f'blocklearn: float32 {fp32:.2f} s, to_fp16() {fp16:.2f} s, ratio {fp32 / fp16:.3f} (target >= 0.9)')
    if args.forced:
        name = 'blocklearn to_fp16(force=True)'
        forced = _median_times([(name, lambda: blocklearn_epoch(*a, 'forced'))], 1)[name]
        print(f'{name} (bfloat16 autocast, what to_fp16() did before): {forced:.2f} s, ratio {fp32 / forced:.3f}')
    if _fastai_installed():
        fastai_epoch(*a, 'fp32')
        f = _median_times([('fastai 2.8.12 float32', lambda: fastai_epoch(*a, 'fp32')),
                           ('fastai 2.8.12 to_fp16()', lambda: fastai_epoch(*a, 'fp16'))], args.repeats)
        f32, f16 = f['fastai 2.8.12 float32'], f['fastai 2.8.12 to_fp16()']
        print(f'fastai 2.8.12: float32 {f32:.2f} s, to_fp16() {f16:.2f} s, ratio {f32 / f16:.3f}')
    else:
        print('fastai 2.8.12 not installed in this venv: no side-by-side figure')
    print(f'load average at the end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
