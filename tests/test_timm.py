"""timm backbones by name: timm's body and stats, our head and split, its weights from its cache or a local file."""
from __future__ import annotations

import json
import shutil
import sys

import huggingface_hub
import pytest
import timm
import torch
from safetensors.torch import save_file

from blocklearn.blocks.safe_io import safe_load
from blocklearn.learner.export import ExportError
from blocklearn.learner.load import load_learner
from blocklearn.vision.__main__ import main
from blocklearn.vision.data import ImageDataLoaders, get_image_files
from blocklearn.vision.extras import MissingExtraError
from blocklearn.vision.learner import vision_learner
from blocklearn.vision.models import WeightsMismatchError, WeightsNotFoundError
from blocklearn.vision.normalize import Normalize
from blocklearn.vision.resize import Resize
from blocklearn.vision.timm_models import TimmBody, create_timm_model, timm_meta

RESNET10T_FILE = 'resnet10t_176_c3-f3215ab1.pth'  # the url of timm's default resnet10t weights ends in this


def photos_dls(photos) -> ImageDataLoaders:
    return ImageDataLoaders.from_name_re(photos, get_image_files(photos), r'(.+)_\d+.jpg$', item_tfms=Resize(64),
                                        bs=16, seed=42, num_workers=0, device='cpu')


def seeded_state(name: str, seed: int = 3) -> dict[str, torch.Tensor]:
    """The state_dict of the whole timm model `name` (its classifier included), as `timm.create_model` makes it."""
    torch.manual_seed(seed)
    return timm.create_model(name).state_dict()


def same_body(learn, state: dict[str, torch.Tensor]) -> bool:
    """The body holds `state`'s tensors, all of them but the classifier's."""
    own = learn.model[0].model.state_dict()
    return own.keys() == {k for k in state if not k.startswith('fc.')} and \
        all(torch.equal(v, state[k]) for k, v in own.items())


