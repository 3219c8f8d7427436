"""Interpretation cost: get_preds, ClassificationInterpretation.from_learner and the views a course notebook calls.

On the committed photos (pets-style names, Resize(64), bs=64, num_workers=0, resnet18 pretrained=False, CPU) times
get_preds, from_learner, confusion_matrix, most_confused, top_losses(9), plot_top_losses(9) and
plot_confusion_matrix, and counts the model's forward calls and the items they saw, for blocklearn and (when
installed) fastai 2.8.12 side by side. Each framework runs in its own subprocess; each time is a median of `--reps`.

Then the memory an interpretation holds, on a synthetic validation set of `--n-images` generated 224 px JPEGs (5
classes, a pooling + linear model through Learner, CPU): the bytes of the tensors reachable from the object (its
learner and loader, which the user holds anyway, left out) and the process's RSS growth while it lives; beside
them, what keeping every decoded input would cost (the inputs `get_preds(with_input=True)` returns).

    python bench/interp.py [--reps 5] [--n-images 1500] [--memory-only]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / 'data' / 'photos' / 'images'
PAT = r'(.+)_\d+.jpg$'
STEPS = ['get_preds', 'from_learner', 'confusion_matrix', 'most_confused', 'top_losses(9)', 'plot_top_losses(9)',
         'plot_confusion_matrix']


class ForwardCounter:
    """Counts a model's forward calls and the items they carried (a forward hook: the model is not wrapped)."""

    def __init__(self, model):
        self.calls = self.items = 0
        model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.calls += 1
        self.items += len(inputs[0])


def _blocklearn_learner():
    from blocklearn.learner.interpret import ClassificationInterpretation
    from blocklearn.vision.data import ImageDataLoaders, get_image_files
    from blocklearn.vision.learner import vision_learner
    from blocklearn.vision.resize import Resize
    from torchvision.models import resnet18
    dls = ImageDataLoaders.from_name_re(PHOTOS, get_image_files(PHOTOS), PAT, item_tfms=Resize(64), bs=64,
                                        num_workers=0, device='cpu')
    return vision_learner(dls, resnet18, pretrained=False), ClassificationInterpretation


def _fastai_learner():
    from fastai.vision.all import (ClassificationInterpretation, ImageDataLoaders, Resize, get_image_files, resnet18,
                                   vision_learner)
    dls = ImageDataLoaders.from_name_re(PHOTOS, get_image_files(PHOTOS), PAT, item_tfms=Resize(64), bs=64,
                                        num_workers=0, device='cpu')
    learn = vision_learner(dls, resnet18, pretrained=False)
    learn.remove_cbs(learn.progress)  # a progress bar per pass would be timed too
    return learn, ClassificationInterpretation


