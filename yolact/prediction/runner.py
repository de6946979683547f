"""The library's prediction loop: sources in, files out. ``yolact predict`` and ``yolact track``
are this function with sinks chosen by their flags; a library user calls it the same way::

    from yolact.prediction import run, OverlaySink, RecordSink
    run(model, ["photos/", "clip.mp4"], [OverlaySink("out"), RecordSink("out/results.json")])

Every source of :func:`yolact.prediction.sources.resolve_sources` works. Images go through one
stream (read ahead on a thread, ``batch_size`` per forward); each video or webcam gets its own
stream, announced to the sinks (``open_video``/``close_video``) so they can write one file per
video. With a ``tracker`` (any :data:`yolact.tracking.TRACKERS` row) every frame goes through
it first, and it is reset between videos.
"""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..errors import YolactError, warn
from ..results import Results
from .sinks import Frame, Sink
from .sources import count_frames, download_folder, resolve_sources
from .stream import stream


@dataclass
class RunSummary:
    """What :func:`run` did: images and video frames predicted, images skipped as unreadable
    (their errors), identities seen when tracking, files written, seconds taken, images found
    done when resuming."""

    images: int = 0
    frames: int = 0
    skipped: List[YolactError] = field(default_factory=list)
    identities: set = field(default_factory=set)
    written: List[Path] = field(default_factory=list)
    seconds: float = 0.0
    image_seconds: float = 0.0
    videos: List[str] = field(default_factory=list)
    resumed: int = 0  # images already written by the run being resumed (not predicted again)
    skipped_all: int = 0  # unreadable images of the whole run (under torchrun: every rank's, on rank 0)


def run(model, sources, sinks: Sequence[Sink] = (), batch_size: int = 4, max_frames: Optional[int] = None,
        score_threshold: Optional[float] = 0.15, top_k: Optional[int] = None, tracker=None, progress: bool = True,
        on_skip: Optional[Callable[[YolactError], None]] = None, sequence: Optional[bool] = None,
        resume: bool = False, run_id: Optional[str] = None, engine: str = "local", actors: int = 1,
        load: Optional[Callable] = None, shard: bool = True, **predict_kwargs) -> RunSummary:
    """Predict every image and video frame of ``sources`` with ``model`` (any Predictor) and
    hand each Results, with its :class:`Frame`, to every sink; then close the sinks.

    ``score_threshold`` None means the tracker's lowest score (``tracker.min_score``); ``top_k``
    None the model's ``cfg.max_num_detections``.
    ``sequence``: the images (a folder of frames, a glob, a list) are the frames of one video,
    in order, named after the folder (default: True with a tracker).
    ``on_skip``: called with the error of each unreadable image among several (default: a
    ``yolact: skipped ...`` line on stderr); a lone image that cannot be read raises.
    Other keyword arguments are ``predict``'s controls, and ``workers`` (threads decoding the
    images ahead of the model, :func:`stream`). Returns a :class:`RunSummary`.

    Dataset scale (images only): a sink with a ``start`` method
    (:class:`yolact.prediction.parts.StreamedRecordSink`) is the run's ledger. ``resume``: the
    images it has already written are skipped, and a folder of another run (``run_id``, default
    the model's type, config and precision; the controls; the image list) is refused. Under
    torchrun (``RANK``/``WORLD_SIZE``) each rank predicts every WORLD_SIZE-th image of the input
    list from its RANK, and the ledger's rank 0 merges. Either needs a ledger sink, and no videos.

    ``engine`` 'ray': the images are predicted by ``actors`` Ray actors, each with its own
    ``load()`` (a picklable callable -> Predictor), through Ray Data
    (:mod:`yolact.prediction.ray_engine`); the sinks get the same Results in the same order.

    ``shard=False``: this process predicts every image even under torchrun (a caller that
    shards by rank itself, as evaluation does).
    Raises YolactError for a source that does not exist or cannot be opened, and for resume or
    torchrun without a ledger sink, with videos, or on another run's folder."""
    t0 = time.perf_counter()
    summary = RunSummary()
    if isinstance(tracker, str):  # a row of yolact.tracking.TRACKERS
        from ..tracking import build_tracker
        tracker = build_tracker(tracker)
    if score_threshold is None:
        score_threshold = tracker.min_score if tracker is not None else 0.15
    if predict_kwargs.get("max_det") is not None:  # the cap given by its Ultralytics name wins, as before
        top_k = predict_kwargs["max_det"]
    if top_k is None:  # the model's own cap (100 in every preset, an exported graph's K); a number in run.json
        top_k = model.cfg.max_num_detections
    opts = dict(batch_size=batch_size, score_threshold=score_threshold, top_k=top_k, **predict_kwargs)
    _check_controls(model, opts)  # before any download, reading or progress bar
    with download_folder(sources) as tmp:
        urls: dict = {}  # a downloaded file -> its URL: what messages and records name
        items = resolve_sources(sources, tmp, urls=urls)
        images = [v for k, v in items if k in ("image", "array")]
        if images and (tracker is not None if sequence is None else sequence):
            from .parts import rank_world

            if resume or (shard and rank_world()[1] > 1):
                raise YolactError("resume and torchrun take images only, not a sequence of frames or a tracker")
            one = sources[0] if isinstance(sources, (list, tuple)) and len(sources) == 1 else sources
            name = count_frames(str(one))[0] if isinstance(one, (str, Path)) else "images"
            _run_video(model, images, sinks, summary, opts, tracker, progress, max_frames, name)
        elif resume and not images:  # a resumed run is a run of images: its ledger would be cleared unchecked
            raise YolactError("resume continues a run of images, and these sources hold none (videos are predicted "
                              "in a run of their own, without resume)")
        elif images:
            ledger = _Ledger(model, images, sinks, opts, resume, run_id, shard, sources)
            if ledger.sharded and any(k in ("video", "webcam") for k, _ in items):
                raise YolactError("resume and torchrun take images only, not videos: predict videos in a run of their own")
            ledger.engine = (engine, actors, load)
            ledger.urls = urls
            _run_images(model, images, sinks, summary, opts, tracker, progress, on_skip, ledger)
        summary.image_seconds = time.perf_counter() - t0
        for kind, value in items:
            if kind in ("video", "webcam"):
                _run_video(model, value, sinks, summary, opts, tracker, progress, max_frames, shown=urls.get(value))
    for sink in sinks:
        summary.written += sink.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _check_controls(model, opts: dict) -> None:
    """The prediction controls validated by the model's own rules (``Predictor.options``) before
    the run starts: a bad value stops it in one line before any image is read."""
    import inspect

    check = getattr(model, "options", None)
    if callable(check):
        names = inspect.signature(check).parameters
        check(**{k: v for k, v in opts.items() if k in names and v is not None})


