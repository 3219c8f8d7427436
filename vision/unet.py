"""U-Net for segmentation (fastbook chapter 1's CamVid model): a CNN or timm encoder, and a decoder that climbs back
to the input's size joining the encoder's map of each resolution (`unet_learner`, in learner.py, trains it)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from blocklearn.blocks.registry import register_for_recipes

from .models import Arch, Cut, SigmoidRange, Weights, _adapt_first_conv, create_body
from .timm_models import _timm_features
from .xresnet import ConvLayer, ResBlock

__all__ = ['DynamicUnet', 'UnetDecoder', 'UnetBlock', 'PixelShuffle_ICNR', 'SelfAttention', 'TimmEncoder', 'icnr_init',
           'create_unet_model']

Size = int | tuple[int, int]

# The dummy forward's size when the caller gives none: the skips depend on the encoder's strides,
# not on this size, as long as the deepest map keeps more than one pixel per stage.
DEFAULT_IMG_SIZE = (224, 224)


def create_unet_model(arch: Arch | str, n_out: int, img_size: Size | None = None, pretrained: bool = True,
                      weights: Weights = None, cut: Cut = None, n_in: int = 3, **kwargs: Any) -> DynamicUnet:
    """A DynamicUnet on `arch`'s body (`create_body`; a name is timm's) with `n_out` channels out.

    `kwargs` go to DynamicUnet; `img_size` (default 224) is only the size of the dummy batch that finds the skips."""
    if isinstance(arch, str):
        encoder = _timm_encoder(arch, pretrained, weights, cut, n_in)
    else:
        encoder = create_body(arch, n_in=n_in, pretrained=pretrained, cut=cut, weights=weights)
    return DynamicUnet(encoder, n_out, img_size, **kwargs)


class DynamicUnet(nn.Sequential):
    """`encoder` then a decoder built to fit it: `model[0]` is the encoder and `model[1]` the decoder, so the arch's
    splitter (resnet_split, ...) freezes the encoder alone.

    The skips are the encoder's last map at each resolution, found by a dummy forward at `img_size`. The encoder is
    an nn.Sequential (a `create_body` body: its children run in order) or a module returning its maps, shallowest
    first (TimmEncoder). The output has the input's height and width whatever they are. fastai's `bottle`, `act_cls`
    and `norm_type` are left out: the decoder is ReLU and BatchNorm throughout."""

    def __init__(self, encoder: nn.Module, n_out: int, img_size: Size | None = None, blur: bool = False,
                 blur_final: bool = True, self_attention: bool = False, y_range: tuple[float, float] | None = None,
                 last_cross: bool = True, init: Callable | None = nn.init.kaiming_normal_):
        img_size = DEFAULT_IMG_SIZE if img_size is None else _pair(img_size)
        n_in = _in_channels(encoder)
        returns_maps = not isinstance(encoder, nn.Sequential)
        shapes = _feature_shapes(encoder, n_in, img_size, returns_maps)
        skip_idxs = [i for i in range(len(shapes) - 1) if shapes[i][-2:] != shapes[i + 1][-2:]]
        shallowest = shapes[skip_idxs[0]] if skip_idxs else shapes[-1]
        decoder = UnetDecoder([shapes[i][1] for i in skip_idxs], shapes[-1][1], n_in, n_out,
                              upsample_last=tuple(shallowest[-2:]) != img_size, blur=blur, blur_final=blur_final,
                              self_attention=self_attention, y_range=y_range, last_cross=last_cross, init=init)
        super().__init__(OrderedDict(encoder=encoder, decoder=decoder))
        self.skip_idxs, self.returns_maps = tuple(skip_idxs), returns_maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, deepest = self._encode(x)
        return self.decoder(x, skips, deepest)

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        if self.returns_maps:
            maps = self.encoder(x)
            return [maps[i] for i in self.skip_idxs], maps[-1]
        # The children run one by one rather than under hooks: the skips live in this call's list only, so no
        # activation outlives the forward on a module (hooks would have to store them somewhere).
        wanted, skips = set(self.skip_idxs), []
        for i, layer in enumerate(_chain(self.encoder)):
            x = layer(x)
            if i in wanted:
                skips.append(x)
        return skips, x

    def __getitem__(self, idx: int | slice) -> nn.Module:
        # nn.Sequential slices by calling the class with the chosen modules; ours takes an encoder, not those.
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


class UnetDecoder(nn.Module):
    """Two convs on the encoder's deepest map, a UnetBlock per skip (deepest first), then up to the input's size,
    the input itself joined (`last_cross`), and a 1x1 conv to `n_out` channels (squashed into `y_range`)."""

    def __init__(self, skip_channels: list[int], nf: int, n_in: int, n_out: int, upsample_last: bool,
                 blur: bool = False, blur_final: bool = True, self_attention: bool = False,
                 y_range: tuple[float, float] | None = None, last_cross: bool = True,
                 init: Callable | None = nn.init.kaiming_normal_):
        super().__init__()
        self.middle = nn.Sequential(nn.BatchNorm2d(nf), nn.ReLU(), ConvLayer(nf, nf * 2), ConvLayer(nf * 2, nf))
        blocks, ni, n = [], nf, len(skip_channels)
        for i, skip_c in enumerate(reversed(skip_channels)):
            final = i == n - 1
            # Attention where the map is big enough to relate distant parts yet small enough to afford (fastai's).
            blocks.append(UnetBlock(ni, skip_c, final_div=not final, blur=blur and (not final or blur_final),
                                    self_attention=self_attention and i == n - 3))
            ni = blocks[-1].out_channels
        self.blocks = nn.ModuleList(blocks)
        self.upsample = PixelShuffle_ICNR(ni) if upsample_last else nn.Identity()
        self.cross = ResBlock(1, ni + n_in, ni + n_in) if last_cross else None
        self.head = nn.Conv2d(ni + n_in if last_cross else ni, n_out, 1)
        self.y_range = SigmoidRange(*y_range) if y_range is not None else None
        if init is not None:
            _init_convs(self, init)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], deepest: torch.Tensor) -> torch.Tensor:
        out = self.middle(deepest)
        for block, skip in zip(self.blocks, reversed(skips)):
            out = block(out, skip)
        out = self.upsample(out)
        if out.shape[-2:] != x.shape[-2:]:
            # Strides round odd sizes up, and an encoder whose shallowest map is 1/4 leaves more than 2x to go:
            # bilinear keeps the last step smooth at any ratio.
            out = F.interpolate(out, size=x.shape[-2:], mode='bilinear', align_corners=False)
        if self.cross is not None:
            out = self.cross(torch.cat([out, x], dim=1))
        out = self.head(out)
        return out if self.y_range is None else self.y_range(out)


class UnetBlock(nn.Module):
    """Upsample the deeper map 2x, concatenate the BatchNorm'd skip of that size, then two 3x3 conv layers.

    Keeps the concatenated width (`up_in_c//2 + x_in_c`) unless `final_div` is False, when it halves it."""

    def __init__(self, up_in_c: int, x_in_c: int, final_div: bool = True, blur: bool = False,
                 self_attention: bool = False):
        super().__init__()
        self.shuf = PixelShuffle_ICNR(up_in_c, up_in_c // 2, blur=blur)
        self.bn = nn.BatchNorm2d(x_in_c)
        ni = up_in_c // 2 + x_in_c
        self.out_channels = ni if final_div else ni // 2
        self.conv1 = ConvLayer(ni, self.out_channels)
        self.conv2 = ConvLayer(self.out_channels, self.out_channels)
        self.attn = SelfAttention(self.out_channels) if self_attention else nn.Identity()

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.shuf(up_in)
        if up.shape[-2:] != skip.shape[-2:]:
            # An odd-sized map was rounded up by the stride: doubling overshoots the skip by a row or column.
            up = F.interpolate(up, size=skip.shape[-2:], mode='nearest')
        x = F.relu(torch.cat([up, self.bn(skip)], dim=1))
        return self.attn(self.conv2(self.conv1(x)))


class PixelShuffle_ICNR(nn.Module):
    """Upsample `scale`x: a 1x1 conv to `nf*scale**2` channels, PixelShuffle, ReLU (then a blur if `blur`).

    Chosen over ConvTranspose2d or interpolation: it is learned like a transposed conv, but its ICNR start is exactly
    nearest-neighbour upsampling, so it begins free of the checkerboard a strided transposed conv draws (Aitken et
    al. 2017); `blur` (a 2x2 average after shifting one pixel) smooths what training brings back."""

    def __init__(self, ni: int, nf: int | None = None, scale: int = 2, blur: bool = False):
        super().__init__()
        nf = ni if nf is None else nf
        self.conv = nn.Conv2d(ni, nf * scale ** 2, 1)
        icnr_init(self.conv.weight, scale)
        nn.init.zeros_(self.conv.bias)
        self.shuffle = nn.PixelShuffle(scale)
        self.blur = nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1)) if blur else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.shuffle(self.conv(x)))
        return x if self.blur is None else self.blur(x)


def icnr_init(weight: torch.Tensor, scale: int = 2, init: Callable = nn.init.kaiming_normal_) -> torch.Tensor:
    """Fill the weight of a conv feeding PixelShuffle(`scale`) so each run of `scale**2` output filters is one filter,
    drawn with `init`: the shuffle then starts as nearest-neighbour upsampling."""
    nf, *rest = weight.shape
    if nf % scale ** 2:
        raise ValueError(f'icnr_init: the conv has {nf} output channels, not a multiple of scale**2={scale ** 2}.')
    sub = init(torch.empty(nf // scale ** 2, *rest))
    with torch.no_grad():
        # PixelShuffle puts channels c*r^2 ... c*r^2 + r^2-1 into the r x r cell of output channel c.
        weight.copy_(sub.repeat_interleave(scale ** 2, dim=0))
    return weight


class SelfAttention(nn.Module):
    """Attention of every position of a map over all the others (SAGAN, Zhang et al. 2018), added to the map with a
    learned scale that starts at 0, so the layer begins as the identity."""

    def __init__(self, n_channels: int):
        super().__init__()
        nk = max(n_channels // 8, 1)
        self.query, self.key = nn.Conv2d(n_channels, nk, 1, bias=False), nn.Conv2d(n_channels, nk, 1, bias=False)
        self.value = nn.Conv2d(n_channels, n_channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (conv(x).flatten(2).transpose(1, 2) for conv in (self.query, self.key, self.value))
        # scaled by 1/sqrt(nk), unlike SAGAN: the same attention, with logits that do not grow with the width
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.gamma * out.transpose(1, 2).reshape(b, c, h, w)


class TimmEncoder(nn.Module):
    """A timm model (its classifier removed) that returns the map of each of its stages, shallowest first.

    Through timm's `forward_intermediates` rather than `features_only=True`: the model keeps its own module names,
    so `weights=` takes the whole model's state_dict and the pretrained weights load as for vision_learner."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not hasattr(model, 'forward_intermediates'):
            raise ValueError(f'unet: timm model {type(model).__name__} has no forward_intermediates to give its '
                             'stage maps; choose another timm model, or build its body as an nn.Sequential and '
                             'pass it to DynamicUnet.')
        # the head and final norm that forward_intermediates skips would be parameters no step uses: DDP refuses
        # them (unless told to search for them at every step) and the optimizer would carry their state
        if hasattr(model, 'prune_intermediate_layers'):
            model.prune_intermediate_layers(prune_norm=True, prune_head=True)
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, intermediates_only=True)


