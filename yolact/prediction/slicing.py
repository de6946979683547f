"""Sliced inference for large images with small objects: overlapping tiles, each run at the
model's input size, optionally the whole image too, then duplicates merged.

A small object in a large photo shrinks to a few pixels when the whole image is resized to the
network's square input (550 px for the COCO presets); a tile of about that size keeps it at
its own scale. Tiles come back as ordinary Results, are moved into the full image (their masks
are crops, so this is a change of offsets) and merged by masks, not boxes: detections of one
class whose masks overlap by more than ``merge_iou`` (intersection over union) or
``merge_ios`` (intersection over the smaller mask) are one object, kept once with the union
of the masks, the union of the boxes and the best scores. An object cut by a tile border is
seen in parts by neighbouring tiles; the parts share the overlap strip, so they merge. A
fragment of another class lying mostly inside a mask twice its size is dropped (``cross_class_ios``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import YolactError
from ..results import MaskCrops, Results


# More tiles than this for one image is a mistake (a tiny tile or an overlap near 1), not a plan:
# refused before the first tile runs.
MAX_TILES = 4096


def tile_windows(height: int, width: int, tile: int, overlap: float) -> List[Tuple[int, int, int, int]]:
    """Tiles (x0, y0, x1, y1), pixels, x1/y1 exclusive, covering the image: ``tile`` x ``tile``
    (smaller where the image is), neighbours sharing ``overlap`` of the tile side (rounded),
    the last row and column flush with the image's edge. Raises YolactError for a tile under
    32 px, an overlap outside [0, 1) or more than MAX_TILES tiles."""
    if tile < 32:
        raise YolactError(f"slice tile {tile}: expected at least 32 pixels")
    if not 0 <= overlap < 1:
        raise YolactError(f"slice overlap {overlap}: expected a fraction in [0, 1)")
    step = max(1, int(round(tile * (1 - overlap))))

    def starts(size: int) -> List[int]:
        if size <= tile:
            return [0]
        s = list(range(0, size - tile, step))
        return s + [size - tile]

    xs, ys = starts(width), starts(height)
    if len(xs) * len(ys) > MAX_TILES:
        raise YolactError(f"slice tile {tile}, overlap {overlap}: {len(xs) * len(ys)} tiles for a {width}x{height} "
                          f"image (at most {MAX_TILES}); use a larger tile or a smaller overlap")
    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in ys for x in xs]


def shift_results(res: Results, dx: int, dy: int, image_shape: Tuple[int, int]) -> Results:
    """A tile's Results moved by (dx, dy) pixels into the full image of ``image_shape``: boxes
    shifted, masks re-placed (their crops unchanged). No image, prototypes or coefficients."""
    boxes = np.asarray(res.boxes, np.float32).reshape(-1, 4) + np.array([dx, dy, dx, dy], np.float32)
    return Results(boxes=boxes, scores=res.scores, labels=res.labels, masks=res.mask_crops.shifted(dx, dy, image_shape),
                   class_names=res.class_names, box_scores=res.box_scores, image_shape=tuple(image_shape))


def _intersection(crops: MaskCrops, i: int, other: np.ndarray, ox: int, oy: int) -> int:
    """Set pixels shared by mask ``i`` of ``crops`` and the crop ``other`` placed at (ox, oy)."""
    a = crops.crops[i]
    ax, ay = (int(v) for v in crops.offsets[i])
    x0, y0 = max(ax, ox), max(ay, oy)
    x1, y1 = min(ax + a.shape[1], ox + other.shape[1]), min(ay + a.shape[0], oy + other.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0
    return int(np.count_nonzero(a[y0 - ay:y1 - ay, x0 - ax:x1 - ax] & other[y0 - oy:y1 - oy, x0 - ox:x1 - ox]))


def _no_detections(names, image_shape: Tuple[int, int]) -> Results:
    empty = MaskCrops([], np.zeros((0, 2), np.int64), image_shape, tight=True)
    return Results(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), empty,
                   names, np.zeros(0, np.float32), image_shape)


def merge_results(parts: Sequence[Results], image_shape: Tuple[int, int], merge_iou: float = 0.5,
                  merge_ios: float = 0.5, top_k: Optional[int] = None,
                  cross_class_ios: Optional[float] = 0.8) -> Results:
    """Detections of several Results on the same image (already in its coordinates) -> one
    Results, duplicates merged. In descending score order, each detection joins the first kept
    detection of its class whose mask overlaps it by IoU > ``merge_iou`` or intersection over
    the smaller mask > ``merge_ios``: the kept mask becomes the union, its box the union box,
    its scores the maxima. Others are kept as new objects. Then the best ``top_k`` (None: all).
    Detections with an empty mask are dropped. A kept detection of another class whose mask
    lies more than ``cross_class_ios`` inside a kept mask at least twice its area is a
    fragment of that object (a tile saw only a part) and is dropped (None: never)."""
    names = next((p.class_names for p in parts if p.class_names), ())
    parts = [p for p in parts if len(p)]
    h, w = image_shape
    if not parts:
        return _no_detections(names, (h, w))
    boxes = np.concatenate([np.asarray(p.boxes, np.float32).reshape(-1, 4) for p in parts])
    scores = np.concatenate([np.asarray(p.scores, np.float32) for p in parts])
    box_scores = np.concatenate([np.asarray(p.box_scores, np.float32) for p in parts])
    labels = np.concatenate([np.asarray(p.labels, np.int64) for p in parts])
    crops = [c for p in parts for c in p.mask_crops.crops]
    offsets = np.concatenate([p.mask_crops.offsets for p in parts])
    every = MaskCrops(crops, offsets, (h, w), tight=True)
    areas = every.areas()
    order = np.argsort(-scores, kind="stable")

    # kept objects: their union masks as (crop, x0, y0), boxes, scores, labels
    k_crop: List[np.ndarray] = []
    k_off: List[Tuple[int, int]] = []
    k_area: List[int] = []
    k_box, k_score, k_box_score, k_label = [], [], [], []
    k_win = np.zeros((0, 4), np.int64)  # x0, y0, x1, y1 of each kept mask
    wins = every.windows()
    for i in order:
        if areas[i] == 0:
            continue
        wx0, wy0, wx1, wy1 = wins[i]
        near = np.flatnonzero((np.asarray(k_label, np.int64) == labels[i]) & (k_win[:, 0] < wx1) & (k_win[:, 2] > wx0)
                              & (k_win[:, 1] < wy1) & (k_win[:, 3] > wy0)) if k_label else []
        into = None
        for k in near:
            inter = _intersection(every, i, k_crop[k], *k_off[k])
            if inter == 0:
                continue
            union = areas[i] + k_area[k] - inter
            if inter / union > merge_iou or inter / min(areas[i], k_area[k]) > merge_ios:
                into = k
                break
        if into is None:
            k_crop.append(every.crops[i])
            k_off.append((int(wx0), int(wy0)))
            k_area.append(int(areas[i]))
            k_box.append(boxes[i].copy())
            k_score.append(scores[i])
            k_box_score.append(box_scores[i])
            k_label.append(labels[i])
            k_win = np.concatenate([k_win, wins[i][None]])
            continue
        # the union mask, on the union window
        ux0, uy0 = min(wx0, k_win[into, 0]), min(wy0, k_win[into, 1])
        ux1, uy1 = max(wx1, k_win[into, 2]), max(wy1, k_win[into, 3])
        merged = np.zeros((uy1 - uy0, ux1 - ux0), bool)
        kc, (kx, ky) = k_crop[into], k_off[into]
        merged[ky - uy0:ky - uy0 + kc.shape[0], kx - ux0:kx - ux0 + kc.shape[1]] = kc
        c = every.crops[i]
        merged[wy0 - uy0:wy0 - uy0 + c.shape[0], wx0 - ux0:wx0 - ux0 + c.shape[1]] |= c
        k_crop[into], k_off[into] = merged, (int(ux0), int(uy0))
        k_area[into] = int(np.count_nonzero(merged))
        k_win[into] = (ux0, uy0, ux1, uy1)
        b = k_box[into]
        k_box[into] = np.array([min(b[0], boxes[i, 0]), min(b[1], boxes[i, 1]), max(b[2], boxes[i, 2]),
                                max(b[3], boxes[i, 3])], np.float32)
        k_score[into] = max(k_score[into], scores[i])
        k_box_score[into] = max(k_box_score[into], box_scores[i])
    if not k_box:  # every mask was empty
        return _no_detections(names, (h, w))
    if cross_class_ios is not None:
        # A tile that sees only part of a large object may call the part another class (a
        # "square" fragment inside a big circle); the whole object, seen by the whole-image
        # pass or merged from neighbours, contains it. Drop such fragments.
        drop = set()
        for j in range(len(k_box)):
            for k in range(len(k_box)):
                if k == j or k in drop or k_label[k] == k_label[j] or k_area[k] < 2 * k_area[j]:
                    continue
                kx0, ky0, kx1, ky1 = k_win[k]
                jx0, jy0, jx1, jy1 = k_win[j]
                if kx0 >= jx1 or jx0 >= kx1 or ky0 >= jy1 or jy0 >= ky1:
                    continue
                x0, y0, x1, y1 = max(kx0, jx0), max(ky0, jy0), min(kx1, jx1), min(ky1, jy1)
                inter = np.count_nonzero(k_crop[k][y0 - ky0:y1 - ky0, x0 - kx0:x1 - kx0]
                                         & k_crop[j][y0 - jy0:y1 - jy0, x0 - jx0:x1 - jx0])
                if inter > cross_class_ios * k_area[j]:
                    drop.add(j)
                    break
        keep = [j for j in range(len(k_box)) if j not in drop]
        k_crop, k_off, k_box = [k_crop[j] for j in keep], [k_off[j] for j in keep], [k_box[j] for j in keep]
        k_score, k_box_score = [k_score[j] for j in keep], [k_box_score[j] for j in keep]
        k_label = [k_label[j] for j in keep]
    # Kept in descending score order already (each keeps the score of its first, best member).
    sort = np.argsort(-np.asarray(k_score, np.float32), kind="stable")[:top_k]
    return Results(boxes=np.stack(k_box)[sort].reshape(-1, 4), scores=np.asarray(k_score, np.float32)[sort],
                   labels=np.asarray(k_label, np.int64)[sort],
                   masks=MaskCrops([k_crop[j] for j in sort], np.array(k_off, np.int64)[sort], (h, w), tight=True),
                   class_names=names, box_scores=np.asarray(k_box_score, np.float32)[sort], image_shape=(h, w))
