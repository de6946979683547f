"""Verbs that run a model on images: ``predict`` and ``protos``."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import add_model_args, add_out_args, add_postprocess_args, load_model, predict_options, run_dir


# ---------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    """Run ``yolact predict`` (images, folders, videos, URLs, webcam); returns exit code 0, or 1 when
    every one of several images was skipped as unreadable."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="yolact-downloads-") as downloads:
        return _predict(args, downloads)


def _predict(args, downloads: str) -> int:
    import cv2
    from tqdm import tqdm

    from ..prediction.sources import resolve_sources
    from ..prediction.sinks import PredictionWriter
    from ..prediction.stream import stream

    sources = resolve_sources(args.source, downloads)
    model = load_model(args)
    out_dir = run_dir(args.out, "runs/predict", args.exist_ok)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = predict_options(args)
    writer = PredictionWriter(out_dir, model.cfg.class_names, save_json=args.save_json, save_txt=args.save_txt,
                              save_conf=args.save_conf, save_crop=args.save_crop, save_labelme=args.save_labelme,
                              labelme_dir=out_dir / "labelme" if args.out else None, save_coco=args.save_coco)
    images = [v for k, v in sources if k == "image"]
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
                    top_k=args.top_k, on_skip=skip, **options) if images else []
    for res in tqdm(frames, total=len(images), desc="images", unit="img", disable=len(images) < 2 or args.quiet):
        path = res.path
        cv2.imwrite(str(out_dir / f"{Path(path).stem}.png"), res.plot())
        writer.add(res, image_path=path)
        if not args.quiet and len(images) < 2:
            print(f"{path}: {len(res)} detections" + "".join(
                f"\n  {n} {s:.2f} box=({b[0]:.0f},{b[1]:.0f},{b[2]:.0f},{b[3]:.0f})"
                for n, s, b in zip(res.names, res.scores, res.boxes)))
    done = len(images) - len(skipped)
    if not args.quiet and len(images) > 1 and done:
        elapsed = time.perf_counter() - t0
        print(f"{done} images in {elapsed:.1f} s ({done / elapsed:.1f} images/s, including reading and writing)")
    videos = [(k, v) for k, v in sources if k in ("video", "webcam")]
    if videos and (args.save_labelme or args.save_coco) and not args.quiet:
        print("note: --save-labelme and --save-coco pre-label image files; video frames are not written")
    for kind, value in videos:
        _predict_video(model, value, out_dir, args, options, writer)
    writer.close()
    if writer.labelme_kept and not args.quiet:
        print(f"kept {len(writer.labelme_kept)} existing LabelMe file(s) next to the images, e.g. "
              f"{writer.labelme_kept[0]} (delete them to predict again, or give --out)")
    if writer.labelme_written and not args.quiet and not args.out:
        print(f"{len(writer.labelme_written)} LabelMe file(s) written next to the images")
    if not args.quiet:
        print(f"results saved to {out_dir}")
    return 1 if skipped and len(skipped) == len(images) else 0


def _predict_video(model, source, out_dir: Path, args, options: dict, writer) -> None:
    import contextlib

    from tqdm import tqdm

    from ..prediction.stream import VideoSink, describe_source, stream

    name, total, fps = describe_source(source)
    video = f"webcam{source}" if isinstance(source, int) else Path(source).name
    if args.max_frames:
        total = min(total or args.max_frames, args.max_frames)
    t0 = time.perf_counter()
    n = 0
    frames = stream(model, source, batch_size=args.batch_size, max_frames=args.max_frames,
                    score_threshold=args.score_threshold, top_k=args.top_k, **options)
    with contextlib.closing(frames), VideoSink(out_dir / f"{name}.mp4", fps) as sink, \
            tqdm(total=total, desc=name, unit="frame", disable=args.quiet) as bar:
        for res in frames:
            sink.write(res.plot(res.image))
            writer.add(res, video=video, frame=n)
            n += 1
            bar.update(1)
    if not args.quiet:
        elapsed = time.perf_counter() - t0
        print(f"{name}: {n} frames in {elapsed:.1f} s ({n / elapsed:.1f} frames/s, decoding and encoding included)")


# ---------------------------------------------------------------------------- protos
def cmd_protos(args) -> int:
    """Run ``yolact protos`` (prototype grid PNGs of one image); returns exit code 0."""
    import cv2
    import numpy as np

    from ..data.images import read_image
    from ..viz import prototype_grid

    model = load_model(args)
    img = read_image(args.image)
    res = model.predict(img, score_threshold=args.score_threshold, top_k=args.top_k, keep_proto=True)
    out = run_dir(args.out, "runs/protos", args.exist_ok)
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
    """Add the ``predict`` and ``protos`` verbs to ``sub``."""
    p = sub.add_parser("predict", help="segment images, folders, videos or a webcam")
    add_model_args(p, backend=True)
    p.add_argument("source", nargs="+",
                   help="image files, folders, globs (\"imgs/*.jpg\"), .txt lists of paths, video files, "
                        "http(s) URLs of images or videos, or a webcam index")
    add_out_args(p, "runs/predict")
    add_postprocess_args(p, score_threshold=0.15)
    p.add_argument("--save-json", action="store_true",
                   help="write results.json: COCO-style records (RLE masks); for videos one per detection "
                        "per frame, with 'video' and 'frame'")
    p.add_argument("--save-txt", action="store_true",
                   help="write YOLO-seg label files labels/STEM.txt (class, normalised polygon points)")
    p.add_argument("--save-conf", action="store_true",
                   help="with --save-txt: append each detection's score (as Ultralytics; for reading, not "
                        "for training: label readers take the score for a coordinate)")
    p.add_argument("--save-crop", action="store_true",
                   help="write each detection cut out with its mask as alpha: crops/CLASS/STEM_I.png")
    p.add_argument("--save-labelme", action="store_true",
                   help="pre-label for LabelMe: a .json per image, next to the image (existing ones are kept) "
                        "or into --out when given")
    p.add_argument("--save-coco", action="store_true",
                   help="pre-label: write annotations.json, the predictions as a COCO instances file")
    p.add_argument("--batch-size", type=int, default=4, help="video frames per forward pass")
    p.add_argument("--max-frames", type=int, default=None, help="stop videos/webcam after N frames")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("protos", help="save a grid of the prototype masks for an image")
    add_model_args(p)
    p.add_argument("image")
    add_out_args(p, "runs/protos")
    p.add_argument("--per-detection", action="store_true",
                   help="also save each detection's coefficient-weighted prototypes")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(func=cmd_protos)
