"""Vision models for transfer learning: a pretrained body cut before its pooling, and a fresh classifier head."""
from __future__ import annotations

import inspect
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models import WeightsEnum, resnet18, resnet34, resnet50, resnet101, resnet152

from blocklearn.blocks.console import logger
from blocklearn.blocks.external import download_url
from blocklearn.blocks.registry import register_for_recipes
from blocklearn.blocks.safe_io import safe_load

from .efficientnet import efficientnet_lite0, efficientnet_lite0_body, efficientnet_lite0_split, lite0_stats
from .normalize import imagenet_stats
from .xresnet import xresnet18, xresnet34, xresnet50, xresnet101, xresnet152

__all__ = ['AdaptiveConcatPool2d', 'SigmoidRange', 'create_body', 'create_head', 'create_vision_model',
           'model_meta', 'arch_meta', 'default_meta', 'default_split', 'resnet_split', 'num_features_model',
           'has_pool_type', 'xresnet_split', 'load_weights', 'weights_file', 'WeightsNotFoundError',
           'WeightsMismatchError', 'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152']

Arch = Callable[..., nn.Module]
Cut = int | Callable[[nn.Module], nn.Module] | None
Weights = str | os.PathLike | WeightsEnum | None
ParamGroups = list[list[nn.Parameter]]

