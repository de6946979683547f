"""The ``fast`` recipe's augmentation (``Recipe.augment == "modern"``), after Ultralytics':
mosaic of 4 images, a random scale and translation, copy-paste of objects from another image,
HSV jitter and a horizontal flip. Every geometric step moves the image and its masks with the
same integer offsets or the same affine warp, and boxes are recomputed from the masks at the
end, so boxes are always the masks' extents.

Every random draw comes from a ``np.random.RandomState`` seeded by (seed, epoch, index): exact
on resume. Images are float32 BGR [H, W, 3] (0..255), masks uint8 {0, 1} [N, H, W], boxes
absolute (x1, y1, x2, y2) pixels until :meth:`ModernAugment.__call__` makes them relative.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..config import MEANS_BGR
from .augment import Sample

# Objects smaller than this many mask pixels after a step are dropped (nothing left to learn).
MIN_MASK_PIXELS = 4


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] masks -> [N, 4] float64 (x1, y1, x2, y2): the extents in pixel edges (a mask with
    one pixel at (x, y) has box (x, y, x + 1, y + 1)); an empty mask gives zeros."""
    n, h, w = masks.shape
    out = np.zeros((n, 4), np.float64)
    if n == 0:
        return out
    rows, cols = masks.max(2) > 0, masks.max(1) > 0  # [N, H], [N, W]: one vectorised pass each
    full = rows.any(1)
    y1, x1 = rows.argmax(1), cols.argmax(1)
    y2, x2 = h - rows[:, ::-1].argmax(1), w - cols[:, ::-1].argmax(1)
    out[full] = np.stack([x1, y1, x2, y2], 1)[full]
    return out


def _finish(image: np.ndarray, masks: np.ndarray, labels: np.ndarray, crowd: np.ndarray) -> Sample:
    """Drop (near-)empty masks, put crowds last, boxes from the masks."""
    # masks are {0, 1}: a count of nonzero pixels per mask (OpenCV's, far cheaper than numpy's sum)
    keep = np.array([cv2.countNonZero(m) >= MIN_MASK_PIXELS for m in masks], bool)
    order = np.argsort(crowd[keep].astype(np.int8), kind="stable")
    if not (keep.all() and (order == np.arange(order.size)).all()):  # else no copy of the masks is needed
        masks, labels, crowd = masks[keep][order], labels[keep][order], crowd[keep][order]
    return Sample(image, masks, boxes_from_masks(masks), labels.astype(np.int64), int(crowd.sum()))


def _crowd_flags(s: Sample) -> np.ndarray:
    n = s.labels.shape[0]
    flags = np.zeros(n, bool)
    flags[n - s.num_crowds:] = s.num_crowds > 0
    return flags


def fit_long_side(s: Sample, size: int) -> Sample:
    """Resize so the longer side is ``size`` (aspect kept): image bilinear, masks nearest, both
    sampling each output pixel at the same source point (pixel centres: INTER_NEAREST_EXACT;
    OpenCV's INTER_NEAREST takes ``floor(x * scale)``, which put masks up to half an output pixel
    down and right of the image, and models trained on them learned the offset)."""
    h, w = s.image.shape[:2]
    r = size / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    img = cv2.resize(np.ascontiguousarray(s.image), (nw, nh), interpolation=cv2.INTER_LINEAR)
    masks = np.stack([cv2.resize(m, (nw, nh), interpolation=cv2.INTER_NEAREST_EXACT) for m in s.masks]) \
        if s.masks.shape[0] else np.zeros((0, nh, nw), np.uint8)
    return _finish(img, masks, s.labels, _crowd_flags(s))


