"""create_body, create_head, create_vision_model and pretrained weights from local files (no network)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shlex
import threading
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision
from torchvision.models import ResNet18_Weights, ResNet34_Weights, WeightsEnum
from torchvision.models._api import Weights

from blocklearn.blocks.safe_io import UnsafeFileError
from blocklearn.vision.models import (AdaptiveConcatPool2d, SigmoidRange, WeightsMismatchError, WeightsNotFoundError,
                                     create_body, create_head, create_vision_model, default_split, load_weights,
                                     model_meta, num_features_model, weights_file)
from blocklearn.vision.normalize import imagenet_stats

resnet18 = torchvision.models.resnet18
RESNET18_FILE = 'resnet18-f37072fd.pth'  # torchvision's name for ResNet18_Weights.IMAGENET1K_V1


def seeded_state(arch=resnet18, seed: int = 7) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return arch(weights=None).state_dict()


def same_weights(body: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """The body's tensors, in order, are the state's tensors before the classifier (`fc`)."""
    own = list(body.state_dict().values())
    theirs = [v for k, v in state.items() if not k.startswith('fc.')]
    return len(own) == len(theirs) and all(torch.equal(a, b) for a, b in zip(own, theirs))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    return tmp_path


# -- head ------------------------------------------------------------------------------------------------------
def test_head_is_specs_layers_in_order():
    head = create_head(512, 37)
    types = [type(m) for m in head]
    assert types == [AdaptiveConcatPool2d, nn.Flatten, nn.BatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU,
                     nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert head[2].num_features == 1024 and head[6].num_features == 512
    assert head[3].p == 0.25 and head[7].p == 0.5
    assert (head[4].in_features, head[4].out_features, head[4].bias) == (1024, 512, None)
    assert (head[8].in_features, head[8].out_features, head[8].bias) == (512, 37, None)
    assert head(torch.randn(4, 512, 3, 3)).shape == (4, 37)


def test_concat_pool_is_max_then_avg():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = AdaptiveConcatPool2d()(x)
    assert out.shape == (2, 6, 1, 1)
    assert torch.equal(out[:, :3, 0, 0], x.amax((2, 3)))
    assert torch.allclose(out[:, 3:, 0, 0], x.mean((2, 3)))


def test_head_options():
    head = create_head(64, 3, lin_ftrs=[32, 16], ps=[0.1, 0.2, 0.3], concat_pool=False, first_bn=False,
                       bn_final=True, y_range=(-1., 2.))
    assert isinstance(head[0], nn.AdaptiveAvgPool2d)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(64, 32), (32, 16), (16, 3)]
    assert linears[0].bias is not None and linears[1].bias is None  # no BN before the first: it keeps a bias
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.1, 0.2, 0.3]
    assert isinstance(head[-2], nn.BatchNorm1d) and isinstance(head[-1], SigmoidRange)
    out = head.eval()(torch.randn(5, 64, 2, 2) * 100)
    assert out.shape == (5, 3) and bool(((out > -1) & (out < 2)).all())


def test_head_lin_first_puts_linear_before_bn_and_ends_with_plain_linear():
    head = create_head(8, 2, lin_first=True)
    assert [type(m) for m in head][2:] == [nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert head[2].in_features == 16 and head[4].num_features == 512 and head[6].out_features == 2


def test_head_ps_list_of_wrong_length_says_how_many():
    with pytest.raises(ValueError, match=r'needs 2 values'):
        create_head(8, 2, ps=[0.1, 0.2, 0.3])


# -- body ------------------------------------------------------------------------------------------------------
def test_resnet18_body_is_cut_before_pooling():
    body = create_body(resnet18, pretrained=False)
    assert len(body) == 8 and isinstance(body[-1], nn.Sequential)  # conv1 .. layer4, no avgpool and fc
    assert body(torch.zeros(2, 3, 96, 64)).shape == (2, 512, 3, 2)


def test_default_cut_on_another_torchvision_arch():
    body = create_body(torchvision.models.mobilenet_v3_small, pretrained=False)
    assert len(body) == 1 and isinstance(body[0], nn.Sequential)  # `features`; avgpool and classifier dropped
    assert body(torch.zeros(1, 3, 64, 64)).shape == (1, 576, 2, 2)


def test_default_cut_on_a_custom_model_and_a_callable_cut():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(8, 16, 3), nn.MaxPool2d(2)),
                          nn.Conv2d(16, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    body = create_body(model)
    assert len(body) == 4 and body(torch.zeros(1, 3, 16, 16)).shape == (1, 4, 6, 6)
    assert create_body(model, cut=lambda m: m[:2])(torch.zeros(1, 3, 8, 8)).shape == (1, 8, 6, 6)


def test_no_pooling_layer_asks_for_a_cut():
    with pytest.raises(ValueError, match=r'no child holding a pooling layer.*cut='):
        create_body(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))


def test_n_in_one_sums_the_pretrained_filters(tmp_path):
    state = seeded_state()
    torch.save(state, tmp_path / 'r18.pth')
    body = create_body(resnet18, n_in=1, weights=tmp_path / 'r18.pth')
    assert body[0].weight.shape == (64, 1, 7, 7)
    assert torch.allclose(body[0].weight, state['conv1.weight'].sum(1, keepdim=True))
    body4 = create_body(resnet18, n_in=4, weights=tmp_path / 'r18.pth')
    w = state['conv1.weight']
    assert torch.allclose(body4[0].weight, torch.cat([w, w[:, :1]], 1) * 0.75)
    assert body4(torch.zeros(2, 4, 32, 32)).shape == (2, 512, 1, 1)


# -- whole model, meta -----------------------------------------------------------------------------------------
def test_vision_model_head_is_kaiming_initialised():
    torch.manual_seed(0)
    model = create_vision_model(resnet18, 10, pretrained=False, lin_ftrs=[2048])
    head = model[1]
    assert num_features_model(model[0]) == 512
    lin = head[4]
    assert lin.weight.std().item() == pytest.approx((2 / 1024) ** 0.5, rel=0.05)
    assert torch.equal(head[2].weight, torch.ones(1024)) and torch.equal(head[2].bias, torch.zeros(1024))


def test_resnet_meta_splits_into_three_groups_covering_every_parameter():
    model = create_vision_model(resnet18, 3, pretrained=False)
    meta = model_meta[resnet18]
    assert meta['cut'] == -2 and meta['stats'] == imagenet_stats
    groups = meta['split'](model)
    assert len(groups) == 3
    assert [sum(p.numel() for p in g) for g in groups[:2]] == [
        sum(p.numel() for p in model[0][:6].parameters()), sum(p.numel() for p in model[0][6:].parameters())]
    assert groups[2] == list(model[1].parameters())
    assert sorted(map(id, (p for g in groups for p in g))) == sorted(map(id, model.parameters()))
    body, head = default_split(model)
    assert (body, head) == (list(model[0].parameters()), list(model[1].parameters()))


# -- pretrained weights from disk ------------------------------------------------------------------------------
def test_pretrained_reads_torchvisions_checkpoint_under_torch_home(torch_home):
    state = seeded_state()
    (torch_home / 'hub' / 'checkpoints').mkdir(parents=True)
    torch.save(state, torch_home / 'hub' / 'checkpoints' / RESNET18_FILE)
    assert ResNet18_Weights.DEFAULT.url.endswith('/' + RESNET18_FILE)
    model = create_vision_model(resnet18, 5, pretrained=True)
    assert same_weights(model[0], state)
    by_name = create_body(resnet18, weights='IMAGENET1K_V1')
    assert same_weights(by_name, state)


def test_missing_pretrained_weights_say_which_file_and_where(torch_home, monkeypatch):
    monkeypatch.setenv('BLOCKLEARN_OFFLINE', '1')
    with pytest.raises(WeightsNotFoundError) as e:
        create_vision_model(resnet18, 5, pretrained=True)
    msg = str(e.value)
    assert RESNET18_FILE in msg and str(torch_home / 'hub' / 'checkpoints') in msg
    assert 'https://download.pytorch.org/models/resnet18-f37072fd.pth' in msg and 'weights=' in msg
    assert not (torch_home / 'hub' / 'checkpoints' / RESNET18_FILE).exists()


class _Unreachable(WeightsEnum):
    # Port 9 on localhost refuses connections: a real failed download that never waits on the network.
    V1 = Weights(url='http://127.0.0.1:9/tiny-0123abcd.pth', transforms=lambda: None, meta={})


def test_failed_download_becomes_a_clear_error(torch_home, monkeypatch):
    monkeypatch.delenv('BLOCKLEARN_OFFLINE', raising=False)
    with pytest.raises(WeightsNotFoundError, match=r'download failed') as e:
        weights_file(_Unreachable.V1)
    assert 'tiny-0123abcd.pth' in str(e.value) and str(torch_home / 'hub' / 'checkpoints') in str(e.value)
    assert list((torch_home / 'hub' / 'checkpoints').iterdir()) == []  # no partial file left behind


def test_weights_path_loads_a_state_dict_and_a_wrapped_one(tmp_path):
    state = seeded_state(seed=3)
    torch.save(state, tmp_path / 'plain.pth')
    torch.save({'model': state, 'opt': {}}, tmp_path / 'wrapped.pth')
    for name in ('plain.pth', 'wrapped.pth'):
        model = create_vision_model(resnet18, 4, weights=str(tmp_path / name))
        assert same_weights(model[0], state)


def test_wrong_state_dict_names_the_keys(tmp_path):
    torch.save(seeded_state(torchvision.models.resnet34), tmp_path / 'r34.pth')
    with pytest.raises(WeightsMismatchError, match=r'unexpected keys: layer1\.2\.conv1\.weight'):
        create_body(resnet18, weights=tmp_path / 'r34.pth')
    state = seeded_state()
    del state['fc.bias']
    state['fc.weight'] = torch.zeros(10, 512)
    torch.save(state, tmp_path / 'bad.pth')
    with pytest.raises(WeightsMismatchError) as e:
        create_body(resnet18, weights=tmp_path / 'bad.pth')
    assert '1 missing keys: fc.bias' in str(e.value) and 'fc.weight: file (10, 512), model (1000, 512)' in str(e.value)


def test_weights_errors_for_a_missing_file_another_archs_enum_and_an_unknown_arch(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'nope\.pth'):
        create_body(resnet18, weights=tmp_path / 'nope.pth')
    with pytest.raises(ValueError, match=r'another architecture'):
        create_body(resnet18, weights=ResNet34_Weights.DEFAULT)
    with pytest.raises(ValueError, match=r'neither a file nor a name of ResNet18_Weights'):
        create_body(resnet18, weights='IMAGENET1K_V9')

    def tiny() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(ValueError, match=r'pretrained=True but tiny is not a torchvision model.*weights='):
        create_body(tiny)
    assert isinstance(create_body(tiny, pretrained=False), nn.Sequential)


# -- weights cross a trust boundary: read with safe_load, downloaded with blocks.external's downloader ------------
class _RunsShell:
    """Unpickling this calls os.system: the attack a tampered checkpoint carries."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.mark.parametrize('how', ['weights=path', 'load_weights(enum)', 'pretrained=True'])
