"""Data pipeline throughput: the pets pipeline (Resize(460), aug_transforms(size=224, min_scale=0.75), bs=64).

Prints images/s for (a) the item pipeline on one core, (b) batch_tfms, (c) one full training epoch with the
default num_workers, and transform dispatch cost, for blocklearn and (when installed) fastai 2.8.12 side by
side. Each measurement runs in its own subprocess so peak memory is its own.

    python bench/loader.py [--n-images 640] [--runs 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAT = r'(.+)_\d+.jpg$'
BS = 64


def make_images(dest: Path, n: int) -> Path:
    """~500x375 JPEGs made by upscaling and cropping the committed sample photos (pets-style names)."""
    from PIL import Image
    dest.mkdir(parents=True, exist_ok=True)
    if len(list(dest.glob('*.jpg'))) >= n:
        return dest
    srcs = sorted((ROOT / 'data' / 'photos' / 'images').glob('*.jpg'))
    for i in range(n):
        src = srcs[i % len(srcs)]
        img = Image.open(src).convert('RGB')
        w, h = img.size
        variant = i // len(srcs)
        img = img.resize((560, 420) if w >= h else (420, 560), Image.BILINEAR)
        left, top = (variant * 13) % 60, (variant * 7) % 45
        img = img.crop((left, top, left + (500 if w >= h else 375), top + (375 if w >= h else 500)))
        label = src.name.rsplit('_', 1)[0]
        img.save(dest / f'{label}_{i}.jpg', quality=90)
    return dest


class PeakRSS:
    """Samples the summed resident memory of this process and its descendants."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(os.getpid()))
            time.sleep(self.interval)


def _tree_rss(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f'/proc/{p}/status') as f:
                total += next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) * 1024
            for task in os.listdir(f'/proc/{p}/task'):
                with open(f'/proc/{p}/task/{task}/children') as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


# -- one measurement per subprocess -------------------------------------------------------------------------
def _blocklearn_dls(path: Path, num_workers=None):
    from blocklearn.blocks.block import CategoryBlock
    from blocklearn.blocks.datablock import DataBlock
    from blocklearn.blocks.labellers import RegexLabeller, using_attr
    from blocklearn.blocks.splitters import RandomSplitter
    from blocklearn.vision.augment import aug_transforms
    from blocklearn.vision.block import ImageBlock
    from blocklearn.vision.data import get_image_files
    from blocklearn.vision.normalize import Normalize, imagenet_stats
    from blocklearn.vision.resize import Resize
    pets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=RandomSplitter(seed=42),
                     get_y=using_attr(RegexLabeller(PAT), 'name'), item_tfms=Resize(460),
                     batch_tfms=[*aug_transforms(size=224, min_scale=0.75), Normalize.from_stats(*imagenet_stats)])
    kw = {} if num_workers is None else {'num_workers': num_workers}
    return pets.dataloaders(path, bs=BS, device='cpu', **kw)


def _fastai_dls(path: Path, num_workers=None):
    from fastai.vision.all import (CategoryBlock, DataBlock, ImageBlock, Normalize, RandomSplitter, RegexLabeller,
                                   Resize, aug_transforms, get_image_files, imagenet_stats, using_attr)
    pets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=RandomSplitter(seed=42),
                     get_y=using_attr(RegexLabeller(PAT), 'name'), item_tfms=Resize(460),
                     batch_tfms=[*aug_transforms(size=224, min_scale=0.75), Normalize.from_stats(*imagenet_stats)])
    kw = {} if num_workers is None else {'num_workers': num_workers}
    return pets.dataloaders(path, bs=BS, device='cpu', **kw)


