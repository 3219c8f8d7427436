"""What a user waits for: `fine_tune(1)` of resnet18 at 128 px on 640 pets-like JPEGs, data included.

Three runs of the same job, each in its own process, interleaved, medians compared:
  blocklearn  ImageDataLoaders.from_name_re(item_tfms=Resize(160), batch_tfms=aug_transforms(size=128)+Normalize)
  fastai      the same lines with fastai 2.8.12 (when it is installed in this venv)
  floor       the same model, splitter, loss and fine_tune (blocklearn's Learner, whose loop costs the same as a
              hand-written torch loop: bench/overhead.py) on batches decoded, resized and normalised beforehand
              and held in memory: the model's time alone.
Targets: blocklearn <= 1.15x the floor, and faster than fastai. Run it on an otherwise idle machine.

    python bench/finetune.py [--n-images 640] [--repeats 3] [--size 128] [--bs 64] [--num-workers N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loader import make_images  # bench/loader.py: the same generated JPEGs

__all__ = ['blocklearn_run', 'fastai_run', 'floor_run', 'main']

PAT = r'(.+)_\d+.jpg$'


def blocklearn_run(path: Path, size: int, bs: int, num_workers: int | None = None) -> float:
    """Seconds for `fine_tune(1)`, default workers unless given, progress off (fastai's is off too)."""
    import blocklearn.vision.all as api
    return _fine_tune(api, path, size, bs, num_workers)


def fastai_run(path: Path, size: int, bs: int, num_workers: int | None = None) -> float:
    import fastai.vision.all as api
    return _fine_tune(api, path, size, bs, num_workers)


def _fine_tune(api: Any, path: Path, size: int, bs: int, num_workers: int | None) -> float:
    """The same lines with either library's names (`api`: its `vision.all` module)."""
    import torch
    workers = {} if num_workers is None else {'num_workers': num_workers}
    dls = api.ImageDataLoaders.from_name_re(
        path, api.get_image_files(path), PAT, item_tfms=api.Resize(size * 5 // 4), bs=bs, device='cpu', seed=42,
        batch_tfms=[*api.aug_transforms(size=size), api.Normalize.from_stats(*api.imagenet_stats)], **workers)
    torch.manual_seed(0)
    learn = api.vision_learner(dls, api.resnet18, pretrained=False, metrics=api.error_rate)
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        learn.fine_tune(1)
        return time.perf_counter() - start


class _InMemory:
    """The DataLoaders duck type over lists of ready (x, y) batches."""

    def __init__(self, train: list, valid: list, c: int):
        import torch.nn.functional as F
        self.train, self.valid, self.c, self.n_inp, self.device = train, valid, c, 1, None
        self.loss_func = F.cross_entropy

    def __getitem__(self, i: int) -> list:
        return (self.train, self.valid)[i]


def floor_run(path: Path, size: int, bs: int, num_workers: int | None = None) -> float:
    """The same fine_tune on pre-made batches: the validation pipeline (centre crops) run once beforehand."""
    import torch
    from blocklearn.learner.learner import Learner
    from blocklearn.vision.all import (ImageDataLoaders, Normalize, Resize, aug_transforms, error_rate,
                                       get_image_files, imagenet_stats, resnet18, resnet_split)
    from blocklearn.vision.models import create_vision_model
    dls = ImageDataLoaders.from_name_re(path, get_image_files(path), PAT, item_tfms=Resize(size * 5 // 4), bs=bs,
                                        batch_tfms=[*aug_transforms(size=size), Normalize.from_stats(*imagenet_stats)],
                                        device='cpu', seed=42)
    as_batches = lambda items: [(x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor))
                                for x, y in dls.test_dl(items, with_labels=True)]
    train = as_batches(dls.train_ds.items)[:len(dls.train)]  # as many steps as the shuffled, dropping loader
    valid = as_batches(dls.valid_ds.items)
    torch.manual_seed(0)
    model = create_vision_model(resnet18, dls.c, pretrained=False)
    learn = Learner(_InMemory(train, valid, dls.c), model, splitter=resnet_split, metrics=error_rate)
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        learn.fine_tune(1)
        return time.perf_counter() - start


RUNS = {'blocklearn': blocklearn_run, 'fastai': fastai_run, 'floor': floor_run}


def _has_fastai() -> bool:
    res = subprocess.run([sys.executable, '-c', 'import fastai; print(fastai.__version__)'], capture_output=True,
                         text=True)
    return res.returncode == 0 and res.stdout.strip() == '2.8.12'


def _run_sub(name: str, path: Path, size: int, bs: int, num_workers: int | None) -> float | None:
    cmd = [sys.executable, __file__, '--child', name, str(path), '--size', str(size), '--bs', str(bs)]
    cmd += [] if num_workers is None else ['--num-workers', str(num_workers)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        print(f'  [{name} failed: {(res.stderr.strip().splitlines() or [res.returncode])[-1]}]')
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--child', nargs=2, default=None)
    ap.add_argument('--n-images', type=int, default=640)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--num-workers', type=int, default=None, help='for the loaders (default: the libraries\' own)')
    args = ap.parse_args()
    if args.child:
        name, path = args.child
        print(json.dumps(RUNS[name](Path(path), args.size, args.bs, args.num_workers)))
        return
    path = make_images(Path(tempfile.gettempdir()) / f'blocklearn_bench_{args.n_images}', args.n_images)
    names = ['floor', 'blocklearn'] + (['fastai'] if _has_fastai() else [])
    print(f'fine_tune(1), resnet18 (random init) at {args.size} px, bs {args.bs}, {args.n_images} JPEGs ~500x375; '
          f'{os.cpu_count()} cores; median of {args.repeats}; fastai 2.8.12 '
          f'{"found" if "fastai" in names else "not installed"}')
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.repeats):
        for n in names:
            t = _run_sub(n, path, args.size, args.bs, args.num_workers)
            if t is not None:
                times[n].append(t)
    med = {n: statistics.median(ts) for n, ts in times.items() if ts}
    for n in names:
        if n in med:
            print(f'{n:<12}{med[n]:8.1f} s   runs: {", ".join(f"{t:.1f}" for t in times[n])}')
    if 'floor' in med and 'blocklearn' in med:
        print(f'blocklearn / floor : {med["blocklearn"] / med["floor"]:.2f}x  (target <= 1.15)')
    if 'fastai' in med and 'blocklearn' in med:
        print(f'fastai / blocklearn: {med["fastai"] / med["blocklearn"]:.2f}x  (target > 1)')


if __name__ == '__main__':
    main()
