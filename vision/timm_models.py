"""timm backbones by name (the `timm` extra): `vision_learner(dls, 'convnext_tiny')` puts our head on timm's body."""
from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torchvision.models as tvm

from blocklearn.blocks.external import download_url
from blocklearn.blocks.registry import register_for_recipes

from .extras import require_extra
from .models import (OFFLINE_ENV, Cut, Weights, WeightsNotFoundError, create_head, create_vision_model, default_split,
                     load_weights)

__all__ = ['TimmBody', 'create_timm_model', 'timm_arch', 'timm_meta']


class TimmBody(nn.Module):
    """A timm model without its classifier and pooling, giving a `(batch, channels, h, w)` map to our head.

    Models that give channels last (swin, mambaout) are permuted; a transformer's tokens `(batch, n, channels)` become
    `(batch, channels, n, 1)`, so the head pools over the tokens."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.channels_last = str(getattr(model, 'output_fmt', 'NCHW')).upper().endswith('NHWC')
        self.num_features = self._count_features()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.model(x)
        if f.ndim == 4:
            return f.permute(0, 3, 1, 2) if self.channels_last else f
        if f.ndim == 3:
            return f.transpose(1, 2).unsqueeze(-1)
        return f[:, :, None, None]

    def _count_features(self) -> int:
        # Some models take only their own input size (a ViT's patch grid), so the dummy batch has that size.
        size = tuple(self.model.pretrained_cfg.get('input_size') or (3, 224, 224))
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self(torch.zeros(1, *size)).shape[1]
        finally:
            self.train(was_training)


def timm_arch(name: str) -> str:
    """`name` when timm has a model of that name (with or without a `.tag` of its weights); ValueError otherwise."""
    timm = _timm(name)
    known = timm.list_pretrained() if '.' in name else timm.list_models()
    if name in known:
        return name
    if name in tvm.list_models(module=tvm):
        raise ValueError(f"arch {name!r} is a torchvision model, not a timm one: pass the function itself, "
                         f"e.g. `from torchvision.models import {name}` then vision_learner(dls, {name}).")
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ''
    raise ValueError(f"arch {name!r} is not a timm model name{hint}; timm.list_models('*convnext*') lists them "
                     f"(timm.list_pretrained() with their weights), or pass a model function such as resnet34.")


def timm_meta(name: str) -> dict[str, Any]:
    """What `model_meta` holds for a builder, for a timm name: body/head split, and timm's stats for its weights."""
    timm = _timm(name)
    cfg = timm.models.get_pretrained_cfg(timm_arch(name))
    mean, std = (getattr(cfg, 'mean', None), getattr(cfg, 'std', None)) if cfg is not None else (None, None)
    stats = (list(mean), list(std)) if mean is not None and std is not None else None
    return {'cut': None, 'split': default_split, 'stats': stats}


def create_timm_model(arch: str, n_out: int, pretrained: bool = True, weights: Weights = None, cut: Cut = None,
                      n_in: int = 3, init: Callable | None = nn.init.kaiming_normal_,
                      custom_head: nn.Module | None = None, concat_pool: bool = True,
                      lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                      first_bn: bool = True, bn_final: bool = False, lin_first: bool = False,
                      y_range: tuple[float, float] | None = None) -> nn.Sequential:
    """`nn.Sequential(body, head)` as create_vision_model makes it, with the body of timm model `arch`.

    Weights: timm's pretrained ones from its cache (downloaded if absent), or `weights=` a state_dict of the whole
    timm model (its classifier included), or none."""
    if cut is not None:
        raise ValueError(f"create_timm_model: cut={cut!r} is not used for timm model {arch!r}, whose body is timm's "
                         f"features (no classifier, no pooling); to cut it elsewhere, pass as the arch a function "
                         f"that builds it with timm.create_model, and cut=.")
    body = TimmBody(_timm_features(arch, pretrained, weights))
    if custom_head is None:
        custom_head = create_head(body.num_features, n_out, lin_ftrs=lin_ftrs, ps=ps, concat_pool=concat_pool,
                                  first_bn=first_bn, bn_final=bn_final, lin_first=lin_first, y_range=y_range)
    # The rest as for any body: the first conv adapted to n_in channels, the head initialised.
    return create_vision_model(body, n_out, pretrained=False, cut=_whole, n_in=n_in, init=init,
                               custom_head=custom_head)


def _whole(body: nn.Module) -> nn.Module:
    return body


def _timm(name: str) -> Any:
    require_extra('timm', f'timm model {name!r}')
    import timm
    return timm


