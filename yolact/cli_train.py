"""CLI verbs for data, training and evaluation: ``data``, ``train``, ``eval``, ``demo``."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .config import PRECISIONS
from .data.sources import FORMATS
from .errors import YolactError


def cmd_data_synth(args) -> int:
    from .data.synth import generate

    paths = generate(Path(args.out), args.train, args.val, size=args.size, seed=args.seed,
                     max_objects=args.max_objects, style=args.style)
    for split, p in paths.items():
        print(f"{split}: {p} (images in {Path(args.out) / split})")
    return 0


HOLE_HELP = "LabelMe label of shapes that cut holes in their group's instance"


def cmd_data_check(args) -> int:
    from .data.check import check_dataset

    rep = check_dataset(args.src, args.out, args.format, images=args.images, classes=_classes_arg(args),
                        augmented=args.augmented, samples=args.samples, config=args.config, seed=args.seed,
                        hole_label=args.hole_label)
    print("\n".join(rep.lines()))
    return 0


def cmd_data_split(args) -> int:
    from .data.split import split_coco

    train, val = split_coco(args.ann, args.out, args.val, args.seed)
    print(f"wrote {train} and {val}")
    return 0


def cmd_data_merge(args) -> int:
    from .data.split import merge_coco

    print(f"wrote {merge_coco(args.inputs, args.out, args.images)}")
    return 0


def _classes_arg(args):
    from .data.builder import read_class_list

    return read_class_list(args.classes) if getattr(args, "classes", None) else None


def _report_problems(problems, limit: int = 5) -> None:
    if problems:
        print(f"skipped {len(problems)} object(s)/file(s):")
        for p in problems[:limit]:
            print(f"  {p}")
        if len(problems) > limit:
            print(f"  ... and {len(problems) - limit} more")


def cmd_data_convert(args) -> int:
    from .data.sources import convert_to_coco
    from .data.yolo import coco_to_yolo

    if args.to == "coco":
        split = convert_to_coco(args.src, args.out, args.format, args.split, _classes_arg(args),
                                hole_label=args.hole_label)
        _report_problems(split.problems)
        print(f"wrote {args.out}")
    else:
        out = coco_to_yolo(args.src, args.images, args.out)
        print(f"wrote {out}")
    return 0


def _scaled_config(cfg, img_size):
    """Change the input size; anchor scales follow it as the original's im400/im700 presets."""
    if img_size is None or img_size == cfg.max_size:
        return cfg
    f = img_size / cfg.max_size
    return cfg.replace(max_size=img_size, pred_scales=tuple(tuple(s * f for s in lv) for lv in cfg.pred_scales),
                       min_box_size=cfg.min_box_size)


def _datasets_from_args(args):
    """-> (train ann, train images, val ann or None, val images or None)."""
    if args.data:
        from .data.sources import dataset_splits
        train, val = dataset_splits(args.data, Path(args.out) / "data", args.format, _classes_arg(args),
                                    args.hole_label)
        if int(os.environ.get("RANK", "0")) == 0:
            _report_problems(train.problems + (val.problems if val else []))
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


