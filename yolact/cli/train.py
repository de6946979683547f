"""``yolact train``: COCO, YOLO, LabelMe or mask-PNG data; torchrun for several processes."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..data.sources import FORMATS
from ..errors import YolactError
from .common import add_out_args, class_list, report_problems, run_dir
from .data import HOLE_HELP


def _datasets_from_args(args):
    """-> (train ann, train images, val ann or None, val images or None)."""
    if args.data:
        from ..data.sources import dataset_splits
        train, val = dataset_splits(args.data, Path(args.out) / "data", args.format, class_list(args.classes),
                                    args.hole_label)
        if int(os.environ.get("RANK", "0")) == 0:
            report_problems(train.problems + (val.problems if val else []))
        return train.ann, train.images, (val.ann if val else None), (val.images if val else None)
    if not args.train_ann or not args.train_images:
        raise YolactError("give --train-ann and --train-images (COCO), or --data data.yaml (YOLO)")
    if bool(args.val_ann) != bool(args.val_images):
        raise YolactError("--val-ann and --val-images go together")
    return args.train_ann, args.train_images, args.val_ann, args.val_images



def _fractions(text):
    if text is None:
        return None
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise YolactError(f"--lr-steps {text}: expected comma-separated fractions like 0.7,0.9") from None
    if any(not 0 < v < 1 for v in vals):
        raise YolactError(f"--lr-steps {text}: fractions must lie in (0, 1)")
    return vals



# The parser's defaults: an argument given again on --resume differs from them.
_DEFAULTS: dict = {}
# Arguments that name files: stored absolute, so a resume works from any folder.
_PATH_ARGS = ("train_ann", "train_images", "val_ann", "val_images", "data", "classes", "weights",
              "backbone_weights")
# Not taken from the checkpoint: the run folder is --resume's folder unless --out is given; the
# starting weights are replaced by the checkpoint's anyway (no need to find them again).
_NOT_RESTORED = ("resume", "out", "exist_ok", "weights", "backbone_weights")


def _run_args(args) -> dict:
    """What the checkpoint keeps of the command line (everything but --resume)."""
    keep = {k: v for k, v in vars(args).items() if k in _DEFAULTS and k not in _NOT_RESTORED}
    # files absolute; zoo names, 'imagenet' and 'none' as they are
    return {k: (str(Path(v).resolve()) if k in _PATH_ARGS and v and Path(v).exists() else v) for k, v in keep.items()}


def _merge_resume_args(args, rank: int):
    """``--resume last.pt`` alone continues: the data paths and options come from the checkpoint;
    an argument given again (other than its default) overrides the stored one, with a notice."""
    from ..checkpoint import read_checkpoint

    obj = read_checkpoint(args.resume)
    stored = json.loads(obj.get("options", "{}")).get("run_args") if isinstance(obj.get("options"), str) else None
    if not stored:
        if not (args.data or args.train_ann):
            raise YolactError(f"{args.resume}: holds no data paths (written by an older version): give the data "
                              "arguments (--data, or --train-ann/--train-images) again")
        return args
    length_given = args.iters != _DEFAULTS["iters"] or args.epochs != _DEFAULTS["epochs"]
    for key, value in stored.items():
        if key not in _DEFAULTS or key in _NOT_RESTORED:
            continue
        given = getattr(args, key)
        # --iters and --epochs exclude each other: giving either replaces both
        overridden = length_given if key in ("iters", "epochs") else given != _DEFAULTS[key]
        if not overridden:
            setattr(args, key, value)
        elif given != value and given != _DEFAULTS[key] and rank == 0:
            print(f"--resume: --{key.replace('_', '-')} {given} replaces the checkpoint's "
                  f"{'(none)' if value is None else value}")
    return args


def _train_dir(args) -> str:
    """--out; else the folder of --resume; else a fresh runs/train, runs/train2, ... (one
    process: under torchrun every rank must name the same folder, so runs/train as it is)."""
    if args.out:
        return args.out
    if args.resume:
        return str(Path(args.resume).parent)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return str(run_dir(None, "runs/train", args.exist_ok or distributed))


def cmd_train(args) -> int:
    """Run ``yolact train`` (also under torchrun for several GPUs); returns exit code 0."""
    import torch

    from ..config import get_config
    from ..data.coco import CocoDataset
    from ..training.trainer import Trainer, TrainOptions, setup_distributed
    from ..hub import resolve_backbone_weights, resolve_weights

    rank = int(os.environ.get("RANK", "0"))
    if args.resume:
        args = _merge_resume_args(args, rank)
    args.out = _train_dir(args)
    device = setup_distributed(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tr_ann, tr_img, va_ann, va_img = _datasets_from_args(args)
    train_set = CocoDataset(tr_ann, tr_img, train=True, seed=args.seed, verbose=rank == 0,
                            skip_empty=args.no_background)
    try:
        cfg = get_config(args.config, class_names=train_set.class_names)
    except KeyError as e:
        raise YolactError(str(e.args[0])) from None
    cfg = cfg.with_input_size(args.img_size)
    if args.no_augment:
        cfg = cfg.replace(augment_photometric=False, augment_expand=False, augment_crop=False, augment_mirror=False)
    elif args.no_expand:
        cfg = cfg.replace(augment_expand=False)
    train_set.cfg = cfg
    if va_ann:  # a val file with other class names stops now, not after the first epochs
        from ..data.coco import read_coco_json
        from ..evaluation.coco import model_category_ids
        model_category_ids(cfg.class_names, read_coco_json(va_ann), va_ann)
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = TrainOptions(out=args.out, iters=args.iters, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, workers=args.workers, device=str(device), amp=args.amp,
                        freeze_bn=args.freeze_bn, sync_bn=args.sync_bn, seed=args.seed,
                        val_interval=args.val_interval, progress=not args.quiet,
                        lr_steps=_fractions(args.lr_steps), warmup_iters=args.warmup_iters,
                        optimizer=args.optimizer, schedule=args.schedule, ema_decay=args.ema,
                        patience=args.patience, clip_grad_norm=args.clip_grad, skip_empty=args.no_background,
                        run_args=_run_args(args))
    # Zoo names and hf:// URLs -> files in the Hugging Face cache; official presets start from
    # their ImageNet backbone unless fine-tuning or resuming (as the original).
    weights = str(resolve_weights(args.weights)) if args.weights else None
    backbone = resolve_backbone_weights(args.backbone_weights, cfg, finetune=bool(args.weights or args.resume))
    trainer = Trainer(cfg, train_set, opts, va_ann, va_img, weights=weights,
                      backbone_weights=str(backbone) if backbone else None)
    if rank == 0:
        for what, rep in trainer.reports.items():
            msg = f"{what}: loaded {len(rep['loaded'])} tensors"
            if rep.get("reinitialised"):
                msg += f"; re-initialised (class-dependent): {', '.join(rep['reinitialised'])}"
            if rep.get("missing"):
                msg += f"; not in file: {len(rep['missing'])}"
            if rep.get("ignored"):
                msg += f"; ignored: {len(rep['ignored'])}"
            print(msg)
        if not va_ann:
            print("no val split: best.pt holds the last weights (no AP to choose by)")
        if trainer.freeze_bn and args.freeze_bn is None:
            print(f"BatchNorm frozen: {args.batch_size} images per process is under 6, as the original "
                  "(--no-freeze-bn trains it)")
        if args.patience is not None and not va_ann:
            raise YolactError("--patience needs a validation set (--val-ann/--val-images)")
    if args.resume:
        trainer.resume(args.resume)
    summary = trainer.train()
    if rank == 0:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}))
        print(f"weights: {Path(args.out) / 'last.pt'}, {Path(args.out) / 'best.pt'}")
    return 0



def add_commands(sub) -> None:
    """Add the ``train`` verb to ``sub``."""
    p = sub.add_parser("train", help="train on COCO-format (or YOLO-format) data; torchrun for multi-GPU")
    p.add_argument("--config", "-c", default="yolact_resnet18", help="preset name")
    p.add_argument("--train-ann")
    p.add_argument("--train-images")
    p.add_argument("--val-ann")
    p.add_argument("--val-images")
    p.add_argument("--data", help="instead of COCO files: a YOLO data.yaml, a LabelMe folder or a mask-PNG folder "
                                  "(train/ and val/ subfolders give both splits)")
    p.add_argument("--format", choices=list(FORMATS), default="auto", help="format of --data")
    p.add_argument("--classes", help="classes.txt for --data: fixes the class order and drops other labels")
    p.add_argument("--hole-label", default="hole", help=HOLE_HELP)
    p.add_argument("--img-size", type=int, default=None, help="input size (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iters", type=int, help="default: the preset's (800k for COCO presets) x 8 / global batch")
    g.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, default=None, help="default: 1e-3 x global batch / 8 (the original's autoscale)")
    p.add_argument("--weights", help="initial weights to fine-tune: a file or a zoo name (yolact_resnet50 fetches the "
                                     "official COCO model from the Hugging Face Hub)")
    p.add_argument("--backbone-weights", help="ImageNet backbone: 'imagenet' (the preset's file from "
                                              "dbolya/yolact-initial-weights, the default for official presets "
                                              "without --weights), 'none' (random init), or a file (torchvision names)")
    p.add_argument("--resume", help="a last.pt to continue exactly; its data paths and options are stored in it "
                                    "(arguments given again replace them)")
    add_out_args(p, "runs/train")
    p.add_argument("--amp", action="store_true", help="mixed precision (bf16 on CPU, fp16 on GPU)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="freeze BatchNorm (default: frozen under 6 images per process, as the original)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes")
    p.add_argument("--val-interval", type=int, default=None)
    p.add_argument("--lr-steps", default=None,
                   help="lr x0.1 at these fractions of the run, e.g. 0.7,0.9 (default: the preset's steps, "
                        "0.35,0.75,0.875,0.9375 for COCO)")
    p.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up from 1e-4 (default: 500)")
    p.add_argument("--schedule", choices=["step", "cosine"], default="step",
                   help="step: x0.1 at --lr-steps (the original); cosine: to 0 at the end")
    p.add_argument("--ema", type=float, nargs="?", const=0.9998, default=None, metavar="DECAY",
                   help="keep an EMA of the weights (default decay 0.9998); it is evaluated and saved as best.pt")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many evaluations without a better val mask AP")
    p.add_argument("--clip-grad", type=float, default=None, metavar="NORM", help="clip the gradient norm (with AdamW keep it well above the usual norm: see BENCHMARKS.md)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd",
                   help="sgd as the original (momentum 0.9, wd 5e-4); adamw (wd 0.05) learns faster from scratch")
    p.add_argument("--no-expand", action="store_true", help="disable the zoom-out augmentation")
    p.add_argument("--no-augment", action="store_true", help="disable all augmentation")
    p.add_argument("--no-background", action="store_true",
                   help="leave out images without objects (the original's choice; by default they train "
                        "the classifier on what is not an object)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", "-q", action="store_true")
    _DEFAULTS.update(vars(p.parse_args([])))
    p.set_defaults(func=cmd_train)
