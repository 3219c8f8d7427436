"""Issue 4's notebook code, as a user types it after `from blocklearn.vision.all import *`, on the committed photos."""
import collections

import matplotlib.pyplot as plt
import pytest

from blocklearn.vision.all import *  # noqa: F403 - the point is that the notebook's names are all there


@pytest.fixture
def pets_home(photos, tmp_path, monkeypatch):
    """An offline data home where untar_data(URLs.PETS) finds the committed photos already extracted."""
    monkeypatch.setenv('BLOCKLEARN_HOME', str(tmp_path / 'home'))
    (tmp_path / 'home' / 'data' / 'oxford-iiit-pet').mkdir(parents=True)
    (tmp_path / 'home' / 'data' / 'oxford-iiit-pet' / 'images').symlink_to(photos)
    return tmp_path / 'home'


def test_results_as_typed(pets_home):
    path = untar_data(URLs.PETS)
    assert path == pets_home / 'data' / 'oxford-iiit-pet' and [p.name for p in path.ls()] == ['images']
    assert verify_images(get_image_files(path)) == []
    fnames = get_image_files(path / 'images')
    pets = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                     splitter=RandomSplitter(seed=42), get_y=using_attr(RegexLabeller(r'(.+)_\d+.jpg$'), 'name'),
                     item_tfms=Resize(96), batch_tfms=aug_transforms(size=64, min_scale=0.75))
    dls = pets.dataloaders(path / 'images', path=path, bs=16, num_workers=0)
    torch.manual_seed(0)
    learn = cnn_learner(dls, resnet18, pretrained=False, metrics=error_rate)
    learn.fine_tune(1, freeze_epochs=1)

    x, y = dls.one_batch()
    preds, _ = learn.get_preds(dl=[(x, y)])
    assert len(preds[0]) == 5 and abs(float(preds[0].sum()) - 1) < 1e-5
    preds, targs, losses = learn.get_preds(with_loss=True)
    assert len(preds) == len(targs) == len(losses) == len(dls.valid_ds)
    fname = fnames[0]
    label, idx, probs = learn.predict(PILImage.create(fname))
    assert (label, int(idx)) == learn.predict(fname)[:2] and label == dls.vocab[int(idx)]
    valid_loss, err = learn.validate()
    probs_v, targs_v = learn.get_preds()
    assert err == pytest.approx(float((probs_v.argmax(1) != targs_v).float().mean()))
    assert valid_loss == pytest.approx(float(F.nll_loss(probs_v.log(), targs_v.long())), rel=1e-4)
    assert len([ax for ax in learn.show_results(max_n=6)]) >= 6
    preds, targs = learn.tta()
    assert preds.shape == (len(dls.valid_ds), 5)
    interp = ClassificationInterpretation.from_learner(learn)
    interp.plot_confusion_matrix(figsize=(12, 12), dpi=60)
    pairs = collections.Counter((dls.vocab[a], dls.vocab[p]) for a, p in zip(targs_v.tolist(), probs_v.argmax(1).tolist())
                                if a != p)
    assert interp.most_confused(min_val=2) == sorted(((a, p, n) for (a, p), n in pairs.items() if n >= 2),
                                                     key=lambda t: (-t[2], dls.vocab.index(t[0]), dls.vocab.index(t[1])))
    interp.top_losses(9)
    interp.plot_top_losses(9, nrows=3)
    interp.print_classification_report()
    interp.plot_random(k=4, correct=False)
    interp.plot_most_confident(dls.vocab[0], k=4, correct=True)
    interp.plot_most_uncertain(k=4)
    plt.close('all')
    learn.save('stage-1')
    learn.load('stage-1')
    learn.export('model.pkl')
    learn2 = load_learner(path / 'model.pkl')
    assert learn2.predict(fname)[0] == learn.predict(fname)[0]
