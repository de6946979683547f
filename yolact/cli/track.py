"""``yolact track`` (identities through videos) and ``yolact eval-track`` (HOTA, MOTA, IDF1)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import YolactError
from .common import add_model_args, add_out_args, add_postprocess_args, load_model, predict_options, run_dir


def _source(text: str):
    """The stream's source: a MOTChallenge sequence folder means its img1/ folder of frames,
    which runs as one video named after the sequence."""
    p = Path(text)
    if p.is_dir() and (p / "img1").is_dir():
        return str(p / "img1")
    return text


def cmd_track(args) -> int:
    """Run ``yolact track`` (tracked video, MOT txt, JSON lines); returns exit code 0."""
    from ..prediction import JsonLinesSink, MotSink, OverlaySink, run
    from ..tracking import TrackerConfig, build_tracker

    cfg = TrackerConfig(high_score=args.high_score, low_score=args.low_score, new_track_score=args.new_track_score,
                        track_buffer=args.track_buffer, mask_weight=args.mask_weight)
    from .. import checks

    checks.needs("--cvat-shape", args.cvat_shape is not None, "--save-cvat", args.save_cvat)
    model = load_model(args)
    source = _source(args.source)
    out = run_dir(args.out, "runs/track", args.exist_ok)
    from ..runs import removed_if_failed

    with removed_if_failed(out):  # a failed run leaves no empty run folder
        out.mkdir(parents=True, exist_ok=True)
        sinks = [] if args.no_video else [OverlaySink(out)]
        sinks += [MotSink(out)] if args.save_mot else []
        sinks += [JsonLinesSink(out)] if args.save_json else []
        if args.save_cvat or args.save_coco:  # video pre-labels for annotation tools (#31)
            from ..integrations.video_labels import CocoVideoSink, CvatVideoSink
            sinks += [CvatVideoSink(out, model.cfg.class_names, shape=args.cvat_shape or "polygon")] if args.save_cvat else []
            sinks += [CocoVideoSink(out, model.cfg.class_names,
                                                   category_ids=model.cfg.label_category_ids())] if args.save_coco else []
        summary = run(model, source, sinks, batch_size=args.batch_size, max_frames=args.max_frames,
                      score_threshold=args.score_threshold, top_k=args.top_k,
                      tracker=build_tracker(args.tracker, cfg, agnostic=args.agnostic),
                      progress=not args.quiet, **predict_options(args))
    written = ", ".join(str(p) for p in summary.written) or "nothing"
    print(f"{summary.frames} frames, {len(summary.identities)} identities ({args.tracker}); wrote {written}")
    return 0


def cmd_eval_track(args) -> int:
    """Run ``yolact eval-track`` (HOTA, MOTA, IDF1 against MOTChallenge ground truth); returns exit code 0."""
    from ..tracking.evaluate import evaluate_tracks, format_tracking

    seqs = [t.strip() for t in args.seqs.split(",") if t.strip()] if args.seqs is not None else None
    metrics = evaluate_tracks(args.gt, args.pred, seqs=seqs)
    print(format_tracking(metrics))
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))
    return 0


def _unit(text: str) -> float:
    v = float(text)
    if not 0 <= v <= 1:
        raise YolactError(f"{text}: expected a value in [0, 1]")
    return v


def add_commands(sub) -> None:
    """Add the ``track`` and ``eval-track`` verbs to ``sub``."""
    from ..tracking import TRACKERS

    p = sub.add_parser("track", help="track instances through a video, folder of frames or webcam")
    add_model_args(p, backend=True)
    p.add_argument("source", help="video file, folder of frames (or a MOTChallenge sequence folder), http(s) URL of a video, "
                        "webcam index")
    add_out_args(p, "runs/track")
    p.add_argument("--tracker", choices=list(TRACKERS), default="bytetrack",
                   help="a row of yolact.tracking.TRACKERS: bytetrack; mask: + mask IoU in the association; "
                        "iou: naive baseline")
    p.add_argument("--save-mot", action="store_true", help="write NAME.txt (MOTChallenge)")
    p.add_argument("--save-json", action="store_true", help="write NAME.jsonl: per frame, track id and RLE mask per instance")
    p.add_argument("--save-cvat", action="store_true",
                   help="write NAME.xml: CVAT for video 1.1, a track per identity (pre-labels for a CVAT video task)")
    p.add_argument("--cvat-shape", choices=["polygon", "mask"], default=None,
                   help="--save-cvat shapes: polygon (outline of the largest part; the default) or mask (exact, "
                        "CVAT's RLE)")
    p.add_argument("--save-coco", action="store_true",
                   help="write annotations.json: COCO with an image per frame (NAME/frame_000000.jpg written), "
                        "video_id, frame_id and track_id")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    p.add_argument("--agnostic", action="store_true", help="associate across classes (default: an id never changes class)")
    p.add_argument("--high-score", type=_unit, default=0.5, help="first association and new tracks")
    p.add_argument("--low-score", type=_unit, default=0.1, help="second association floor")
    p.add_argument("--new-track-score", type=_unit, default=0.6)
    p.add_argument("--track-buffer", type=int, default=30, help="frames a lost track is kept")
    p.add_argument("--mask-weight", type=_unit, default=0.5, help="mask mode: weight of mask IoU")
    add_postprocess_args(p, None, top_k=None, score_help="model threshold (default: --low-score)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per forward pass")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("eval-track", help="HOTA, MOTA, IDF1 of MOTChallenge tracker output (TrackEval)")
    p.add_argument("--gt", required=True, help="folder of sequences: SEQ/gt/gt.txt and SEQ/seqinfo.ini")
    p.add_argument("--pred", required=True, help="folder of tracker output: SEQ.txt per sequence")
    p.add_argument("--seqs", default=None, metavar="SEQ,SEQ",
                   help="score only these sequences (comma-separated names; default: every sequence in --gt)")
    p.add_argument("--json", default=None, help="also write the metrics as JSON")
    p.set_defaults(func=cmd_eval_track)