def _timm_features(arch: str, pretrained: bool, weights: Weights) -> nn.Module:
    """timm model `arch` with its weights, then without its classifier and pooling (the same keys every way)."""
    timm = _timm(arch)
    name = timm_arch(arch)
    if weights is not None:
        if isinstance(weights, tvm.WeightsEnum):
            raise ValueError(f'create_timm_model: weights={weights} are torchvision weights; timm model {name!r} '
                             f"takes pretrained=True (timm's weights) or weights='path/to/state_dict.pth'.")
        model = timm.create_model(name, pretrained=False)
        load_weights(model, weights)
    elif pretrained:
        # timm reads its files with torch.load(weights_only=True) or safetensors: tensors only, never code.
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=_pretrained_source(timm, name))
    else:
        model = timm.create_model(name, pretrained=False)
    model.reset_classifier(0, '')
    return model


def _pretrained_source(timm: Any, name: str) -> dict[str, Any]:
    """timm's pretrained config overlay that loads `name`'s weights from a file of its caches, with no network."""
    cfg = timm.models.get_pretrained_cfg(name)
    file = _pretrained_file(name, cfg)
    # custom_load says the model's own loader reads cfg.url's format (a ViT's .npz) or the hub's ('hf'); a hub file is
    # otherwise a plain state dict. Said every time: timm resets it to False for a file it is handed.
    from_url = bool(cfg.url) and file.name == _checkpoint(cfg.url).name
    return {'file': str(file), 'custom_load': cfg.custom_load if from_url or cfg.custom_load == 'hf' else False}


def _pretrained_file(name: str, cfg: Any) -> Path:
    """The file of `name`'s pretrained weights in timm's caches (Hugging Face's, then torch hub's), else downloaded."""
    hub, url = getattr(cfg, 'hf_hub_id', None), getattr(cfg, 'url', None)
    if not hub and not url:
        raise ValueError(f"timm has no pretrained weights for {name!r}: pass pretrained=False, or "
                         f"weights='path/to/state_dict.pth'.")
    cached = _cached_file(cfg)
    if cached is not None:
        return cached
    if os.environ.get(OFFLINE_ENV, '') not in ('', '0'):
        raise WeightsNotFoundError(_missing_message(name, cfg, f'{OFFLINE_ENV} is set, so no download was tried'))
    errors = []
    for download in ([_from_hub] if hub else []) + ([_from_url] if url else []):
        try:
            return download(cfg)
        except Exception as e:  # noqa: BLE001 - whatever the network or the hub raised, the fix is the same file
            errors.append((str(e).strip().splitlines() or [type(e).__name__])[0].rstrip('.'))
    raise WeightsNotFoundError(_missing_message(name, cfg, f"the download failed: {'; '.join(errors)}"))


def _hub_files(cfg: Any) -> list[str]:
    # timm prefers a safetensors file to a pickle one when a hub repo has both
    named = getattr(cfg, 'hf_hub_filename', None)
    return [named] if named else ['model.safetensors', 'pytorch_model.bin']


def _checkpoint(url: str) -> Path:
    return Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(urllib.parse.urlparse(url).path)


def _cached_file(cfg: Any) -> Path | None:
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        repo, _, revision = cfg.hf_hub_id.partition('@')
        for filename in _hub_files(cfg):
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if cfg.url and _checkpoint(cfg.url).is_file():
        return _checkpoint(cfg.url)
    return None


def _from_hub(cfg: Any) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError
    repo, _, revision = cfg.hf_hub_id.partition('@')
    *first, last = _hub_files(cfg)
    for filename in first:
        try:
            return Path(hf_hub_download(repo, filename, revision=revision or None))
        except RemoteEntryNotFoundError:
            continue  # the repo has no file of this name: the next one
    return Path(hf_hub_download(repo, last, revision=revision or None))


def _from_url(cfg: Any) -> Path:
    dest = _checkpoint(cfg.url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    found = re.search(r'-([a-f0-9]{6,})\.', dest.name)  # timm names a checkpoint after its sha256's first digits
    download_url(cfg.url, dest, show_progress=False, timeout=30, sha256=found.group(1) if found else None)
    return dest


def _missing_message(name: str, cfg: Any, why: str) -> str:
    lines = [f'Pretrained weights of timm model {name!r} are not on disk and {why}.']
    if cfg.hf_hub_id:
        from huggingface_hub import constants
        repo = cfg.hf_hub_id.partition('@')[0]
        folder = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
        lines += [f'Put the folder {folder.name} (with the file {_hub_files(cfg)[0]}) in {folder.parent}',
                  f'  (on a machine with internet: `hf download {repo}`, then copy that folder from its cache; '
                  f'$HF_HUB_CACHE moves this one),']
    if cfg.url:
        dest = _checkpoint(cfg.url)
        lines += [f"{'or put' if cfg.hf_hub_id else 'Put'} the file {dest.name} in {dest.parent}",
                  f'  (fetch it on a machine with internet from {cfg.url}; $TORCH_HOME moves this folder),']
    lines.append("or pass weights='path/to/state_dict.pth' to load a local file, or pretrained=False to start from "
                 'random weights.')
    return '\n'.join(lines)


# A recipe names this factory and gives the timm name as data; the factory builds only names timm lists.
register_for_recipes('model', create_timm_model)
