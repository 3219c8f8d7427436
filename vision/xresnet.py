"""XResNet, the "bag of tricks" ResNet (He et al. 2019, ResNet-D) that fastbook chapter 7 trains from scratch.

Three changes to a ResNet: a stem of three 3x3 convs (c_in -> 32 -> 32 -> 64) instead of one 7x7; a downsampling
shortcut that average-pools before its 1x1 conv (so it sees every pixel, not one in four); and each residual
block's last BatchNorm starting at a zero scale, so every block begins as its shortcut and deep nets train at
high learning rates. Module names follow fastai's, so a state_dict saved from fastai's xresnet loads here.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn

from blocklearn.blocks.registry import register_for_recipes

__all__ = ['ConvLayer', 'ResBlock', 'XResNet', 'init_cnn', 'xresnet18', 'xresnet34', 'xresnet50', 'xresnet101',
           'xresnet152']


class _Sequential(nn.Sequential):
    """nn.Sequential whose slices are plain nn.Sequentials: a subclass's own arguments do not describe a slice."""

    def __getitem__(self, idx: int | slice) -> nn.Module:
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


class ConvLayer(_Sequential):
    """Conv2d (no bias: the BatchNorm has one), BatchNorm2d, then `act_cls()` unless it is None.

    `zero_bn` starts the BatchNorm's scale at 0. A 2-D, batch-norm-only subset of fastai's ConvLayer: the
    other norm types, transposed and 1-D/3-D convs are not part of the course's image models."""

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 1, act_cls: type[nn.Module] | None = nn.ReLU,
                 zero_bn: bool = False):
        bn = nn.BatchNorm2d(nf)
        nn.init.constant_(bn.weight, 0.0 if zero_bn else 1.0)
        layers: list[nn.Module] = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False), bn]
        if act_cls is not None:
            layers.append(act_cls())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """`act(convpath(x) + idpath(x))`: two 3x3 convs (`expansion` 1) or a 1x1-3x3-1x1 bottleneck (`expansion` 4).

    `ni` and `nf` are counted before the expansion, as in fastai: the block maps `ni*expansion` channels to
    `nf*expansion`. The shortcut average-pools when `stride` > 1 and has a 1x1 conv when the channels change."""

    def __init__(self, expansion: int, ni: int, nf: int, stride: int = 1, ks: int = 3,
                 act_cls: type[nn.Module] = nn.ReLU):
        super().__init__()
        nh, ni, nf = nf, ni * expansion, nf * expansion
        if expansion == 1:
            convs = [ConvLayer(ni, nh, ks, stride=stride, act_cls=act_cls),
                     ConvLayer(nh, nf, ks, act_cls=None, zero_bn=True)]
        else:
            convs = [ConvLayer(ni, nh, 1, act_cls=act_cls),
                     ConvLayer(nh, nh, ks, stride=stride, act_cls=act_cls),
                     ConvLayer(nh, nf, 1, act_cls=None, zero_bn=True)]
        self.convpath = nn.Sequential(*convs)
        shortcut: list[nn.Module] = []
        if stride != 1:
            # ceil_mode keeps an odd-sized feature map's last row and column, matching the strided conv path.
            shortcut.append(nn.AvgPool2d(stride, ceil_mode=True))
        if ni != nf:
            shortcut.append(ConvLayer(ni, nf, 1, act_cls=None))
        self.idpath = nn.Sequential(*shortcut)
        self.act = act_cls(inplace=True) if act_cls is nn.ReLU else act_cls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convpath(x) + self.idpath(x))


