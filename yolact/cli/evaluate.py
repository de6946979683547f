"""``yolact eval`` (COCO AP of a model on annotated images) and ``yolact demo``."""
from __future__ import annotations

import json

from ..config import PRECISIONS
from .common import add_model_args, add_out_args, add_postprocess_args, load_model, predict_options, run_dir, weights_path


def cmd_eval(args) -> int:
    from ..engine.evaluate import evaluate, format_metrics

    model = load_model(args)
    metrics = evaluate(model, args.ann, args.images, score_threshold=args.score_threshold, top_k=args.top_k,
                       out_json=args.out, progress=not args.quiet, **predict_options(args))
    if metrics:
        print(format_metrics(metrics))
        if args.out:
            print(f"results: {args.out}")
    return 0


def cmd_demo(args) -> int:
    """Segment fresh synthetic images with the built-in model; overlays, protos, JSON, mask AP."""
    import cv2

    import yolact
    from ..data.synth import generate
    from ..engine.evaluate import evaluate, format_metrics
    from ..viz import prototype_grid

    model = yolact.load(weights_path(args.weights), device=args.device, precision=args.precision)
    out = run_dir(args.out, "demo_out", args.exist_ok)
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



def add_commands(sub) -> None:
    p = sub.add_parser("eval", help="COCO box and mask AP on an annotated set")
    add_model_args(p, backend=True)
    p.add_argument("--ann", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", help="write the results JSON (RLE masks) here")
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
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.set_defaults(func=cmd_demo)
