"""Where prediction results go: the sinks :func:`yolact.prediction.run` hands each Results to.

A sink has four methods: ``open_video(name, fps)`` and ``close_video()`` around each video or
webcam, ``add(results, frame)`` per image or frame, and ``close()`` at the end (-> the files
written). Every JSON output is the one detection record, :meth:`Results.to_records`.

Layout of an output folder (Ultralytics' where it has one):

- ``<stem>.png`` per image, ``<video>.mp4`` per video: the overlays (:class:`OverlaySink`);
- ``results.json`` (:class:`RecordSink`): a JSON list of detection records, each with
  ``image_id`` (1, 2, ... in run order: the ids of ``annotations.json``), ``file_name``
  (images) or ``video`` and ``frame`` (0-based index) and ``time_s`` (frame / fps);
- ``<video>.jsonl`` (:class:`JsonLinesSink`, ``track --save-json``): a line per frame,
  ``{"video", "frame", "time_s", "detections": [records]}``;
- ``<video>.txt`` (:class:`MotSink`): MOTChallenge tracker output (frame numbers from 1, as
  MOTChallenge counts);
- ``labels/<stem>.txt`` (``<video>_<frame>.txt`` for video frames): YOLO-seg lines;
- ``crops/<class>/<stem>_<i>.png``: each detection with its mask as alpha;
- ``annotations.json``: the predictions as a COCO instances file (images, categories,
  annotations with polygons, or RLE for masks with holes, and a ``score``);
- ``<stem>.json``: LabelMe files, when written into the output folder.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..results import Results


@dataclass
class Frame:
    """Where one Results came from. ``source``: the image path (or 'image I' for arrays), the
    video path or webcam index; ``path``: the image file, None for video frames and arrays;
    ``video``: the video's file name (``webcamN``) for frames of a video; ``index``: the
    0-based frame index; ``fps``: the video's frame rate; ``trails``: track id -> recent box
    centres, when tracked; ``image_id``: the run's count of images and frames so far (1, 2, ...);
    ``name``: the output name the runner chose, unique within the run; ``timestamp_s``: the
    video frame's time in its container (seconds), when known; ``order``: an image's 0-based
    place in the run's list of input images (the resume ledger's key)."""

    source: str
    path: Optional[str] = None
    video: Optional[str] = None
    index: Optional[int] = None
    fps: float = 30.0
    trails: Optional[Dict] = None
    image_id: Optional[int] = None
    name: Optional[str] = None
    timestamp_s: Optional[float] = None  # the container's time of a video frame (seconds)
    order: Optional[int] = None  # an image's 0-based place in the run's input list (resume, torchrun shards)

    @property
    def stem(self) -> str:
        """A file-name stem for outputs: the image's stem, or ``<video stem>_<frame index>``."""
        if self.video is not None:
            return f"{Path(self.name or self.video).stem}_{self.index}"
        if self.name:
            return self.name
        return Path(self.path).stem if self.path else self.source.replace(" ", "_")

    @property
    def time_s(self) -> Optional[float]:
        """The frame's time in its video in seconds: the container's timestamp where the video
        has one (right for variable-frame-rate video), else index / fps; None for images."""
        if self.timestamp_s is not None:
            return self.timestamp_s
        return None if self.index is None else round(self.index / self.fps, 6)

    def where(self) -> Dict:
        """The fields a record carries to say where it came from."""
        if self.video is not None:
            return {"video": self.video, "frame": int(self.index), "time_s": self.time_s}
        return {"file_name": os.path.basename(self.path) if self.path else self.source}


class Sink:
    """The sink protocol, with do-nothing defaults (override what you need)."""

    def open_video(self, name: str, fps: float) -> None:
        """A video or webcam starts: ``name`` for output files, ``fps`` its frame rate."""

    def add(self, res: Results, frame: Frame) -> None:
        """One image's or frame's results."""

    def close_video(self) -> None:
        """The current video ended."""

    def close(self) -> List[Path]:
        """The run ended: write what was collected. -> the files written."""
        return []