class XResNet(_Sequential):
    """Stem, max pool, `len(layers)` stages of `block`s, then average pool, flatten, dropout `p`, linear to `n_out`.

    A plain nn.Sequential (children 0-2 the stem, 3 the max pool, then the stages, then the head), so
    `vision_learner` can cut it before its pooling. fastai's self-attention (`sa`) and 1-D/3-D variants are left
    out."""

    def __init__(self, block: type[nn.Module], expansion: int, layers: Sequence[int], p: float = 0.0, c_in: int = 3,
                 n_out: int = 1000, stem_szs: Sequence[int] = (32, 32, 64), widen: float = 1.0,
                 act_cls: type[nn.Module] = nn.ReLU, ks: int = 3, stride: int = 2):
        self.block, self.expansion = block, expansion
        szs = [c_in, *stem_szs]
        stem = [ConvLayer(szs[i], szs[i + 1], ks, stride=stride if i == 0 else 1, act_cls=act_cls)
                for i in range(len(stem_szs))]
        widths = [int(o * widen) for o in [64, 128, 256, 512] + [256] * (len(layers) - 4)]
        # The first stage takes the stem's 64 channels: `ni` is counted before the block's expansion.
        widths = [64 // expansion, *widths]
        stages = [self._stage(widths[i], widths[i + 1], n, stride=1 if i == 0 else stride, ks=ks, act_cls=act_cls)
                  for i, n in enumerate(layers)]
        super().__init__(*stem, nn.MaxPool2d(ks, stride=stride, padding=ks // 2), *stages,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p),
                         nn.Linear(widths[len(layers)] * expansion, n_out))
        init_cnn(self)

    def _stage(self, ni: int, nf: int, n_blocks: int, stride: int, ks: int,
               act_cls: type[nn.Module]) -> nn.Sequential:
        return nn.Sequential(*[self.block(self.expansion, ni if i == 0 else nf, nf, stride=stride if i == 0 else 1,
                                          ks=ks, act_cls=act_cls) for i in range(n_blocks)])


def init_cnn(m: nn.Module) -> nn.Module:
    """Kaiming-normal weights for every conv and linear layer, zero biases (BatchNorm's too); scales stay as set."""
    for mod in m.modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight)
        bias = getattr(mod, 'bias', None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)
    return m


def xresnet18(pretrained: bool = False, **kwargs) -> XResNet:
    """XResNet with [2, 2, 2, 2] basic blocks (11.7M parameters with n_out=1000); `kwargs` go to XResNet."""
    return _xresnet('xresnet18', pretrained, 1, [2, 2, 2, 2], **kwargs)


def xresnet34(pretrained: bool = False, **kwargs) -> XResNet:
    """XResNet with [3, 4, 6, 3] basic blocks; `kwargs` (n_out, c_in, p, ...) go to XResNet."""
    return _xresnet('xresnet34', pretrained, 1, [3, 4, 6, 3], **kwargs)


def xresnet50(pretrained: bool = False, **kwargs) -> XResNet:
    """XResNet with [3, 4, 6, 3] bottleneck blocks (25.6M parameters with n_out=1000); `kwargs` go to XResNet."""
    return _xresnet('xresnet50', pretrained, 4, [3, 4, 6, 3], **kwargs)


def xresnet101(pretrained: bool = False, **kwargs) -> XResNet:
    """XResNet with [3, 4, 23, 3] bottleneck blocks; `kwargs` go to XResNet."""
    return _xresnet('xresnet101', pretrained, 4, [3, 4, 23, 3], **kwargs)


def xresnet152(pretrained: bool = False, **kwargs) -> XResNet:
    """XResNet with [3, 8, 36, 3] bottleneck blocks; `kwargs` go to XResNet."""
    return _xresnet('xresnet152', pretrained, 4, [3, 8, 36, 3], **kwargs)


def _xresnet(name: str, pretrained: bool, expansion: int, layers: list[int], **kwargs) -> XResNet:
    if pretrained:
        # fastai offers one set of xresnet50 weights, by download; none ship with blocklearn or torchvision.
        raise ValueError(f'{name}: blocklearn has no pretrained weights for xresnets. Pass pretrained=False to '
                         f'train from scratch (as fastbook chapter 7 does), or load a state_dict file of your own: '
                         f"vision_learner(dls, {name}, pretrained=False, weights='path/to/weights.pth').")
    return XResNet(ResBlock, expansion, layers, **kwargs)


# What a recipe (an export) may name: the builders, so `vision_learner(dls, xresnet18, ...)` exports.
register_for_recipes('model', xresnet18, xresnet34, xresnet50, xresnet101, xresnet152)
