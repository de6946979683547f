"""``yolact data``: make, convert, check, split and merge datasets."""
from __future__ import annotations

from pathlib import Path

from ..errors import YolactError
from ..data.sources import FORMAT_SOURCES, FORMATS
from .common import add_out_args, class_list, run_dir

HOLE_HELP = "LabelMe label of shapes that cut holes in their group's instance"


def cmd_data_synth(args) -> int:
    """Run ``yolact data synth`` (synthetic COCO shapes dataset; --large: big images of small
    shapes); returns exit code 0."""
    from .. import checks
    from ..data.synth import generate, generate_large

    checks.at_least("--max-objects", args.max_objects, 1)
    checks.at_least("--train", args.train, 0)
    checks.at_least("--val", args.val, 0)
    if args.large:
        lo, hi = _size_range(args.object_size)
        width = args.size or 2048
        paths = generate_large(Path(args.out), args.train, args.val, width=width, height=width * 3 // 4,
                               seed=args.seed, n_objects=args.max_objects or 40, object_size=(lo, hi),
                               style=args.style or "simple")
    else:
        paths = generate(Path(args.out), args.train, args.val, size=args.size or 320, seed=args.seed,
                         max_objects=args.max_objects or 5, style=args.style or "varied")
    for split, p in paths.items():
        print(f"{split}: {p} (images in {Path(args.out) / split})")
    return 0



def _size_range(text: str):
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise YolactError(f"--object-size {text}: expected MIN,MAX in pixels, e.g. 40,100") from None
    if not 1 <= lo <= hi:
        raise YolactError(f"--object-size {text}: expected 1 <= MIN <= MAX")
    return lo, hi


def cmd_data_synth_video(args) -> int:
    """Run ``yolact data synth-video`` (synthetic MOTChallenge sequences); returns exit code 0."""
    from ..data.synth_video import generate_videos

    seqs = generate_videos(Path(args.out), args.videos, args.frames, args.height, args.width, args.seed,
                           args.max_objects)
    for s in seqs:
        print(f"{s['seq']}: frames in img1/, ground truth in gt/ (MOT and MOTS), video {s['video']}")
    return 0


def cmd_data_convert(args) -> int:
    """Run ``yolact data convert`` (YOLO/LabelMe/mask PNG -> COCO, or COCO -> YOLO); returns exit code 0."""
    import yaml

    from ..data.check import conversion_summary
    from ..data.coco import read_coco_json
    from ..data.sources import convert_to_coco
    from ..data.yolo import coco_to_yolo

    from .. import checks

    checks.output_file("--out", args.out) if args.to == "coco" else checks.output_folder("--out", args.out)
    checks.existing_folder("--images", args.images)
    checks.needs("--images", args.images is not None, "--to yolo", args.to == "yolo")
    checks.needs("--classes", args.classes is not None, "--to coco", args.to == "coco")
    checks.existing_file("--classes", args.classes)
    checks.needs("--val", bool(args.val), "--to yolo", args.to == "yolo")
    if not 0 <= args.val < 1:  # nan too
        raise YolactError(f"--val {args.val}: expected a fraction in [0, 1)")
    if not Path(args.src).exists():
        raise YolactError(f"{args.src}: no such file or folder")
    if args.to == "coco":
        split = convert_to_coco(args.src, args.out, args.format, args.split, class_list(args.classes),
                                hole_label=args.hole_label)
        print("\n".join(conversion_summary(read_coco_json(split.ann), split.problems)))
        print(f"wrote {args.out}")
    else:
        if Path(args.src).is_dir() or Path(args.src).suffix.lower() != ".json" or args.format not in ("auto", "coco"):
            raise YolactError(f"{args.src}: --to yolo reads a COCO .json (with --images); convert other formats "
                              "to COCO first (yolact data convert --to coco)")
        out = coco_to_yolo(args.src, args.images, args.out, val_fraction=args.val, seed=args.seed)
        print("\n".join(conversion_summary(read_coco_json(args.src), [])))
        spec = yaml.safe_load(out.read_text())
        if "val" in spec:
            n_val = len(list((Path(args.out) / "labels" / "val").glob("*.txt")))
            n_train = len(list((Path(args.out) / "labels" / "train").glob("*.txt")))
            print(f"split: {n_train} train, {n_val} val images (seed {args.seed}, stratified by class)")
        else:
            print("no val split (data.yaml names none; --val 0.2 holds out a fifth of the images)")
        print(f"wrote {out}")
    return 0