def mosaic_layout(shapes: Sequence[Tuple[int, int]], size: int, xc: int, yc: int) -> List[Tuple[Tuple[int, int, int, int], Tuple[int, int, int, int]]]:
    """Where each of 4 tiles (``shapes``: (h, w) each) goes on a 2S x 2S canvas around the centre
    (xc, yc): top-left, top-right, bottom-left, bottom-right, each touching the centre.
    Returns per tile (canvas x1, y1, x2, y2), (tile x1, y1, x2, y2): equal-size rectangles."""
    out = []
    for k, (h, w) in enumerate(shapes):
        if k == 0:
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif k == 1:
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * size), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), x2a - x1a, h
        elif k == 2:
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * size, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, y2a - y1a
        else:
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * size), min(2 * size, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, x2a - x1a, y2a - y1a
        out.append(((x1a, y1a, x2a, y2a), (x1b, y1b, x2b, y2b)))
    return out


def mosaic4(tiles: Sequence[Sample], size: int, xc: int, yc: int) -> Sample:
    """Four samples (each at most ``size`` a side, see :func:`fit_long_side`) on one mean-filled
    2S x 2S canvas around (xc, yc) (:func:`mosaic_layout`); masks moved with their pixels and cut
    where the canvas cuts them; boxes from the masks."""
    canvas = np.empty((2 * size, 2 * size, 3), np.float32)
    canvas[:] = MEANS_BGR
    masks = np.zeros((sum(t.masks.shape[0] for t in tiles), 2 * size, 2 * size), np.uint8)
    layout = mosaic_layout([t.image.shape[:2] for t in tiles], size, xc, yc)
    first = 0
    for t, ((x1a, y1a, x2a, y2a), (x1b, y1b, x2b, y2b)) in zip(tiles, layout):
        canvas[y1a:y2a, x1a:x2a] = t.image[y1b:y2b, x1b:x2b]
        masks[first:first + t.masks.shape[0], y1a:y2a, x1a:x2a] = t.masks[:, y1b:y2b, x1b:x2b]
        first += t.masks.shape[0]
    return _finish(canvas, masks, np.concatenate([t.labels for t in tiles]),
                   np.concatenate([_crowd_flags(t) for t in tiles]))


def affine_crop(s: Sample, out: int, scale: float, cx: float, cy: float) -> Sample:
    """The ``out`` x ``out`` window of ``s`` scaled by ``scale`` around source point (cx, cy)
    (which lands at the window's centre); outside the source: the mean. Image bilinear, masks
    nearest, through the same affine matrix."""
    m = np.array([[scale, 0, out / 2 - scale * cx], [0, scale, out / 2 - scale * cy]], np.float64)
    img = cv2.warpAffine(np.ascontiguousarray(s.image), m, (out, out), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=MEANS_BGR)
    masks = np.stack([cv2.warpAffine(mk, m, (out, out), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=0) for mk in s.masks]) if s.masks.shape[0] \
        else np.zeros((0, out, out), np.uint8)
    return _finish(img, masks, s.labels, _crowd_flags(s))


def copy_paste(target: Sample, donor: Sample, chosen: np.ndarray) -> Sample:
    """Paste the ``chosen`` (bool [N donor]) non-crowd objects of ``donor`` (same image size) onto
    ``target``: their pixels replace the target's, the target's masks lose what is covered, boxes
    from the masks; the pasted objects come after the target's (crowds last)."""
    chosen = chosen & ~_crowd_flags(donor)
    if not chosen.any():
        return target
    union = donor.masks[chosen].any(0)
    img = target.image.copy()
    img[union] = donor.image[union]
    kept = target.masks * (~union)[None].astype(np.uint8)
    masks = np.concatenate([kept, donor.masks[chosen]])
    labels = np.concatenate([target.labels, donor.labels[chosen]])
    crowd = np.concatenate([_crowd_flags(target), np.zeros(int(chosen.sum()), bool)])
    return _finish(img, masks, labels, crowd)


def hsv_jitter(image: np.ndarray, gains: Tuple[float, float, float], rs: np.random.RandomState) -> np.ndarray:
    """Ultralytics' HSV augmentation: hue, saturation and value scaled by 1 + U(-g, g) each,
    through lookup tables on the uint8 HSV image. float32 BGR in and out."""
    r = rs.uniform(-1, 1, 3) * np.asarray(gains) + 1
    hsv = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV)
    x = np.arange(256, dtype=r.dtype)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    h, s, v = cv2.split(hsv)
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.float32)


def hflip(s: Sample) -> Sample:
    """Left-right flip of image, masks and boxes."""
    w = s.image.shape[1]
    boxes = s.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - s.boxes[:, 2], w - s.boxes[:, 0]
    return s._replace(image=np.ascontiguousarray(s.image[:, ::-1]), masks=np.ascontiguousarray(s.masks[:, :, ::-1]),
                      boxes=boxes)