def _torch_baseline_item(path: Path):
    """A hand-written item pipeline: PIL open, crop+resize to 460 in one call, to tensor."""
    import numpy as np
    import torch
    from PIL import Image
    files = sorted(path.glob('*.jpg'))

    def item(f):
        img = Image.open(f).convert('RGB')
        w, h = img.size
        s = min(w, h)
        img = img.resize((460, 460), Image.BILINEAR, box=((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2))
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    return files, item


def measure(framework: str, part: str, path: Path, reps: int) -> dict:
    import torch
    if part == 'a':
        torch.set_num_threads(1)
        if framework == 'torch':
            files, item = _torch_baseline_item(path)
            n = min(len(files), 256)
            t0 = time.perf_counter()
            for f in files[:n]:
                item(f)
            return {'img_s': n / (time.perf_counter() - t0)}
        dls = (_blocklearn_dls if framework == 'blocklearn' else _fastai_dls)(path, num_workers=0)
        dl, ds = dls.train, dls.train_ds
        n = min(len(ds), 256)
        dl.after_item(ds[0])
        t0 = time.perf_counter()
        for i in range(n):
            dl.after_item(ds[i])
        return {'img_s': n / (time.perf_counter() - t0)}
    if part == 'b':
        dls = (_blocklearn_dls if framework == 'blocklearn' else _fastai_dls)(path, num_workers=0)
        dl = dls.train
        samples = [dl.after_item(dls.train_ds[i]) for i in range(BS)]
        x = torch.stack([s[0] for s in samples])
        y = torch.stack([torch.as_tensor(s[1]) for s in samples])
        b = (type(samples[0][0])(x) if framework == 'fastai' else x.as_subclass(type(samples[0][0])),
             type(samples[0][1])(y) if framework == 'fastai' else y.as_subclass(type(samples[0][1])))
        dl.after_batch(b)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            out = dl.after_batch(b)
            times.append(time.perf_counter() - t0)
        assert tuple(out[0].shape) == (BS, 3, 224, 224)
        best = sorted(times)[len(times) // 2]
        return {'img_s': BS / best, 'ms_batch': best * 1000}
    if part == 'c':
        with PeakRSS() as mem:
            dls = (_blocklearn_dls if framework == 'blocklearn' else _fastai_dls)(path)
            n, t0 = 0, time.perf_counter()
            for x, y in dls.train:
                n += len(y)
            dt = time.perf_counter() - t0
        return {'img_s': n / dt, 'peak_mb': mem.peak / 2**20, 'num_workers': dls.train.num_workers}
    if part == 'dispatch':
        import timeit
        if framework == 'blocklearn':
            from blocklearn.blocks.transform import Transform
        else:
            from fastai.vision.all import Transform

        class AddOne(Transform):
            def encodes(self, x: int):
                return x + 1
        t = AddOne()
        per = min(timeit.repeat(lambda: t(1), number=20000, repeat=5)) / 20000
        return {'us_call': per * 1e6}
    raise ValueError(part)


def _run_sub(framework: str, part: str, path: Path, reps: int) -> dict | None:
    cmd = [sys.executable, __file__, '--child', framework, part, str(path), str(reps)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        print(f'  [{framework} {part} failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}]')
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def _has_fastai() -> bool:
    res = subprocess.run([sys.executable, '-c', 'import fastai; print(fastai.__version__)'], capture_output=True, text=True)
    return res.returncode == 0 and res.stdout.strip() == '2.8.12'


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--child', nargs=4, default=None)
    ap.add_argument('--n-images', type=int, default=640)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--runs', type=int, default=3, help='each measurement this many times; medians are shown')
    ap.add_argument('--quick', action='store_true', help='fewer images and repeats')
    args = ap.parse_args()
    if args.child:
        framework, part, path, reps = args.child
        print(json.dumps(measure(framework, part, Path(path), int(reps))))
        return
    n = 200 if args.quick else args.n_images
    path = make_images(Path(tempfile.gettempdir()) / f'blocklearn_bench_{n}', n)
    fastai = _has_fastai()
    print(f'{n} JPEGs ~500x375 in {path}; {os.cpu_count()} cores; median of {args.runs} runs; fastai 2.8.12 '
          f'{"found" if fastai else "not installed"}')
    rows = [('a', 'item pipeline, 1 core (img/s)', 'img_s'), ('b', 'batch_tfms, bs=64 (img/s)', 'img_s'),
            ('c', 'train epoch, default workers (img/s)', 'img_s'), ('c', 'train epoch peak memory (MB)', 'peak_mb'),
            ('dispatch', 'Transform dispatch (us/call)', 'us_call')]
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.runs):  # interleaved, so a slow spell of the machine hits every framework alike
        for part in ('dispatch', 'a', 'b', 'c'):
            for fw in ['blocklearn'] + (['fastai'] if fastai else []) + (['torch'] if part == 'a' else []):
                if (res := _run_sub(fw, part, path, args.reps)) is not None:
                    runs.setdefault((fw, part), []).append(res)
    results = {k: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for k, rs in runs.items()}
    print(f'\n{"measure":<40}{"blocklearn":>12}{"fastai":>12}{"ratio":>9}{"torch":>10}')
    for part, label, key in rows:
        ours = (results.get(('blocklearn', part)) or {}).get(key)
        theirs = (results.get(('fastai', part)) or {}).get(key)
        base = (results.get(('torch', part)) or {}).get(key)
        if ours is not None and theirs:
            ratio = ours / theirs if key == 'img_s' else theirs / ours
        else:
            ratio = None
        fmt = lambda v: f'{v:.1f}' if isinstance(v, float) else '-'
        print(f'{label:<40}{fmt(ours):>12}{fmt(theirs):>12}{(f"{ratio:.2f}x" if ratio else "-"):>9}{fmt(base):>10}')
    if ('blocklearn', 'b') in results and results['blocklearn', 'b']:
        print(f'\nbatch_tfms: {results["blocklearn", "b"]["ms_batch"]:.0f} ms per batch of 64 (blocklearn)'
              + (f', {results["fastai", "b"]["ms_batch"]:.0f} ms (fastai)' if fastai and results.get(('fastai', 'b')) else ''))
    if results.get(('blocklearn', 'c')):
        print(f'default num_workers: blocklearn {results["blocklearn", "c"]["num_workers"]}'
              + (f', fastai {results["fastai", "c"]["num_workers"]}' if fastai and results.get(('fastai', 'c')) else ''))
    print('ratio: blocklearn over fastai (higher is better; for memory and dispatch, fastai over blocklearn)')


if __name__ == '__main__':
    main()
