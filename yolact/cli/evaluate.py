"""``yolact eval`` (COCO AP of a model on annotated images) and ``yolact demo``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import PRECISIONS
from .common import add_model_args, add_out_args, add_postprocess_args, load_model, predict_options, run_dir, weights_path


def cmd_eval(args) -> int:
    """Run ``yolact eval`` (COCO box and mask AP with pycocotools); returns exit code 0."""
    from ..evaluation.coco import evaluate, format_metrics
    from ..errors import YolactError

    from .. import checks

    if (args.plots is True) and not args.out:  # the flags first, then the files
        raise YolactError("--plots needs --out (the folder to write them to)")
    checks.existing_file("--ann", args.ann)
    checks.existing_folder("--images", args.images)
    checks.in_range("--pr-threshold", args.pr_threshold, 0.0, 1.0)
    if args.out:
        (checks.output_file if Path(args.out).suffix.lower() == ".json" else checks.output_folder)("--out", args.out)
    out_json = plots_dir = None
    if args.out:  # a .json file: the results there, plots beside it; else a folder for both
        out = Path(args.out)
        out_json = out if out.suffix.lower() == ".json" else out / "results.json"
        plots_dir = out_json.parent
    plots = args.plots if args.plots is not None else bool(args.out)
    if plots and not args.out:
        raise YolactError("--plots needs --out (the folder to write them to)")
    model = load_model(args)
    metrics = evaluate(model, args.ann, args.images, score_threshold=args.score_threshold, top_k=args.top_k,
                       out_json=out_json, progress=not args.quiet,
                       map_classes_by_position=args.map_classes_by_position,
                       pr_score_threshold=args.pr_threshold, plots_dir=plots_dir if plots else None,
                       **predict_options(args))
    if metrics:
        print(format_metrics(metrics))
        if out_json:
            print(f"results: {out_json}")
        for p in metrics.get("plots", []):
            print(f"wrote {p}")
    return 0


def cmd_demo(args) -> int:
    """Segment fresh synthetic images with the built-in model; overlays, protos, JSON, mask AP."""
    import yolact
    from .. import checks
    from ..runs import removed_if_failed

    checks.at_least("--images", args.images, 1)
    checks.at_least("--val", args.val, 1)
    checks.in_range("--score-threshold", args.score_threshold, 0.0, 1.0)
    checks.device("--device", args.device)
    model = yolact.load(weights_path(args.weights), device=args.device, precision=args.precision)
    out = run_dir(args.out, "demo_out", args.exist_ok)
    with removed_if_failed(out):  # a failed demo leaves no empty folder
        return _demo_into(args, model, out)


def _demo_into(args, model, out) -> int:
    """cmd_demo's work, writing into ``out``."""
    import cv2

    from ..data.synth import generate
    from ..evaluation.coco import evaluate, format_metrics
    from ..viz import prototype_grid

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
    print(f"mask AP on {args.val} fresh synthetic images: {metrics['segm']['AP']:.3f}")
    print(f"overlays, prototypes.png and detections.json written to {out}")
    return 0



def add_commands(sub) -> None:
    """Add the ``eval`` and ``demo`` verbs to ``sub``."""
    p = sub.add_parser("eval", help="COCO box and mask AP on an annotated set")
    add_model_args(p, backend=True)
    p.add_argument("--ann", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", help="a folder for results.json (RLE masks) and the plots, or a .json file for the "
                                  "results (plots beside it)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=None,
                   help="save confusion_matrix.png and pr_curve.png (default: on when --out is given)")
    p.add_argument("--map-classes-by-position", action="store_true",
                   help="pair the model's classes with the file's categories by order, not by name")
    p.add_argument("--pr-threshold", type=float, default=0.5,
                   help="score threshold of the per-class precision, recall, F1 and the confusion matrix")
    add_postprocess_args(p, score_threshold=0.0)
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="run the built-in demo model on fresh synthetic images")
    add_out_args(p, "demo_out")
    p.add_argument("--images", type=int, default=6, help="images to segment and draw")
    p.add_argument("--val", type=int, default=100, help="images in the generated val set")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--weights", default=None, help="default: the built-in demo model")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default=None, choices=list(PRECISIONS),
                   help="default: the model's (fp32-fused for the light presets, fp32 otherwise)")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.set_defaults(func=cmd_demo)