@dataclass
class ModernAugment:
    """The ``modern`` pipeline; set as ``CocoDataset.augment`` to replace the original's.

    ``mosaic``: probability of a 4-image mosaic, used only while ``epoch < mosaic_until``;
    ``scale``: zoom 1 +- scale; ``translate``: +- fraction of the side; ``copy_paste``: each
    object of a random donor image pasted with this probability; ``hsv``: gains; ``flip``: p;
    ``cache_mb``: memory per process (each loader worker has its own) for items already read,
    used when the whole set fits (one augment per dataset: items are kept by index; a copy or
    a pickled worker's copy shares or copies them, writeable again after pickling)."""
    mosaic: float = 1.0
    scale: float = 0.5
    translate: float = 0.1
    copy_paste: float = 0.5
    hsv: Tuple[float, float, float] = (0.015, 0.7, 0.4)
    flip: float = 0.5
    mosaic_until: Optional[int] = None  # epoch from which mosaic is off (None: never off)
    cache_mb: float = 1024.0  # per process: items read and fitted to the input size, kept for reuse

    def __post_init__(self):
        self._tiles: Dict[Tuple[int, int], Sample] = {}
        self._cached_bytes = 0

    def _single(self, ds, i: int, size: int) -> Sample:
        """Item ``i`` read and fitted to ``size`` (:func:`fit_long_side`). It is the same whatever
        the epoch or draw, so it is kept (read-only) while the whole data set would fit in
        ``cache_mb`` at the items' mean size so far; a larger set keeps none, since its hits would
        be rare. Each sample reads 8 items (two mosaics of 4, for copy-paste), which took about
        half the augmentation's time without this (decoding, EXIF, RLE, resize; BENCHMARKS.md,
        "Training recipes"). The items live in the process that reads them: with loader workers
        (a new set each epoch) they last an epoch, in each worker."""
        tile = self._tiles.get((i, size))
        if tile is not None:
            return tile
        s = ds.load_sample(i)[1]
        tile = fit_long_side(s._replace(image=s.image.astype(np.float32)), size)
        nbytes = sum(a.nbytes for a in (tile.image, tile.masks, tile.boxes, tile.labels))
        mean = (self._cached_bytes + nbytes) / (len(self._tiles) + 1)
        if mean * len(ds) <= self.cache_mb * 2 ** 20:
            for a in (tile.image, tile.masks, tile.boxes, tile.labels):
                a.flags.writeable = False  # shared by every later use: a step that wrote in place would raise
            self._tiles[(i, size)] = tile
            self._cached_bytes += nbytes
        elif self._tiles:  # the set turned out larger than the budget: keep nothing
            self._tiles.clear()
            self._cached_bytes = 0
        return tile

    def geometric(self, ds, i: int, size: int, rs: np.random.RandomState) -> Sample:
        """Item ``i`` (with a mosaic of 3 more, drawn from ``rs``) scaled and translated to size x size."""
        use_mosaic = rs.rand() < self.mosaic and (self.mosaic_until is None or ds.epoch < self.mosaic_until)
        if use_mosaic:
            others = rs.randint(0, len(ds), 3)
            tiles = [self._single(ds, j, size) for j in (i, *others)]
            xc, yc = (int(v) for v in rs.uniform(0.5 * size, 1.5 * size, 2))
            s, centre = mosaic4(tiles, size, xc, yc), (size, size)
        else:
            s = self._single(ds, i, size)
            centre = (s.image.shape[1] / 2, s.image.shape[0] / 2)
        zoom = rs.uniform(1 - self.scale, 1 + self.scale)
        dx, dy = rs.uniform(-self.translate, self.translate, 2) * size
        return affine_crop(s, size, zoom, centre[0] + dx / zoom, centre[1] + dy / zoom)

    def __call__(self, ds, i: int) -> Sample:
        """Item ``i`` of ``ds`` (a :class:`~yolact.data.coco.CocoDataset`) augmented: image
        [S, S, 3] float32 BGR, masks [n, S, S] uint8, boxes relative to S (the masks' extents)."""
        size = ds.cfg.max_size
        rs = np.random.RandomState([ds.seed, ds.epoch, i])
        s = self.geometric(ds, i, size, rs)
        if self.copy_paste > 0:
            donor = self.geometric(ds, int(rs.randint(0, len(ds))), size, rs)
            s = copy_paste(s, donor, rs.rand(donor.labels.shape[0]) < self.copy_paste)
        if any(self.hsv):
            s = s._replace(image=hsv_jitter(s.image, self.hsv, rs))
        if rs.rand() < self.flip:
            s = hflip(s)
        return s._replace(boxes=s.boxes / size)
