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
MASK_FORMATS = ("rle", "polygons", "none")  # how a detection record carries its mask
# The detection record (Results.to_records), shared by every JSON output: field -> meaning.
RECORD_FIELDS = {
    "label": "0-based class index",
    "class_name": "the class's name",
    "category_id": "the data's category id of the class (the training file's ids; COCO's 1..90 for the 80 COCO "
                   "classes; the class index + 1 when the model knows none)",
    "score": "mask score: class score x predicted mask IoU for YOLACT++, the class score for YOLACT",
    "box_score": "class score (the box's confidence)",
    "box": "[x1, y1, x2, y2] pixels",
    "bbox": "[x, y, w, h] pixels (COCO), 0.1 px steps",
    "segmentation": "COCO RLE {'size': [H, W], 'counts': str}, or a list of flat [x, y, ...] polygons",
    "track_id": "identity, in tracked results only",
}


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


def coco_bbox(x1: float, y1: float, x2: float, y2: float) -> List[float]:
    """A pixel box (x1, y1, x2, y2) as COCO's [x, y, w, h] in 0.1 px steps (the COCO results'
    and the detection record's ``bbox``)."""
    return [round(x1 * 10) / 10, round(y1 * 10) / 10, round((x2 - x1) * 10) / 10, round((y2 - y1) * 10) / 10]