class OverlaySink(Sink):
    """Pictures of the results: ``<stem>.png`` per image, ``<name>.mp4`` per video (tracked
    results with their trails)."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.video = None
        self.written: List[Path] = []

    def open_video(self, name: str, fps: float) -> None:
        """Start ``<name>.mp4`` at the video's frame rate."""
        from .stream import VideoSink

        self.video = VideoSink(self.out_dir / f"{name}.mp4", fps)
        self.written.append(self.video.path)

    def add(self, res: Results, frame: Frame) -> None:
        """Draw the results: a frame of the current video, else ``<stem>.png``."""
        import cv2

        picture = res.plot(res.image, trails=frame.trails)
        if self.video is not None:
            self.video.write(picture)
        else:
            path = self.out_dir / f"{frame.stem}.png"
            cv2.imwrite(str(path), picture)
            self.written.append(path)

    def close_video(self) -> None:
        """Finish the current video file."""
        if self.video is not None:
            self.video.__exit__(None, None, None)
        self.video = None

    def close(self) -> List[Path]:
        """-> the pictures and videos written."""
        return [p for p in self.written if p.exists()]


class RecordSink(Sink):
    """``results.json``: every detection's record (:meth:`Results.to_records`, RLE masks) with
    where it came from (:meth:`Frame.where`), as one JSON list. ``category_ids``: each class's
    COCO id (default class index + 1)."""

    def __init__(self, path, category_ids: Optional[Sequence[int]] = None):
        self.path, self.category_ids = Path(path), category_ids
        self.records: List[Dict] = []

    def add(self, res: Results, frame: Frame) -> None:
        """Collect this image's or frame's records, with where they came from."""
        where = frame.where()
        # integers in run order: the image ids of --save-coco's annotations.json, for loadRes
        image_id = frame.image_id if frame.image_id is not None else frame.stem
        self.records += [dict(r, image_id=image_id, **where)
                         for r in res.to_records("rle", category_ids=self.category_ids)]

    def close(self) -> List[Path]:
        """Write ``results.json``. -> [its path]."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.records))
        return [self.path]


class TextPerVideoSink(Sink):
    """A text file per video, ``<name><suffix>`` in ``out_dir``; subclasses write ``lines``."""

    suffix = ".txt"

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.file = None
        self.written: List[Path] = []

    def open_video(self, name: str, fps: float) -> None:
        """Open ``<name><suffix>`` for this video."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{name}{self.suffix}"
        self.file = open(path, "w")
        self.written.append(path)

    def lines(self, res: Results, frame: Frame) -> str:
        """What one frame adds to the file."""
        raise NotImplementedError

    def add(self, res: Results, frame: Frame) -> None:
        """Append this frame's lines (frames outside a video are not written)."""
        if self.file is not None:
            self.file.write(self.lines(res, frame))

    def close_video(self) -> None:
        """Close this video's file."""
        if self.file is not None:
            self.file.close()
        self.file = None

    def close(self) -> List[Path]:
        """-> the files written, one per video."""
        return self.written


class JsonLinesSink(TextPerVideoSink):
    """``<name>.jsonl`` per video: one line per frame, ``{"video", "frame", "time_s",
    "detections": [records]}`` (0-based frames; records as :meth:`Results.to_records`, RLE)."""

    suffix = ".jsonl"

    def lines(self, res: Results, frame: Frame) -> str:
        """One JSON line: where the frame is, and its detection records."""
        return json.dumps(dict(frame.where(), detections=res.to_records("rle"))) + "\n"


class MotSink(TextPerVideoSink):
    """``<name>.txt`` per video: MOTChallenge tracker output (frame numbers from 1)."""

    def lines(self, res: Results, frame: Frame) -> str:
        """The frame's tracks as MOTChallenge lines (nothing for untracked results)."""
        from ..tracking.evaluate import mot_lines

        return "" if res.track_ids is None else mot_lines(frame.index + 1, res)


class CallbackSink(Sink):
    """Calls ``fn(results, frame)`` for each image or frame (printing, custom drawing)."""

    def __init__(self, fn):
        self.fn = fn

    def add(self, res: Results, frame: Frame) -> None:
        """Call ``fn(results, frame)``."""
        self.fn(res, frame)