def cmd_data_check(args) -> int:
    """Run ``yolact data check`` (dataset summary and pictures); returns exit code 0."""
    from ..data.check import check_dataset

    from ..runs import removed_if_failed

    from .. import checks

    if not Path(args.src).exists():
        raise YolactError(f"{args.src}: no such file or folder")
    checks.existing_folder("--images", args.images)
    checks.existing_file("--classes", args.classes)
    checks.at_least("--samples", args.samples, 1)
    from ..data.sources import detect_format, has_val_split

    fmt = detect_format(args.src) if args.format == "auto" else args.format
    # both splits, as `train --data` reads them: the val split's files matter as much
    splits = ["train", "val"] if has_val_split(args.src, fmt, args.images) else ["train"]
    out = run_dir(args.out, "check", args.exist_ok)
    with removed_if_failed(out):  # a failed check leaves no empty folder
        reports = [check_dataset(args.src, out if split == "train" else out / split, fmt, images=args.images,
                                 classes=class_list(args.classes), augmented=args.augmented, samples=args.samples,
                                 config=args.config, seed=args.seed, mask_resize=args.mask_resize,
                                 hole_label=args.hole_label, split=split) for split in splits]
    for split, rep in zip(splits, reports):
        if len(splits) > 1:
            rep.source = f"{rep.source} [{split}]"
        print("\n".join(rep.lines()) + ("\n" if split != splits[-1] else ""))
    return 0



def cmd_data_split(args) -> int:
    """Run ``yolact data split`` (seeded stratified train/val split); returns exit code 0."""
    from ..data.split import split_coco

    train, val = split_coco(args.ann, args.out, args.val, args.seed)
    print(f"wrote {train} and {val}")
    return 0



def cmd_data_merge(args) -> int:
    """Run ``yolact data merge`` (COCO files merged, classes unified by name); returns exit code 0."""
    from ..data.split import merge_coco

    print(f"wrote {merge_coco(args.inputs, args.out, args.images)}")
    return 0



def add_commands(sub) -> None:
    """Add the ``data`` verb and its actions (synth, synth-video, convert, check, split, merge) to ``sub``."""
    p = sub.add_parser("data", help="make or convert datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = dsub.add_parser("synth", help="generate a synthetic COCO-format shapes dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--train", type=int, default=200)
    s.add_argument("--val", type=int, default=50)
    s.add_argument("--size", type=int, default=None, help="image side (default 320; --large: width 2048, height 3/4 of it)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-objects", type=int, default=None, help="objects per image (default 5; --large: 40)")
    s.add_argument("--style", choices=["varied", "simple"], default=None,
                   help="varied (default): textured backgrounds, small to large shapes; simple (--large's default): "
                        "smooth backgrounds, the demo model's style")
    s.add_argument("--large", action="store_true",
                   help="large images with many small, non-overlapping shapes (for sliced inference: --slice)")
    s.add_argument("--object-size", default="40,100", help="--large: shape sides MIN,MAX in pixels")
    s.set_defaults(func=cmd_data_synth)
    v = dsub.add_parser("synth-video", help="synthetic tracking videos with ground-truth tracks (MOTChallenge layout)")
    v.add_argument("--out", required=True)
    v.add_argument("--videos", type=int, default=3)
    v.add_argument("--frames", type=int, default=90)
    v.add_argument("--width", type=int, default=640)
    v.add_argument("--height", type=int, default=480)
    v.add_argument("--max-objects", type=int, default=5)
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=cmd_data_synth_video)
    c = dsub.add_parser("convert", help=f"convert data ({', '.join(f for f in FORMATS if f not in ('auto', 'coco'))}) "
                                        "to COCO JSON, or COCO to YOLO")
    c.add_argument("--to", choices=["coco", "yolo"], required=True, help="output format")
    c.add_argument("src", help="to coco: " + "; ".join(v for k, v in FORMAT_SOURCES.items() if k != "coco")
                   + "; to yolo: instances.json")
    c.add_argument("--format", choices=list(FORMATS), default="auto", help="source format (to coco)")
    c.add_argument("--classes", help="classes.txt: fixes the class order and drops other labels (LabelMe, masks)")
    c.add_argument("--hole-label", default="hole", help=HOLE_HELP)
    c.add_argument("--split", default="train", help="split of data.yaml to convert (to coco)")
    c.add_argument("--images", help="image folder of the COCO file (to yolo)")
    c.add_argument("--val", type=float, default=0.0,
                   help="to yolo: fraction of images for a val split (stratified, seeded); 0: no val split")
    c.add_argument("--seed", type=int, default=0, help="to yolo: seed of the val split")
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_data_convert)
    k = dsub.add_parser("check", help="what a dataset holds and what was skipped, with pictures")
    k.add_argument("src", help="a COCO .json (with --images), data.yaml, LabelMe folder or mask-PNG folder")
    k.add_argument("--format", choices=list(FORMATS), default="auto")
    k.add_argument("--images", help="image folder of a COCO file")
    k.add_argument("--classes", help="classes.txt (LabelMe, masks)")
    k.add_argument("--hole-label", default="hole", help=HOLE_HELP)
    add_out_args(k, "check", "folder for overview.png and histograms.png")
    k.add_argument("--augmented", action="store_true",
                   help="also draw the same samples after the training augmentation (overview_augmented.png)")
    k.add_argument("--config", "-c", default="yolact_resnet18", help="preset whose input size --augmented uses")
    k.add_argument("--mask-resize", choices=["bilinear", "area"], default="bilinear",
                   help="with --augmented: the training mask resize to count thin objects under "
                        "(default bilinear, the original's; area keeps any coverage)")
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