def test_hostile_weights_file_is_refused_and_never_runs(torch_home, tmp_path, how):
    marker = tmp_path / 'MARKER'
    hostile = {**seeded_state(), 'payload': _RunsShell(f'touch {shlex.quote(str(marker))}')}
    if how == 'weights=path':
        path = tmp_path / 'evil.pth'
        torch.save(hostile, path)
        load = lambda: create_body(resnet18, weights=path)  # noqa: E731
    else:  # torchvision's own checkpoint file, as a tampered cache would hold it
        path = torch_home / 'hub' / 'checkpoints' / RESNET18_FILE
        path.parent.mkdir(parents=True)
        torch.save(hostile, path)
        load = (lambda: load_weights(resnet18(), ResNet18_Weights.IMAGENET1K_V1)) if how == 'load_weights(enum)' \
            else (lambda: create_vision_model(resnet18, 5, pretrained=True))
    with pytest.raises(UnsafeFileError, match=rf'Refused to load {re.escape(str(path))}: it would import .*system'):
        load()
    assert not marker.exists()


class _LocalServer:
    """An HTTP server on 127.0.0.1 serving the files of `folder` from a background thread."""

    def __init__(self, folder: Path):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def weights_server(tmp_path):
    """A local server holding `good-<sha256 prefix>.pth` and `bad-00000000.pth`, a file that does not match."""
    served = tmp_path / 'served'
    served.mkdir()
    torch.save(seeded_state(seed=5), served / 'tmp.pth')
    prefix = hashlib.sha256((served / 'tmp.pth').read_bytes()).hexdigest()[:8]
    (served / 'tmp.pth').rename(served / f'good-{prefix}.pth')
    (served / 'bad-00000000.pth').write_bytes((served / f'good-{prefix}.pth').read_bytes())
    server = _LocalServer(served)
    yield server.url, served, prefix
    server.close()


