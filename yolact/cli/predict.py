"""Verbs that run a model on images: ``predict`` and ``protos``."""
from __future__ import annotations

import contextlib
import functools
from collections import Counter
from pathlib import Path

from ..runs import removed_if_failed, run_lock
from .common import add_model_args, add_out_args, add_postprocess_args, load_model, predict_options, run_dir


# ---------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    """Run ``yolact predict`` (images, folders, videos, URLs, webcam); returns exit code 0 (also
    for --resume of a run that is complete: a line says so), or 1 when every one of several
    images was skipped as unreadable."""
    from ..errors import YolactError
    from ..prediction.parts import agree, rank_world

    rank, world = rank_world()
    if (args.resume or world > 1) and not (args.save_json or args.save_parquet or args.save_coco):
        raise YolactError("--resume and torchrun need --save-json, --save-parquet or --save-coco (their parts "
                          "record the images done)")
    if args.save_parquet:
        from ..prediction.parquet import require_pyarrow

        require_pyarrow()
    if args.engine == "ray" and world > 1:
        raise YolactError("--engine ray and torchrun are two ways to spread a run: use one")
    if args.actors < 1:
        raise YolactError(f"--actors must be >= 1, got {args.actors}")
    if args.engine == "ray":
        try:
            import ray.data  # noqa: F401
        except ImportError:
            raise YolactError("--engine ray needs Ray Data: pip install 'yolact[scale]'") from None
    if args.workers < 0:
        raise YolactError(f"--workers must be >= 0, got {args.workers}")
    if world > 1:  # each rank its own GPU (LOCAL_RANK) unless --device names one
        from ..prediction.parts import rank_device

        args.device = rank_device(getattr(args, "device", None))
    model = load_model(args)
    # --resume: the folder of the last run (or --out); under torchrun every rank takes rank 0's folder
    out_dir = agree(_last_run("runs/predict") if args.resume and not args.out
                    else run_dir(args.out, "runs/predict", args.exist_ok))
    from ..prediction.parts import RunComplete

    try:
        with removed_if_failed(out_dir):  # a failed run leaves no empty run folder (a killed one keeps its parts)
            # one run at a time in a folder (torchrun's ranks share theirs: rank 0 holds the lock)
            with run_lock(out_dir) if rank == 0 else contextlib.nullcontext():
                return _predict_into(args, model, out_dir, rank, world)
    except RunComplete as done:  # --resume of a finished run: nothing to do, not an error
        if rank == 0:
            print(done)
        return 0


def _predict_into(args, model, out_dir, rank: int = 0, world: int = 1) -> int:
    """cmd_predict's work, writing into ``out_dir`` (as torchrun's ``rank`` of ``world``)."""
    from ..prediction import CallbackSink, OverlaySink, PredictionWriter, is_collection, run

    out_dir.mkdir(parents=True, exist_ok=True)
    writer = PredictionWriter(out_dir, model.cfg.class_names, save_txt=args.save_txt, save_conf=args.save_conf,
                              save_crop=args.save_crop, save_labelme=args.save_labelme,
                              labelme_dir=out_dir / "labelme" if args.out else None, save_coco=args.save_coco,
                              category_ids=model.cfg.label_category_ids())
    sinks = [OverlaySink(out_dir), writer]
    if args.save_json or args.save_parquet or args.save_coco:
        from ..prediction.parts import StreamedRecordSink  # streamed: memory flat over the run (#29)
        sinks.append(StreamedRecordSink(out_dir / "results.json", json=args.save_json,
                                        parquet=out_dir / "predictions.parquet" if args.save_parquet else None,
                                        coco=writer))
    if getattr(args, "slice", None) is None and not args.quiet:  # a large image, small objects: say --slice once
        from ..prediction.hints import SliceHintSink
        sinks.append(SliceHintSink(args.img_size or model.cfg.max_size))
    single = not args.quiet and len(args.source) == 1 and not is_collection(args.source[0])
    if single or getattr(args, "verbose", False):
        sinks.append(CallbackSink(functools.partial(_print_detections, verbose=getattr(args, "verbose", False))))
    summary = run(model, args.source, sinks, batch_size=args.batch_size, max_frames=args.max_frames,
                  score_threshold=args.score_threshold, top_k=args.top_k, progress=not args.quiet,
                  resume=args.resume, engine=args.engine, actors=args.actors, load=_loader(args) if args.engine == "ray" else None,
                  run_id=f"{Path(args.weights or 'demo').name}:{model.precision}", workers=args.workers,
                  **predict_options(args))
    if rank != 0:
        return 1 if summary.skipped and summary.images == 0 and not summary.resumed else 0
    if not args.quiet and summary.resumed:
        print(f"resumed: {summary.resumed} images already done, {summary.images} predicted now")
    if not args.quiet and summary.images > 1:
        print(("" if world == 1 else f"rank 0 of {world}: ") + f"{summary.images} images in {summary.image_seconds:.1f} s "
              f"({summary.images / summary.image_seconds:.1f} images/s, including reading and writing)")
    if not args.quiet and summary.skipped_all:
        print(f"{summary.skipped_all} unreadable image(s) skipped")
    if not args.quiet and summary.frames:
        print(f"{summary.frames} video frames in {summary.seconds - summary.image_seconds:.1f} s "
              "(decoding and encoding included)")
        if args.save_labelme or args.save_coco:
            print("note: --save-labelme and --save-coco pre-label image files; video frames are not written")
    if writer.labelme_kept and not args.quiet:
        print(f"kept {len(writer.labelme_kept)} existing LabelMe file(s) next to the images, e.g. "
              f"{writer.labelme_kept[0]} (delete them to predict again, or give --out)")
    if writer.labelme_written and not args.quiet and not args.out:
        print(f"{len(writer.labelme_written)} LabelMe file(s) written next to the images")
    if not args.quiet:
        print(f"results saved to {out_dir}")
    return 1 if summary.skipped and summary.images == 0 and not summary.resumed else 0


def _loader(args):
    """A picklable callable that loads the model of ``args`` (for each Ray actor)."""
    import functools

    from ..deploy import load_predictor
    from .common import device, weights_path

    return functools.partial(load_predictor, weights_path(args.weights), config=getattr(args, "config", None),
                             device=device(getattr(args, "device", None)), precision=args.precision,
                             compile=getattr(args, "compile", None), backend=getattr(args, "backend", None))


def _last_run(default: str) -> Path:
    """The newest of ``default``, ``default2``, ... that exists (``default`` when none does)."""
    base = last = Path(default)
    n = 2
    while base.with_name(f"{base.name}{n}").exists():
        last, n = base.with_name(f"{base.name}{n}"), n + 1
    return last


def _print_detections(res, frame, verbose: bool = False) -> None:
    """An image's detections, one a line; with --verbose, a video frame's counts per class (its
    0-based index, as the records). Through tqdm.write: above a progress bar, never on its line."""
    from tqdm import tqdm

    if frame.video is None:
        tqdm.write(f"{frame.source}: {len(res)} detections" + "".join(
            f"\n  {n} {s:.2f} box=({b[0]:.0f},{b[1]:.0f},{b[2]:.0f},{b[3]:.0f})"
            for n, s, b in zip(res.names, res.scores, res.boxes)))
    elif verbose:
        counts = Counter(res.names)
        tqdm.write(f"{frame.video} frame {frame.index}: {len(res)} detections"
                   + (" (" + ", ".join(f"{k} {n}" for n, k in sorted(counts.items())) + ")" if counts else ""))


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
    add_postprocess_args(p, score_threshold=0.15, top_k=None)
    p.add_argument("--save-json", action="store_true",
                   help="write results.json: COCO-style records (RLE masks); for videos one per detection "
                        "per frame, with 'video' and 'frame'")
    p.add_argument("--save-parquet", action="store_true",
                   help="write predictions.parquet: one row per detection (file, image id, size, class, scores, "
                        "box, COCO RLE mask); needs pyarrow (yolact[scale])")
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
    p.add_argument("--workers", type=int, default=0,
                   help="threads reading and decoding images ahead of the model (0: one reader thread)")
    p.add_argument("--resume", action="store_true",
                   help="with --save-json/--save-parquet/--save-coco: continue a killed run in its folder (--out, else the last "
                        "runs/predict*), skipping the images already written; refuses another run's folder")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="ray: predict the images with Ray Data actors (yolact[scale]; a local Ray unless "
                        "RAY_ADDRESS names a cluster, RAY_NUM_CPUS caps a local one)")
    p.add_argument("--actors", type=int, default=1, help="--engine ray: model replicas (Ray actors)")
    p.add_argument("--batch-size", type=int, default=4, help="video frames per forward pass")
    p.add_argument("--max-frames", type=int, default=None, help="stop videos/webcam after N frames")
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    talk.add_argument("--verbose", action="store_true",
                      help="print each image's detections in folder and multi-image runs too "
                           "(a single image always prints them), and each video frame's counts per class")
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