def measure(framework: str, reps: int) -> dict:
    """Median milliseconds and forward calls/items per step, over `reps` runs of the whole sequence."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    torch.manual_seed(0)
    learn, interp_cls = (_blocklearn_learner if framework == 'blocklearn' else _fastai_learner)()
    counter = ForwardCounter(learn.model)
    learn.get_preds()  # warm-up: thread pools, allocator, first file reads
    times: dict[str, list[float]] = {s: [] for s in STEPS}
    forwards: dict[str, tuple[int, int]] = {}
    for _ in range(reps):
        interp = None

        def run(step: str):
            nonlocal interp
            if step == 'get_preds':
                return learn.get_preds()
            if step == 'from_learner':
                interp = interp_cls.from_learner(learn)
                return interp
            if step == 'confusion_matrix':
                return interp.confusion_matrix()
            if step == 'most_confused':
                return interp.most_confused()
            if step == 'top_losses(9)':
                return interp.top_losses(9)
            if step == 'plot_top_losses(9)':
                return interp.plot_top_losses(9)
            return interp.plot_confusion_matrix()

        for step in STEPS:
            calls, items = counter.calls, counter.items
            t = time.perf_counter()
            run(step)
            times[step].append((time.perf_counter() - t) * 1e3)
            forwards[step] = (counter.calls - calls, counter.items - items)
            plt.close('all')
    return {'ms': {s: statistics.median(v) for s, v in times.items()}, 'forwards': forwards,
            'n_valid': len(learn.dls.valid_ds)}


def _run_sub(framework: str, reps: int, *extra: str) -> dict | None:
    res = subprocess.run([sys.executable, __file__, '--child', framework, '--reps', str(reps), *extra], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    if res.returncode != 0:
        last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode
        print(f'  [{framework} failed: {last}]')
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def _ratio(r: float | None) -> str:
    return f'{"-" if r is None else f"{r:.2f}x" if r < 100 else f"{r:.0f}x":>10}'


def _has_fastai() -> bool:
    res = subprocess.run([sys.executable, '-c', 'import fastai; print(fastai.__version__)'], capture_output=True,
                         text=True)
    return res.returncode == 0 and res.stdout.strip() == '2.8.12'


# -- memory held by an interpretation ---------------------------------------------------------------------------
MEM_CLASSES = 5
MEM_SIZE = 224


def write_synthetic_images(root: Path, n_valid: int, n_train: int = 50, size: int = MEM_SIZE) -> Path:
    """`root/{train,valid}/c<k>/<i>.jpg`: noisy tinted `size`-px JPEGs, `n_valid` of them in the validation set."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    tints = rng.integers(40, 215, size=(MEM_CLASSES, 3))
    for split, n in (('train', n_train), ('valid', n_valid)):
        for i in range(n):
            k = i % MEM_CLASSES
            folder = root / split / f'c{k}'
            folder.mkdir(parents=True, exist_ok=True)
            noise = rng.integers(-40, 40, size=(size // 8, size // 8, 3))
            img = np.clip(tints[k] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(img).resize((size, size)).save(folder / f'{i}.jpg', quality=75)
    return root


def held_tensor_bytes(obj, skip: tuple[str, ...] = ('learn', 'dl')) -> int:
    """Bytes of the distinct tensor storages reachable from `obj`'s attributes (those named in `skip` left out)."""
    import torch
    seen_obj, seen_storage, total = set(), set(), 0
    stack = [v for k, v in vars(obj).items() if k not in skip]
    while stack:
        o = stack.pop()
        if id(o) in seen_obj:
            continue
        seen_obj.add(id(o))
        if isinstance(o, torch.Tensor):
            st = o.untyped_storage()
            if st.data_ptr() not in seen_storage:
                seen_storage.add(st.data_ptr())
                total += st.nbytes()
        elif isinstance(o, dict):
            stack += list(o.values())
        elif isinstance(o, (list, tuple, set)):
            stack += list(o)
        elif hasattr(o, '__dict__') and not isinstance(o, type) and type(o).__module__.split('.')[0] != 'torch':
            stack += list(vars(o).values())
    return total


def _rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def measure_memory(framework: str, folder: Path) -> dict:
    """Tensor bytes held by `ClassificationInterpretation.from_learner` and the RSS it adds, on `folder`."""
    import gc
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, MEM_CLASSES))
    if framework == 'blocklearn':
        from blocklearn.learner.interpret import ClassificationInterpretation
        from blocklearn.learner.learner import Learner
        from blocklearn.vision.data import ImageDataLoaders
        from blocklearn.vision.resize import Resize
        dls = ImageDataLoaders.from_folder(folder, item_tfms=Resize(MEM_SIZE), bs=64, num_workers=0, device='cpu')
        learn = Learner(dls, model)
    else:
        from fastai.vision.all import ClassificationInterpretation, ImageDataLoaders, Learner, Resize
        dls = ImageDataLoaders.from_folder(folder, item_tfms=Resize(MEM_SIZE), bs=64, num_workers=0, device='cpu')
        learn = Learner(dls, model)
        learn.remove_cbs(learn.progress)
    res = {'n_valid': len(dls.valid_ds)}
    if framework == 'blocklearn':
        inputs = learn.get_preds(with_input=True)[0]  # what an interpretation that kept its inputs held
        res['inputs_bytes'] = sum(x.untyped_storage().nbytes() for x in (inputs if isinstance(inputs, tuple)
                                                                            else (inputs,)))
        del inputs
    learn.get_preds()  # warm-up: the allocator's arenas grow to a batch's size before the measure
    gc.collect()
    rss = _rss()
    interp = ClassificationInterpretation.from_learner(learn)
    gc.collect()
    res['rss_delta'] = _rss() - rss
    res['held_bytes'] = held_tensor_bytes(interp)
    return res


def _mb(n: int | None) -> str:
    if n is None:
        return '-'
    return f'{n / 2 ** 20:.1f} MB' if abs(n) >= 2 ** 20 else f'{n / 2 ** 10:.1f} KB'


def report_memory(n_images: int, fastai: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_synthetic_images(Path(tmp), n_images)
        results = {fw: _run_sub(fw, 1, '--memory', str(folder)) for fw in ['blocklearn'] + (['fastai'] if fastai else [])}
    ours, theirs = results.get('blocklearn'), results.get('fastai')
    n = ours['n_valid'] if ours else n_images
    print(f'\nmemory held by ClassificationInterpretation.from_learner: {n} synthetic {MEM_SIZE} px JPEGs, '
          f'{MEM_CLASSES} classes, bs=64, CPU')
    print(f'{"":<34}{"blocklearn":>14}{"fastai":>14}')
    for key, label in (('held_bytes', 'tensors reachable from it'), ('rss_delta', 'RSS growth while it lives')):
        print(f'{label:<34}{_mb(ours and ours[key]):>14}{_mb(theirs and theirs[key]):>14}')
    if ours:
        print(f'{"decoded inputs (if it kept them)":<34}{_mb(ours["inputs_bytes"]):>14}')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--child', default=None)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--memory', default=None, help='(child) the folder of synthetic images to measure memory on')
    ap.add_argument('--n-images', type=int, default=1500, help='validation images of the memory measure')
    ap.add_argument('--memory-only', action='store_true', help='skip the timings')
    args = ap.parse_args()
    if args.child:
        with contextlib.redirect_stdout(io.StringIO()):  # keep stdout for the one JSON line
            res = measure_memory(args.child, Path(args.memory)) if args.memory else measure(args.child, args.reps)
        print(json.dumps(res))
        return
    fastai = _has_fastai()
    if args.memory_only:
        report_memory(args.n_images, fastai)
        return
    print(f'{len(list(PHOTOS.glob("*.jpg")))} photos in {PHOTOS.relative_to(ROOT)}; Resize(64), resnet18 '
          f'pretrained=False, CPU; {os.cpu_count()} cores; median of {args.reps}')
    if not fastai:
        print('fastai not installed')
    results = {fw: _run_sub(fw, args.reps) for fw in ['blocklearn'] + (['fastai'] if fastai else [])}
    ours, theirs = results.get('blocklearn'), results.get('fastai')
    if ours:
        print(f'validation set: {ours["n_valid"]} items; forwards = model calls (items they carried)')
    print(f'\n{"step":<24}{"blocklearn ms":>14}{"forwards":>12}{"fastai ms":>12}{"forwards":>12}{"ratio":>10}')
    totals = {fw: [0., 0, 0] for fw in results}
    for step in STEPS:
        row = f'{step:<24}'
        for fw in ('blocklearn', 'fastai'):
            r = results.get(fw)
            if not r:
                row += f'{"-":>14}{"-":>12}' if fw == 'blocklearn' else f'{"-":>12}{"-":>12}'
                continue
            ms, (calls, items) = r['ms'][step], r['forwards'][step]
            totals[fw][0] += ms
            totals[fw][1] += calls
            totals[fw][2] += items
            row += f'{ms:>{14 if fw == "blocklearn" else 12}.1f}{f"{calls} ({items})":>12}'
        ratio = theirs['ms'][step] / ours['ms'][step] if ours and theirs and ours['ms'][step] > 0 else None
        print(row + _ratio(ratio))
    row = f'{"total":<24}'
    for fw in ('blocklearn', 'fastai'):
        if fw in totals:
            ms, calls, items = totals[fw]
            row += f'{ms:>{14 if fw == "blocklearn" else 12}.1f}{f"{calls} ({items})":>12}'
        else:
            row += f'{"-":>14}{"-":>12}' if fw == 'blocklearn' else f'{"-":>12}{"-":>12}'
    ratio = totals['fastai'][0] / totals['blocklearn'][0] if ours and theirs else None
    print(row + _ratio(ratio))
    if ours and theirs:
        views = [s for s in STEPS if s != 'get_preds']
        mine, yours = (sum(r['ms'][s] for s in views) for r in (ours, theirs))
        print(f'{"from_learner + views":<24}{mine:>14.1f}{"":>12}{yours:>12.1f}{"":>12}{_ratio(yours / mine)}')
        print(f'forward passes: fastai {totals["fastai"][1]}, blocklearn {totals["blocklearn"][1]} '
              f'({totals["fastai"][1] / max(totals["blocklearn"][1], 1):.1f}x)')
    print('ratio: fastai time over blocklearn time (higher is better for blocklearn)')
    report_memory(args.n_images, fastai)


if __name__ == '__main__':
    main()
