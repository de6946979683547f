"""Video pre-labels for annotation tools (#31): ``yolact track VIDEO --save-cvat`` and ``--save-coco``.

:class:`CvatVideoSink` writes ``<video>.xml`` per video in *CVAT for video 1.1* (the XML CVAT and
Datumaro import into a video task): one ``<track>`` per tracker identity with its class as the
label, one shape per frame the identity is seen in (``keyframe="1"``, pixel coordinates of the
frame), and an ``outside="1"`` shape on the first frame after each stretch in which it is seen,
when the video goes on (so CVAT does not interpolate the shape across a gap or past the end).
Shapes are polygons (the outer outline of the mask's largest part: a CVAT track has one shape
per frame, and CVAT polygons have no holes) or masks (``shape="mask"``: CVAT's mask RLE over the
mask's bounding box, exact, holes included). Frames are numbered from 0, as CVAT numbers the
frames of an uploaded video.

:class:`CocoVideoSink` writes ``annotations.json``: COCO instances with one image per frame
(``file_name`` ``<video>/frame_000000.jpg``, ``video_id``, ``frame_id`` = the 0-based frame
index), a ``videos`` list, and each annotation's identity twice: ``track_id`` (the YouTube-VIS/TAO
field) and ``attributes.track_id`` (what CVAT's COCO import turns into tracks). Frames of a video
file are written as those JPEG files beside it so any COCO tool can open them; frames read from
an image folder point at their own files instead.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import YolactError
from ..prediction.sinks import Frame, Sink
from ..results import Results

CVAT_SHAPES = ("polygon", "mask")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def cvat_mask_rle(mask: np.ndarray):
    """CVAT's mask encoding of a bool [H, W] mask: ``(rle, left, top, width, height)`` where
    ``rle`` lists the lengths of alternating runs (background first, possibly 0) over the mask's
    bounding box read row by row, and the box is inclusive pixel bounds as CVAT writes them
    (right = left + width - 1). None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    flat = mask[top:bottom + 1, left:right + 1].reshape(-1).astype(np.uint8)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return runs, left, top, right - left + 1, bottom - top + 1


def _polygon(res: Results, i: int) -> Optional[np.ndarray]:
    """The outer outline of mask ``i``'s largest part, float [K, 2] (x, y) pixels; None if empty."""
    import cv2

    outer, _ = res.mask_crops.outlines(i)
    outer = [c for c in outer if len(c) >= 3]
    if not outer:
        return None
    return max(outer, key=lambda c: abs(cv2.contourArea(np.asarray(c, np.float32).reshape(-1, 1, 2))))


class CvatVideoSink(Sink):
    """``<video>.xml`` per video in CVAT for video 1.1 (see the module docstring). ``shape``:
    'polygon' or 'mask'. Untracked results (no ``track_ids``) raise YolactError: a CVAT track
    needs an identity."""

    def __init__(self, out_dir, class_names: Sequence[str], shape: str = "polygon"):
        if shape not in CVAT_SHAPES:
            raise YolactError(f"--cvat-shape {shape}: expected one of {', '.join(CVAT_SHAPES)}")
        self.out_dir, self.class_names, self.shape = Path(out_dir), tuple(class_names), shape
        self.written: List[Path] = []
        self.name = None

    def open_video(self, name: str, fps: float) -> None:
        """Start collecting the tracks of video ``name``."""
        self.name, self.fps = name, fps
        self.frames = 0
        self.size = None
        self.tracks: Dict[int, Dict] = {}  # id -> {"label", "shapes": {frame: attrs}}

    def add(self, res: Results, frame: Frame) -> None:
        """Record this frame's shape of every identity in it."""
        if self.name is None:
            return  # a still image: not part of a video
        if res.track_ids is None:
            raise YolactError("--save-cvat needs tracked results (yolact track)")
        n = int(frame.index)
        self.frames = max(self.frames, n + 1)
        self.size = res.image_shape
        for i in range(len(res)):
            tid = int(res.track_ids[i])
            if self.shape == "polygon":
                poly = _polygon(res, i)
                if poly is None:
                    continue
                attrs = {"points": ";".join(f"{x:.2f},{y:.2f}" for x, y in np.asarray(poly, np.float64))}
            else:
                full = np.zeros(res.image_shape, bool)
                res.mask_crops.paste(i, full)
                enc = cvat_mask_rle(full)
                if enc is None:
                    continue
                rle, left, top, width, height = enc
                attrs = {"rle": ", ".join(str(v) for v in rle), "left": str(left), "top": str(top),
                         "width": str(width), "height": str(height)}
            track = self.tracks.setdefault(tid, {"label": self.class_names[int(res.labels[i])], "shapes": {}})
            track["shapes"][n] = attrs

    def close_video(self) -> None:
        """Write this video's XML."""
        if self.name is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{self.name}.xml"
        _atomic_write(path, self.xml())
        self.written.append(path)
        self.name = None

    def xml(self) -> bytes:
        """The collected video as CVAT for video 1.1 XML bytes (UTF-8)."""
        root = ET.Element("annotations")
        ET.SubElement(root, "version").text = "1.1"
        task = ET.SubElement(ET.SubElement(root, "meta"), "task")
        h, w = self.size or (0, 0)
        for key, value in (("name", self.name), ("size", self.frames), ("mode", "interpolation"),
                           ("overlap", 0), ("start_frame", 0), ("stop_frame", max(self.frames - 1, 0))):
            ET.SubElement(task, key).text = str(value)
        labels = ET.SubElement(task, "labels")
        for name in self.class_names:
            label = ET.SubElement(labels, "label")
            ET.SubElement(label, "name").text = name
            ET.SubElement(label, "type").text = "any"
            ET.SubElement(label, "attributes")
        size = ET.SubElement(task, "original_size")
        ET.SubElement(size, "width").text = str(w)
        ET.SubElement(size, "height").text = str(h)
        for tid in sorted(self.tracks):
            track = self.tracks[tid]
            el = ET.SubElement(root, "track", id=str(tid), label=track["label"], source="auto")
            frames = sorted(track["shapes"])
            for j, f in enumerate(frames):
                common = {"frame": str(f), "keyframe": "1", "occluded": "0", "z_order": "0"}
                ET.SubElement(el, self.shape, outside="0", **common, **track["shapes"][f])
                gap_follows = j + 1 < len(frames) and frames[j + 1] > f + 1
                if (gap_follows or j + 1 == len(frames)) and f + 1 < self.frames:
                    # the identity is not seen on the next frame: CVAT's way to end (or pause) a track
                    ET.SubElement(el, self.shape, outside="1", **dict(common, frame=str(f + 1)),
                                  **track["shapes"][f])
        ET.indent(root)
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"

    def close(self) -> List[Path]:
        """-> the XML files written, one per video."""
        return self.written