def test_weights_download_goes_through_download_url_and_checks_the_name_hash(weights_server, torch_home, monkeypatch,
                                                                           caplog):
    url, served, prefix = weights_server
    monkeypatch.delenv('BLOCKLEARN_OFFLINE', raising=False)

    class Served(WeightsEnum):
        GOOD = Weights(url=f'{url}/good-{prefix}.pth', transforms=lambda: None, meta={})
        BAD = Weights(url=f'{url}/bad-00000000.pth', transforms=lambda: None, meta={})

    folder = torch_home / 'hub' / 'checkpoints'
    dest = weights_file(Served.GOOD)
    assert dest == folder / f'good-{prefix}.pth' and dest.read_bytes() == (served / dest.name).read_bytes()
    assert f'Downloading {url}/good-{prefix}.pth' in caplog.text  # one line of the blocklearn logger, no bar
    assert same_weights(nn.Sequential(*list(load_weights(resnet18(), Served.GOOD).children())[:-2]),
                        seeded_state(seed=5))
    with pytest.raises(WeightsNotFoundError, match=r'download failed: .*sha256 is [0-9a-f]{64}, expected 00000000'):
        weights_file(Served.BAD)
    assert sorted(p.name for p in folder.iterdir()) == [f'good-{prefix}.pth']  # nothing of the bad one, not even a temp
