"""``train(...)``: what ``yolact train`` does, as one library call.

    from yolact.training import train
    result = train(data="data.yaml", epochs=30, batch_size=8)   # YOLO, LabelMe or mask-PNG data
    result = train(train_ann="train.json", train_images="images/", iters=2000, out="runs/mine")
    result = train(resume="runs/train/last.pt")                  # continue exactly

The keyword arguments are ``yolact train``'s flags by their names (``--batch-size`` ->
``batch_size``) with the same defaults and meaning, in the same order (the order the checkpoint
stores them in). This module holds the wiring around
:class:`~yolact.training.trainer.Trainer`: the datasets (COCO files, or a YOLO/LabelMe/mask-PNG
source converted once into ``<out>/data``), the config, the run folder, the resume rules (the
arguments stored in every checkpoint, replaced by those given again) and torchrun's processes.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Union

import torch

from ..config import PRESETS, get_config
from ..data.coco import CocoDataset, read_coco_json
from ..errors import YolactError, warn
from ..evaluation.coco import model_category_ids
from ..hub import resolve_backbone_weights, resolve_weights
from ..runs import removed_if_failed, run_dir, run_lock
from .distributed import setup_distributed
from .options import TrainOptions
from .recipes import RECIPES, Recipe, amp_for, apply_recipe, get_recipe, recipe_differences
from .trainer import Trainer, check_resumable, stride2_conv_on_one_pixel


def train(*, config: Optional[str] = None, train_ann: Optional[str] = None, train_images: Optional[str] = None,
          val_ann: Optional[str] = None, val_images: Optional[str] = None, data: Optional[str] = None,
          format: str = "auto", classes: Optional[str] = None, hole_label: str = "hole",
          img_size: Optional[int] = None, batch_size: int = 8, iters: Optional[int] = None,
          epochs: Optional[int] = None, time: Optional[float] = None, lr: Optional[float] = None, weights: Optional[str] = None,
          backbone_weights: Optional[str] = None, resume: Optional[str] = None, out: Optional[str] = None,
          exist_ok: bool = False, amp: Optional[bool] = None, amp_dtype: Optional[str] = None, workers: int = 2,
          device: Optional[str] = None,
          freeze_bn: Optional[bool] = None, sync_bn: bool = False, val_interval: Optional[int] = None,
          lr_steps: Union[None, str, Sequence[float]] = None, warmup_iters: Optional[int] = None,
          schedule: Optional[str] = None, ema: Optional[float] = None, patience: Optional[int] = None,
          clip_grad: Optional[float] = None, optimizer: Optional[str] = None, no_expand: bool = False,
          no_augment: bool = False, mask_resize: str = "bilinear", no_background: bool = False, seed: int = 0,
          threads: Optional[int] = None, quiet: bool = False, recipe: Union[str, Dict, "Recipe"] = "original",
          given: Optional[Sequence[str]] = None) -> Dict:
    """Train a model; ``yolact train --<flag>`` for each argument (see ``yolact train --help``).

    Data: ``data`` (a YOLO data.yaml, a LabelMe folder or a mask-PNG folder; ``format``,
    ``classes`` (a classes.txt) and ``hole_label`` read it), or COCO files ``train_ann`` and
    ``train_images`` (with ``val_ann``/``val_images`` for validation). ``config``: the preset (default: the
    ``weights`` checkpoint's, else yolact_resnet18);
    ``weights``: a file or zoo name to fine-tune from; ``backbone_weights``: 'imagenet', 'none'
    or a file. ``resume``: a last.pt to continue exactly, its data and options taken from the
    file unless given again here. ``out``: the run folder (default: ``resume``'s folder, else a
    fresh runs/train, runs/train2, ...). ``amp``: mixed precision (autocast), bf16 on the CPU and
    fp16 with loss scaling on a GPU unless ``amp_dtype`` ('fp16' or 'bf16', implies ``amp``)
    says; the mask loss stays float32; None: the recipe's (``original``: off; ``fast``: on for
    GPUs and CPUs with AMX, see :func:`~yolact.training.recipes.amp_for`), False: float32.
    ``lr_steps``: fractions, as '0.7,0.9' or a sequence. ``time``: a wall-clock budget in hours instead
    of ``iters``/``epochs`` (the run's whole training time, a resume's included; the length is
    re-estimated after every epoch, so such a run is not reproducible to the bit).
    ``recipe``: ``original`` (the default: the original's recipe) or ``fast`` (see
    :mod:`yolact.training.recipes`), or a :class:`Recipe`; ``optimizer``, ``lr``, ``schedule``,
    ``ema``, ``warmup_iters`` and ``val_interval`` given here win over the recipe's (None: the
    recipe's, and for ``original`` sgd and step; ``ema=0``: no EMA). ``lr`` is used as given; the
    recipe's or preset's lr is for a batch of 8, scaled to the global batch. ``no_expand`` and
    ``mask_resize`` apply to the original's augmentation only (YolactError under ``fast``).
    Under torchrun each process calls this
    (DistributedDataParallel).

    Returns the trainer's summary (``Trainer.train``: 'iterations', 'seconds', 'images_per_s',
    'skipped_steps', 'stopped_early', and with a val split 'best_mask_ap', 'best_box_ap') and
    'out', the run folder holding last.pt, best.pt and the logs. Raises YolactError for bad
    input; KeyboardInterrupt after saving last.pt on SIGINT/SIGTERM.
    """
    return _train(SimpleNamespace(**{k: v for k, v in locals().items() if k in DEFAULTS}), given)


# train()'s arguments and their defaults (the CLI's flags): one given again on resume differs from them.
DEFAULTS: Dict = {name: p.default for name, p in inspect.signature(train).parameters.items() if name != "given"}
# Arguments that name files: stored absolute, so a resume works from any folder.
_PATH_ARGS = ("train_ann", "train_images", "val_ann", "val_images", "data", "classes", "weights",
              "backbone_weights")
# Not taken from the checkpoint: the run folder is --resume's folder unless --out is given; the
# starting weights are replaced by the checkpoint's anyway (no need to find them again); --quiet is
# this invocation's, not the run's.
_NOT_RESTORED = ("resume", "out", "exist_ok", "weights", "backbone_weights", "quiet")
# Fixed for a run: a resume giving another value is refused (the learning rate's autoscale, the
# schedule and the sample order follow them; a new run starts from the file with --weights).
# img_size and the augmentation switches are part of the model's config, which a resume keeps.
_FIXED_ON_RESUME = ("recipe", "batch_size", "img_size", "no_augment", "no_expand", "mask_resize")


def _train(args, given: Optional[Sequence[str]] = None) -> Dict:
    """train() on its arguments as attributes of ``args``; ``given``: see train()."""
    rank = int(os.environ.get("RANK", "0"))
    _check_args(args)
    # what a resume has to say is printed once the run is sure to start: a refusal stays one line
    args.pending_lines = []
    if args.resume:
        args = _merge_resume_args(args, rank, given)
    _refuse_flags_the_recipe_ignores(args)
    args.out = _train_dir(args)
    elsewhere = bool(args.resume) and Path(args.out).resolve() != Path(args.resume).resolve().parent
    if (not args.resume or elsewhere) and not args.exist_ok and (Path(args.out) / "last.pt").exists():
        raise YolactError(f"--out {args.out}: holds a training run (last.pt); continue it with --resume "
                          f"{Path(args.out) / 'last.pt'}, write over it with --exist-ok, or give another --out")
    with removed_if_failed(Path(args.out)):  # a failed run leaves no empty run folder
        # one run at a time in a folder (torchrun's ranks share theirs: rank 0 holds the lock)
        with run_lock(Path(args.out)) if rank == 0 else contextlib.nullcontext():
            return _train_into(args, rank, elsewhere)


def _carry_run_files(args) -> None:
    """A resume into another --out: the run's best.pt and metrics.jsonl so far come along, so the
    new folder holds what its summary's best AP refers to and the whole history (a later
    evaluation replaces best.pt only when better)."""
    src = Path(args.resume).resolve().parent
    carried = [name for name in ("best.pt", "metrics.jsonl") if (src / name).is_file()]
    for name in carried:
        shutil.copy2(src / name, Path(args.out) / name)
    args.pending_lines.append(f"--resume: writing to {args.out}, not {Path(args.resume).parent}"
                              + (f" ({' and '.join(carried)} so far copied)" if carried else ""))


def _train_into(args, rank: int, elsewhere: bool = False) -> Dict:
    """_train's work, writing into ``args.out`` (``elsewhere``: a resume into another folder than
    its checkpoint's)."""
    device = setup_distributed(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tr_ann, tr_img, va_ann, va_img = _datasets_from_args(args)
    train_set = CocoDataset(tr_ann, tr_img, train=True, seed=args.seed, verbose=rank == 0 and not args.quiet,
                            skip_empty=args.no_background)
    # the data's category ids travel in the checkpoint: every output writes them (#27)
    cfg = _config(args, train_set.class_names).replace(category_ids=train_set.category_ids)
    train_set.cfg = cfg
    if va_ann:  # a val file with other class names stops now, not after the first epochs
        model_category_ids(cfg.class_names, read_coco_json(va_ann), va_ann)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = get_recipe(args.recipe)
    if args.amp is None and args.amp_dtype is None:  # the recipe decides; stored, so a resume keeps it
        args.amp, why = amp_for(recipe, str(device), stride2_conv_on_one_pixel(cfg.max_size, cfg.num_downsample))
        if why and not args.amp:  # on: the trainer's note says so
            args.pending_lines.append(why)
    opts = _options(args, device, recipe)
    # Zoo names and hf:// URLs -> files in the Hugging Face cache; official presets start from
    # their ImageNet backbone unless fine-tuning or resuming (as the original).
    weights = str(resolve_weights(args.weights)) if args.weights else None
    backbone = resolve_backbone_weights(args.backbone_weights, cfg, finetune=bool(args.weights or args.resume))
    trainer = Trainer(cfg, train_set, opts, va_ann, va_img, weights=weights,
                      backbone_weights=str(backbone) if backbone else None, recipe=recipe)
    if args.patience is not None and not va_ann:
        raise YolactError("--patience needs a validation set (--val-ann/--val-images)")
    if args.resume:
        trainer.resume(args.resume)
        if rank == 0 and elsewhere:
            _carry_run_files(args)
    if rank == 0 and not args.quiet:
        for line in args.pending_lines:
            print(line)
        _announce(trainer, args, va_ann)
    return {**trainer.train(), "out": args.out}


def _refuse_flags_the_recipe_ignores(args) -> None:
    """``--no-expand`` and ``--mask-resize`` shape the original's SSD augmentation; a recipe with
    its own (``fast``: mosaic, scale and translate jitter) would ignore them: one line instead."""
    recipe = get_recipe(args.recipe)
    if recipe.augment == "ssd" or args.no_augment:
        return
    for flag, given in (("--no-expand", args.no_expand),
                        (f"--mask-resize {args.mask_resize}", args.mask_resize != "bilinear")):
        if given:
            raise YolactError(f"{flag}: applies to the original recipe's augmentation (SSD); --recipe {recipe.name} "
                              "has its own (mosaic, scale and translate jitter; masks resized with the image, "
                              "nearest at pixel centres): leave it out, or add --no-augment")


def _check_args(args) -> None:
    """Refuse out-of-range or contradicting options before any folder is made (YolactError)."""
    from .. import checks

    checks.positive("--batch-size", args.batch_size)
    checks.choice("--amp-dtype", args.amp_dtype, ("fp16", "bf16"))
    if args.amp is False and args.amp_dtype is not None:
        raise YolactError(f"--amp-dtype {args.amp_dtype} turns mixed precision on, --no-amp off: give one of them")
    checks.positive("--lr", args.lr)
    checks.at_least("--iters", args.iters, 1)
    checks.at_least("--epochs", args.epochs, 1)
    checks.positive("--time", args.time)
    checks.exclusive("--time", args.time is not None, "--iters", args.iters is not None)
    checks.exclusive("--time", args.time is not None, "--epochs", args.epochs is not None)
    checks.img_size("--img-size", args.img_size)
    checks.at_least("--workers", args.workers, 0)
    checks.at_least("--threads", args.threads, 1)
    checks.positive("--clip-grad", args.clip_grad)
    checks.at_least("--patience", args.patience, 1)
    checks.at_least("--val-interval", args.val_interval, 1)
    checks.at_least("--warmup-iters", args.warmup_iters, 0)
    checks.number("--ema", args.ema)
    if args.ema is not None and not 0 <= args.ema < 1:
        raise YolactError(f"--ema {args.ema}: expected a decay in [0, 1) (0: no EMA)")
    for flag in ("train_ann", "train_images", "val_ann", "val_images"):
        checks.exclusive("--data", bool(args.data), "--" + flag.replace("_", "-"), bool(getattr(args, flag)))
    for key in ("weights", "backbone_weights"):  # a resume loads the checkpoint's weights over them
        if args.resume and getattr(args, key):
            flag = "--" + key.replace("_", "-")
            raise YolactError(f"{flag} {getattr(args, key)}: --resume continues from {args.resume}'s own weights; "
                              f"leave {flag} out, or start a new run from a file with --weights FILE")
    checks.device("--device", args.device)


def _datasets_from_args(args):
    """-> (train ann, train images, val ann or None, val images or None)."""
    if args.data and str(args.data).lower().endswith(".json") and Path(args.data).is_file():
        raise YolactError(f"--data {args.data}: a COCO file trains with --train-ann {args.data} --train-images DIR "
                          "(and --val-ann/--val-images)")
    if args.data:
        from ..data.builder import read_class_list
        from ..data.sources import dataset_splits
        train, val = dataset_splits(args.data, Path(args.out) / "data", args.format,
                                    read_class_list(args.classes) if args.classes else None, args.hole_label)
        if int(os.environ.get("RANK", "0")) == 0:
            _report_problems(train.problems + (val.problems if val else []))
        return train.ann, train.images, (val.ann if val else None), (val.images if val else None)
    if not args.train_ann or not args.train_images:
        raise YolactError("give --train-ann and --train-images (COCO), or --data data.yaml (YOLO)")
    if bool(args.val_ann) != bool(args.val_images):
        raise YolactError("--val-ann and --val-images go together")
    return args.train_ann, args.train_images, args.val_ann, args.val_images


def _report_problems(problems: List[str], limit: int = 5) -> None:
    """What the conversion skipped: a count and the first few, as ``warning:`` lines on stderr."""
    if problems:
        warn(f"skipped {len(problems)} object(s)/file(s)")
        for p in problems[:limit]:
            warn(p)
        if len(problems) > limit:
            warn(f"... and {len(problems) - limit} more (yolact data check lists them all)")


def _config(args, class_names):
    """The preset for the data's classes at --img-size, less the augmentations turned off.
    Without --config: the --weights (or --resume) checkpoint's preset at its input size, else
    yolact_resnet18."""
    try:
        # a resumed run without --config rebuilds the config from its own last.pt (a run
        # fine-tuned from another preset is not yolact_resnet18)
        start = getattr(args, "weights", None) or getattr(args, "resume", None)
        if args.config is None and start:
            cfg = _weights_config(start).replace(class_names=class_names)
        else:
            cfg = get_config(args.config or "yolact_resnet18", class_names=class_names)
    except KeyError as e:
        raise YolactError(str(e.args[0])) from None
    cfg = cfg.with_input_size(args.img_size)
    if args.no_augment:
        cfg = cfg.replace(augment_photometric=False, augment_expand=False, augment_crop=False, augment_mirror=False)
    elif args.no_expand:
        cfg = cfg.replace(augment_expand=False)
    if getattr(args, "mask_resize", "bilinear") != "bilinear":
        cfg = cfg.replace(mask_resize=args.mask_resize)
    return cfg


def _weights_config(weights) -> "YolactConfig":
    """The config a fine-tuning run takes from its starting checkpoint: its preset (the
    preset's training settings) at the checkpoint's input size; a config no preset names, as
    stored."""
    from ..checkpoint import read_checkpoint, resolve_config, split_checkpoint
    from ..config import PRESETS

    path = resolve_weights(weights)
    sd, meta = split_checkpoint(read_checkpoint(path), str(path))
    cfg = resolve_config(path, sd, meta, None)
    return PRESETS[cfg.name].with_input_size(cfg.max_size) if cfg.name in PRESETS else cfg


def _fractions(value):
    """--lr-steps as fractions: '0.7,0.9' (or a sequence of numbers) -> [0.7, 0.9]; None stays None."""
    if value is None:
        return None
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    try:
        vals = [float(v) for v in text.split(",")]  # an empty item (",," or "") is an error too
    except ValueError:
        raise YolactError(f"--lr-steps {text!r}: expected comma-separated fractions like 0.7,0.9") from None
    if any(not 0 < v < 1 for v in vals):
        raise YolactError(f"--lr-steps {text}: fractions must lie in (0, 1)")
    if any(b <= a for a, b in zip(vals, vals[1:])):  # a repeated step would divide the lr by 100 at once
        raise YolactError(f"--lr-steps {text}: fractions must increase (each step is one x0.1)")
    return vals


def _options(args, device, recipe: Recipe) -> TrainOptions:
    """The trainer's options from train()'s arguments, the recipe's where none was given."""
    opts = TrainOptions(out=args.out, iters=args.iters, epochs=args.epochs, time_hours=args.time, batch_size=args.batch_size,
                        lr=args.lr, workers=args.workers, device=str(device),
                        amp=bool(args.amp) or args.amp_dtype is not None, amp_dtype=args.amp_dtype,
                        freeze_bn=args.freeze_bn, sync_bn=args.sync_bn, seed=args.seed,
                        val_interval=args.val_interval, progress=not args.quiet, verbose=not args.quiet,
                        lr_steps=_fractions(args.lr_steps), warmup_iters=args.warmup_iters,
                        optimizer=args.optimizer or "sgd", schedule=args.schedule or "step", ema_decay=args.ema or None,
                        patience=args.patience, clip_grad_norm=args.clip_grad, skip_empty=args.no_background,
                        run_args=_run_args(args))
    given = {"optimizer": args.optimizer is not None, "lr": args.lr is not None,
             "schedule": args.schedule is not None, "ema_decay": args.ema is not None}
    opts = apply_recipe(opts, recipe, given)
    if opts.lr_steps is not None and opts.schedule != "step":  # it would be stored and never used
        whose = "" if args.schedule is not None else f" (--recipe {recipe.name}'s)"
        raise YolactError(f"--lr-steps {args.lr_steps}: the steps of the step schedule; this run's schedule is "
                          f"{opts.schedule}{whose}: leave --lr-steps out, or add --schedule step")
    return opts


def _announce(trainer: Trainer, args, va_ann) -> None:
    """Rank 0's lines before the run (not under --quiet): what was loaded, no val split, BatchNorm
    frozen."""
    for what, rep in trainer.reports.items():
        msg = f"{what}: loaded {len(rep['loaded'])} tensors"
        if rep.get("reinitialised"):
            msg += f"; re-initialised (class-dependent): {', '.join(rep['reinitialised'])}"
        if rep.get("remapped"):
            msg += "; class head rows mapped by class name (same names, another order)"
        if rep.get("missing"):
            msg += f"; not in file: {len(rep['missing'])}"
        if rep.get("ignored"):
            msg += f"; ignored: {len(rep['ignored'])}"
        print(msg)
    if not va_ann:
        print("no val split: best.pt holds the last weights (no AP to choose by)")
    if trainer.freeze_bn and args.freeze_bn is None:
        # the batch the trainer runs (after any cut to the data's size), not the one asked for
        print(f"BatchNorm frozen: {trainer.opts.batch_size} images per process is under 6, as the original "
              "(--no-freeze-bn trains it)")


def _run_args(args) -> dict:
    """What the checkpoint keeps of the arguments (everything but resume, the run folder and the
    starting weights)."""
    keep = {k: v for k, v in vars(args).items() if k in DEFAULTS and k not in _NOT_RESTORED}
    if isinstance(keep.get("recipe"), Recipe):  # stored as its fields (JSON)
        keep["recipe"] = keep["recipe"].to_dict()
    # files absolute; zoo names, 'imagenet' and 'none' as they are
    return {k: (str(Path(v).resolve()) if k in _PATH_ARGS and v and Path(v).exists() else v) for k, v in keep.items()}


def _recipe_name(recipe) -> str:
    """A recipe argument's name: 'fast', {'name': 'fast', ...} or a Recipe."""
    if isinstance(recipe, dict):
        return str(recipe.get("name"))
    return str(getattr(recipe, "name", recipe))


def _as_flag(key: str, value) -> str:
    """An argument as the command line says it: ``--img-size 96``, ``--amp``, ``--no-amp``."""
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}" if key in _BOOLEAN_PAIRS else f"without {flag}"
    return f"{flag} {value}"