class CocoVideoSink(Sink):
    """``annotations.json``: COCO instances, one image per video frame (see the module
    docstring). ``category_ids``: each class's id, the model's as ``predict --save-coco`` writes
    them (:meth:`YolactConfig.label_category_ids`); None: the class index + 1."""

    def __init__(self, out_dir, class_names: Sequence[str], jpeg_quality: int = 95,
                 category_ids: Optional[Sequence[int]] = None):
        self.out_dir, self.class_names, self.jpeg_quality = Path(out_dir), tuple(class_names), jpeg_quality
        self.category_ids = tuple(int(c) for c in category_ids) if category_ids is not None \
            else tuple(range(1, len(self.class_names) + 1))
        self.images: List[Dict] = []
        self.annotations: List[Dict] = []
        self.videos: List[Dict] = []
        self.frame_files: Dict[int, str] = {}

    def open_video(self, name: str, fps: float) -> None:
        """A new video: a ``videos`` entry."""
        self.videos.append({"id": len(self.videos) + 1, "name": name, "fps": float(fps)})

    def add(self, res: Results, frame: Frame) -> None:
        """One frame: an image entry (its JPEG written when it is not a file) and its annotations."""
        import cv2
        from pycocotools import mask as mask_utils

        if frame.video is None or not self.videos:
            return  # still images: `yolact predict --save-coco`
        video = self.videos[-1]
        h, w = res.image_shape
        video.setdefault("width", int(w))
        video.setdefault("height", int(h))
        image_file = frame.path or res.path  # a frame read from an image file (folder of frames)
        if image_file:
            file_name = str(Path(image_file).resolve())
        else:
            if res.image is None:
                raise YolactError(f"{frame.source}: frame {frame.index} has no pixels to write for --save-coco")
            rel = Path(video["name"]) / f"frame_{int(frame.index):06d}.jpg"
            (self.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(self.out_dir / rel), res.image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]):
                raise YolactError(f"{self.out_dir / rel}: cannot write the frame")
            file_name = str((self.out_dir / rel).resolve())
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w),
                            "video_id": video["id"], "frame_id": int(frame.index)})
        crops = res.mask_crops
        for i in range(len(res)):
            if not crops.crops[i].any():
                continue
            rle = crops.rle(i)
            outer, holes = crops.outlines(i, corners=True)
            segmentation = rle if holes or not outer else [c.reshape(-1).tolist() for c in outer]
            ann = {"id": len(self.annotations) + 1, "image_id": image_id, "category_id": self.category_ids[int(res.labels[i])],
                   "segmentation": segmentation, "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)],
                   "area": float(mask_utils.area(rle)), "iscrowd": 0, "score": round(float(res.scores[i]), 4)}
            if res.track_ids is not None:
                tid = int(res.track_ids[i])
                ann["track_id"] = tid
                ann["attributes"] = {"track_id": tid, "keyframe": True, "occluded": False}
            self.annotations.append(ann)

    def close(self) -> List[Path]:
        """Write ``annotations.json`` (file names relative to the frames' common folder). -> [its path]."""
        if not self.images:
            return []
        root = Path(os.path.commonpath([os.path.dirname(i["file_name"]) for i in self.images]))
        if all(Path(i["file_name"]).is_relative_to(self.out_dir.resolve()) for i in self.images):
            root = self.out_dir.resolve()  # the frames written here: names like clip/frame_000000.jpg
        images = [dict(i, file_name=Path(os.path.relpath(i["file_name"], root)).as_posix()) for i in self.images]
        doc = {"info": {"description": "yolact video predictions", "image_root": str(root)},
               "videos": self.videos, "images": images, "annotations": self.annotations,
               "categories": [{"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names)]}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "annotations.json"
        _atomic_write(path, json.dumps(doc).encode())
        return [path]
