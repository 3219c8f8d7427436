import pytest
import torch

from blocklearn.blocks.tensors import TensorCategory
from blocklearn.blocks.transform import Pipeline
from blocklearn.vision.core import TensorImage, TensorImageBW
from blocklearn.vision.normalize import IntToFloatTensor, Normalize, imagenet_stats, mnist_stats


def uint8_batch(b=2, c=3, h=4, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8).as_subclass(TensorImage)


def test_int_to_float_divides_by_255_and_keeps_labels():
    x, y = uint8_batch(), TensorCategory(torch.tensor([3, 1]))
    fx, fy = IntToFloatTensor()((x, y))
    assert type(fx) is TensorImage and fx.dtype == torch.float32
    assert torch.equal(fx.as_subclass(torch.Tensor), x.as_subclass(torch.Tensor).double().div(255).float())
    assert fy is y
    every = TensorImage(torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16))
    assert torch.equal(IntToFloatTensor()(every).as_subclass(torch.Tensor).flatten(), torch.arange(256) / 255.)


def test_int_to_float_decodes_back_to_the_same_uint8():
    x = uint8_batch()
    tfm = IntToFloatTensor()
    back = tfm.decode(tfm(x))
    assert type(back) is TensorImage and back.dtype == torch.uint8
    assert torch.equal(back.as_subclass(torch.Tensor), x.as_subclass(torch.Tensor))


def test_int_to_float_leaves_float_batches_alone_and_keeps_bw_type():
    f = TensorImage(torch.rand(2, 3, 4, 4))
    assert IntToFloatTensor()(f) is f
    bw = uint8_batch(c=1).as_subclass(TensorImageBW)
    assert type(IntToFloatTensor()(bw)) is TensorImageBW
    with pytest.raises(ValueError, match='div'):
        IntToFloatTensor(div=0)


def test_normalize_from_stats_subtracts_mean_divides_std_per_channel():
    x = TensorImage(torch.rand(4, 3, 6, 6))
    out = Normalize.from_stats(*imagenet_stats)(x)
    assert type(out) is TensorImage and out.dtype == torch.float32 and out.shape == x.shape
    plain = x.as_subclass(torch.Tensor)
    for c, (m, s) in enumerate(zip(*imagenet_stats)):
        assert torch.allclose(out[:, c].as_subclass(torch.Tensor), (plain[:, c] - m) / s, atol=1e-6)
    assert float(Normalize.from_stats(*imagenet_stats)(TensorImage(torch.full((1, 3, 1, 1), 0.485)))[0, 0]) == 0.


def test_normalize_decode_round_trips_and_labels_pass():
    x, y = TensorImage(torch.rand(2, 3, 5, 5)), TensorCategory(torch.tensor([0, 4]))
    norm = Normalize.from_stats(*imagenet_stats)
    nx, ny = norm((x, y))
    dx, dy = norm.decode((nx, ny))
    assert ny is y and dy is y
    assert type(dx) is TensorImage
    assert torch.allclose(dx.as_subclass(torch.Tensor), x.as_subclass(torch.Tensor), atol=1e-6)


def test_normalize_one_channel_batch_with_rgb_stats_says_what_to_do():
    x = TensorImageBW(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r'3 stats along dim 1 but the batch has 1.*mnist_stats'):
        Normalize.from_stats(*imagenet_stats)(x)
    out = Normalize.from_stats(*mnist_stats)(x)
    assert type(out) is TensorImageBW
    assert torch.allclose(out.as_subclass(torch.Tensor), (x.as_subclass(torch.Tensor) - 0.1307) / 0.3081)


def test_normalize_rejects_uint8_and_missing_stats():
    with pytest.raises(TypeError, match='IntToFloatTensor'):
        Normalize.from_stats(*imagenet_stats)(uint8_batch())
    with pytest.raises(ValueError, match='no stats'):
        Normalize()(TensorImage(torch.rand(1, 3, 2, 2)))
    with pytest.raises(ValueError, match='both mean and std'):
        Normalize(mean=[0.5])


def test_normalize_stats_follow_dtype_once_and_single_images_work():
    norm = Normalize.from_stats(*imagenet_stats)
    x64 = TensorImage(torch.rand(2, 3, 3, 3, dtype=torch.float64))
    out = norm(x64)
    assert out.dtype == torch.float64
    assert len(norm._cache) == 1
    norm(TensorImage(torch.rand(5, 3, 2, 2, dtype=torch.float64)))
    assert len(norm._cache) == 1
    single = TensorImage(torch.rand(3, 4, 4))
    one = norm(single)
    assert one.shape == (3, 4, 4)
    assert torch.allclose(one.as_subclass(torch.Tensor)[1], (single.as_subclass(torch.Tensor)[1] - 0.456) / 0.224)


def test_normalize_setup_computes_stats_from_a_batch():
    g = torch.Generator().manual_seed(1)
    x = TensorImage(torch.rand(8, 3, 6, 6, generator=g) * torch.tensor([1., 2., 3.]).view(1, 3, 1, 1) + 5)
    norm = Normalize()
    norm.setup((x, TensorCategory(torch.zeros(8))))
    out = norm(x).as_subclass(torch.Tensor)
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3)), torch.ones(3), atol=1e-5)
    assert norm.mean.flatten()[0] == pytest.approx(5.5, abs=0.1)


def test_pipeline_runs_int_to_float_before_normalize_and_decodes_to_uint8():
    x = uint8_batch(b=3)
    pipe = Pipeline([Normalize.from_stats(*imagenet_stats), IntToFloatTensor()])
    assert repr(pipe) == 'Pipeline: IntToFloatTensor -> Normalize'
    out = pipe(x)
    expected = (x.as_subclass(torch.Tensor).float() / 255 - torch.tensor(imagenet_stats[0]).view(1, 3, 1, 1)) \
        / torch.tensor(imagenet_stats[1]).view(1, 3, 1, 1)
    assert torch.allclose(out.as_subclass(torch.Tensor), expected, atol=1e-5)
    assert torch.equal(pipe.decode(out).as_subclass(torch.Tensor), x.as_subclass(torch.Tensor))


def test_normalize_without_stats_learns_them_from_one_training_batch(photos):
    # fastai's Normalize() in batch_tfms: the loaders compute its stats from a batch, through the transforms before it
    from blocklearn.blocks.labellers import RegexLabeller
    from blocklearn.vision.data import ImageDataLoaders, get_image_files
    from blocklearn.vision.resize import Resize
    norm = Normalize()
    dls = ImageDataLoaders.from_name_func(photos, get_image_files(photos)[:40], RegexLabeller(r'(.+)_\d+.jpg$'),
                                          item_tfms=Resize(32), batch_tfms=norm, bs=16, num_workers=0,
                                          device='cpu', seed=0)
    assert norm.mean is not None and norm.mean.shape == (1, 3, 1, 1)
    assert 0.2 < float(norm.mean.mean()) < 0.8  # stats of float pixels in [0, 1], not of uint8 ones
    x, _ = dls.valid.one_batch()
    assert x.mean((0, 2, 3)).abs().max() < 0.5 and (x.std((0, 2, 3)) - 1).abs().max() < 0.5
