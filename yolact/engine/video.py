"""Video and webcam segmentation with decoding, inference and drawing/encoding overlapped.

Three stages run at once: a reader thread decodes frames into a bounded queue, the calling
thread runs the model on batches of frames, and a writer thread draws the overlays and encodes
them. OpenCV and PyTorch both release the GIL in their heavy calls, so on a GPU (or when the
network is cheap) the decode and encode costs hide behind the forward pass. Frames come out
in order; an error in any stage stops the others and is raised in the caller.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable, List, Optional, Union

import numpy as np

from ..errors import YolactError

_END = object()


def _put(q: "queue.Queue", item, stop: threading.Event) -> bool:
    """Put unless asked to stop (a full queue must not block a stage forever)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def segment_video(model, source: Union[str, int], out_path: Optional[Path], batch_size: int = 4,
                  max_frames: Optional[int] = None, score_threshold: float = 0.15, top_k: int = 100,
                  on_frames: Optional[Callable[[int], None]] = None, queue_frames: int = 16,
                  on_results: Optional[Callable[[List[np.ndarray], list], None]] = None) -> int:
    """Segment every frame of ``source`` (a file or a webcam index); write an overlay video to
    ``out_path`` (mp4v) when given. Returns the number of frames processed.

    ``on_frames(n)`` is called as frames finish (progress bars); ``on_results(frames, results)``
    gets each batch in order (for JSON output or custom drawing).
    """
    import cv2

    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise YolactError(f"{source}: cannot open video source")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames_in: "queue.Queue" = queue.Queue(maxsize=max(queue_frames, batch_size))
    results_out: "queue.Queue" = queue.Queue(maxsize=4)
    stop = threading.Event()
    errors: List[BaseException] = []

    def read() -> None:
        n = 0
        try:
            while max_frames is None or n < max_frames:
                ok, frame = cap.read()
                if not ok or not _put(frames_in, frame, stop):
                    break
                n += 1
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            errors.append(e)
        finally:
            _put(frames_in, _END, stop)

    def write() -> None:
        writer = None
        try:
            while True:
                try:
                    item = results_out.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        break
                    continue
                if item is _END:
                    break
                frames, results = item
                if on_results is not None:
                    on_results(frames, results)
                if out_path is not None:
                    for frame, res in zip(frames, results):
                        vis = res.plot(frame)
                        if writer is None:
                            h, w = vis.shape[:2]
                            writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                        writer.write(vis)
                if on_frames is not None:
                    on_frames(len(frames))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()
        finally:
            if writer is not None:
                writer.release()

    reader = threading.Thread(target=read, name="yolact-decode", daemon=True)
    writer_thread = threading.Thread(target=write, name="yolact-encode", daemon=True)
    reader.start()
    writer_thread.start()
    done = 0
    try:
        finished = False
        while not finished and not stop.is_set():
            batch = []
            while len(batch) < batch_size:
                frame = frames_in.get()
                if frame is _END:
                    finished = True
                    break
                batch.append(frame)
            if batch:
                results = model.predict(batch, score_threshold=score_threshold, top_k=top_k, keep_image=False)
                done += len(batch)
                if not _put(results_out, (batch, results), stop):
                    break
    except BaseException:
        stop.set()
        raise
    finally:
        if not stop.is_set():
            results_out.put(_END)  # the writer drains what is queued, then exits
        writer_thread.join()
        stop.set()  # unblock the reader if it is waiting on a full queue
        reader.join()
        cap.release()
    if errors:
        e = errors[0]
        raise e if isinstance(e, YolactError) else YolactError(f"{source}: {type(e).__name__}: {e}") from e
    if done == 0:
        raise YolactError(f"{source}: no frames could be read")
    return done