# train()'s True/False arguments whose flag has a --no- form (argparse.BooleanOptionalAction).
_BOOLEAN_PAIRS = ("amp", "freeze_bn")


def _merge_resume_args(args, rank: int, given: Optional[Sequence[str]] = None):
    """``resume=last.pt`` alone continues: the data paths and options come from the checkpoint;
    an argument given again (named in ``given``, or else other than its default) overrides the
    stored one, with a notice; ``batch_size`` and the recipe's name must equal the stored ones, and
    the recipe's fields come from the file (see :class:`~yolact.training.recipes.Recipe`)."""
    from ..checkpoint import read_checkpoint

    obj = read_checkpoint(args.resume)
    check_resumable(obj, args.resume)  # before any notice
    if not hasattr(args, "pending_lines"):  # the notices, printed by _train_into once the run starts
        args.pending_lines = []
    stored = json.loads(obj.get("options", "{}")).get("run_args") if isinstance(obj.get("options"), str) else None
    if not stored:
        if not (args.data or args.train_ann):
            raise YolactError(f"{args.resume}: holds no data paths (written by an older version): give the data "
                              "arguments (--data, or --train-ann/--train-images) again")
        return args
    typed = set(given) if given is not None else {k for k in DEFAULTS if getattr(args, k) != DEFAULTS[k]}
    length_given = bool(typed & {"iters", "epochs", "time"})
    ssd = get_recipe(stored.get("recipe")).augment == "ssd"
    for key in _FIXED_ON_RESUME:
        if key in ("no_expand", "mask_resize") and not ssd:
            continue  # not the run's augmentation at all: _refuse_flags_the_recipe_ignores says why
        if key in typed and stored.get(key) is not None:  # None: the preset's, compared as the config
            mine, theirs = getattr(args, key), stored[key]
            if key == "recipe":
                mine, theirs = _recipe_name(mine), _recipe_name(theirs)
            if mine != theirs:
                flag = "--" + key.replace("_", "-")
                new_run = "" if mine is False else f" {_as_flag(key, mine)}"
                trained_with = _as_flag(key, theirs)
                trained_with = trained_with if trained_with.startswith("without ") else "with " + trained_with
                raise YolactError(f"{_as_flag(key, mine)}: {args.resume} was trained {trained_with}; a "
                                  f"resumed run keeps it (leave {flag} out, or start a new run from the file: "
                                  f"--weights {args.resume}{new_run})")
    took = _what_the_run_took(obj)
    _refuse_other_model_or_optimizer(args, obj, took, typed)
    for key, value in stored.items():
        if key not in DEFAULTS or key in _NOT_RESTORED:
            continue
        mine = getattr(args, key)
        # --iters, --epochs and --time exclude each other: giving one replaces all three
        overridden = length_given if key in ("iters", "epochs", "time") else key in typed
        if not overridden:
            setattr(args, key, value)
        elif key not in ("recipe", "quiet", "iters", "epochs", "time") and mine != value and key in typed:
            # (a recipe: its name matched) None: the flag was not given to the run, which took its
            # recipe's or preset's value: named where the file says it, no notice when the same
            if value is None and took.get(key) is not None:
                if mine == took[key]:
                    continue
                value = took[key]
            args.pending_lines.append(f"--resume: {_as_flag(key, mine)} replaces the checkpoint's "
                                      f"{'default' if value is None else _as_flag(key, value)}")
    if length_given:  # one notice for the run's length, in the unit each gave
        def length(d):
            return next((_as_flag(k, d.get(k)) for k in ("iters", "epochs", "time") if d.get(k) is not None),
                        "default length")
        mine, theirs = length(vars(args)), length(stored)
        if mine != theirs:
            args.pending_lines.append(f"--resume: {mine} replaces the checkpoint's {theirs}")
    if "amp" in typed and args.amp is False and "amp_dtype" not in typed:
        args.amp_dtype = None  # --no-amp on a run stored with --amp-dtype: float32, as asked
    trained = json.loads(obj.get("recipe") or "null")
    if isinstance(trained, dict) and trained.get("name") == _recipe_name(args.recipe):
        # The recipe as the run was trained, even where the package's recipe of that name has
        # changed since (a field added with another default): the resume stays exact. A name, or
        # the package's recipe of that name, means "the run's recipe"; a Recipe or dict that
        # differs from the file's is left to Trainer.resume, which refuses it and names the fields.
        mine = args.recipe
        if isinstance(mine, str) or any(not recipe_differences(get_recipe(ref), get_recipe(mine))
                                        for ref in (trained, RECIPES.get(trained["name"])) if ref is not None):
            args.recipe = trained
    return args


