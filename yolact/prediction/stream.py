"""Streaming inference over videos, webcams, folders of frames and image lists.

:func:`stream` overlaps three stages: a reader thread decodes frames into a bounded queue, an
inference thread runs the model on batches of frames, and the caller consumes Results one at
a time (drawing, encoding, tracking). OpenCV and PyTorch release the GIL in their heavy calls,
so decoding and encoding hide behind the forward pass. Frames come out in order; queues are
bounded, so memory stays flat however long the video; an error in any stage stops the others
and is raised in the caller; leaving the loop early stops the threads.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Union

import numpy as np

from ..errors import YolactError, warn
from .sources import count_frames as describe_source, read_frames

_END = object()
Source = Union[str, os.PathLike, int, np.ndarray, list, tuple]


def _put(q: "queue.Queue", item, stop: threading.Event) -> bool:
    """Put unless asked to stop (a full queue must not block a stage forever)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: "queue.Queue", stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _read(source, on_skip, workers: int, max_frames: Optional[int], frames_in, stop, errors: list) -> None:
    """The decoding thread of :func:`stream`: frames of ``source`` into ``frames_in``, then the
    end marker; an error is handed to the caller through ``errors``."""
    n = 0
    try:
        for item in read_frames(source, on_skip, workers):
            if max_frames is not None and n >= max_frames:
                break
            if not _put(frames_in, item, stop):
                break
            n += 1
    except BaseException as e:  # noqa: BLE001 - handed to the caller
        errors.append(e)
    finally:
        _put(frames_in, _END, stop)


def stream(model, source: Source, batch_size: int = 4, max_frames: Optional[int] = None,
           score_threshold: float = 0.15, top_k: Optional[int] = None, queue_frames: int = 16, keep_image: bool = True,
           on_skip: Optional[Callable[[YolactError], None]] = None, workers: int = 0, **predict_kwargs):
    """Yield one Results per frame, in order (``.image`` holds the BGR uint8 frame when
    ``keep_image``; ``.path`` its image file, None for video and array frames). ``source``: a video file, a
    webcam index, a folder of frames, an image path or array, or a list of them; ``batch_size``
    frames per forward. ``on_skip`` (lists of images): called, in the reader thread, for each
    unreadable image. ``workers`` > 0: images are decoded by that many threads ahead of the model
    (:func:`yolact.prediction.sources.read_frames`), in order. Raises YolactError for batch_size < 1, an unreadable source, an error in
    any stage (re-raised here), or a source that yields no frame."""
    if batch_size < 1:
        raise YolactError(f"batch size must be >= 1, got {batch_size}")
    if workers < 0:
        raise YolactError(f"workers must be >= 0, got {workers}")
    if predict_kwargs.get("max_det") is not None:  # the cap by its Ultralytics name wins, as before
        top_k = predict_kwargs["max_det"]
    frames_in: "queue.Queue" = queue.Queue(maxsize=max(queue_frames, batch_size))
    results_out: "queue.Queue" = queue.Queue(maxsize=max(2 * batch_size, 4))
    stop = threading.Event()
    errors: List[BaseException] = []

    def infer() -> None:
        try:
            finished = False
            while not finished and not stop.is_set():
                batch = []
                while len(batch) < batch_size:
                    item = _get(frames_in, stop)
                    if item is _END:
                        finished = True
                        break
                    batch.append(item)
                if not batch:
                    break
                results = model.predict([f for f, _, _ in batch], score_threshold=score_threshold, top_k=top_k,
                                        keep_image=False, **predict_kwargs)
                for (frame, path, time_s), res in zip(batch, results):
                    res.path, res.time_s = path, time_s
                    if keep_image:
                        res.image = frame
                    if not _put(results_out, res, stop):
                        return
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            _put(results_out, _END, stop)

    threads = [threading.Thread(target=_read, args=(source, on_skip, workers, max_frames, frames_in, stop, errors),
                                name="yolact-decode", daemon=True),
               threading.Thread(target=infer, name="yolact-infer", daemon=True)]
    for t in threads:
        t.start()
    done = 0
    try:
        while True:
            res = _get(results_out, stop)
            if res is _END:
                break
            done += 1
            yield res
    finally:
        stop.set()  # also when the caller leaves the loop early
        for t in threads:
            t.join()
    where = f"{len(source)} images" if isinstance(source, (list, tuple)) else str(source)
    if errors:
        e = errors[0]
        raise e if isinstance(e, YolactError) else YolactError(f"{where}: {type(e).__name__}: {e}") from e
    if done == 0:
        raise YolactError(f"{where}: no frames could be read")


