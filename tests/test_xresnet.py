"""xresnet18-152: the ResNet-D architecture, its zero-initialised blocks, a Learner on it, vision_learner, export."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from blocklearn.callbacks.core import Callback
from blocklearn.learner.learner import Learner
from blocklearn.learner.load import load_learner
from blocklearn.learner.metrics import accuracy
from blocklearn.vision.data import ImageDataLoaders
from blocklearn.vision.learner import vision_learner
from blocklearn.vision.resize import Resize
from blocklearn.vision.xresnet import ResBlock, xresnet18, xresnet34, xresnet50, xresnet101, xresnet152


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def expected_params(expansion: int, layers: list[int], n_out: int = 1000, c_in: int = 3) -> int:
    """The count from the paper's description, layer by layer: conv k*k*ni*nf (no bias), BatchNorm 2*nf."""
    def conv_bn(ni: int, nf: int, k: int) -> int:
        return k * k * ni * nf + 2 * nf
    total = conv_bn(c_in, 32, 3) + conv_bn(32, 32, 3) + conv_bn(32, 64, 3)
    ni = 64
    for n, width in zip(layers, (64, 128, 256, 512)):
        nf = width * expansion
        for _ in range(n):
            if expansion == 1:
                total += conv_bn(ni, width, 3) + conv_bn(width, nf, 3)
            else:
                total += conv_bn(ni, width, 1) + conv_bn(width, width, 3) + conv_bn(width, nf, 1)
            if ni != nf:
                total += conv_bn(ni, nf, 1)  # the shortcut's 1x1 conv (its pooling has no parameters)
            ni = nf
    return total + ni * n_out + n_out


# A 3x3 stem of 32, 32, 64 channels in place of torchvision's 7x7 conv to 64: the only difference in size.
STEM_DIFFERENCE = (3 * 3 * 3 * 32 + 64 + 3 * 3 * 32 * 32 + 64 + 3 * 3 * 32 * 64 + 128) - (7 * 7 * 3 * 64 + 128)


@pytest.mark.parametrize('arch,tv_arch', [(xresnet18, torchvision.models.resnet18),
                                          (xresnet34, torchvision.models.resnet34),
                                          (xresnet50, torchvision.models.resnet50)])
def test_parameter_count_is_torchvisions_resnet_with_the_three_conv_stem(arch, tv_arch):
    assert n_params(arch()) == n_params(tv_arch(weights=None)) + STEM_DIFFERENCE


def test_parameter_counts_match_the_layer_formula():
    assert STEM_DIFFERENCE == 19232
    assert n_params(xresnet18()) == expected_params(1, [2, 2, 2, 2]) == 11_708_744
    assert n_params(xresnet50(n_out=10, c_in=1)) == expected_params(4, [3, 4, 6, 3], n_out=10, c_in=1)
    assert n_params(xresnet101(n_out=5)) == expected_params(4, [3, 4, 23, 3], n_out=5)
    assert n_params(xresnet152(n_out=5)) == expected_params(4, [3, 8, 36, 3], n_out=5)


