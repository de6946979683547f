"""``yolact track`` (identities through videos) and ``yolact eval-track`` (HOTA, MOTA, IDF1)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import YolactError
from .common import add_model_args, add_out_args, add_postprocess_args, load_model, predict_options, run_dir


def _source(text: str):
    """-> (source for the stream, output name). A MOTChallenge sequence folder means its img1/."""
    from ..prediction.sources import webcam_index

    if webcam_index(text) is not None:
        return webcam_index(text), f"webcam{text}"
    p = Path(text)
    if p.is_dir() and (p / "img1").is_dir():
        return str(p / "img1"), p.name
    return str(p), p.stem if p.is_file() else p.name


def cmd_track(args) -> int:
    """Run ``yolact track`` (tracked video, MOT txt, JSON lines); returns exit code 0."""
    import tempfile

    from ..prediction.sources import download, is_url

    if not is_url(args.source):
        return _track(args)
    with tempfile.TemporaryDirectory(prefix="yolact-downloads-") as downloads:
        args.source = str(download(args.source, downloads))
        return _track(args)


def _track(args) -> int:
    from tqdm import tqdm

    from ..prediction.stream import run_tracker
    from ..tracking import TrackerConfig, build_tracker
    from ..tracking.evaluate import mot_lines
    from ..prediction.stream import VideoSink, describe_source

    cfg = TrackerConfig(high_score=args.high_score, low_score=args.low_score, new_track_score=args.new_track_score,
                        track_buffer=args.track_buffer, mask_weight=args.mask_weight)
    model = load_model(args)
    source, name = _source(args.source)
    _, total, fps = describe_source(source)
    if args.max_frames:
        total = min(total or args.max_frames, args.max_frames)
    out = run_dir(args.out, "runs/track", args.exist_ok)
    out.mkdir(parents=True, exist_ok=True)
    tracker = build_tracker(args.tracker, cfg, agnostic=args.agnostic)
    video_path = None if args.no_video else out / f"{name}.mp4"
    mot = open(out / f"{name}.txt", "w") if args.save_mot else None
    js = open(out / f"{name}.jsonl", "w") if args.save_json else None
    ids = set()
    n = 0
    try:
        frames = run_tracker(model, source, tracker, batch_size=args.batch_size, max_frames=args.max_frames,
                             score_threshold=args.score_threshold, top_k=args.top_k, **predict_options(args))
        with VideoSink(video_path, fps) as sink, tqdm(total=total, desc=name, unit="frame", disable=args.quiet) as bar:
            for n, tracked in enumerate(frames, 1):
                ids.update(int(i) for i in tracked.track_ids)
                if video_path is not None:
                    sink.write(tracked.plot(trails=tracker.trails()))
                if mot is not None:
                    mot.write(mot_lines(n, tracked))
                if js is not None:
                    js.write(json.dumps({"frame": n, "instances": [
                        {"track_id": int(t), "label": int(lb), "class_name": tracked.class_names[int(lb)],
                         "score": round(float(s), 4), "box": [float(v) for v in b], "mask": rle}
                        for t, lb, s, b, rle in zip(tracked.track_ids, tracked.labels, tracked.box_scores,
                                                    tracked.boxes, tracked.rle())]}) + "\n")
                bar.update(1)
    finally:
        for f in (mot, js):
            if f is not None:
                f.close()
    written = [p for p, on in ((video_path, video_path is not None), (out / f"{name}.txt", mot is not None),
                               (out / f"{name}.jsonl", js is not None)) if on]
    print(f"{n} frames, {len(ids)} identities ({args.tracker}); wrote {', '.join(str(p) for p in written) or 'nothing'}")
    return 0


def cmd_eval_track(args) -> int:
    """Run ``yolact eval-track`` (HOTA, MOTA, IDF1 against MOTChallenge ground truth); returns exit code 0."""
    from ..tracking.evaluate import evaluate_tracks, format_tracking

    metrics = evaluate_tracks(args.gt, args.pred)
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
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    p.add_argument("--agnostic", action="store_true", help="associate across classes (default: an id never changes class)")
    p.add_argument("--high-score", type=_unit, default=0.5, help="first association and new tracks")
    p.add_argument("--low-score", type=_unit, default=0.1, help="second association floor")
    p.add_argument("--new-track-score", type=_unit, default=0.6)
    p.add_argument("--track-buffer", type=int, default=30, help="frames a lost track is kept")
    p.add_argument("--mask-weight", type=_unit, default=0.5, help="mask mode: weight of mask IoU")
    add_postprocess_args(p, None, score_help="model threshold (default: --low-score)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per forward pass")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("eval-track", help="HOTA, MOTA, IDF1 of MOTChallenge tracker output (TrackEval)")
    p.add_argument("--gt", required=True, help="folder of sequences: SEQ/gt/gt.txt and SEQ/seqinfo.ini")
    p.add_argument("--pred", required=True, help="folder of tracker output: SEQ.txt per sequence")
    p.add_argument("--json", default=None, help="also write the metrics as JSON")
    p.set_defaults(func=cmd_eval_track)