class MaskCrops:
    """Boolean instance masks stored cropped: mask ``i`` is ``crops[i]`` (bool [h_i, w_i])
    placed with its top-left pixel at column ``offsets[i, 0]``, row ``offsets[i, 1]`` of an
    otherwise empty ``image_shape`` (H, W) image. Memory grows with the objects' areas, not
    with the image: the full [N, H, W] array is built only by :meth:`full`.

    Crops are kept tight (the bounding box of the set pixels; an empty mask is a 0 x 0 crop
    at (0, 0)). Indexing with an int, a slice, an index array or a boolean mask gives a
    MaskCrops of those masks, in that order; ``mask(i)`` gives one full [H, W] mask."""

    __slots__ = ("crops", "offsets", "image_shape")

    def __init__(self, crops: Sequence[np.ndarray], offsets, image_shape: Tuple[int, int], tight: bool = False):
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        offsets = np.asarray(offsets, np.int64).reshape(-1, 2)
        crops = [np.asarray(c, bool) for c in crops]
        if len(crops) != len(offsets):
            raise ValueError(f"{len(crops)} crops but {len(offsets)} offsets")
        self.crops, self.offsets = crops, offsets
        if not tight:
            self._tighten()

    @classmethod
    def from_full(cls, masks: np.ndarray) -> "MaskCrops":
        """Full masks [N, H, W] (any dtype; nonzero = set) -> their tight crops."""
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks of shape {masks.shape}: expected [N, H, W]")
        masks = masks.astype(bool, copy=False)
        # each mask's first and last set row and column, for all masks at once
        row_set, col_set = masks.any(2), masks.any(1)
        top, left = row_set.argmax(1), col_set.argmax(1)
        bottom, right = row_set.shape[1] - row_set[:, ::-1].argmax(1), col_set.shape[1] - col_set[:, ::-1].argmax(1)
        crops, offsets = [], np.zeros((len(masks), 2), np.int64)
        for i, (m, has) in enumerate(zip(masks, row_set.any(1))):
            if has:
                crops.append(m[top[i]:bottom[i], left[i]:right[i]].copy())
                offsets[i] = (left[i], top[i])
            else:
                crops.append(np.zeros((0, 0), bool))
        return cls(crops, offsets, masks.shape[1:], tight=True)

    def _tighten(self) -> None:
        """Cut each crop to its set pixels and to the image (offsets may start outside it)."""
        for i, c in enumerate(self.crops):
            self.crops[i], x0, y0 = self.tight(c, *self.offsets[i], self.image_shape)
            self.offsets[i] = (x0, y0)

    @staticmethod
    def tight(crop: np.ndarray, x0: int, y0: int, image_shape: Tuple[int, int]) -> Tuple[np.ndarray, int, int]:
        """One crop (bool [h, w] at column ``x0``, row ``y0``, which may start outside the
        ``image_shape`` image) -> (a new bool array cut to its set pixels inside the image, its
        column, its row); an empty mask is a 0 x 0 crop at (0, 0)."""
        h, w = image_shape
        x0, y0 = int(x0), int(y0)
        # the part inside the image
        cx0, cy0 = max(0, -x0), max(0, -y0)
        cx1, cy1 = min(crop.shape[1], w - x0), min(crop.shape[0], h - y0)
        c = crop[cy0:max(cy0, cy1), cx0:max(cx0, cx1)]
        rows, cols = np.flatnonzero(c.any(1)), np.flatnonzero(c.any(0))
        if len(rows) == 0:
            return np.zeros((0, 0), bool), 0, 0
        # a copy: a view would keep the larger buffer it was cut from alive
        return (c[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy(),
                x0 + cx0 + int(cols[0]), y0 + cy0 + int(rows[0]))

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """(N, H, W): the shape of :meth:`full`."""
        return (len(self.crops), *self.image_shape)

    @property
    def nbytes(self) -> int:
        """Bytes held by the crops and offsets."""
        return sum(c.nbytes for c in self.crops) + self.offsets.nbytes

    def __getitem__(self, index) -> "MaskCrops":
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self.crops))[index]
        return MaskCrops([self.crops[i] for i in idx], self.offsets[idx].reshape(-1, 2), self.image_shape,
                         tight=True)

    def windows(self) -> np.ndarray:
        """[N, 4] int64 (x0, y0, x1, y1): each crop's pixel window, x1/y1 exclusive (the tight
        bounding box of the mask; all zero for an empty mask)."""
        out = np.zeros((len(self.crops), 4), np.int64)
        for i, c in enumerate(self.crops):
            x0, y0 = self.offsets[i]
            out[i] = (x0, y0, x0 + c.shape[1], y0 + c.shape[0])
        return out

    def areas(self) -> np.ndarray:
        """[N] int64: set pixels per mask."""
        return np.array([int(c.sum()) for c in self.crops], np.int64)

    def mask(self, i: int) -> np.ndarray:
        """Mask ``i`` at image size, bool [H, W]."""
        out = np.zeros(self.image_shape, bool)
        self.paste(i, out)
        return out

    def paste(self, i: int, out: np.ndarray) -> None:
        """Set mask ``i``'s pixels in ``out`` (an [H, W] array; OR, nothing cleared)."""
        c = self.crops[i]
        x0, y0 = (int(v) for v in self.offsets[i])
        out[y0:y0 + c.shape[0], x0:x0 + c.shape[1]] |= c

    def full(self) -> np.ndarray:
        """All masks at image size, bool [N, H, W]."""
        out = np.zeros(self.shape, bool)
        for i in range(len(self.crops)):
            self.paste(i, out[i])
        return out

    def strided(self, step: int) -> np.ndarray:
        """Every ``step``-th row and column of the full masks, uint8 [N, ceil(H/step),
        ceil(W/step)], equal to ``full()[:, ::step, ::step]`` without building it."""
        h, w = self.image_shape
        out = np.zeros((len(self.crops), -(-h // step), -(-w // step)), np.uint8)
        for i, c in enumerate(self.crops):
            x0, y0 = (int(v) for v in self.offsets[i])
            ky, kx = (-y0) % step, (-x0) % step  # first crop row/column on the stride
            part = c[ky::step, kx::step]
            r, q = (y0 + ky) // step, (x0 + kx) // step
            out[i, r:r + part.shape[0], q:q + part.shape[1]] = part
        return out

    def shifted(self, dx: int, dy: int, image_shape: Tuple[int, int]) -> "MaskCrops":
        """The same masks moved by (dx, dy) pixels into an ``image_shape`` image (a tile's
        masks into the full image); parts falling outside it are cut."""
        return MaskCrops(self.crops, self.offsets + np.array([dx, dy], np.int64), image_shape,
                         tight=dx >= 0 and dy >= 0 and all(
                             x + dx + c.shape[1] <= image_shape[1] and y + dy + c.shape[0] <= image_shape[0]
                             for c, (x, y) in zip(self.crops, self.offsets.tolist())))

    def rle(self, i: int) -> Dict:
        """Mask ``i`` as COCO compressed RLE {'size': [H, W], 'counts': str}, equal to
        ``pycocotools.mask.encode`` of the full mask. Built from the crop: the runs of the
        crop's columns padded to the image height (O(H x crop width)), then compressed by
        pycocotools."""
        from pycocotools import mask as mask_utils

        h, w = self.image_shape
        c = self.crops[i]
        x0, y0 = (int(v) for v in self.offsets[i])
        if c.size == 0 or not c.any():
            counts = [h * w]
        else:
            cols = np.zeros((h, c.shape[1]), np.uint8)  # the crop's columns, full height
            cols[y0:y0 + c.shape[0]] = c
            flat = cols.ravel(order="F")
            change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
            runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
            if flat[0]:
                runs.insert(0, 0)
            runs[0] += x0 * h  # the empty columns on the left
            after = (w - x0 - c.shape[1]) * h
            if not flat[-1]:
                runs[-1] += after
            elif after:
                runs.append(after)
            counts = runs
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}

    def outlines(self, i: int, corners: bool = False) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """:func:`mask_outlines` of mask ``i`` in image coordinates, traced on the crop."""
        c = self.crops[i]
        if c.size == 0:
            return [], []
        x0, y0 = (int(v) for v in self.offsets[i])
        # one empty pixel around the crop: the tracing sees the same neighbourhood as on the
        # full image (outside the image OpenCV also sees empty pixels)
        outer, holes = mask_outlines(np.pad(c, 1), corners)
        shift = np.array([x0 - 1, y0 - 1])
        return ([(o + shift).astype(o.dtype) for o in outer], [(o + shift).astype(o.dtype) for o in holes])


@dataclass
class Results:
    """Detections for one image, in the original's order (descending class score).

    ``boxes`` [N, 4] float32 (x1, y1, x2, y2) pixels (integer values from ``predict``, as the
    original's), ``labels`` [N] int64 0-based into ``class_names``, ``masks`` [N, H, W] bool at
    image size (``image_shape`` = (H, W)). ``scores`` [N] float32 are the mask scores (for
    YOLACT++ the class score times the predicted mask IoU); ``box_scores`` [N] float32 the class
    scores (equal to ``scores`` for YOLACT). ``image``: the BGR uint8 image, when kept.

    Predictors hold masks cropped to each object (:class:`MaskCrops`, ``mask_crops``), so
    memory follows the objects, not the image. ``masks`` (bool [N, H, W]) is built from the
    crops when first read, and from then on that array is the masks (edits to it count).
    Construction accepts either a full array or a MaskCrops. RLE, polygons, outlines, COCO,
    plots, crops and the tracker work from the crops.
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
    time_s: Optional[float] = None  # a video frame's timestamp in its container, seconds
    # The category id of each 0-based class (YolactConfig.label_category_ids); None: index + 1
    category_ids: Optional[Tuple[int, ...]] = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index) -> "Results":
        """The detections at ``index`` (indices or a boolean mask), in that order."""
        index = np.asarray(index)
        pick = (lambda a: a[index] if a is not None else None)
        return dataclasses.replace(self, boxes=self.boxes[index], scores=self.scores[index],
                                   labels=self.labels[index], masks=self.mask_crops[index],
                                   box_scores=self.box_scores[index], coeffs=pick(self.coeffs),
                                   track_ids=pick(self.track_ids))

    @property
    def names(self) -> List[str]:
        """The class name of each detection, in order."""
        return [self.class_names[int(i)] for i in self.labels]

    def __repr__(self) -> str:
        h, w = self.image_shape
        return f"Results({len(self)} detections on {w}x{h}: {', '.join(self.names[:5])}{'...' if len(self) > 5 else ''})"

    def to_coco(self, image_id, category_ids: Optional[Sequence[int]] = None, kind: str = "segm") -> List[Dict]:
        """COCO result dicts. ``kind='segm'`` gives RLE masks with mask scores, ``'bbox'`` boxes
        ([x, y, w, h] pixels, 0.1 px steps) with class scores, ``'both'`` one dict per detection
        with both fields (class score as ``box_score``). ``category_ids``: the COCO id of each
        0-based class (default: the model's, :attr:`category_ids`, else class + 1). Needs
        pycocotools for masks."""
        category_ids = category_ids if category_ids is not None else self.category_ids
        cat = (lambda i: int(category_ids[i])) if category_ids is not None else (lambda i: int(i) + 1)
        rles = self.rle() if kind in ("segm", "both") else []
        out = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            d = {"image_id": image_id, "category_id": cat(int(self.labels[i]))}
            bbox = coco_bbox(x1, y1, x2, y2)
            if kind in ("segm", "both"):
                d["segmentation"] = rles[i]
                d["score"] = float(self.scores[i])
            if kind in ("bbox", "both"):
                d["bbox"] = bbox
                d["score" if kind == "bbox" else "box_score"] = float(self.box_scores[i])
            out.append(d)
        return out

    def rle(self) -> List[Dict]:
        """Each mask as COCO compressed RLE (pycocotools): {'size': [H, W], 'counts': str}, one
        per detection, encoded from the crops."""
        crops = self.mask_crops
        return [crops.rle(i) for i in range(len(crops))]

    def polygons(self, min_points: int = 3) -> List[List[np.ndarray]]:
        """Each mask's outer contours (holes ignored) as float32 [P, 2] arrays of (x, y) pixel
        indices through the border pixels' centres (``cv2.findContours``), P >= ``min_points``."""
        polys = []
        crops = self.mask_crops
        for c, (x0, y0) in zip(crops.crops, crops.offsets.tolist()):
            if c.size == 0:
                polys.append([])
                continue
            # traced on the crop with one empty pixel around it: the full mask's contours
            contours, _ = cv2.findContours(np.pad(c, 1).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE, offset=(x0 - 1, y0 - 1))
            polys.append([c.reshape(-1, 2).astype(np.float32) for c in contours if len(c) >= min_points])
        return polys

    # ------------------------------------------------------------------ outputs
    def to_records(self, masks: str = "rle", normalize: bool = False, decimals: int = 5,
                   category_ids: Optional[Sequence[int]] = None) -> List[Dict]:
        """The detection record: one dict per detection, best first. Every JSON output of the
        package uses it (``to_json``, ``predict --save-json``'s results.json, ``track
        --save-json``'s JSON lines, the server's ``detections``); see ``RECORD_FIELDS``.

        - ``label`` (0-based class index), ``class_name``, ``category_id`` (the data's id of the
          class: ``category_ids`` if given, else the model's (:attr:`category_ids`), else the
          class index + 1);
        - ``score``: the **mask score** (YOLACT++: class score x predicted mask IoU; YOLACT: the
          class score), the one ranked by COCO mask AP; ``box_score``: the class score;
        - ``box`` [x1, y1, x2, y2] and ``bbox`` [x, y, w, h] (COCO, 0.1 px steps), pixels;
        - ``segmentation`` (COCO's field): ``masks='rle'`` a compressed RLE dict
          ({'size': [H, W], 'counts': str}), ``'polygons'`` a list of flat [x, y, ...] outer
          outlines through the border pixels' centres, ``'none'`` left out;
        - ``track_id`` when tracked.

        ``normalize``: ``box``, ``bbox`` and polygons as fractions of the image width and height.
        Raises ValueError for another ``masks``."""
        if masks not in MASK_FORMATS:
            raise ValueError(f"masks must be one of {', '.join(MASK_FORMATS)}, got {masks!r}")
        category_ids = category_ids if category_ids is not None else self.category_ids
        h, w = self.image_shape
        sx, sy = (1.0 / w, 1.0 / h) if normalize else (1.0, 1.0)
        segs = self.rle() if masks == "rle" else self.polygons() if masks == "polygons" else None
        out = []
        for i in range(len(self)):
            label = int(self.labels[i])
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            bbox = coco_bbox(x1, y1, x2, y2)
            d = {"label": label, "class_name": self.class_names[label],
                 "category_id": int(category_ids[label]) if category_ids is not None else label + 1,
                 "score": round(float(self.scores[i]), decimals), "box_score": round(float(self.box_scores[i]), decimals),
                 "box": [round(v, decimals) for v in (x1 * sx, y1 * sy, x2 * sx, y2 * sy)],
                 "bbox": [round(v, decimals) for v in (bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy)]}
            if masks == "rle":
                d["segmentation"] = segs[i]
            elif masks == "polygons":
                d["segmentation"] = [np.round(c * np.array([sx, sy]), 1 if not normalize else decimals).reshape(-1).tolist()
                                     for c in segs[i]]
            if self.track_ids is not None:
                d["track_id"] = int(self.track_ids[i])
            out.append(d)
        return out

    def to_json(self, masks: str = "polygons", normalize: bool = False, decimals: int = 5) -> str:
        """:meth:`to_records` as a JSON list (masks as polygons by default)."""
        return json.dumps(self.to_records(masks, normalize, decimals))

    def yolo_lines(self, save_conf: bool = False, decimals: int = 6) -> List[str]:
        """YOLO-seg label lines: ``class x1 y1 x2 y2 ...`` with points as fractions of the image
        width and height, one line per detection (parts and holes joined into one polygon, see
        :func:`single_polygon`); ``save_conf`` appends the mask score, as Ultralytics does.
        Detections with no outline of 3 or more points are left out."""
        h, w = self.image_shape
        lines, crops = [], self.mask_crops
        for i in range(len(self)):
            # traced on the crop with one empty pixel around it, then moved to the image
            poly = single_polygon(np.pad(crops.crops[i], 1))
            if poly is not None:
                poly = poly + (crops.offsets[i] - 1)
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
        """A pandas DataFrame, one row per detection, with the record's names (:meth:`to_records`):
        class_name, label, score (mask score), box_score (class score), x1, y1, x2, y2 (pixels),
        and track_id when tracked. Needs the ``pandas`` extra; raises YolactError without it."""
        try:
            import pandas as pd
        except ImportError:
            from .errors import YolactError
            raise YolactError("Results.to_df needs pandas: pip install 'yolact[pandas]' (or pip install pandas)") from None
        data = {"class_name": self.names, "label": self.labels.astype(int), "score": self.scores.astype(float),
                "box_score": self.box_scores.astype(float)}
        for k, col in zip(("x1", "y1", "x2", "y2"), np.asarray(self.boxes, np.float64).reshape(-1, 4).T):
            data[k] = col
        if self.track_ids is not None:
            data["track_id"] = self.track_ids.astype(int)
        return pd.DataFrame(data)

    def to_supervision(self):
        """``supervision.Detections`` (``pip install yolact[supervision]``): ``xyxy`` [N, 4]
        float32 pixels, ``mask`` [N, H, W] bool, ``confidence`` [N] float32 = the mask score,
        ``class_id`` [N] int64 0-based, ``tracker_id`` when tracked, and ``data["class_name"]``
        (str array). Raises YolactError without supervision."""
        try:
            import supervision as sv
        except ImportError:
            from .errors import YolactError
            raise YolactError("Results.to_supervision needs supervision: pip install 'yolact[supervision]'") from None
        n = len(self)
        return sv.Detections(
            xyxy=np.asarray(self.boxes, np.float32).reshape(n, 4), mask=np.asarray(self.masks, bool).reshape(n, *self.image_shape),
            confidence=np.asarray(self.scores, np.float32), class_id=np.asarray(self.labels, np.int64),
            tracker_id=None if self.track_ids is None else np.asarray(self.track_ids, np.int64),
            data={"class_name": np.array(self.names, dtype=str).reshape(n)})

    def to_labelme(self, image_path: Optional[str] = None, hole_label: str = LABELME_HOLE) -> Dict:
        """A LabelMe document (version 5 layout) of the detections, for correcting predictions in
        LabelMe. Detection ``i`` is ``group_id`` i: one ``polygon`` shape per part, labelled with
        its class, and one ``hole_label`` shape per hole, which :mod:`yolact.data.labelme` cuts
        out of that group (its convention for holes and multi-part objects). The score is in
        each shape's ``description``. ``image_path``: as LabelMe should find the image, relative
        to the JSON file."""
        h, w = self.image_shape
        shapes, crops = [], self.mask_crops
        for i in range(len(self)):
            outer, holes = crops.outlines(i)
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
        the mask, at ``folder/<class name>/<stem>_<i>.png``. -> the files written (boxes with no
        area inside the image are skipped). Raises YolactError when ``self.image`` is None."""
        if self.image is None:
            from .errors import YolactError
            raise YolactError("Results.save_crops needs the image (predict with keep_image=True)")
        h, w = self.image_shape
        written, mc = [], self.mask_crops
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            c0, r0 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
            c1, r1 = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
            if c1 <= c0 or r1 <= r0:
                continue
            crop = cv2.cvtColor(self.image[r0:r1, c0:c1], cv2.COLOR_BGR2BGRA)
            alpha = np.zeros((r1 - r0, c1 - c0), bool)
            mx0, my0 = (int(v) for v in mc.offsets[i])
            m = mc.crops[i]
            # the part of the mask inside the box window
            ya, yb = max(r0, my0), min(r1, my0 + m.shape[0])
            xa, xb = max(c0, mx0), min(c1, mx0 + m.shape[1])
            if ya < yb and xa < xb:
                alpha[ya - r0:yb - r0, xa - c0:xb - c0] = m[ya - my0:yb - my0, xa - mx0:xb - mx0]
            crop[:, :, 3] = alpha * 255
            p = Path(folder) / self.class_names[int(self.labels[i])].replace("/", "_") / f"{stem}_{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), crop)
            written.append(p)
        return written

    def plot(self, image: Optional[np.ndarray] = None, boxes: bool = True, labels: bool = True,
             alpha: float = 0.45, trails: Optional[Dict[int, Sequence[Tuple[float, float]]]] = None) -> np.ndarray:
        """A copy of the image (BGR uint8 [H, W, 3]; ``image``, else ``self.image``, else black)
        with masks, boxes and 'class score' labels drawn on it. Tracked results are coloured by
        identity, labelled 'id class score', and ``trails`` (track id -> recent box centres in
        pixels, from ``Tracker.trails()``) are drawn as lines."""
        img = image if image is not None else self.image
        if img is None:
            img = np.zeros((*self.image_shape, 3), np.uint8)
        return draw_detections(img, self.boxes, self.mask_crops, self.labels, self.scores, self.class_names,
                               alpha=alpha, draw_boxes=boxes, draw_text=labels, track_ids=self.track_ids,
                               trails=trails)


def _get_masks(self: Results) -> np.ndarray:
    if self._full_masks is None:
        # From now on the full array is the masks (changes made to it count), as before crops.
        self._full_masks, self._mask_crops = self._mask_crops.full(), None
    return self._full_masks


def _set_masks(self: Results, masks) -> None:
    if isinstance(masks, MaskCrops):
        self._mask_crops, self._full_masks = masks, None
    else:  # a full array is kept as it is (no copy), and is the masks
        self._mask_crops, self._full_masks = None, np.asarray(masks)


def _get_mask_crops(self: Results) -> MaskCrops:
    if self._full_masks is not None:
        return MaskCrops.from_full(self._full_masks)
    return self._mask_crops


# ``masks`` is a dataclass field (Results(..., masks=...) keeps working); predictors give crops.
Results.masks = property(_get_masks, _set_masks, doc="bool [N, H, W] masks at image size. Built from "
                         "``mask_crops`` when first read; from then on this array is the masks.")
Results.mask_crops = property(_get_mask_crops, doc=":class:`MaskCrops`: the masks cropped to each object "
                              "(computed from the full array when one was given or read).")
