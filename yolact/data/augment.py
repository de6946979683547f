"""Training augmentation, step for step as the original (its ``SSDAugmentation``): photometric
distortion, expand (zoom out onto a mean-filled canvas), random sample crop, mirror, and the
square resize that drops degenerate boxes.

Every random draw goes through a ``np.random.RandomState`` in the original's order and with the
original's calls, so the same state gives the same sample as the original given the same
global NumPy state (``benchmarks/train_vs_original.py`` checks this sample by sample). The
original's quirks are kept on purpose and documented in docs/training.md:

- the random crop's minimum-IoU test is a no-op (its author found that enforcing it halved
  mAP after 8k iterations); ``crop_enforce_min_iou`` turns it on;
- the crop's top-left corner is drawn with ``uniform(side - crop_side)``, i.e. between
  ``side - crop_side`` and 1, not from 0;
- crowd regions follow the same centre-in-crop rule as every other box;
- after the resize, box width and height *in pixels* are compared with ``min_box_size``
  (4/550), so only (near) zero-size boxes are dropped; ``min_box_size_relative`` compares
  fractions of the image instead;
- no clipping anywhere, and no channel swap (the original's is commented out).

Images are float32 BGR, masks uint8 (as pycocotools gives them; the resize rounds them to
{0, 1}), boxes float64 absolute (x1, y1, x2, y2) pixels until :func:`resize` makes them
relative.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from ..config import MEANS_BGR, YolactConfig

# The crop modes: None keeps the whole image; (min IoU, max IoU) otherwise.
CROP_MODES = (None, (0.1, None), (0.3, None), (0.7, None), (0.9, None), (None, None))


class Sample(NamedTuple):
    """One image and its objects on their way through the augmentation (the original passes the
    same four arrays plus ``num_crowds``). Boxes are absolute (x1, y1, x2, y2) pixels until
    :func:`resize` makes them relative to the image side; labels are contiguous 0-based classes."""
    image: np.ndarray   # HxWx3 float32 BGR
    masks: np.ndarray   # NxHxW uint8 {0, 1}
    boxes: np.ndarray   # Nx4 float64
    labels: np.ndarray  # N int64
    num_crowds: int     # the last num_crowds entries are crowd regions


def _contrast(img: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    if rs.randint(2):
        img *= rs.uniform(0.5, 1.5)
    return img


def _hsv_jitter(img: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    if rs.randint(2):  # saturation
        hsv[:, :, 1] *= rs.uniform(0.5, 1.5)
    if rs.randint(2):  # hue, wrapped once into [0, 360]
        hue = hsv[:, :, 0]
        hue += rs.uniform(-18.0, 18.0)
        hue[hue > 360.0] -= 360.0
        hue[hue < 0.0] += 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def photometric_distort(s: Sample, rs: np.random.RandomState) -> Sample:
    """Brightness +-32 (p 0.5), then contrast 0.5-1.5 (p 0.5) either before or after the HSV
    saturation (p 0.5) and hue +-18 degrees (p 0.5) jitter."""
    img = s.image.copy()
    if rs.randint(2):
        img += rs.uniform(-32, 32)
    if rs.randint(2):
        img = _hsv_jitter(_contrast(img, rs), rs)
    else:
        img = _contrast(_hsv_jitter(img, rs), rs)
    return s._replace(image=img)


def expand(s: Sample, rs: np.random.RandomState) -> Sample:
    """With p 0.5, place the image at a random spot of a 1-4x larger canvas filled with the mean."""
    if rs.randint(2):
        return s
    h, w, depth = s.image.shape
    ratio = rs.uniform(1, 4)
    left, top = int(rs.uniform(0, w * ratio - w)), int(rs.uniform(0, h * ratio - h))
    nh, nw = int(h * ratio), int(w * ratio)
    img = np.empty((nh, nw, depth), s.image.dtype)
    img[:] = MEANS_BGR
    img[top:top + h, left:left + w] = s.image
    masks = np.zeros((s.masks.shape[0], nh, nw), s.masks.dtype)
    masks[:, top:top + h, left:left + w] = s.masks
    boxes = s.boxes.copy()
    boxes[:, :2] += (left, top)
    boxes[:, 2:] += (left, top)
    return s._replace(image=img, masks=masks, boxes=boxes)


def _iou_with(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], rect[:2])
    rb = np.minimum(boxes[:, 2:], rect[2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    area_a = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    area_b = (rect[2:] - rect[:2]).prod()
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def random_sample_crop(s: Sample, rs: np.random.RandomState, enforce_min_iou: bool = False) -> Sample:
    """SSD random crop: pick a mode; try up to 50 crops (sides 0.3-1 of the image, aspect 0.5-2)
    that keep the centre of at least one non-crowd box (any crop of an image without one: a
    background image); keep the boxes (crowds too) whose
    centre is strictly inside, clipped to the crop. The original never applies the mode's
    minimum IoU; ``enforce_min_iou`` requires some non-crowd box to reach it."""
    h, w, _ = s.image.shape
    n = s.boxes.shape[0]
    is_crowd = np.zeros(n, bool)
    is_crowd[n - s.num_crowds:] = True
    while True:
        mode = CROP_MODES[rs.randint(0, len(CROP_MODES))]  # what np.random.choice draws
        if mode is None:
            return s
        min_iou = mode[0] if mode[0] is not None else -np.inf
        for _ in range(50):
            cw, ch = rs.uniform(0.3 * w, w), rs.uniform(0.3 * h, h)
            if ch / cw < 0.5 or ch / cw > 2:
                continue
            # uniform(a) is uniform(low=a, high=1.0): the original's corner lies in [1, side - crop]
            left, top = rs.uniform(w - cw), rs.uniform(h - ch)
            rect = np.array([int(left), int(top), int(left + cw), int(top + ch)])
            if enforce_min_iou and not (_iou_with(s.boxes[~is_crowd], rect) >= min_iou).any():
                continue
            centers = (s.boxes[:, :2] + s.boxes[:, 2:]) / 2.0
            keep = ((rect[0] < centers[:, 0]) & (rect[1] < centers[:, 1]) &
                    (rect[2] > centers[:, 0]) & (rect[3] > centers[:, 1]))
            if not (keep & ~is_crowd).any() and (~is_crowd).any():  # any crop of a background image
                continue
            boxes = s.boxes[keep].copy()
            boxes[:, :2] = np.maximum(boxes[:, :2], rect[:2]) - rect[:2]
            boxes[:, 2:] = np.minimum(boxes[:, 2:], rect[2:]) - rect[:2]
            return Sample(s.image[rect[1]:rect[3], rect[0]:rect[2]], s.masks[keep][:, rect[1]:rect[3], rect[0]:rect[2]],
                          boxes, s.labels[keep], int((keep & is_crowd).sum()))


def mirror(s: Sample, rs: np.random.RandomState) -> Sample:
    """With p 0.5 (one ``rs.randint(2)`` draw), flip left-right as the original's
    ``RandomMirror``: image [H, W, 3] and masks [N, H, W] reversed along x (views, not copies),
    absolute pixel boxes mapped to (W - x2, y1, W - x1, y2)."""
    if not rs.randint(2):
        return s
    w = s.image.shape[1]
    boxes = s.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - s.boxes[:, 2], w - s.boxes[:, 0]
    return s._replace(image=s.image[:, ::-1], masks=s.masks[:, :, ::-1], boxes=boxes)


MASK_RESIZE = ("bilinear", "area")


def _resize_masks(masks: np.ndarray, size: int, mode: str = "bilinear") -> np.ndarray:
    """uint8 0/1 masks [n, h, w] -> [n, size, size] uint8 0/1. 'bilinear': the original's (the
    uint8 mask resized, so >= 0.5 coverage); 'area': when shrinking, any coverage
    (:func:`_any_coverage`). Raises ValueError for another mode."""
    if mode not in MASK_RESIZE:
        raise ValueError(f"mask_resize '{mode}': expected one of {', '.join(MASK_RESIZE)}")
    if masks.shape[0] == 0:
        return np.zeros((0, size, size), masks.dtype)
    if mode == "area" and (masks.shape[1] > size or masks.shape[2] > size):
        return np.stack([_any_coverage(m, size) for m in masks]).astype(masks.dtype)
    # One object per channel, as the original; OpenCV takes at most 512 channels a call.
    parts = []
    for i in range(0, masks.shape[0], 512):
        r = cv2.resize(np.ascontiguousarray(masks[i:i + 512].transpose(1, 2, 0)), (size, size))
        parts.append(r[None] if r.ndim == 2 else r.transpose(2, 0, 1))
    return np.concatenate(parts)


def _any_coverage(mask: np.ndarray, size: int) -> np.ndarray:
    """[h, w] 0/1 -> [size, size] bool: an output pixel is set when its footprint in the source
    (rows floor(i h/size) .. ceil((i+1) h/size), the same for columns) holds any object pixel.
    Exact, by prefix sums along each axis (OpenCV's INTER_AREA drops some partial edge pixels)."""
    def along(x: np.ndarray, axis: int) -> np.ndarray:
        n = x.shape[axis]
        k = np.arange(size)
        lo, hi = k * n // size, -(-(k + 1) * n // size)  # floor and ceil, in integers
        c = np.concatenate([np.zeros_like(np.take(x, [0], axis)), np.cumsum(x, axis, dtype=np.int32)], axis)
        return (np.take(c, hi, axis) - np.take(c, lo, axis)) > 0

    return along(along(mask.astype(np.int32), 1), 0)


def resize(s: Sample, size: int, min_box_size: float = 0.0, relative: bool = False,
           mask_resize: str = "bilinear") -> Sample:
    """Square bilinear resize to ``size``; boxes become relative. Boxes (crowds too) whose width
    or height is not above ``min_box_size`` are dropped: in pixels after the resize, as the
    original, or as a fraction of the image when ``relative``. ``mask_resize``: see
    :func:`_resize_masks` (``cfg.mask_resize``)."""
    h, w, _ = s.image.shape
    img = cv2.resize(np.ascontiguousarray(s.image), (size, size))
    masks = _resize_masks(s.masks, size, mask_resize)
    boxes = s.boxes * np.array([size / w, size / h, size / w, size / h])
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if relative:
        bw, bh = bw / size, bh / size
    keep = (bw > min_box_size) & (bh > min_box_size)
    n_crowd = int(keep[keep.shape[0] - s.num_crowds:].sum()) if s.num_crowds else 0
    return Sample(img, masks[keep], boxes[keep] / size, s.labels[keep], n_crowd)


def train_transform(s: Sample, cfg: YolactConfig, rs: np.random.RandomState) -> Sample:
    """The original's ``SSDAugmentation`` up to its normalisation (done by ``to_tensors``): image to
    float32, then photometric distortion, expand, random crop and mirror, each when its
    ``cfg.augment_*`` flag is on, drawing from ``rs`` in the original's order; then :func:`resize`
    to ``cfg.max_size``. In: absolute pixel boxes; out: image [S, S, 3] float32 BGR, masks
    [n, S, S] uint8, boxes relative to S (not clipped), degenerate boxes dropped."""
    s = s._replace(image=s.image.astype(np.float32))
    if cfg.augment_photometric:
        s = photometric_distort(s, rs)
    if cfg.augment_expand:
        s = expand(s, rs)
    if cfg.augment_crop:
        s = random_sample_crop(s, rs, cfg.crop_enforce_min_iou)
    if cfg.augment_mirror:
        s = mirror(s, rs)
    return resize(s, cfg.max_size, cfg.min_box_size, cfg.min_box_size_relative, cfg.mask_resize)


def eval_transform(s: Sample, cfg: YolactConfig) -> Sample:
    """Evaluation: image to float32 and resized to ``cfg.max_size`` square, no random draw (the
    original's ``BaseTransform`` without its normalisation). Boxes become relative; only those of
    zero or negative width or height are dropped."""
    return resize(s._replace(image=s.image.astype(np.float32)), cfg.max_size)
