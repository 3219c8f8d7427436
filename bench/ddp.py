"""Training across processes: time per step of resnet18 at 64 px, bs 32 per process, under `distrib_ctx` with 1
and with 2 CPU processes (torchrun, gloo), the share of a step the gradient all-reduce takes, and the bytes each
step moves.

On a 2-core machine this measures the overhead of DDP (each process gets one core), not a speed-up: a step of
2 processes does twice the work of a step of 1 on twice the cores, so equal times would be perfect scaling.
The all-reduce share is the time of all-reducing the gradients once (in DDP's 25 MB buckets) over the step's
time: an upper bound, as DDP overlaps it with the backward pass.

    python bench/ddp.py [--steps 20] [--warmup 3] [--bs 32] [--procs 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

__all__ = ['main', 'worker']

BUCKET_BYTES = 25 * 2 ** 20  # DistributedDataParallel's default bucket_cap_mb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--procs', type=int, nargs='+', default=[1, 2])
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.steps, args.warmup, args.bs)
        return
    print(f'resnet18, 64 px, bs {args.bs} per process, {args.steps} timed steps after {args.warmup}, '
          f'OMP_NUM_THREADS=1 (one core per process), {os.cpu_count()} cores')
    rows = []
    for n in args.procs:
        env = {**os.environ, 'OMP_NUM_THREADS': '1'}
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={n}', __file__,
               '--worker', '--steps', str(args.steps), '--warmup', str(args.warmup), '--bs', str(args.bs)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(next(line for line in out.splitlines() if line.startswith('{'))))
    print(f"{'procs':>5} {'step ms':>8} {'img/s':>7} {'all-reduce ms':>13} {'share':>6} {'grads MB':>8} "
          f"{'sent MB/rank':>12}")
    for r in rows:
        print(f"{r['world']:>5} {r['step_ms']:>8.1f} {r['img_s']:>7.1f} {r['allreduce_ms']:>13.1f} "
              f"{r['share']:>6.1%} {r['grad_mb']:>8.1f} {r['sent_mb']:>12.1f}")


def worker(steps: int, warmup: int, bs: int) -> None:
    """One process of the job: train under distrib_ctx, then time an all-reduce of the gradients alone."""
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from torchvision.models import resnet18

    from blocklearn.blocks.loader import DataLoader, DataLoaders
    from blocklearn.callbacks.core import Callback
    from blocklearn.callbacks.distributed import num_distrib, rank_distrib
    from blocklearn.learner.learner import Learner

    class StepTimes(Callback):
        order = 100

        def __init__(self):
            self.times: list[float] = []

        def after_batch(self) -> None:
            if self.learn.training:
                self.times.append(time.perf_counter())

    world = max(num_distrib(), 1)
    torch.manual_seed(0)
    n = (steps + warmup + 1) * bs * world
    data = list(zip(torch.randn(n, 3, 64, 64), torch.randint(0, 10, (n,))))
    dls = DataLoaders(DataLoader(data, bs=bs, shuffle=True, drop_last=True, device='cpu'),
                      DataLoader(data[:bs * world], bs=bs, device='cpu'))
    timer = StepTimes()
    learn = Learner(dls, resnet18(num_classes=10), loss_func=nn.CrossEntropyLoss(), cbs=timer)
    with learn.distrib_ctx(), learn.no_bar(), learn.no_logging():
        learn.fit(1)
        params = [p for p in learn.model.parameters() if p.requires_grad]
        grad_bytes = sum(p.numel() * p.element_size() for p in params)
        buffer_bytes = sum(b.numel() * b.element_size() for b in learn.model.buffers())
        flat = torch.zeros(grad_bytes // 4)
        buckets = flat.split(BUCKET_BYTES // 4)
        reduce_times = []
        for _ in range(5):
            dist.barrier()
            start = time.perf_counter()
            for b in buckets:
                dist.all_reduce(b)
            reduce_times.append(time.perf_counter() - start)
    deltas = [b - a for a, b in zip(timer.times[warmup:], timer.times[warmup + 1:])]
    step = statistics.median(deltas)
    allreduce = statistics.median(reduce_times)
    # A ring all-reduce sends (and receives) 2 (N-1)/N of the buffer per rank; BatchNorm buffers are broadcast
    # from rank 0 at each forward (DDP's broadcast_buffers), and the loss (8 bytes) is all-reduced for the table.
    sent = 2 * (world - 1) / world * grad_bytes + (buffer_bytes if world > 1 else 0) + 8
    if rank_distrib() == 0:
        print(json.dumps({'world': world, 'step_ms': step * 1e3, 'img_s': bs * world / step,
                          'allreduce_ms': allreduce * 1e3, 'share': allreduce / step, 'grad_mb': grad_bytes / 1e6,
                          'sent_mb': sent / 1e6}), flush=True)


if __name__ == '__main__':
    main()
