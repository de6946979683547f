"""Polygons bounded before they are rasterised.

pycocotools walks every polygon edge in 1/5-pixel steps and OpenCV draws in 16.16 fixed point,
so one vertex at (2e8, 3.5e8) makes pycocotools allocate gigabytes and OpenCV wrap around. A
polygon whose vertices lie within one image size of the image is left as it is (its mask is
pycocotools' own, bit for bit); one reaching further is clipped to the image (plus a one-pixel
margin) first. Clipping keeps exactly the part of the polygon inside the image, which is all a
mask of that image can hold: the mask is the one pycocotools would give with unbounded memory
(up to its 1/5-pixel edge rounding where clipped edges meet the margin).
"""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np


def far_vertices(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """bool [N]: which vertices of ``xy`` [N, 2] (x, y pixels) lie more than one image size
    outside the image [0, w] x [0, h]."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    return (xy[:, 0] < -w) | (xy[:, 0] > 2 * w) | (xy[:, 1] < -h) | (xy[:, 1] > 2 * h)


def is_far_outside(xy: np.ndarray, h: int, w: int) -> bool:
    """True when a vertex lies far outside the image: the polygon must be clipped before it is
    rasterised."""
    return bool(far_vertices(xy, h, w).any())


def clip_polygon(xy: np.ndarray, h: int, w: int, margin: float = 1.0) -> np.ndarray:
    """The part of the polygon ``xy`` [N, 2] (x, y pixels, float64) inside the rectangle
    [-margin, w + margin] x [-margin, h + margin] (Sutherland-Hodgman), as [M, 2] float64;
    M < 3 when nothing of it lies inside."""
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    lo_x, lo_y, hi_x, hi_y = -margin, -margin, w + margin, h + margin
    # Each edge of the rectangle as (axis, bound, keep the side where coordinate >= bound?).
    for axis, bound, keep_ge in ((0, lo_x, True), (0, hi_x, False), (1, lo_y, True), (1, hi_y, False)):
        if len(pts) == 0:
            break
        inside = pts[:, axis] >= bound if keep_ge else pts[:, axis] <= bound
        out = []
        prev, prev_in = pts[-1], inside[-1]
        for cur, cur_in in zip(pts, inside):
            if cur_in != prev_in:  # the edge crosses the bound: keep the crossing point
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(prev + t * (cur - prev))
            if cur_in:
                out.append(cur)
            prev, prev_in = cur, cur_in
        pts = np.array(out, np.float64).reshape(-1, 2)
    return pts


def bounded_polygon(xy, h: int, w: int) -> Optional[np.ndarray]:
    """``xy`` [N, 2] as it is when it is near the image, else clipped to it; None when nothing
    of a far polygon lies inside the image."""
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    if not is_far_outside(pts, h, w):
        return pts
    clipped = clip_polygon(pts, h, w)
    return clipped if len(clipped) >= 3 else None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _polygon_parts(seg: list) -> List[list]:
    """The usable parts of a polygon segmentation: at least 3 points of finite numbers."""
    return [p for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
            and all(_is_number(v) for v in p)]


def bounded_parts(seg: list, h: int, w: int) -> List[list]:
    """The usable polygon parts, each clipped to the image when a vertex lies far outside it
    (memory stays bounded whatever the numbers); parts with nothing inside are dropped."""
    out = []
    for part in _polygon_parts(seg):
        if not is_far_outside(np.asarray(part, np.float64), h, w):
            out.append(part)  # untouched: pycocotools' own mask, bit for bit
            continue
        xy = bounded_polygon(np.asarray(part, np.float64), h, w)
        if xy is not None:
            out.append(xy.reshape(-1).tolist())
    return out
