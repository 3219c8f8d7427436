"""Training across processes with torchrun on CPUs (gloo): the job is tests/ddp_job.py; the reference, the same
code in this process (where distrib_ctx does nothing) with the whole global batch of 32."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from blocklearn.blocks.loader import DataLoader
from blocklearn.blocks.shard import Shard
from blocklearn.learner.distributed import on_rank0
from blocklearn.learner.learner import Learner
from blocklearn.learner.load import load_learner

import ddp_job  # the job torchrun runs (next to this file)

JOB = Path(__file__).resolve().parent / 'ddp_job.py'
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run']


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                                                             'MASTER_PORT')}
    return {**env, 'OMP_NUM_THREADS': '1', 'BLOCKLEARN_PROGRESS': 'lines', 'PYTHONUNBUFFERED': '1'}


def _run(args: list, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(TORCHRUN + args, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope='module')
def reference(tmp_path_factory) -> dict:
    """One process, bs 32."""
    return ddp_job.train(tmp_path_factory.mktemp('single'))


@pytest.fixture(scope='module')
def two_procs(tmp_path_factory) -> tuple[Path, list[dict], subprocess.CompletedProcess]:
    """`torchrun --standalone --nproc_per_node=2`, bs 16 each; each rank's stdout kept apart under logs/."""
    out = tmp_path_factory.mktemp('ddp')
    proc = _run(['--standalone', '--nproc_per_node=2', '--log-dir', str(out / 'logs'), '--tee', '3',
                 str(JOB), 'train', str(out)], timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, [torch.load(out / f'rank{r}.pt', weights_only=False) for r in (0, 1)], proc


def test_two_processes_with_bs_16_end_with_the_weights_of_one_with_bs_32(reference, two_procs):
    _, ranks, _ = two_procs
    for res in ranks:
        assert _max_diff(res['weights'], reference['weights']) <= 1e-4
        # drop_last=False: a partial last global batch, rank 1 holding only padding in it
        assert _max_diff(res['partial_weights'], reference['partial_weights']) <= 1e-4
    assert _max_diff(ranks[0]['weights'], ranks[1]['weights']) == 0


def test_fit_one_cycle_resumes_from_a_checkpoint_under_ddp(reference, two_procs):
    _, ranks, _ = two_procs
    for res in ranks:
        assert _max_diff(res['resumed_weights'], res['run_weights']) == 0
        assert _max_diff(res['resumed_weights'], reference['run_weights']) <= 1e-4


def test_validation_get_preds_tta_and_interpretation_are_the_single_process_values_in_dataset_order(reference,
                                                                                                   two_procs):
    _, ranks, _ = two_procs
    for res in ranks:  # 100 items at 16 a rank: the last step has 4 on rank 0 and padding on rank 1
        assert res['valid'] == pytest.approx(reference['valid'], abs=1e-5)
        assert [v for row in res['values'] for v in row] == pytest.approx(
            [v for row in reference['values'] for v in row], abs=1e-5)
        assert len(res['preds']) == 100
        assert torch.equal(res['targs'], reference['targs'])
        assert torch.allclose(res['preds'], reference['preds'], atol=1e-5)
        assert torch.allclose(res['tta'], reference['tta'], atol=1e-5)
        assert torch.equal(res['inputs'], reference['inputs'])
        assert (res['confusion'] == reference['confusion']).all()
        assert torch.allclose(res['losses'], reference['losses'], atol=1e-5)
    assert ranks[0]['lr_find'] == ranks[1]['lr_find']


def test_only_rank_0_prints_and_writes_and_the_export_loads_without_torch_distributed(two_procs):
    out, ranks, _ = two_procs
    logs = {int(p.parent.name): p.read_text() for p in (out / 'logs').rglob('stdout.log')}
    assert 'train_loss' in logs[0] and 'Better model found' in logs[0]
    assert 'train_loss' not in logs[1] and 'Better model found' not in logs[1] and 'accuracy' not in logs[1]
    rows = (out / 'history.csv').read_text().splitlines()
    assert rows[0].startswith('epoch,train_loss') and [r.split(',')[0] for r in rows[1:]] == ['0', '1']
    assert (out / 'models' / 'model.pth').exists()
    learn = load_learner(out / 'export.pkl', model=ddp_job.make_model())
    assert not dist.is_initialized()
    assert not any(k.startswith('module.') for k in learn.model.state_dict())
    dl = learn.dls.test_dl(ddp_job.make_learner(out / 'again').dls.valid_ds.items, with_labels=True)
    preds, _ = learn.get_preds(dl=dl)
    # the export was written after lr_find, which puts the trained weights back
    assert torch.allclose(preds, ranks[0]['preds'], atol=1e-5)


def test_two_nodes_with_c10d_rendezvous_train_as_one_process(reference, tmp_path):
    port = _free_port()
    nodes = [subprocess.Popen(TORCHRUN + ['--nnodes=2', f'--node_rank={n}', '--nproc_per_node=1',
                                          '--rdzv_backend=c10d', f'--rdzv_endpoint=127.0.0.1:{port}',
                                          '--rdzv_id=test', str(JOB), 'fit', str(tmp_path)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in (0, 1)]
    try:
        logs = [p.communicate(timeout=300)[0] for p in nodes]
    finally:
        for p in nodes:
            p.kill()
    assert [p.returncode for p in nodes] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    for r in (0, 1):
        res = torch.load(tmp_path / f'rank{r}.pt', weights_only=False)
        assert _max_diff(res['weights'], reference['weights']) <= 1e-4


def test_a_rank_that_raises_mid_epoch_ends_the_job_and_is_named(tmp_path):
    # A hang would raise TimeoutExpired here instead of returning.
    proc = _run(['--standalone', '--nproc_per_node=2', str(JOB), 'fail', str(tmp_path)], timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'rank 1 fails at batch 3 on purpose' in output
    assert '(raised on rank 1 of 2)' in output
    # the last complete checkpoint (epoch 0) is intact; none for the epoch that failed, no half-written file
    models = tmp_path / 'models'
    assert sorted(p.name for p in models.iterdir()) == ['model_0.pth']
    learn = ddp_job.make_learner(tmp_path)
    learn.load('model_0')
    assert not dist.is_initialized()


# ---- in this process ----------------------------------------------------------------------------------------
def test_shard_takes_its_part_of_each_global_batch_and_pads_an_empty_one():
    order = list(range(14))  # global batches of 2 * 3: [0..5], [6..11], [12, 13]
    r0, r1 = Shard(0, 2), Shard(1, 2)
    assert r0.indices(order, 3, drop_last=False) == [0, 1, 2, 6, 7, 8, 12, 13]
    assert r1.indices(order, 3, drop_last=False) == [3, 4, 5, 9, 10, 11, 12]  # 12: padding
    assert r1.sizes(14, 3, False, 2) == [2, 0] and r1.sizes(14, 3, False, 0) == [3, 3]
    assert r0.indices(order, 3, drop_last=True) == [0, 1, 2, 6, 7, 8]
    assert r1.n_steps(14, 3, True) == 2 and r1.n_steps(14, 3, False) == 3


def test_a_sharded_loader_yields_its_rank_s_items_of_the_permutation_one_process_draws():
    data = [(torch.tensor(float(i)), torch.tensor(i)) for i in range(14)]
    single = DataLoader(data, bs=6, shuffle=True)
    torch.manual_seed(3)
    whole = [b[1].tolist() for b in single]
    parts = []
    for rank in (0, 1):
        dl = DataLoader(data, bs=3, shuffle=True)
        dl.shard = Shard(rank, 2)
        torch.manual_seed(3)
        parts.append([b[1].tolist() for b in dl])
        assert len(dl) == 3
    assert [p0 + p1 for p0, p1 in zip(*parts)][:2] == whole[:2]
    assert parts[0][2] == whole[2] and len(parts[1][2]) == 1  # the last 2 are rank 0's; rank 1 has padding


def test_distrib_ctx_does_nothing_outside_torchrun(monkeypatch, tmp_path):
    monkeypatch.delenv('RANK', raising=False)
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    learn = ddp_job.make_learner(tmp_path)
    cbs = list(learn.cbs)
    with learn.distrib_ctx() as ctx:
        assert ctx is learn and learn.cbs == cbs and learn.dls.train.shard is None
    assert not dist.is_initialized()


def test_save_and_export_write_on_rank_0_only_under_torchrun(monkeypatch, tmp_path):
    learn = Learner(ddp_job.make_learner(tmp_path).dls, ddp_job.make_model(), path=tmp_path)
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '1')
    assert learn.save('m') == tmp_path / 'models' / 'm.pth' and not (tmp_path / 'models' / 'm.pth').exists()
    learn.export('e.pkl')
    assert not (tmp_path / 'e.pkl').exists()
    assert on_rank0(lambda: 'ran') is None
    monkeypatch.setenv('RANK', '0')
    learn.save('m')
    learn.export('e.pkl')
    assert (tmp_path / 'models' / 'm.pth').exists() and (tmp_path / 'e.pkl').exists()


def test_a_cuda_rank_joins_with_nccl_on_its_local_gpu_and_a_cpu_rank_with_gloo(monkeypatch):
    # No GPU here: the calls torch would make are recorded. The CUDA path runs for real only on a GPU machine.
    from blocklearn.learner import distributed
    calls = []
    monkeypatch.setattr(distributed.dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(distributed.dist, 'rendezvous', lambda url: iter([(dist.HashStore(), 1, 2)]))
    monkeypatch.setattr(distributed.dist, 'init_process_group', lambda backend, **kw: calls.append((backend, kw)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setenv('LOCAL_RANK', '1')
    learn = types.SimpleNamespace(dls=types.SimpleNamespace(device=torch.device('cuda')), model=None)
    device = distributed._rank_device(learn)
    assert device == torch.device('cuda', 1)
    assert distributed.setup_distrib(device)
    assert calls[0] == ('set_device', device)
    assert calls[1][0] == 'nccl' and calls[1][1]['device_id'] == device and calls[1][1]['rank'] == 1
    calls.clear()
    assert distributed.setup_distrib(torch.device('cpu'))
    assert calls[0][0] == 'gloo' and calls[0][1]['world_size'] == 2
