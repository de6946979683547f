"""``yolact train``: COCO, YOLO, LabelMe or mask-PNG data; torchrun for several processes. The
parser only: the run is :func:`yolact.training.train`, called with the arguments by name."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..data.sources import FORMATS, formats_help
from .common import Parser, add_out_args
from .data import HOLE_HELP


# The recipes of yolact.training.recipes.RECIPES and their descriptions (kept here so that the
# parser imports no torch; tests/test_recipes.py checks that both say the same).
RECIPE_HELP = {
    "original": "the original's (default; SSD augmentation, SGD, warm-up and steps, OHEM): reproduces the paper, "
                "calibrated scores",
    "fast": "opt-in for small data and short budgets, from scratch or fine-tuning: AdamW, warm-up and linear decay, "
            "EMA, mosaic, copy-paste, scale/HSV jitter, centre prior, mask loss x1.5 on soft targets, validation every "
            "2 epochs; masks scored by their maskness and upsampled bicubically; mixed precision on CPUs with AMX "
            "and on GPUs",
}

# The parser's defaults (filled by add_commands): the arguments handed to yolact.training.train.
_DEFAULTS: dict = {}


def cmd_train(args) -> int:
    """Run ``yolact train`` (also under torchrun for several GPUs): ``yolact.training.train`` with
    the arguments; prints the summary and the weights (rank 0); returns exit code 0."""
    from ..training import train

    kwargs = {k: getattr(args, k) for k in _DEFAULTS}
    if args.resume:  # a flag typed with its default value still has to match the checkpoint's
        kwargs["given"] = sorted(getattr(args, "given_flags", None) or ())
    result = train(**kwargs)
    out = result.pop("out")
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
        files = [str(Path(out) / n) for n in ("last.pt", "best.pt") if (Path(out) / n).exists()]
        if files:
            print("weights: " + ", ".join(files))
    return 0


_UNSET = object()


class _FlagsParser(Parser):
    """The ``train`` verb's parser: also records the flags typed, as ``given_flags`` (a value equal
    to its default is given all the same: ``--recipe original`` on resuming a ``fast`` run)."""

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        # parse again into sentinels: argparse fills in a default only where no attribute is set
        probe = argparse.Namespace(**{a.dest: _UNSET for a in self._actions if a.dest != argparse.SUPPRESS})
        super().parse_known_args(args, probe)
        ns.given_flags = [k for k, v in vars(probe).items() if v is not _UNSET and k in _DEFAULTS]
        return ns, rest


def add_commands(sub) -> None:
    """Add the ``train`` verb to ``sub``."""
    p = sub.add_parser("train", help="train on COCO-format (or YOLO-format) data; torchrun for multi-GPU")
    if isinstance(p, Parser):
        p.__class__ = _FlagsParser  # argparse makes every verb's parser of one class
    p.add_argument("--config", "-c", default=None,
                   help="preset name (default: the --weights checkpoint's, else yolact_resnet18)")
    p.add_argument("--train-ann")
    p.add_argument("--train-images")
    p.add_argument("--val-ann")
    p.add_argument("--val-images")
    p.add_argument("--data", help=f"instead of --train-ann/--train-images: {formats_help()} "
                                  "(train/ and val/ subfolders give both splits)")
    p.add_argument("--format", choices=list(FORMATS), default="auto", help="format of --data")
    p.add_argument("--classes", help="classes.txt for a LabelMe or mask-PNG --data folder: fixes the class "
                   "order and drops other labels (COCO and YOLO data name their own classes)")
    p.add_argument("--hole-label", default="hole", help=HOLE_HELP)
    p.add_argument("--img-size", type=int, default=None, help="input size (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iters", type=int, help="default: the preset's (800k for COCO presets) x 8 / global batch")
    g.add_argument("--epochs", type=int)
    g.add_argument("--time", type=float, metavar="HOURS",
                   help="train for this much wall-clock instead (hours, e.g. 0.5; Ultralytics' time=): the length "
                        "is re-estimated after every epoch from the run's own pace, validation included, and the "
                        "schedule, warm-up and mosaic's end follow it")
    p.add_argument("--lr", type=float, default=None, help="default: 1e-3 x global batch / 8 (the original's autoscale)")
    p.add_argument("--weights", help="initial weights to fine-tune: a file or a zoo name (yolact_resnet50 fetches the "
                                     "official COCO model from the Hugging Face Hub)")
    p.add_argument("--backbone-weights", help="ImageNet backbone: 'imagenet' (the preset's file from "
                                              "dbolya/yolact-initial-weights, the default for official presets "
                                              "without --weights), 'none' (random init), or a file (torchvision names)")
    p.add_argument("--resume", help="a last.pt to continue exactly; its data paths and options are stored in it "
                                    "(arguments given again replace them)")
    add_out_args(p, "runs/train")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (bf16 on CPU, fp16 with loss scaling on GPU); default: the recipe's "
                        "(original: off; fast: on GPUs and on CPUs with AMX), --no-amp: float32")
    p.add_argument("--amp-dtype", choices=("fp16", "bf16"), default=None,
                   help="--amp in this type (implies --amp); bf16 needs no loss scaling (Ampere and newer GPUs)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="freeze BatchNorm (default: frozen under 6 images per process, as the original)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes")
    p.add_argument("--val-interval", type=int, default=None)
    p.add_argument("--lr-steps", default=None,
                   help="lr x0.1 at these fractions of the run, e.g. 0.7,0.9 (default: the preset's steps, "
                        "0.35,0.75,0.875,0.9375 for COCO); the step schedule only")
    p.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up from 1e-4 (default: 500)")
    p.add_argument("--schedule", choices=["step", "cosine", "linear"], default=None,
                   help="step: x0.1 at --lr-steps (the original); cosine: to 0 at the end; linear: to 1%% at "
                        "the end (default: the recipe's)")
    p.add_argument("--ema", type=float, nargs="?", const=0.9998, default=None, metavar="DECAY",
                   help="keep an EMA of the weights (--ema alone: decay 0.9998; --recipe fast keeps one by default, decay "
                        "0.9999 x (1 - exp(-updates / 2000))); it is evaluated and saved as best.pt; --ema 0: none")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many evaluations without a better val mask AP")
    p.add_argument("--clip-grad", type=float, default=None, metavar="NORM", help="clip the gradient norm (with AdamW keep it well above the usual norm: see BENCHMARKS.md)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default=None,
                   help="sgd as the original (momentum 0.9, wd 5e-4); adamw (wd 0.05) learns faster from scratch "
                        "(default: the recipe's)")
    p.add_argument("--no-expand", action="store_true", help="disable the zoom-out augmentation")
    p.add_argument("--no-augment", action="store_true", help="disable all augmentation")
    p.add_argument("--mask-resize", choices=["bilinear", "area"], default="bilinear",
                   help="how masks are shrunk to the input size: bilinear (the original's; thin objects can "
                        "lose every pixel, see `yolact data check --augmented`) or area (any coverage kept)")
    p.add_argument("--no-background", action="store_true",
                   help="leave out images without objects (the original's choice; by default they train "
                        "the classifier on what is not an object)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--recipe", choices=list(RECIPE_HELP), default="original",
                   help="how to train: " + "; ".join(f"{k}: {v}" for k, v in RECIPE_HELP.items())
                        + ". --optimizer, --lr, --schedule, --ema, --warmup-iters, --val-interval and "
                          "--no-augment override the recipe's values")
    _DEFAULTS.update({k: v for k, v in vars(p.parse_args([])).items() if k != "given_flags"})
    p.set_defaults(func=cmd_train)