class _Ledger:
    """Which images this process predicts: all, or (resume, torchrun) those of its rank's shard
    that the ledger sink has not written yet; ``order[path]``: an image's place in the input list."""

    def __init__(self, model, images: list, sinks, opts: dict, resume: bool, run_id: Optional[str],
                 shard: bool = True, sources=()):
        from .parts import fingerprint, rank_world

        self.rank, self.world = rank_world() if shard else (0, 1)
        self.sharded = resume or self.world > 1
        keepers = [s for s in sinks if hasattr(s, "start")]
        if self.sharded and not keepers:
            raise YolactError("resume and torchrun need a streamed results.json (--save-json, "
                              "StreamedRecordSink): it is the record of the images done")
        names = [str(p) if isinstance(p, (str, Path)) else f"array {i}" for i, p in enumerate(images)]
        given = [str(s) if isinstance(s, (str, Path)) else "an array" for s in
                 (sources if isinstance(sources, (list, tuple)) else [sources])]
        if run_id is None:
            cfg = getattr(model, "cfg", None)
            run_id = f"{type(model).__name__}:{getattr(cfg, 'name', '')}:{getattr(model, 'precision', '')}"
        # neither the batch nor the decoding threads change a record
        controls = {k: v for k, v in opts.items() if k not in ("batch_size", "workers")}
        done: set = set()
        for sink in keepers:
            done |= sink.start(fingerprint(run_id, controls, names, given), resume, self.rank, self.world)
        self.resumed = len(done)
        self.total = len(images) - len(done)  # the whole run's images still to do, over all ranks
        self.parts = keepers[0].parts if keepers else None
        self.todo = [(i, p) for i, p in enumerate(images) if i % self.world == self.rank and i not in done]
        self.order = {str(p): i for i, p in self.todo if isinstance(p, (str, Path))}