@pytest.fixture(scope='module')
def resnet10t_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'resnet10t.pth'
    torch.save(seeded_state('resnet10t'), path)
    return path


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty Hugging Face and torch hub caches, no network: the two places timm looks for its weights."""
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('BLOCKLEARN_OFFLINE', '1')
    return tmp_path / 'hf', tmp_path / 'torch' / 'hub' / 'checkpoints'


def test_a_timm_name_gives_timms_body_and_our_head(photos):
    dls = photos_dls(photos)
    learn = vision_learner(dls, 'resnet10t', pretrained=False)
    body, head = learn.model
    assert isinstance(body, TimmBody) and type(body.model).__name__ == 'ResNet'
    assert not any(k.startswith('fc.') for k in body.state_dict())  # timm's classifier is gone, ours replaces it
    assert head[2].num_features == 2 * 512 and head[-1].out_features == 5  # concat pool, then create_head's layers
    xb, _ = dls.one_batch()
    assert learn.model(xb).shape == (16, 5)
    assert all(p.requires_grad for p in learn.model.parameters())
    assert not any(isinstance(t, Normalize) for t in dls.valid.after_batch)  # random weights: no stats to match


def test_local_weights_give_a_frozen_body_head_split_with_discriminative_lrs(photos, resnet10t_weights):
    dls = photos_dls(photos)
    learn = vision_learner(dls, 'resnet10t', weights=resnet10t_weights)
    assert same_body(learn, torch.load(resnet10t_weights, weights_only=True))
    body, head = learn.model
    groups = learn.splitter(learn.model)
    assert [len(g) for g in groups] == [len(list(body.parameters())), len(list(head.parameters()))]
    assert not body.model.conv1[0].weight.requires_grad and not body.model.layer4[0].conv1.weight.requires_grad
    assert body.model.bn1.weight.requires_grad  # train_bn: norm layers train in a frozen body
    assert all(p.requires_grad for p in head.parameters())
    learn.opt.set_hyper('lr', slice(1e-5, 1e-3))
    assert [h['lr'] for h in learn.opt.hypers] == pytest.approx([1e-5, 1e-3])
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())
    (norm,) = [t for t in dls.valid.after_batch if isinstance(t, Normalize)]
    assert norm.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])


def test_stats_are_timms_for_its_weights(photos, tmp_path):
    assert timm_meta('test_convnext')['stats'] == ([0.5] * 3, [0.5] * 3)  # not ImageNet's: what those were trained on
    assert timm_meta('resnet10t')['stats'] == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    torch.save(seeded_state('test_convnext'), tmp_path / 'w.pth')
    dls = photos_dls(photos)
    vision_learner(dls, 'test_convnext', weights=tmp_path / 'w.pth')
    (norm,) = [t for t in dls.train.after_batch if isinstance(t, Normalize)]
    assert norm.mean.flatten().tolist() == [0.5] * 3 and norm.std.flatten().tolist() == [0.5] * 3


# vit_tiny's config reads its url's .npz with its own loader; the hub's file is a plain state dict all the same
@pytest.mark.parametrize('name, repo', [('test_convnext', 'test_convnext.r160_in1k'),
                                        ('vit_tiny_patch16_224', 'vit_tiny_patch16_224.augreg_in21k_ft_in1k')])
def test_pretrained_reads_timms_hugging_face_cache(caches, name, repo):
    hf, _ = caches
    state = seeded_state(name, seed=5)
    folder = hf / f'models--timm--{repo}'  # the layout `hf download` leaves
    (folder / 'snapshots' / 'abc123').mkdir(parents=True)
    (folder / 'refs').mkdir()
    (folder / 'refs' / 'main').write_text('abc123')
    save_file(state, folder / 'snapshots' / 'abc123' / 'model.safetensors')
    own = create_timm_model(name, 5)[0].model.state_dict()
    assert own.keys() < state.keys() and all(torch.equal(v, state[k]) for k, v in own.items())


def test_pretrained_reads_timms_checkpoint_under_torch_home(photos, caches):
    _, checkpoints = caches
    state = seeded_state('resnet10t', seed=6)
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / RESNET10T_FILE)
    assert timm.models.get_pretrained_cfg('resnet10t').url.endswith('/' + RESNET10T_FILE)
    assert same_body(vision_learner(photos_dls(photos), 'resnet10t'), state)


def test_offline_without_weights_names_the_file_and_the_folders(caches):
    hf, checkpoints = caches
    with pytest.raises(WeightsNotFoundError) as e:
        create_timm_model('resnet10t', 5)
    msg = str(e.value)
    assert 'BLOCKLEARN_OFFLINE is set' in msg and f'models--timm--resnet10t.c3_in1k (with the file ' in msg
    assert str(hf) in msg and RESNET10T_FILE in msg and str(checkpoints) in msg and "weights='" in msg
    assert not hf.exists() and not checkpoints.exists()


def test_a_failed_download_becomes_the_same_clear_error(caches, monkeypatch):
    monkeypatch.delenv('BLOCKLEARN_OFFLINE')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)  # the hub refuses at once, no network
    with pytest.raises(WeightsNotFoundError, match='the download failed: ') as e:
        create_timm_model('test_convnext', 5)  # weights on the hub only
    assert 'models--timm--test_convnext.r160_in1k' in str(e.value)


def test_names_timm_does_not_know_get_a_one_line_error(photos):
    dls = photos_dls(photos)
    for name, says in (('convnext_tiniest', "did you mean 'convnext_tiny'"), ('resnet10t.no_such_tag', 'timm.list'),
                       ('hf-hub:someone/model', 'timm.list_models('),
                       ('mobilenet_v3_large', 'from torchvision.models import mobilenet_v3_large')):
        with pytest.raises(ValueError) as e:
            vision_learner(dls, name, pretrained=False)
        assert says in str(e.value) and '\n' not in str(e.value), str(e.value)
    with pytest.raises(ValueError, match='cut=-2 is not used'):
        vision_learner(dls, 'resnet10t', pretrained=False, cut=-2)


def test_without_timm_the_error_says_what_to_install(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'timm', None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"^timm model 'resnet10t' needs .*: pip install 'blocklearn\[timm\]'$"):
        vision_learner(photos_dls(photos), 'resnet10t', pretrained=False)
    code = main(['train', str(photos), '--label-re', r'(.+)_\d+.jpg$', '--arch', 'resnet10t', '--out',
                 str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 1 and err.count('\n') == 1 and "pip install 'blocklearn[timm]'" in err, err


def test_local_weights_of_another_model_are_refused(tmp_path):
    torch.save(seeded_state('test_convnext'), tmp_path / 'other.pth')
    with pytest.raises(WeightsMismatchError, match='missing keys'):
        create_timm_model('resnet10t', 5, weights=tmp_path / 'other.pth')


@pytest.mark.parametrize('name', ['test_vit', 'test_mambaout'])
def test_tokens_and_channels_last_outputs_become_a_map_for_the_head(name):
    model = create_timm_model(name, 3, pretrained=False).eval()
    features = model[0](torch.zeros(2, 3, 64, 64))
    assert features.ndim == 4 and features.shape[1] == model[0].num_features
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_one_channel_input_adapts_the_first_conv():
    model = create_timm_model('resnet10t', 2, pretrained=False, n_in=1)
    assert model[0].model.conv1[0].in_channels == 1 and model(torch.zeros(2, 1, 64, 64)).shape == (2, 2)


def test_export_and_load_learner_rebuild_it_through_timm(photos, tmp_path, resnet10t_weights):
    learn = vision_learner(photos_dls(photos), 'resnet10t', weights=resnet10t_weights, path=tmp_path)
    learn.export('timm.pkl')
    loaded = load_learner(tmp_path / 'timm.pkl')
    assert loaded.model_recipe['factory'] == 'blocklearn.vision.timm_models:create_timm_model'
    assert loaded.model_recipe['kwargs']['__dict__']['arch'] == 'resnet10t'  # data, not code
    img = get_image_files(photos)[0]
    learn.model.eval()
    want, got = learn.predict(img), loaded.predict(img)
    assert got[0] == want[0] and torch.allclose(got[2], want[2], atol=1e-5)


def test_a_recipe_naming_what_timm_does_not_list_is_refused(photos, tmp_path):
    learn = vision_learner(photos_dls(photos), 'test_convnext', pretrained=False, path=tmp_path)
    learn.export('timm.pkl')
    state = safe_load(tmp_path / 'timm.pkl')
    recipe = json.loads(state['recipe'])
    recipe['model']['kwargs']['__dict__']['arch'] = 'hf-hub:someone/their_model'  # timm would fetch its code config
    state['recipe'] = json.dumps(recipe)
    torch.save(state, tmp_path / 'edited.pkl')
    with pytest.raises(ExportError, match="'hf-hub:someone/their_model' is not a timm model name"):
        load_learner(tmp_path / 'edited.pkl')


def test_cli_trains_a_timm_model_by_name(photos, tmp_path, capsys):
    data = tmp_path / 'photos'
    data.mkdir()
    for label in ('fishes', 'tools'):
        for i in range(1, 7):
            shutil.copy(photos / f'{label}_{i}.jpg', data)
    code = main(['train', str(data), '--label-re', r'(.+)_\d+.jpg$', '--arch', 'test_convnext', '--size', '64',
                 '--bs', '4', '--epochs', '1', '--lr', '1e-3', '--out', str(tmp_path / 'out')])
    assert code == 0, capsys.readouterr().err
    assert load_learner(tmp_path / 'out' / 'model.pkl').model_recipe['kwargs']['__dict__']['arch'] == 'test_convnext'