def test_forward_shapes_and_layout():
    model = xresnet18(n_out=7)
    assert isinstance(model, nn.Sequential) and len(model) == 12
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    assert xresnet50(n_out=3, c_in=1)(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    stem = [model[i][0] for i in range(3)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in stem] == [
        (3, 32, (3, 3), (2, 2)), (32, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    assert isinstance(model[3], nn.MaxPool2d)
    assert [type(m) for m in model[-4:]] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Linear]


def test_downsampling_shortcut_average_pools_before_a_stride_1_conv():
    block = xresnet50()[5][0]  # the first block of the second stage: 256 -> 512 channels, stride 2
    pool, conv = block.idpath[0], block.idpath[1][0]
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2
    assert (conv.kernel_size, conv.stride, conv.in_channels, conv.out_channels) == ((1, 1), (1, 1), 256, 512)
    # The conv path strides in its 3x3 conv (ResNet-B), not its first 1x1.
    assert [c[0].stride for c in block.convpath] == [(1, 1), (2, 2), (1, 1)]


@pytest.mark.parametrize('arch', [xresnet18, xresnet50])
def test_each_block_starts_as_relu_of_its_shortcut(arch):
    torch.manual_seed(0)
    model = arch(n_out=4).eval()
    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == (8 if arch is xresnet18 else 16)
    x = torch.randn(2, 64, 16, 16)
    for block in blocks:
        last_bn = block.convpath[-1][1]
        assert torch.equal(last_bn.weight, torch.zeros_like(last_bn.weight))
        with torch.no_grad():
            out = block(x)
            if len(block.idpath) == 0:
                assert torch.equal(out, F.relu(x))  # an identity block is the identity on non-negative inputs
            else:
                assert torch.allclose(out, F.relu(block.idpath(x)))
            x = out
    # The other BatchNorms start at scale 1, and every bias at 0.
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert sum(bool((bn.weight == 1).all()) for bn in bns) == len(bns) - len(blocks)
    assert all(bool((bn.bias == 0).all()) for bn in bns) and bool((model[-1].bias == 0).all())


def test_pretrained_says_what_to_do():
    with pytest.raises(ValueError, match='pretrained=False'):
        xresnet50(pretrained=True)


@pytest.fixture
def tiny_folder(tmp_path, write_image):
    colors = {'red': (220, 30, 30), 'blue': (30, 30, 220)}
    for split, n in (('train', 8), ('valid', 4)):
        for label, color in colors.items():
            for i in range(n):
                write_image(tmp_path / split / label / f'{label}_{i}.png', (24 + i, 20), color)
    return tmp_path


def test_learner_on_xresnet_trains_and_takes_new_dls_of_another_size(tiny_folder):
    """Progressive resizing (ch7): `learn.dls = get_dls(...)` then training again; callbacks see the new dls."""
    def get_dls(size: int):
        return ImageDataLoaders.from_folder(tiny_folder, item_tfms=Resize(size), bs=4, num_workers=0)

    class SeenSizes(Callback):
        def before_fit(self):
            self.widths, self.dls_seen = [], self.dls

        def before_batch(self):
            if self.training:
                self.widths.append(self.xb[0].shape[-1])

    torch.manual_seed(0)
    dls = get_dls(16)
    learn = Learner(dls, xresnet18(n_out=dls.c, widen=0.25), loss_func=nn.CrossEntropyLoss(), metrics=accuracy,
                    cbs=SeenSizes())
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 3e-3)
        assert learn.seen_sizes.widths == [16] * 4
        learn.dls = new_dls = get_dls(24)
        learn.fine_tune(1, 1e-3)
    assert learn.seen_sizes.widths == [24] * 4 and learn.seen_sizes.dls_seen is new_dls
    preds, _ = learn.tta(n=2)
    assert preds.shape == (8, 2) and torch.allclose(preds.sum(1), torch.ones(8))


def test_vision_learner_cuts_an_xresnet_and_exports(tiny_folder, tmp_path):
    dls = ImageDataLoaders.from_folder(tiny_folder, item_tfms=Resize(16), bs=4, num_workers=0)
    learn = vision_learner(dls, xresnet18, pretrained=False, path=tmp_path)
    body, head = learn.model
    assert len(body) == 8 and isinstance(body[-1][-1], ResBlock)
    assert head[-1].out_features == 2 and head[2].num_features == 2 * 512
    learn.create_opt()
    # stem: 3 x (conv, bn weight, bn bias); stages: 8 blocks x 2 conv layers + 3 shortcut conv layers; head
    assert [len(g['params']) for g in learn.opt.param_groups] == [9, (8 * 2 + 3) * 3, 6]
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    item = sorted((tiny_folder / 'valid' / 'red').glob('*.png'))[0]
    learn.export('xrn.pkl')
    loaded = load_learner(tmp_path / 'xrn.pkl')
    assert torch.allclose(loaded.predict(item)[2], learn.predict(item)[2], atol=1e-6)
    with pytest.raises(ValueError, match='pretrained=False'):
        vision_learner(dls, xresnet18)
