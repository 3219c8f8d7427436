"""U-Net: outputs at the input's size for torchvision, xresnet and timm encoders, the encoder/decoder split, training,
weights into the encoder, and export / load_learner rebuilding the same model."""
import pytest
import torch
import torch.nn.functional as F
from synth import SynthDataLoaders

from blocklearn.blocks.recipe import decode_value, from_ref
from blocklearn.learner.load import load_learner
from blocklearn.learner.optimizer import norm_bias_params
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.learner import unet_learner
from blocklearn.vision.models import WeightsMismatchError, resnet18
from blocklearn.vision.normalize import Normalize
from blocklearn.vision.resize import Resize
from blocklearn.vision.unet import (DynamicUnet, PixelShuffle_ICNR, SelfAttention, TimmEncoder, create_unet_model,
                                    icnr_init)
from blocklearn.vision.xresnet import xresnet18

ARCHS = [resnet18, xresnet18, 'resnet10t']


def needs(arch):
    if isinstance(arch, str):
        pytest.importorskip('timm')


def no_dls(c=None) -> SynthDataLoaders:
    """A DataLoaders stand-in with no batches: enough for a Learner that is built, frozen and recorded only."""
    return SynthDataLoaders([], [], loss_func=F.cross_entropy, c=c)


@pytest.mark.parametrize('arch', ARCHS, ids=lambda a: a if isinstance(a, str) else a.__name__)
def test_output_is_n_out_maps_at_the_input_size(arch):
    needs(arch)
    torch.manual_seed(0)
    model = create_unet_model(arch, 5, (48, 80), pretrained=False).eval()
    # Skips: the last map at each of 1/2, 1/4, 1/8, 1/16 (resnet: relu, layer1-3; timm: its first four stages).
    assert len(model.skip_idxs) == 4
    with torch.no_grad():
        for size in [(64, 64), (48, 80), (50, 75)]:   # 80 and 75 are no multiples of 32; 50x75 rounds up twice
            assert model(torch.randn(2, 3, *size)).shape == (2, 5, *size)


def test_resnet_skips_are_the_last_layer_of_each_resolution():
    model = create_unet_model(resnet18, 2, 64, pretrained=False)
    # body: conv1 bn1 relu maxpool layer1 layer2 layer3 layer4 -> relu (1/2), layer1 (1/4), layer2, layer3
    assert model.skip_idxs == (2, 4, 5, 6)
    assert [b.out_channels for b in model.decoder.blocks] == [512, 384, 256, 96]


def test_forward_leaves_no_hooks_and_no_activations_on_the_model():
    model = create_unet_model(resnet18, 3, 32, pretrained=False)
    assert model.training and model[0].training          # the dummy forward ran in eval mode, then restored
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for name, m in model.named_modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks), name
        kept = [k for k, v in vars(m).items() if isinstance(v, torch.Tensor)]
        assert kept == [], (name, kept)


def test_options_y_range_last_cross_self_attention_blur_n_in():
    torch.manual_seed(0)
    model = create_unet_model(resnet18, 2, 64, pretrained=False, n_in=1, y_range=(-1.0, 2.0), last_cross=False,
                              self_attention=True, blur=True).eval()
    with torch.no_grad():
        out = model(10 * torch.randn(2, 1, 48, 64))
    assert out.shape == (2, 2, 48, 64) and out.min() >= -1 and out.max() <= 2 and out.std() > 0.1
    assert model.decoder.cross is None and model.decoder.head.in_channels == 96
    assert sum(isinstance(m, SelfAttention) for m in model.modules()) == 1
    assert [b.shuf.blur is not None for b in model.decoder.blocks] == [True] * 4
    crossed = create_unet_model(resnet18, 2, 64, pretrained=False)
    assert crossed.decoder.head.in_channels == 96 + 3 and crossed.decoder.cross is not None