# -- helpers -------------------------------------------------------------------------------------------------------
def _timm_encoder(arch: str, pretrained: bool, weights: Weights, cut: Cut, n_in: int) -> TimmEncoder:
    if cut is not None:
        raise ValueError(f'create_unet_model: cut={cut!r} is not used for timm model {arch!r}, whose encoder is '
                         'its stages; pass cut=None.')
    model = _timm_features(arch, pretrained, weights)
    if n_in != 3:
        _adapt_first_conv(model, n_in)
    return TimmEncoder(model)


def _chain(encoder: nn.Sequential) -> Iterator[nn.Module]:
    """The layers an nn.Sequential encoder runs, in order; a lone nested Sequential (vgg's `features`) is opened."""
    while len(encoder) == 1 and isinstance(encoder[0], nn.Sequential):
        encoder = encoder[0]
    return iter(encoder)


def _feature_shapes(encoder: nn.Module, n_in: int, img_size: tuple[int, int],
                    returns_maps: bool) -> list[torch.Size]:
    """The shape of each map the encoder gives (each child's output, or each map it returns) on a dummy batch."""
    p = next(encoder.parameters(), None)
    x = torch.zeros(1, n_in, *img_size, device=p.device if p is not None else 'cpu',
                    dtype=p.dtype if p is not None and p.is_floating_point() else torch.float32)
    was_training = encoder.training
    encoder.eval()  # a batch of one through BatchNorm in training mode fails, and would move its running stats
    try:
        with torch.no_grad():
            if returns_maps:
                maps = encoder(x)
                if not isinstance(maps, (list, tuple)) or not maps:
                    raise TypeError(f'DynamicUnet: the encoder {type(encoder).__name__} is not an nn.Sequential and '
                                    f'returned {type(maps).__name__}, not a list of feature maps; pass a body from '
                                    'create_body (an nn.Sequential), or a cut= function that returns one.')
                shapes = [m.shape for m in maps]
            else:
                shapes = []
                for layer in _chain(encoder):
                    x = layer(x)
                    shapes.append(x.shape)
    finally:
        encoder.train(was_training)
    bad = [i for i, s in enumerate(shapes) if len(s) != 4]
    if bad:
        raise ValueError(f'DynamicUnet: encoder layer {bad[0]} gives a {len(shapes[bad[0]])}-d output, not a '
                         f'(batch, channels, h, w) map: cut the body before its pooling and flatten (cut=).')
    return shapes


def _in_channels(encoder: nn.Module) -> int:
    conv = next((m for m in encoder.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f'DynamicUnet: the encoder {type(encoder).__name__} has no Conv2d to tell its input '
                         'channels by; pass a convolutional body (create_body(arch)).')
    return conv.in_channels


def _init_convs(module: nn.Module, init: Callable) -> None:
    """`init` on each conv's weight and zero biases, except PixelShuffle_ICNR's, whose ICNR start is the point."""
    icnr = {id(m.conv) for m in module.modules() if isinstance(m, PixelShuffle_ICNR)}
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in icnr:
            init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _pair(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


# A recipe (an export) names this factory; the arch is a registered builder or a timm name given as data.
register_for_recipes('model', create_unet_model)
