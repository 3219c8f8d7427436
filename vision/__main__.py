"""Command line: `blocklearn summary|train PATH ...` and `blocklearn predict MODEL IMAGE...` (or
`python -m blocklearn.vision ...`): the workflow without code."""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

__all__ = ['main']


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, KeyError, OSError, RuntimeError, pickle.UnpicklingError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f'error: {message}', file=sys.stderr)
        return 1


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (exit status 2), like every other error here."""

    def error(self, message: str):
        self.exit(2, f'error: {message} (see {self.prog} -h)\n')


def _parser() -> argparse.ArgumentParser:
    # `blocklearn` when run as the console script, `python -m blocklearn.vision` otherwise.
    prog = 'python -m blocklearn.vision' if Path(sys.argv[0]).name == '__main__.py' else 'blocklearn'
    p = _Parser(prog=prog, description='Image classification with blocklearn.')
    sub = p.add_subparsers(required=True, metavar='COMMAND')
    s = sub.add_parser('summary', help='build the DataBlock on PATH and explain each step')
    _data_args(s)
    s.add_argument('--out', type=Path, default=None, help='folder to save show_batch.png into')
    s.set_defaults(run=_summary)
    t = sub.add_parser('train', help='summary, lr_find, fine_tune and plots on the images in PATH')
    _data_args(t)
    t.add_argument('--arch', default='resnet18', help='a torchvision architecture name (default resnet18)')
    t.add_argument('--epochs', type=int, default=3, help='epochs after the frozen one (default 3)')
    t.add_argument('--lr', default='auto', help="learning rate, or 'auto' for lr_find's valley suggestion")
    t.add_argument('--pretrained', action='store_true', help="ImageNet weights from torchvision's cache")
    t.add_argument('--weights', type=Path, default=None, help='a local state_dict for the architecture')
    t.add_argument('--out', type=Path, default=Path('out'),
                   help='folder for the plots and the exported model.pkl (default out/)')
    t.set_defaults(run=_train)
    pr = sub.add_parser('predict', help='label and probability of each IMAGE with an exported MODEL')
    pr.add_argument('model', type=Path, help="the model.pkl that 'train' (or learn.export) wrote")
    pr.add_argument('images', type=Path, nargs='+', metavar='IMAGE', help='image files to label')
    pr.set_defaults(run=_predict)
    return p


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('path', type=Path, help='folder of images')
    how = p.add_mutually_exclusive_group()
    how.add_argument('--label-re', default=None, help=r"label = first group of this regex on the file name, e.g. '(.+)_\d+.jpg$'")
    how.add_argument('--folders', action='store_true', help='train/<label>/* and valid/<label>/* layout (the default)')
    p.add_argument('--size', type=int, default=224, help='image size fed to the model (default 224)')
    p.add_argument('--bs', type=int, default=64, help='batch size (default 64)')
    p.add_argument('--seed', type=int, default=42, help='seed of the random train/valid split')


def _datablock(args: argparse.Namespace):
    from blocklearn.blocks.block import CategoryBlock
    from blocklearn.blocks.datablock import DataBlock
    from blocklearn.blocks.labellers import RegexLabeller, parent_label, using_attr
    from blocklearn.blocks.splitters import GrandparentSplitter, RandomSplitter

    from .augment import aug_transforms
    from .block import ImageBlock
    from .data import get_image_files
    from .resize import Resize
    if not args.path.is_dir():
        raise ValueError(f"'{args.path}' is not a folder: give the folder that holds the images.")
    presize = Resize(int(args.size * 460 / 224))
    batch_tfms = aug_transforms(size=args.size, min_scale=0.75)
    if args.label_re:
        return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                         splitter=RandomSplitter(seed=args.seed), get_y=using_attr(RegexLabeller(args.label_re), 'name'),
                         item_tfms=presize, batch_tfms=batch_tfms)
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=GrandparentSplitter(),
                     get_y=parent_label, item_tfms=presize, batch_tfms=batch_tfms)


def _summary(args: argparse.Namespace) -> int:
    block = _datablock(args)
    block.summary(args.path, bs=4)
    if args.out is not None:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        args.out.mkdir(parents=True, exist_ok=True)
        dls = block.dataloaders(args.path, bs=min(args.bs, 16), num_workers=0)
        dls.show_batch(max_n=9)
        plt.savefig(args.out / 'show_batch.png', bbox_inches='tight')
        print(f'\nSaved {args.out / "show_batch.png"}')
    return 0


def _train(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torchvision

    from blocklearn.learner.metrics import error_rate

    from .learner import vision_learner
    arch = getattr(torchvision.models, args.arch, None)
    if not callable(arch):
        raise ValueError(f"--arch {args.arch!r} is not a torchvision model name (e.g. resnet18, resnet34).")
    lr = None if args.lr == 'auto' else _float_arg('--lr', args.lr)
    block = _datablock(args)
    block.summary(args.path, bs=4)
    dls = block.dataloaders(args.path, bs=args.bs)
    learn = vision_learner(dls, arch, metrics=error_rate, pretrained=args.pretrained or args.weights is not None,
                           weights=args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    lr_min, lr_steep = learn.lr_find()
    plt.savefig(args.out / 'lr_find.png', bbox_inches='tight')
    plt.close('all')
    print(f'Minimum/10: {lr_min:.2e}, steepest point: {lr_steep:.2e}')
    if lr is None:
        lr = lr_steep
        print(f'Using lr {lr:.2e} (steepest point)')
    learn.fine_tune(args.epochs, base_lr=lr)
    learn.recorder.plot_loss()
    plt.savefig(args.out / 'loss.png', bbox_inches='tight')
    plt.close('all')
    _report(learn, args.out)
    learn.path = args.out
    model = learn.export('model.pkl')
    print(f'Saved {args.out / "lr_find.png"}, {args.out / "loss.png"}, {args.out / "confusion_matrix.png"}')
    print(f'Exported {model}: blocklearn predict {model} IMAGE...')
    return 0


def _report(learn, out: Path) -> None:
    """Print the validation confusion matrix and most confused pairs; save the matrix plot."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from blocklearn.learner.interpret import ClassificationInterpretation
    interp = ClassificationInterpretation.from_learner(learn)
    vocab = [str(v) for v in learn.dls.vocab]
    cm = pd.DataFrame(interp.confusion_matrix(), index=vocab, columns=vocab)
    cm.index.name, cm.columns.name = 'actual', 'predicted'
    print('\nConfusion matrix (validation set):')
    print(cm.to_string())
    confused = interp.most_confused()
    print('Most confused (actual, predicted, count):' if confused else 'Most confused: none, every item was right.')
    for actual, predicted, n in confused[:10]:
        print(f'  {actual} -> {predicted}: {n}')
    interp.plot_confusion_matrix()
    plt.savefig(out / 'confusion_matrix.png', bbox_inches='tight')
    plt.close('all')


def _predict(args: argparse.Namespace) -> int:
    from blocklearn.learner.load import load_learner
    learn = load_learner(args.model)
    width = max(len(str(f)) for f in args.images)
    for f in args.images:
        if not f.is_file():
            raise FileNotFoundError(f"image '{f}' not found (nothing was predicted after it).")
        label, idx, probs = learn.predict(f)
        if idx.numel() == 1:
            print(f'{str(f):<{width}}  {label}  {float(probs[int(idx)]):.3f}')
        else:  # a multi-label model: every label over the threshold, with the top probability
            print(f'{str(f):<{width}}  {";".join(map(str, label)) or "(none)"}  {float(probs.max()):.3f}')
    return 0


def _float_arg(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number or 'auto', got {value!r}.") from None


if __name__ == '__main__':
    sys.exit(main())
