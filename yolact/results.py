"""Per-image detection results with COCO, polygon and picture helpers."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .viz import draw_detections

LABELME_HOLE = "hole"  # the label yolact.data.labelme cuts out of its group's instance


def mask_outlines(mask: np.ndarray, corners: bool = False) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """A binary mask [H, W] -> (outer outlines, hole outlines), each an [P, 2] array of (x, y)
    points (P >= 3).

    ``corners=False``: int32 pixel indices through the border pixels' centres, the convention
    of ``cv2.fillPoly`` and LabelMe: filling the outers and clearing the holes gives the mask
    back exactly, except parts under 3 pixels of outline and islands inside holes (the hole's
    outline covers them). Holes are traced on the hole pixels, not on the mask's inner border,
    so a filled hole polygon is exactly the hole.

    ``corners=True``: float outlines along the pixels' outer edges (pixel (i, j) spans
    [j, j+1) x [i, i+1)), the convention of COCO polygons and pycocotools, which then
    rasterises them back to the same pixels (traced at twice the resolution)."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if corners:
        m = cv2.resize(m, (2 * m.shape[1], 2 * m.shape[0]), interpolation=cv2.INTER_NEAREST)
    outer, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outer = [c.reshape(-1, 2) for c in outer if len(c) >= 3]
    filled = np.zeros_like(m)
    cv2.drawContours(filled, [c.reshape(-1, 1, 2) for c in outer], -1, 1, thickness=-1)
    holes, _ = cv2.findContours(filled & (1 - m), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    holes = [c.reshape(-1, 2) for c in holes if len(c) >= 3]
    if corners:  # half-pixel steps at 2x: the outer edges of the original pixels
        outer = [(c + 0.5) / 2 for c in outer]
        holes = [(c + 0.5) / 2 for c in holes]
    return outer, holes


def single_polygon(mask: np.ndarray) -> Optional[np.ndarray]:
    """One polygon [P, 2] (x, y pixels) for a mask in several parts or with holes, as YOLO-seg
    label files need (one line per instance): each further outline is joined to the polygon
    by a zero-width bridge from its nearest point, out and back, the way Ultralytics joins COCO
    polygons. Even-odd filling (pycocotools, ``cv2.fillPoly``) then cuts the holes. Points lie
    on the pixels' outer edges (COCO's convention, see :func:`mask_outlines`). None for an
    empty mask."""
    outer, holes = mask_outlines(mask, corners=True)
    if not outer:
        return None
    outer.sort(key=len, reverse=True)
    poly = outer[0].astype(np.float64)
    rest = [c.astype(np.float64) for c in outer[1:] + holes]
    while rest:
        # The outline nearest to the polygon so far, joined at its closest pair of points.
        best = None
        for k, c in enumerate(rest):
            d = ((poly[:, None, :] - c[None, :, :]) ** 2).sum(-1)
            i, j = np.unravel_index(np.argmin(d), d.shape)
            if best is None or d[i, j] < best[0]:
                best = (d[i, j], k, i, j)
        _, k, i, j = best
        c = rest.pop(k)
        loop = np.concatenate([c[j:], c[:j + 1]])  # around the outline, back to where it joined
        poly = np.concatenate([poly[:i + 1], loop, poly[i:]])
    return poly


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

    # ------------------------------------------------------------------ outputs
    def to_json(self, normalize: bool = False, decimals: int = 5) -> str:
        """The detections as a JSON list, one object per detection, best first: ``name``,
        ``class`` (0-based id), ``confidence`` (mask score), ``box_confidence`` (class score),
        ``box`` {x1, y1, x2, y2} and ``segments`` (the mask's outer outlines, each a list of
        [x, y]); ``track_id`` when tracked. Pixels, or fractions of the image width and height
        with ``normalize``."""
        h, w = self.image_shape
        scale = np.array([1.0 / w, 1.0 / h]) if normalize else np.ones(2)
        out = []
        for i, outlines in enumerate(self.polygons()):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            box = np.array([[x1, y1], [x2, y2]]) * scale
            d = {"name": self.class_names[int(self.labels[i])], "class": int(self.labels[i]),
                 "confidence": round(float(self.scores[i]), decimals),
                 "box_confidence": round(float(self.box_scores[i]), decimals),
                 "box": {k: round(float(v), decimals) for k, v in zip(("x1", "y1", "x2", "y2"), box.reshape(-1))},
                 "segments": [np.round(c * scale, decimals).tolist() for c in outlines]}
            if self.track_ids is not None:
                d["track_id"] = int(self.track_ids[i])
            out.append(d)
        return json.dumps(out)

    def yolo_lines(self, save_conf: bool = False, decimals: int = 6) -> List[str]:
        """YOLO-seg label lines: ``class x1 y1 x2 y2 ...`` with points as fractions of the image
        width and height, one line per detection (parts and holes joined into one polygon, see
        :func:`single_polygon`); ``save_conf`` appends the mask score, as Ultralytics does.
        Detections with no outline of 3 or more points are left out."""
        h, w = self.image_shape
        lines = []
        for i in range(len(self)):
            poly = single_polygon(self.masks[i])
            if poly is None:
                continue
            pts = np.clip(poly / [w, h], 0.0, 1.0).reshape(-1)
            line = f"{int(self.labels[i])} " + " ".join(f"{v:.{decimals}f}" for v in pts)
            if save_conf:
                line += f" {float(self.scores[i]):.{decimals}f}"
            lines.append(line)
        return lines

    def save_txt(self, path, save_conf: bool = False) -> Path:
        """Write :meth:`yolo_lines` to ``path`` (an empty file when nothing was detected: an
        image with no objects). -> the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        lines = self.yolo_lines(save_conf)
        p.write_text("".join(line + "\n" for line in lines))
        return p

    def to_df(self):
        """A pandas DataFrame, one row per detection: name, class, confidence, box_confidence,
        x1, y1, x2, y2 (pixels), and track_id when tracked. Needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            from .errors import YolactError
            raise YolactError("Results.to_df needs pandas: pip install pandas") from None
        data = {"name": self.names, "class": self.labels.astype(int), "confidence": self.scores.astype(float),
                "box_confidence": self.box_scores.astype(float)}
        for k, col in zip(("x1", "y1", "x2", "y2"), np.asarray(self.boxes, np.float64).reshape(-1, 4).T):
            data[k] = col
        if self.track_ids is not None:
            data["track_id"] = self.track_ids.astype(int)
        return pd.DataFrame(data)

    def to_labelme(self, image_path: Optional[str] = None, hole_label: str = LABELME_HOLE) -> Dict:
        """A LabelMe document (version 5 layout) of the detections, for correcting predictions in
        LabelMe. Detection ``i`` is ``group_id`` i: one ``polygon`` shape per part, labelled with
        its class, and one ``hole_label`` shape per hole, which :mod:`yolact.data.labelme` cuts
        out of that group (its convention for holes and multi-part objects). The score is in
        each shape's ``description``. ``image_path``: as LabelMe should find the image, relative
        to the JSON file."""
        h, w = self.image_shape
        shapes = []
        for i in range(len(self)):
            outer, holes = mask_outlines(self.masks[i])
            name = self.class_names[int(self.labels[i])]
            for label, outlines in ((name, outer), (hole_label, holes)):
                for c in outlines:
                    shapes.append({"label": label, "points": c.astype(float).tolist(), "group_id": i,
                                   "description": f"score {float(self.scores[i]):.3f}", "shape_type": "polygon",
                                   "flags": {}})
        return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
                "imageHeight": int(h), "imageWidth": int(w)}

    def save_crops(self, folder, stem: str) -> List[Path]:
        """Each detection cut out of ``self.image`` along its box, as a BGRA PNG whose alpha is
        the mask, at ``folder/<class name>/<stem>_<i>.png``. -> the files written."""
        if self.image is None:
            from .errors import YolactError
            raise YolactError("Results.save_crops needs the image (predict with keep_image=True)")
        h, w = self.image_shape
        written = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            c0, r0 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
            c1, r1 = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
            if c1 <= c0 or r1 <= r0:
                continue
            crop = cv2.cvtColor(self.image[r0:r1, c0:c1], cv2.COLOR_BGR2BGRA)
            crop[:, :, 3] = np.asarray(self.masks[i][r0:r1, c0:c1], bool) * 255
            p = Path(folder) / self.class_names[int(self.labels[i])].replace("/", "_") / f"{stem}_{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), crop)
            written.append(p)
        return written

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
