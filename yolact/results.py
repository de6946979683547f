"""Per-image detection results with COCO, polygon and picture helpers."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .viz import draw_detections


@dataclass
class Results:
    """Detections for one image, in the original's order (descending class score).

    ``boxes`` are (x1, y1, x2, y2) pixels, ``labels`` 0-based into ``class_names``, ``masks``
    boolean at image size. ``scores`` are the mask scores (for YOLACT++ the class score times
    the predicted mask IoU); ``box_scores`` the class scores (equal to ``scores`` for YOLACT).
    """
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: Tuple[str, ...]
    box_scores: np.ndarray
    image_shape: Tuple[int, int]
    image: Optional[np.ndarray] = field(default=None, repr=False)
    path: Optional[str] = None
    proto: Optional[np.ndarray] = field(default=None, repr=False)   # [h, w, K] prototypes
    coeffs: Optional[np.ndarray] = field(default=None, repr=False)  # [N, K] per detection
    track_ids: Optional[np.ndarray] = None  # [N] identities, set by a tracker

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index) -> "Results":
        """The detections at ``index`` (indices or a boolean mask), in that order."""
        index = np.asarray(index)
        pick = (lambda a: a[index] if a is not None else None)
        return dataclasses.replace(self, boxes=self.boxes[index], scores=self.scores[index],
                                   labels=self.labels[index], masks=self.masks[index],
                                   box_scores=self.box_scores[index], coeffs=pick(self.coeffs),
                                   track_ids=pick(self.track_ids))

    @property
    def names(self) -> List[str]:
        return [self.class_names[int(i)] for i in self.labels]

    def __repr__(self) -> str:
        h, w = self.image_shape
        return f"Results({len(self)} detections on {w}x{h}: {', '.join(self.names[:5])}{'...' if len(self) > 5 else ''})"

    def to_coco(self, image_id, category_ids: Optional[Sequence[int]] = None, kind: str = "segm") -> List[Dict]:
        """COCO result dicts. ``kind='segm'`` gives RLE masks with mask scores, ``'bbox'`` boxes
        with class scores, ``'both'`` one dict per detection with both fields."""
        cat = (lambda i: int(category_ids[i])) if category_ids is not None else (lambda i: int(i) + 1)
        rles = self.rle() if kind in ("segm", "both") else []
        out = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            d = {"image_id": image_id, "category_id": cat(int(self.labels[i]))}
            bbox = [round(x1 * 10) / 10, round(y1 * 10) / 10, round((x2 - x1) * 10) / 10, round((y2 - y1) * 10) / 10]
            if kind in ("segm", "both"):
                d["segmentation"] = rles[i]
                d["score"] = float(self.scores[i])
            if kind in ("bbox", "both"):
                d["bbox"] = bbox
                d["score" if kind == "bbox" else "box_score"] = float(self.box_scores[i])
            out.append(d)
        return out

    def rle(self) -> List[Dict]:
        """Each mask as COCO compressed RLE: {'size': [h, w], 'counts': str}."""
        from pycocotools import mask as mask_utils

        out = []
        for m in self.masks:
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            out.append({"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")})
        return out

    def polygons(self, min_points: int = 3) -> List[List[np.ndarray]]:
        """Each mask's outer contours as float arrays of (x, y) points."""
        polys = []
        for m in self.masks:
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            polys.append([c.reshape(-1, 2).astype(np.float32) for c in contours if len(c) >= min_points])
        return polys

    def plot(self, image: Optional[np.ndarray] = None, boxes: bool = True, labels: bool = True,
             alpha: float = 0.45, trails: Optional[Dict[int, Sequence[Tuple[float, float]]]] = None) -> np.ndarray:
        """The image (BGR) with masks, boxes and 'class score' labels drawn on it. Tracked
        results are coloured by identity, labelled 'id class score', and ``trails`` (track id
        -> recent box centres, from ``Tracker.trails()``) are drawn as lines."""
        img = image if image is not None else self.image
        if img is None:
            img = np.zeros((*self.image_shape, 3), np.uint8)
        return draw_detections(img, self.boxes, self.masks, self.labels, self.scores, self.class_names,
                               alpha=alpha, draw_boxes=boxes, draw_text=labels, track_ids=self.track_ids,
                               trails=trails)