# Set to 1 on machines that must never touch the network: missing weights then fail at once.
OFFLINE_ENV = 'BLOCKLEARN_OFFLINE'


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on disk and could not be downloaded; the message says where to put them."""


class WeightsMismatchError(ValueError):
    """A state_dict does not fit the model: the message names the missing, unexpected and mis-shaped keys."""


class AdaptiveConcatPool2d(nn.Module):
    """Adaptive max pool and adaptive average pool, concatenated on the channels (max first): 2x the features."""

    def __init__(self, size: int | tuple[int, int] | None = None):
        super().__init__()
        self.size = size or 1
        self.mp, self.ap = nn.AdaptiveMaxPool2d(self.size), nn.AdaptiveAvgPool2d(self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mp(x), self.ap(x)], 1)


class SigmoidRange(nn.Module):
    """Squash the output into (`low`, `high`) with a scaled sigmoid."""

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.high - self.low) + self.low

    def extra_repr(self) -> str:
        return f'low={self.low}, high={self.high}'


# -- splits and meta --------------------------------------------------------------------------------------------
def _params(m: nn.Module) -> list[nn.Parameter]:
    return list(m.parameters())


def default_split(model: nn.Module) -> ParamGroups:
    """Two parameter groups: the body `model[0]` and the head `model[1]`."""
    return [_params(model[0]), _params(model[1])]


def resnet_split(model: nn.Module) -> ParamGroups:
    """Three parameter groups for a resnet: stem to layer2, layer3 and layer4, then the head."""
    body = model[0]
    return [_params(body[:6]), _params(body[6:]), _params(model[1])]


def xresnet_split(model: nn.Module) -> ParamGroups:
    """Three parameter groups for an xresnet: the three-conv stem, the stages, then the head."""
    body = model[0]
    return [_params(body[:3]), _params(body[3:]), _params(model[1])]


def _resnet_meta() -> dict[str, Any]:
    return {'cut': -2, 'split': resnet_split, 'stats': imagenet_stats}


default_meta: dict[str, Any] = {'cut': None, 'split': default_split, 'stats': imagenet_stats}

# Keyed by the builder itself: `vision_learner(dls, resnet34)` passes the function, as in the course.
model_meta: dict[Callable, dict[str, Any]] = {
    resnet18: _resnet_meta(), resnet34: _resnet_meta(), resnet50: _resnet_meta(), resnet101: _resnet_meta(),
    resnet152: _resnet_meta(),
    # An xresnet ends in pool, flatten, dropout, linear: the body is what comes before those four.
    **{arch: {'cut': -4, 'split': xresnet_split, 'stats': imagenet_stats}
       for arch in (xresnet18, xresnet34, xresnet50, xresnet101, xresnet152)},
    efficientnet_lite0: {'cut': efficientnet_lite0_body, 'split': efficientnet_lite0_split, 'stats': lite0_stats},
}


def arch_meta(arch: Any) -> dict[str, Any]:
    """`model_meta[arch]` with the defaults filled in for any key it lacks (or for an unknown arch)."""
    return {**default_meta, **model_meta.get(arch, {})}


# -- body ------------------------------------------------------------------------------------------------------
def has_pool_type(m: nn.Module) -> bool:
    """Whether `m` is, or contains, a pooling layer."""
    pools = (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
             nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd, AdaptiveConcatPool2d)
    return any(isinstance(o, pools) for o in m.modules())


def create_body(model_or_arch: nn.Module | Arch, n_in: int = 3, pretrained: bool = True, cut: Cut = None,
                weights: Weights = None) -> nn.Sequential | nn.Module:
    """The model (built from `arch` with its weights) cut before its pooling: `cut` an index or a function.

    With `cut=None`: `model_meta`'s cut, else the children up to the last one that holds a pooling layer.
    """
    if isinstance(model_or_arch, nn.Module):
        model, arch = model_or_arch, type(model_or_arch)
        if weights is not None:
            load_weights(model, weights, arch)
    else:
        arch = model_or_arch
        model = _build(arch, pretrained, weights)
    if cut is None:
        cut = arch_meta(arch)['cut']
    body = _cut_model(model, cut, arch)
    if n_in != 3:
        _adapt_first_conv(body, n_in)
    return body


def _cut_model(model: nn.Module, cut: Cut, arch: Any) -> nn.Module:
    if callable(cut) and not isinstance(cut, int):
        body = cut(model)
        if not isinstance(body, nn.Module):
            raise TypeError(f'create_body: cut={_name(cut)} returned {type(body).__name__}, not an nn.Module; '
                            'a cut function must take the model and return its body.')
        return body
    children = list(model.children())
    if cut is None:
        idx = next((i for i in reversed(range(len(children))) if has_pool_type(children[i])), None)
        if idx is None:
            raise ValueError(f'create_body: {_name(arch)} has no child holding a pooling layer to cut before; '
                             'pass cut=<index of the first child to drop> or cut=<function: model -> body>.')
        cut = idx
    body = nn.Sequential(*children[:cut])
    if len(body) == 0:
        raise ValueError(f'create_body: cut={cut} leaves no layers of {_name(arch)} ({len(children)} children); '
                         'pass the index of the first child to drop, e.g. cut=-2 for a resnet.')
    return body


def _adapt_first_conv(body: nn.Module, n_in: int) -> None:
    """Change the first 3-channel conv to take `n_in` channels, keeping what its pretrained filters respond to."""
    conv = next((m for m in body.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3), None)
    if conv is None:
        raise ValueError(f'create_body: n_in={n_in} needs a first Conv2d with 3 input channels to adapt, '
                         'but the body has none; build the model for your channels and pass it as the arch.')
    if conv.groups != 1:
        raise ValueError(f'create_body: n_in={n_in} cannot adapt a grouped first conv (groups={conv.groups}).')
    w = conv.weight.detach()
    if n_in == 1:
        # A grey image seen as r=g=b gives the same response as the summed filter on one channel.
        new = w.sum(1, keepdim=True)
    else:
        new = w[:, [i % 3 for i in range(n_in)]] * (3 / n_in)
    conv.weight = nn.Parameter(new.contiguous())
    conv.in_channels = n_in


def num_features_model(m: nn.Module, n_in: int = 3) -> int:
    """The number of channels `m` outputs, found by running it (in eval mode) on a small dummy batch."""
    was_training = m.training
    m.eval()
    try:
        errors = []
        for size in (64, 128, 224):
            try:
                with torch.no_grad():
                    out = m(torch.zeros(1, n_in, size, size, device=_device(m)))
                return out.shape[1]
            except RuntimeError as e:
                errors.append(f'{size}px: {e}')
        raise ValueError(f'Could not find the number of features of the body by running it on a dummy batch '
                         f'of {n_in}-channel images ({"; ".join(errors)}); check `cut` and `n_in`.')
    finally:
        m.train(was_training)


def _device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device('cpu')


# -- head ------------------------------------------------------------------------------------------------------
def create_head(nf: int, n_out: int, lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                concat_pool: bool = True, first_bn: bool = True, bn_final: bool = False, lin_first: bool = False,
                y_range: tuple[float, float] | None = None) -> nn.Sequential:
    """A classifier for `nf` body features: pool, flatten, then BatchNorm, Dropout, Linear(, ReLU) per layer.

    Hidden layers get dropout `ps/2` and the last `ps` (or one value each from a list).
    """
    if concat_pool:
        nf *= 2
    hidden = [512] if lin_ftrs is None else list(lin_ftrs)
    sizes = [nf] + hidden + [n_out]
    if isinstance(ps, (int, float)):
        drops = [ps / 2] * len(hidden) + [ps]
    else:
        drops = list(ps)
        if len(drops) != len(hidden) + 1:
            raise ValueError(f'create_head: ps={drops} needs {len(hidden) + 1} values, one per linear layer '
                             f'(lin_ftrs={hidden} plus the output layer), or pass a single float.')
    layers: list[nn.Module] = [AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for i, (ni, no, p) in enumerate(zip(sizes[:-1], sizes[1:], drops)):
        last = i == len(hidden)
        bn = first_bn or i > 0
        act = [] if last else [nn.ReLU(inplace=True)]
        if lin_first and last:
            # A BatchNorm or Dropout after the logits would only blur them: the output layer is a plain Linear.
            layers += [nn.Linear(ni, no)]
        elif lin_first:
            layers += [nn.Linear(ni, no, bias=not bn), *act] + ([nn.BatchNorm1d(no)] if bn else []) \
                + ([nn.Dropout(p)] if p else [])
        else:
            layers += ([nn.BatchNorm1d(ni)] if bn else []) + ([nn.Dropout(p)] if p else []) \
                + [nn.Linear(ni, no, bias=not bn), *act]
    if bn_final:
        layers.append(nn.BatchNorm1d(n_out, momentum=0.01))
    if y_range is not None:
        layers.append(SigmoidRange(*y_range))
    return nn.Sequential(*layers)


# -- whole model -----------------------------------------------------------------------------------------------
def create_vision_model(arch: Arch, n_out: int, pretrained: bool = True, weights: Weights = None, cut: Cut = None,
                        n_in: int = 3, init: Callable | None = nn.init.kaiming_normal_,
                        custom_head: nn.Module | None = None, concat_pool: bool = True,
                        lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                        first_bn: bool = True, bn_final: bool = False, lin_first: bool = False,
                        y_range: tuple[float, float] | None = None) -> nn.Sequential:
    """`nn.Sequential(body, head)`: `arch` cut before its pooling, then a new head with `n_out` outputs."""
    body = create_body(arch, n_in=n_in, pretrained=pretrained, cut=cut, weights=weights)
    if custom_head is None:
        nf = num_features_model(body, n_in)
        head = create_head(nf, n_out, lin_ftrs=lin_ftrs, ps=ps, concat_pool=concat_pool, first_bn=first_bn,
                           bn_final=bn_final, lin_first=lin_first, y_range=y_range)
    else:
        head = custom_head
    if init is not None:
        _init_head(head, init)
    return nn.Sequential(body, head)


def _init_head(head: nn.Module, init: Callable) -> None:
    """`init` on the weights of the linear and conv layers, zero biases; norm layers keep their ones and zeros."""
    for m in head.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# -- weights ---------------------------------------------------------------------------------------------------
def _build(arch: Arch, pretrained: bool, weights: Weights) -> nn.Module:
    """`arch`'s model with its pretrained weights (torchvision's DEFAULT), `weights`, or none."""
    enum = _as_weights_enum(arch, weights)
    if enum is None and pretrained and weights is None:
        enum = _default_weights(arch)
        if enum is None:
            if 'pretrained' in _arg_names(arch):
                return arch(pretrained=True)
            raise ValueError(f'create_body: pretrained=True but {_name(arch)} is not a torchvision model, so '
                             'blocklearn cannot tell which weights to load; pass weights=<path to a state_dict '
                             'file> or pretrained=False.')
    if enum is not None and 'weights' in _arg_names(arch):
        # torchvision's builder reads the checkpoint with torch.load(weights_only=False), which runs any code a
        # pickle names: the file is read through safe_load first, so a hostile one is refused before that
        safe_load(weights_file(enum))
        return arch(weights=enum)
    model = _instantiate(arch)
    source = enum if enum is not None else weights
    if source is not None:
        load_weights(model, source, arch)
    return model


def _instantiate(arch: Arch) -> nn.Module:
    """`arch` built with random weights, never touching the network."""
    names = _arg_names(arch)
    if 'weights' in names:
        return arch(weights=None)
    if 'pretrained' in names:
        return arch(pretrained=False)
    return arch()


def _arg_names(f: Callable) -> set[str]:
    try:
        return set(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        return set()


def _default_weights(arch: Arch) -> WeightsEnum | None:
    try:
        return tvm.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError, AttributeError, TypeError):
        return None


def _as_weights_enum(arch: Arch, weights: Weights) -> WeightsEnum | None:
    """`weights` as torchvision weights: an enum member, or a name like 'DEFAULT' that is not a file on disk."""
    if isinstance(weights, WeightsEnum):
        expected = _weights_class(arch)
        if expected is not None and not isinstance(weights, expected):
            raise ValueError(f'create_body: weights={weights} are for another architecture than {_name(arch)}; '
                             f'pass one of {[str(w) for w in expected]} or a path to a state_dict file.')
        return weights
    if isinstance(weights, str) and not Path(weights).exists():
        expected = _weights_class(arch)
        if expected is not None and re.fullmatch(r'[A-Za-z0-9_]+', weights):
            try:
                return expected[weights]
            except KeyError:
                raise ValueError(f"create_body: weights='{weights}' is neither a file nor a name of "
                                 f"{expected.__name__} ({', '.join(expected.__members__)}).") from None
    return None


def _weights_class(arch: Arch) -> type[WeightsEnum] | None:
    try:
        return tvm.get_model_weights(arch)
    except (ValueError, KeyError, AttributeError, TypeError):
        return None


def weights_file(weights: WeightsEnum) -> Path:
    """The checkpoint of torchvision `weights` in `torch.hub.get_dir()/checkpoints`, downloaded if absent.

    Raises WeightsNotFoundError, saying where to put the file, when it is absent and cannot be downloaded
    (at once, without trying the network, when the environment sets BLOCKLEARN_OFFLINE=1).
    """
    url = weights.url
    folder = Path(torch.hub.get_dir()) / 'checkpoints'
    dest = folder / os.path.basename(urllib.parse.urlparse(url).path)
    if dest.is_file():
        return dest
    if os.environ.get(OFFLINE_ENV, '') not in ('', '0'):
        raise WeightsNotFoundError(_missing_message(weights, dest, f'{OFFLINE_ENV} is set, so no download was tried'))
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info(f'Downloading {url} to {dest}')
    # torchvision names a checkpoint after the first digits of its sha256: the download must match them
    found = re.search(r'-([a-f0-9]{6,})\.', dest.name)
    try:
        download_url(url, dest, show_progress=False, timeout=30, sha256=found.group(1) if found else None)
    except (OSError, ValueError) as e:
        raise WeightsNotFoundError(_missing_message(weights, dest, f'the download failed: {e}')) from None
    return dest


def _missing_message(weights: WeightsEnum, dest: Path, why: str) -> str:
    return (f'Pretrained weights {weights} are not on disk and {why}.\n'
            f'Put the file {dest.name} in {dest.parent}\n'
            f'  (fetch it on a machine with internet from {weights.url}; $TORCH_HOME moves this folder),\n'
            f"or pass weights='path/to/state_dict.pth' to load a local file, or pretrained=False to start "
            'from random weights.')


def load_weights(model: nn.Module, weights: str | os.PathLike | WeightsEnum, arch: Any = None) -> nn.Module:
    """Load a state_dict file (or torchvision weights) into `model`, with a clear error when it does not fit."""
    if isinstance(weights, WeightsEnum):
        state = safe_load(weights_file(weights))
        source = str(weights)
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f'weights={str(weights)!r}: no such file; pass the path of a state_dict saved '
                                    'with torch.save(model.state_dict(), path).')
        state = safe_load(path)
        source = str(path)
    state = _state_dict_of(state, source)
    _check_fits(model, state, source, arch)
    model.load_state_dict(state)
    return model


def _state_dict_of(obj: Any, source: str) -> dict[str, torch.Tensor]:
    # Learner.save and many checkpoints wrap the weights: {'model': state_dict, 'opt': ...}.
    for key in ('model', 'state_dict'):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsMismatchError(f'weights={source!r} does not hold a state_dict (a dict of tensors) but '
                                   f'{type(obj).__name__}; save one with torch.save(model.state_dict(), path).')
    return obj


def _check_fits(model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: Any) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}' for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return
    lines = [f'weights={source!r} does not fit {_name(arch or type(model))}:']
    for title, keys in (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', shapes)):
        if keys:
            more = f' ... and {len(keys) - 5} more' if len(keys) > 5 else ''
            lines.append(f'  {len(keys)} {title}: {", ".join(keys[:5])}{more}')
    lines.append('Pass the state_dict of this same architecture (the full model, before any cut).')
    raise WeightsMismatchError('\n'.join(lines))


def _name(f: Any) -> str:
    return getattr(f, '__name__', None) or type(f).__name__


# What a recipe (an export) may name: our factory, and torchvision's classification builders and their weight
# enums, each by its own module and name (torchvision.models.resnet:resnet18): see blocks/registry.py.
register_for_recipes('model', create_vision_model, *map(tvm.get_model_builder, tvm.list_models(module=tvm)))
register_for_recipes('enum', *map(tvm.get_model_weights, tvm.list_models(module=tvm)))