def test_icnr_starts_as_nearest_neighbour_upsampling():
    torch.manual_seed(0)
    up = PixelShuffle_ICNR(8, 4)
    x = torch.randn(1, 8, 5, 7)
    out = up(x)
    assert out.shape == (1, 4, 10, 14)
    # each 2x2 cell is one value: the shuffle of a conv whose four filters per output channel are equal
    assert torch.equal(out, F.interpolate(out[..., ::2, ::2], scale_factor=2, mode='nearest'))
    with pytest.raises(ValueError, match='multiple of scale'):
        icnr_init(torch.empty(6, 3, 1, 1))


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = create_unet_model(resnet18, 3, 32, pretrained=False)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 3, (4, 32, 32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.85 * losses[0], losses


@pytest.mark.parametrize('train_bn', [True, False])
def test_freeze_trains_the_decoder_and_with_train_bn_the_encoder_norms(train_bn):
    learn = unet_learner(no_dls(c=3), resnet18, pretrained=False, img_size=32, train_bn=train_bn)
    model = learn.model
    assert model[1].head.out_channels == 3                        # n_out from dls.c
    assert all(p.requires_grad for p in model.parameters())       # fresh weights: not frozen
    learn.freeze()
    assert len(learn.opt.param_lists) == 3                        # resnet_split: stem-layer2, layer3-4, decoder
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    expected = {id(p) for p in model[1].parameters()}
    if train_bn:
        expected |= {id(p) for p in norm_bias_params(model[0], with_bias=False)}
    assert trainable == expected
    learn.unfreeze()
    assert all(p.requires_grad for p in model.parameters())


def test_without_dls_c_the_error_asks_for_n_out():
    with pytest.raises(ValueError, match='n_out='):
        unet_learner(no_dls(), resnet18, pretrained=False)


@pytest.fixture
def resnet18_weights(tmp_path):
    torch.manual_seed(1)
    state = resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / 'resnet18.pth')
    return tmp_path / 'resnet18.pth', state


def test_weights_file_loads_into_the_encoder(resnet18_weights, tmp_path):
    path, state = resnet18_weights
    model = create_unet_model(resnet18, 2, 32, pretrained=False, weights=path)
    assert torch.equal(model[0][0].weight, state['conv1.weight'])
    assert torch.equal(model[0][6][1].conv2.weight, state['layer3.1.conv2.weight'])
    torch.save(xresnet18().state_dict(), tmp_path / 'other.pth')
    with pytest.raises(WeightsMismatchError, match='other.pth'):
        create_unet_model(resnet18, 2, 32, pretrained=False, weights=tmp_path / 'other.pth')


def test_export_and_load_learner_rebuild_the_unet(pets_folder, resnet18_weights, tmp_path):
    path, _ = resnet18_weights
    dls = ImageDataLoaders.from_name_re(pets_folder, get_image_files(pets_folder), r'(.+)_\d+.jpg$',
                                        item_tfms=Resize(32), bs=4, seed=0, num_workers=0, device='cpu')
    learn = unet_learner(dls, resnet18, n_out=3, weights=path, path=tmp_path)
    assert not learn.model[0][0].weight.requires_grad and learn.model[1].head.weight.requires_grad  # frozen
    assert any(isinstance(t, Normalize) for t in dls.valid.after_batch)                            # imagenet stats
    kwargs = decode_value(learn.model_recipe['kwargs'])
    assert kwargs['img_size'] == (32, 32) and kwargs['pretrained'] is False and 'weights' not in kwargs
    torch.manual_seed(0)
    for p in learn.model[1].parameters():   # as if trained: the export must carry these, not a fresh init
        p.data.add_(0.01 * torch.randn_like(p))
    learn.export('unet.pkl')
    path.unlink()                            # the weights travel in the export
    learn2 = load_learner(tmp_path / 'unet.pkl')
    assert isinstance(learn2.model, DynamicUnet)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        assert torch.allclose(learn2.model.eval()(x), learn.model.eval()(x), atol=1e-5)


def test_timm_encoder_takes_a_whole_model_state_dict_and_its_recipe_rebuilds_it(tmp_path):
    timm = pytest.importorskip('timm')
    torch.manual_seed(2)
    state = timm.create_model('resnet10t').state_dict()
    torch.save(state, tmp_path / 'resnet10t.pth')
    learn = unet_learner(no_dls(c=2), 'resnet10t', weights=tmp_path / 'resnet10t.pth', img_size=32,
                         normalize=False)
    encoder = learn.model[0]
    assert isinstance(encoder, TimmEncoder) and torch.equal(encoder.model.conv1[0].weight, state['conv1.0.weight'])
    assert not encoder.model.conv1[0].weight.requires_grad                    # frozen: default_split, decoder last
    recipe = learn.model_recipe
    rebuilt = from_ref(recipe['factory'], 'model')(**decode_value(recipe['kwargs']))
    rebuilt.load_state_dict(learn.model.state_dict())
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), learn.model.eval()(x), atol=1e-5)


@pytest.mark.parametrize('arch', ARCHS, ids=lambda a: a if isinstance(a, str) else a.__name__)
def test_every_parameter_takes_part_in_a_step(arch):
    # DDP refuses a model with parameters no step uses: a timm model's head and final norm are pruned
    needs(arch)
    model = create_unet_model(arch, 3, img_size=32, pretrained=False)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, unused