def _run_images(model, images: list, sinks, summary: RunSummary, opts: dict, tracker, progress: bool,
                on_skip, ledger: "_Ledger") -> None:
    from tqdm import tqdm

    def skip(err: YolactError) -> None:  # read_frames raises instead when it is the only image
        summary.skipped.append(err)
        if on_skip is not None:
            on_skip(err)
        else:
            import sys
            tqdm.write(f"yolact: skipped {err}", file=sys.stderr)  # above the progress bar, not on its line

    names = _unique_names(images)  # of the whole list: each rank and each resume picks the same names
    summary.resumed = ledger.resumed
    todo = [p for _, p in ledger.todo]
    engine, actors, load = getattr(ledger, "engine", ("local", 1, None))
    if engine == "ray":
        from .ray_engine import ray_stream

        if load is None:
            raise YolactError("engine 'ray' needs load, a picklable callable that returns the model")
        frames = ray_stream(load, ledger.todo, actors, on_skip=skip, **opts)
    else:
        frames = stream(model, todo, on_skip=skip, **opts)
    if ledger.world > 1:  # one bar for the whole run, shown by rank 0 (#29)
        from .parts import WholeRunBar

        bar = WholeRunBar(ledger.parts, ledger.rank, ledger.world, ledger.total, disable=not progress)
    else:
        bar = tqdm(total=len(todo), desc="images", unit="img", disable=len(images) < 2 or not progress)
        bar.finish = lambda: bar.close() or len(summary.skipped)
    counted = 0  # images predicted or skipped, as the bar has them
    with contextlib.closing(frames):
        for i, res in enumerate(frames):
            summary.images += 1
            order = ledger.order.get(res.path, ledger.todo[i][0] if res.path is None else None)
            frame = Frame(source=getattr(ledger, "urls", {}).get(res.path, res.path) or f"image {i}", path=res.path, image_id=summary.images + summary.frames,
                          name=names.get(res.path), order=order)
            _deliver(res, frame, sinks, summary, tracker)
            bar.update(summary.images + len(summary.skipped) - counted)
            counted = summary.images + len(summary.skipped)
    bar.update(summary.images + len(summary.skipped) - counted)
    bar.skipped = len(summary.skipped)
    summary.skipped_all = bar.finish()


def _unique_names(paths: list) -> dict:
    """image path -> output stem, unique within the run: the file's stem, or, when two files
    share it (train/0001.jpg and val/0001.jpg, x.jpg and x.png), their path below the common
    folder joined with '_' (with the suffix when that still collides)."""
    import os

    files = [str(p) for p in paths if isinstance(p, (str, Path))]
    if not files:
        return {}
    root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    taken: set = set()
    names = {}
    stems = [Path(f).stem for f in files]
    shared = {s for s, k in Counter(stems).items() if k > 1}
    for f, stem in zip(files, stems):
        name = stem
        if stem in shared:
            rel = Path(os.path.relpath(os.path.abspath(f), root))
            name = "_".join(rel.with_suffix("").parts)
            if name in taken:
                name = "_".join(rel.parts).replace(".", "_")
        base, k = name, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names[f] = name
    return names


def _run_video(model, source, sinks, summary: RunSummary, opts: dict, tracker, progress: bool,
               max_frames: Optional[int], name: Optional[str] = None, shown: Optional[str] = None) -> None:
    from tqdm import tqdm

    counted, total, fps = count_frames(source)
    name = name or counted
    base, k = name, 2
    while name in summary.videos:  # clip.mp4 and other/clip.mp4: clip, then clip_2
        name, k = f"{base}_{k}", k + 1
    summary.videos.append(name)
    if isinstance(source, (str, Path)):  # the file's name; a second clip.mp4 is clip_2.mp4
        video = Path(source).name if name == counted else f"{name}{Path(source).suffix}"
    else:
        video = f"webcam{source}" if isinstance(source, int) else name
    if max_frames:
        total = min(total or max_frames, max_frames)
    if tracker is not None:
        tracker.reset()
    for sink in sinks:
        sink.open_video(name, fps)
    frames = stream(model, source, max_frames=max_frames, **opts)
    try:
        with contextlib.closing(frames), tqdm(total=total, desc=name, unit="frame", disable=not progress) as bar:
            drift = None  # the first frame whose container time is off index / fps by over a frame
            for n, res in enumerate(frames):
                where = res.path or (name if isinstance(source, list) else shown or str(source))
                summary.frames += 1
                frame = Frame(source=where, video=video, index=n, fps=fps, image_id=summary.images + summary.frames,
                              name=name, timestamp_s=res.time_s)
                if drift is None and res.time_s is not None and abs(res.time_s - n / fps) > 1.5 / fps:
                    drift = (n, res.time_s)
                _deliver(res, frame, sinks, summary, tracker)
                bar.update(1)
        if drift is not None:
            warn(f"{video}: variable frame rate (frame {drift[0]} is at {drift[1]:.2f} s, not "
                 f"{drift[0] / fps:.2f} s at {fps:.2f} fps): records carry each frame's own time_s; an "
                 f"overlay video is written at a constant {fps:.2f} fps")
    finally:
        for sink in sinks:
            sink.close_video()


def _deliver(res: Results, frame: Frame, sinks, summary: RunSummary, tracker) -> None:
    if tracker is not None:
        res = tracker.update(res)
        summary.identities.update(int(i) for i in res.track_ids)
        frame.trails = tracker.trails()
    for sink in sinks:
        sink.add(res, frame)