class PredictionWriter(Sink):
    """Collects per-image (or per-frame) results and writes the outputs asked for.

    ``labelme_dir``: where LabelMe files go; None puts each next to its image, and then an
    existing file there (perhaps already corrected by hand) is kept, never overwritten.
    """

    def __init__(self, out_dir, class_names: Sequence[str], save_txt: bool = False,
                 save_conf: bool = False, save_crop: bool = False, save_labelme: bool = False,
                 labelme_dir=None, save_coco: bool = False, category_ids: Optional[Sequence[int]] = None):
        self.out_dir = Path(out_dir)
        self.class_names = tuple(class_names)
        # annotations.json's category ids (the model's: YolactConfig.label_category_ids); None: index + 1
        self.category_ids = tuple(int(c) for c in category_ids) if category_ids is not None \
            else tuple(range(1, len(self.class_names) + 1))
        self.save_txt, self.save_conf = save_txt, save_conf
        self.save_crop, self.save_labelme, self.save_coco = save_crop, save_labelme, save_coco
        self.labelme_dir = Path(labelme_dir) if labelme_dir is not None else None
        self.coco_images: List[Dict] = []
        self.coco_annotations: List[Dict] = []
        self.labelme_written: List[Path] = []
        self.labelme_kept: List[Path] = []

    def add(self, res: Results, frame: Frame) -> None:
        """One image's results, or one video frame's."""
        stem = frame.stem
        if self.save_txt:
            res.save_txt(self.out_dir / "labels" / f"{stem}.txt", save_conf=self.save_conf)
        if self.save_crop:
            res.save_crops(self.out_dir / "crops", stem)
        if frame.path is None:
            return  # pre-labels need an image file to point at
        if self.save_labelme:
            self._write_labelme(res, Path(frame.path))
        if self.save_coco:
            self._add_coco(res, Path(frame.path))

    def _write_labelme(self, res: Results, image: Path) -> None:
        if self.labelme_dir is None:
            path = image.with_suffix(".json")
            if path.exists():
                self.labelme_kept.append(path)
                return
            rel = image.name
        else:
            self.labelme_dir.mkdir(parents=True, exist_ok=True)
            path = self.labelme_dir / f"{image.stem}.json"
            rel = os.path.relpath(image.resolve(), self.labelme_dir.resolve())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res.to_labelme(rel), indent=1))
        self.labelme_written.append(path)

    def _add_coco(self, res: Results, image: Path) -> None:
        from pycocotools import mask as mask_utils

        h, w = res.image_shape
        image_id = len(self.coco_images) + 1
        self.coco_images.append({"id": image_id, "file_name": str(image.resolve()), "height": int(h), "width": int(w)})
        crops = res.mask_crops
        for i in range(len(res)):
            if not crops.crops[i].any():
                continue
            rle = crops.rle(i)
            outer, holes = crops.outlines(i, corners=True)  # COCO polygons: points on pixel edges
            if holes or not outer:
                # Polygons cannot cut holes in COCO (its parts are united): keep the mask as RLE.
                segmentation = rle
            else:
                segmentation = [c.reshape(-1).tolist() for c in outer]
            self.coco_annotations.append({
                "id": len(self.coco_annotations) + 1, "image_id": image_id, "category_id": self.category_ids[int(res.labels[i])],
                "segmentation": segmentation, "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)],
                "area": float(mask_utils.area(rle)), "iscrowd": 0, "score": round(float(res.scores[i]), 4)})

    def close(self) -> List[Path]:
        """Write the files collected over the run. -> the files written here."""
        written = []
        if self.save_coco:
            # File names relative to the images' common folder (as annotation tools and
            # `yolact train --train-images ROOT` expect), which is recorded in "info".
            root = Path(os.path.commonpath([os.path.dirname(i["file_name"]) for i in self.coco_images])) \
                if self.coco_images else Path(".")
            images = [dict(i, file_name=os.path.relpath(i["file_name"], root)) for i in self.coco_images]
            doc = {"info": {"description": "yolact predictions", "image_root": str(root)}, "images": images,
                   "annotations": self.coco_annotations,
                   "categories": [{"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names)]}
            p = self.out_dir / "annotations.json"
            p.write_text(json.dumps(doc))
            written.append(p)
        return written
