"""Verbs that run a model on images: ``predict`` and ``protos``."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .common import add_model_args, expand_sources, load_model


# ---------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    import cv2
    from tqdm import tqdm

    from ..engine.video import stream

    model = load_model(args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = expand_sources(args.source)
    images = [v for k, v in sources if k == "image"]
    coco = []
    skipped = []

    def skip(err):
        if len(images) == 1:
            raise err
        print(f"yolact: skipped {err}", file=sys.stderr)
        skipped.append(err)

    # Images stream like video frames: read in a thread, run --batch-size at a time (OpenVINO:
    # concurrent asynchronous requests), drawn and written here.
    t0 = time.perf_counter()
    frames = stream(model, images, batch_size=args.batch_size, score_threshold=args.score_threshold,
                    top_k=args.top_k, on_skip=skip) if images else []
    for res in tqdm(frames, total=len(images), desc="images", unit="img", disable=len(images) < 2 or args.quiet):
        path = res.path
        stem = Path(path).stem
        cv2.imwrite(str(out_dir / f"{stem}.png"), res.plot())
        if args.save_json:
            coco += [dict(d, file_name=os.path.basename(path)) for d in res.to_coco(stem, kind="both")]
        if not args.quiet and len(images) < 2:
            print(f"{path}: {len(res)} detections" + "".join(
                f"\n  {n} {s:.2f} box=({b[0]:.0f},{b[1]:.0f},{b[2]:.0f},{b[3]:.0f})"
                for n, s, b in zip(res.names, res.scores, res.boxes)))
    done = len(images) - len(skipped)
    if not args.quiet and len(images) > 1 and done:
        elapsed = time.perf_counter() - t0
        print(f"{done} images in {elapsed:.1f} s ({done / elapsed:.1f} images/s, including reading and writing)")
    for kind, value in sources:
        if kind in ("video", "webcam"):
            _predict_video(model, value, out_dir, args)
    if args.save_json:
        with open(out_dir / "results.json", "w") as f:
            json.dump(coco, f)
    if not args.quiet:
        print(f"results saved to {out_dir}")
    return 1 if skipped and len(skipped) == len(images) else 0


def _predict_video(model, source, out_dir: Path, args) -> None:
    from tqdm import tqdm

    from ..engine.video import describe_source, segment_video

    name, total, _ = describe_source(source)
    if args.max_frames:
        total = min(total or args.max_frames, args.max_frames)
    t0 = time.perf_counter()
    with tqdm(total=total, desc=name, unit="frame", disable=args.quiet) as bar:
        n = segment_video(model, source, out_dir / f"{name}.mp4", batch_size=args.batch_size,
                          max_frames=args.max_frames, score_threshold=args.score_threshold, top_k=args.top_k,
                          on_frames=bar.update)
    if not args.quiet:
        elapsed = time.perf_counter() - t0
        print(f"{name}: {n} frames in {elapsed:.1f} s ({n / elapsed:.1f} frames/s, decoding and encoding included)")


# ---------------------------------------------------------------------------- protos
def cmd_protos(args) -> int:
    import cv2
    import numpy as np

    from ..data.images import read_image
    from ..viz import prototype_grid

    model = load_model(args)
    img = read_image(args.image)
    res = model.predict(img, score_threshold=args.score_threshold, top_k=args.top_k, keep_proto=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.image).stem
    cv2.imwrite(str(out / f"{stem}_protos.png"), prototype_grid(res.proto))
    written = [out / f"{stem}_protos.png"]
    if args.per_detection:
        for i in range(len(res)):
            # This detection's prototype combination: coefficient-weighted prototypes, sorted by |c|.
            weighted = res.proto * res.coeffs[i][None, None, :]
            order = np.argsort(-np.abs(res.coeffs[i]))
            grid = prototype_grid(weighted[:, :, order])
            p = out / f"{stem}_det{i}_{res.names[i].replace(' ', '_')}.png"
            cv2.imwrite(str(p), grid)
            written.append(p)
    print(f"{len(written)} picture(s) written to {out}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="segment images, folders, videos or a webcam")
    add_model_args(p, backend=True)
    p.add_argument("source", nargs="+", help="image files, folders, video files or a webcam index")
    p.add_argument("--out", "-o", default="runs/predict", help="output folder")
    p.add_argument("--score-threshold", type=float, default=0.15)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--save-json", action="store_true", help="also write COCO-style results.json")
    p.add_argument("--batch-size", type=int, default=4, help="video frames per forward pass")
    p.add_argument("--max-frames", type=int, default=None, help="stop videos/webcam after N frames")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("protos", help="save a grid of the prototype masks for an image")
    add_model_args(p)
    p.add_argument("image")
    p.add_argument("--out", "-o", default="runs/protos")
    p.add_argument("--per-detection", action="store_true",
                   help="also save each detection's coefficient-weighted prototypes")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(func=cmd_protos)