def _what_the_run_took(obj: Dict) -> Dict:
    """What a checkpoint's run trained with, also where it was given no value and took its
    recipe's or preset's (stored as None in its arguments): argument name -> value, as the file says."""
    options = json.loads(obj.get("options") or "{}")
    return {"optimizer": obj.get("optimizer_name", "sgd"),  # files from before the option: SGD
            "config": obj["config"].get("name") if isinstance(obj.get("config"), dict) else None,
            "schedule": options.get("schedule"), "ema": options.get("ema_decay")}


def _refuse_other_model_or_optimizer(args, obj: Dict, took: Dict, typed) -> None:
    """``--config``, ``--optimizer`` and ``--ema`` on resume, compared with what the checkpoint
    trained with (``took``: :func:`_what_the_run_took`): another one is refused in one line,
    before the model is built (Trainer.resume would refuse it too)."""
    for key in ("optimizer", "config"):
        mine, theirs = getattr(args, key), took[key]
        if key == "config" and not (isinstance(mine, str) and mine in PRESETS):  # a file or a config: by fields
            continue
        if key in typed and mine is not None and theirs is not None and mine != theirs:
            raise YolactError(f"--{key} {mine}: {args.resume} was trained with --{key} {theirs}; a resumed run "
                              f"keeps it (leave --{key} out, or start a new run from the file: --weights {args.resume} "
                              f"--{key} {mine})")
    if "ema" in typed and args.ema is not None and (args.ema > 0) != ("ema" in obj):
        how = "with an EMA of the weights" if "ema" in obj else "without an EMA"
        raise YolactError(f"--ema {args.ema:g}: {args.resume} was trained {how}; a resumed run keeps it (leave --ema "
                          f"out, or start a new run from the file: --weights {args.resume} --ema {args.ema:g})")


def _train_dir(args) -> str:
    """--out; else the folder of --resume; else a fresh runs/train, runs/train2, ... (one
    process: under torchrun every rank must name the same folder, so runs/train as it is)."""
    if args.out:
        return args.out
    if args.resume:
        return str(Path(args.resume).parent)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return str(run_dir(None, "runs/train", args.exist_ok or distributed))