def cmd_train(args) -> int:
    import torch

    from .config import get_config
    from .data.coco import CocoDataset
    from .engine.train import Trainer, TrainOptions, setup_distributed

    device = setup_distributed(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rank = int(os.environ.get("RANK", "0"))
    tr_ann, tr_img, va_ann, va_img = _datasets_from_args(args)
    train_set = CocoDataset(tr_ann, tr_img, train=True, seed=args.seed, verbose=rank == 0)
    try:
        cfg = get_config(args.config, class_names=train_set.class_names)
    except KeyError as e:
        raise YolactError(str(e.args[0])) from None
    cfg = _scaled_config(cfg, args.img_size)
    if args.no_augment:
        cfg = cfg.replace(augment_photometric=False, augment_expand=False, augment_crop=False, augment_mirror=False)
    elif args.no_expand:
        cfg = cfg.replace(augment_expand=False)
    train_set.cfg = cfg
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = TrainOptions(out=args.out, iters=args.iters, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, workers=args.workers, device=str(device), amp=args.amp,
                        freeze_bn=args.freeze_bn, sync_bn=args.sync_bn, seed=args.seed,
                        val_interval=args.val_interval, progress=not args.quiet,
                        lr_steps=_fractions(args.lr_steps), warmup_iters=args.warmup_iters,
                        optimizer=args.optimizer, schedule=args.schedule, ema_decay=args.ema,
                        patience=args.patience, clip_grad_norm=args.clip_grad)
    trainer = Trainer(cfg, train_set, opts, va_ann, va_img, weights=args.weights,
                      backbone_weights=args.backbone_weights)
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
        if train_set.problems:
            print(f"{tr_ann}: skipped {len(train_set.problems)} bad annotation(s)/image(s), e.g. {train_set.problems[0]}")
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


def cmd_eval(args) -> int:
    from .cli import _load_model
    from .engine.evaluate import evaluate, format_metrics

    model = _load_model(args)
    metrics = evaluate(model, args.ann, args.images, score_threshold=args.score_threshold, top_k=args.top_k,
                       out_json=args.out, progress=not args.quiet)
    if metrics:
        print(format_metrics(metrics))
        if args.out:
            print(f"results: {args.out}")
    return 0


def add_commands(sub, add_model_args) -> None:
    p = sub.add_parser("data", help="make or convert datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = dsub.add_parser("synth", help="generate a synthetic COCO-format shapes dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--train", type=int, default=200)
    s.add_argument("--val", type=int, default=50)
    s.add_argument("--size", type=int, default=320)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-objects", type=int, default=5)
    s.add_argument("--style", choices=["varied", "simple"], default="varied",
                   help="varied: textured backgrounds, small to large shapes; simple: smooth backgrounds, larger shapes")
    s.set_defaults(func=cmd_data_synth)
    c = dsub.add_parser("convert", help="convert YOLO, LabelMe or mask-PNG data to COCO JSON, or COCO to YOLO")
    c.add_argument("--to", choices=["coco", "yolo"], required=True)
    c.add_argument("src", help="to coco: data.yaml, a LabelMe folder or a mask-PNG folder; to yolo: instances.json")
    c.add_argument("--format", choices=list(FORMATS), default="auto", help="source format (to coco)")
    c.add_argument("--classes", help="classes.txt: fixes the class order and drops other labels (LabelMe, masks)")
    c.add_argument("--hole-label", default="hole", help=HOLE_HELP)
    c.add_argument("--split", default="train", help="split of data.yaml to convert (to coco)")
    c.add_argument("--images", help="image folder of the COCO file (to yolo)")
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_data_convert)
    k = dsub.add_parser("check", help="what a dataset holds and what was skipped, with pictures")
    k.add_argument("src", help="a COCO .json (with --images), data.yaml, LabelMe folder or mask-PNG folder")
    k.add_argument("--format", choices=list(FORMATS), default="auto")
    k.add_argument("--images", help="image folder of a COCO file")
    k.add_argument("--classes", help="classes.txt (LabelMe, masks)")
    k.add_argument("--hole-label", default="hole", help=HOLE_HELP)
    k.add_argument("--out", "-o", default="check", help="folder for overview.png and histograms.png")
    k.add_argument("--augmented", action="store_true",
                   help="also draw the same samples after the training augmentation (overview_augmented.png)")
    k.add_argument("--config", "-c", default="yolact_resnet18", help="preset whose input size --augmented uses")
    k.add_argument("--samples", type=int, default=12)
    k.add_argument("--seed", type=int, default=0)
    k.set_defaults(func=cmd_data_check)
    sp = dsub.add_parser("split", help="seeded train/val split of a COCO file, stratified by class")
    sp.add_argument("ann")
    sp.add_argument("--val", type=float, default=0.2, help="fraction of images for val")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", "-o", required=True, help="folder for train.json and val.json")
    sp.set_defaults(func=cmd_data_split)
    mg = dsub.add_parser("merge", help="merge COCO files, classes unified by name")
    mg.add_argument("inputs", nargs="+")
    mg.add_argument("--images", nargs="+", help="each file's image folder, in order (file names become absolute)")
    mg.add_argument("--out", "-o", required=True)
    mg.set_defaults(func=cmd_data_merge)

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
    p.add_argument("--weights", help="initial weights (e.g. an official COCO checkpoint) to fine-tune")
    p.add_argument("--backbone-weights", help="ImageNet backbone file (torchvision names, resnet101_reducedfc.pth, darknet53.pth)")
    p.add_argument("--resume", help="a last.pt to continue exactly")
    p.add_argument("--out", "-o", default="runs/train")
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="COCO box and mask AP on an annotated set")
    add_model_args(p, backend=True)
    p.add_argument("--ann", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", help="write the results JSON (RLE masks) here")
    p.add_argument("--score-threshold", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_eval)

    add_demo_command(sub)


def cmd_demo(args) -> int:
    """Segment fresh synthetic images with the built-in model; overlays, protos, JSON, mask AP."""
    import cv2

    import yolact
    from .data.synth import generate
    from .engine.evaluate import evaluate, format_metrics
    from .viz import prototype_grid

    weights = args.weights or yolact.demo_weights_path()
    if not Path(weights).exists():
        raise YolactError(f"{weights}: the built-in demo model is missing from this install")
    model = yolact.load(weights, device=args.device, precision=args.precision)
    out = Path(args.out)
    data = out / "data"
    # The demo model's distribution ("simple" style, up to 4 shapes, 256 px); seeds other than
    # the training set's (0 and 10000), so these images were never seen.
    generate(data, n_train=args.images, n_val=args.val, size=256, seed=args.seed, max_objects=4, style="simple")
    images = sorted((data / "train").glob("*.jpg"))
    coco = []
    for i, path in enumerate(images):
        res = model.predict(str(path), score_threshold=args.score_threshold)
        cv2.imwrite(str(out / f"overlay_{path.stem}.png"), res.plot())
        coco += res.to_coco(path.name, kind="both")
        if i == 0:
            full = model.predict(str(path), score_threshold=args.score_threshold, keep_proto=True)
            cv2.imwrite(str(out / "prototypes.png"), prototype_grid(full.proto))
        print(f"{path.name}: " + ", ".join(f"{n} {s:.2f}" for n, s in zip(res.names, res.scores)))
    (out / "detections.json").write_text(json.dumps(coco))
    metrics = evaluate(model, data / "val.json", data / "val", progress=False)
    print(format_metrics(metrics, per_class=True))
    print(f"mask AP on {args.val} fresh synthetic images: {100 * metrics['segm']['AP']:.1f}")
    print(f"overlays, prototypes.png and detections.json written to {out}")
    return 0


def add_demo_command(sub) -> None:
    p = sub.add_parser("demo", help="run the built-in demo model on fresh synthetic images")
    p.add_argument("--out", "-o", default="demo_out")
    p.add_argument("--images", type=int, default=6, help="images to segment and draw")
    p.add_argument("--val", type=int, default=100, help="images in the generated val set")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--weights", default=None, help="default: the built-in demo model")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.set_defaults(func=cmd_demo)