def segment_video(model, source: Source, out_path: Optional[Path], batch_size: int = 4,
                  max_frames: Optional[int] = None, score_threshold: float = 0.15, top_k: Optional[int] = None,
                  on_frames: Optional[Callable[[int], None]] = None, queue_frames: int = 16,
                  on_results: Optional[Callable[[List[np.ndarray], list], None]] = None) -> int:
    """Segment every frame of ``source``; write an overlay video to ``out_path`` (mp4v) when
    given. Returns the number of frames processed.

    ``on_frames(n)`` is called as frames finish (progress bars); ``on_results(frames, results)``
    gets each frame in order (for JSON output or custom drawing). Raises YolactError for an
    unreadable source or output path, and for any error while drawing or writing.
    """
    _, _, fps = describe_source(source)
    n = 0
    frames = stream(model, source, batch_size, max_frames, score_threshold, top_k, queue_frames)
    with contextlib.closing(frames), VideoSink(out_path, fps) as sink:
        for res in frames:
            try:
                if on_results is not None:
                    on_results([res.image], [res])
                sink.write(res.plot(res.image) if out_path is not None else None)
            except YolactError:
                raise
            except Exception as e:
                raise YolactError(f"{source}: {type(e).__name__}: {e}") from e
            n += 1
            if on_frames is not None:
                on_frames(1)
    return n


class VideoSink:
    """An mp4v writer opened at the first frame's size; nothing when the path is None."""

    def __init__(self, path: Optional[Path], fps: float = 30.0):
        self.path, self.fps, self.writer = path, fps, None
        self.size, self.resized = (0, 0), False

    def write(self, frame: Optional[np.ndarray]) -> None:
        """Append one BGR uint8 frame [H, W, 3] (the first one fixes the video's size); None, or no
        path, writes nothing. Raises YolactError when the writer cannot be opened at the path."""
        import cv2

        if self.path is None or frame is None:
            return
        if self.writer is None:
            h, w = frame.shape[:2]
            self.size = (w, h)
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise YolactError(f"{self.path}: cannot write a video here")
        if (frame.shape[1], frame.shape[0]) != self.size:
            # a video has one frame size: OpenCV would drop the frame without a word
            if not self.resized:
                warn(f"{self.path}: frames of another size than the first ({self.size[0]}x{self.size[1]}) "
                     "are resized to it")
            self.resized = True
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.writer is not None:
            self.writer.release()


def run_tracker(model, source: Source, tracker, batch_size: int = 4, max_frames: Optional[int] = None,
                score_threshold: Optional[float] = None, top_k: Optional[int] = None, **predict_kwargs) -> Iterator:
    """Generator of per-frame Results with ``track_ids``: ``model``'s stream of ``source``
    (a video, webcam index, folder of frames or list of frames) through ``tracker`` (any
    tracker of :data:`yolact.tracking.TRACKERS`). The model runs at the tracker's lowest score
    (``min_score``) unless ``score_threshold`` is given."""
    thr = tracker.min_score if score_threshold is None else score_threshold
    frames = stream(model, source, batch_size=batch_size, max_frames=max_frames, score_threshold=thr, top_k=top_k,
                    **predict_kwargs)
    with contextlib.closing(frames):  # leaving early stops the stream's threads at once
        yield from tracker.track(frames)
