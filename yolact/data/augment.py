"""SSD-style training augmentation as in the original: photometric distortion, expand (zoom
out with mean fill), random sample crop, mirror, resize to the preset size, and dropping of
boxes smaller than ``min_box_size``. Every step keeps image, masks and boxes consistent.

All randomness comes from the ``np.random.Generator`` passed in, so runs are reproducible.
Boxes are absolute (x1, y1, x2, y2) pixels until :func:`resize`, which makes them relative.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from ..config import MEANS_BGR, YolactConfig


class Sample(NamedTuple):
    image: np.ndarray   # HxWx3 float32 BGR
    masks: np.ndarray   # NxHxW float32
    boxes: np.ndarray   # Nx4 float32
    labels: np.ndarray  # N int64
    num_crowds: int     # the last num_crowds entries are crowd regions


def photometric_distort(s: Sample, rng: np.random.Generator) -> Sample:
    img = s.image.copy()
    if rng.random() < 0.5:
        img += rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5

    def contrast(x):
        return x * rng.uniform(0.5, 1.5) if rng.random() < 0.5 else x

    if contrast_first:
        img = contrast(img)
    hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.float32), cv2.COLOR_BGR2HSV)
    if rng.random() < 0.5:
        hsv[:, :, 1] *= rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-18, 18)) % 360.0
    img = cv2.cvtColor(np.clip(hsv, [0, 0, 0], [360, 1, 255]).astype(np.float32), cv2.COLOR_HSV2BGR)
    if not contrast_first:
        img = contrast(img)
    if rng.random() < 0.5:
        img = img[:, :, rng.permutation(3)]
    return s._replace(image=np.clip(img, 0, 255).astype(np.float32))


def expand(s: Sample, rng: np.random.Generator) -> Sample:
    if rng.random() < 0.5:
        return s
    h, w, _ = s.image.shape
    ratio = rng.uniform(1, 4)
    left, top = int(rng.uniform(0, w * ratio - w)), int(rng.uniform(0, h * ratio - h))
    nh, nw = int(h * ratio), int(w * ratio)
    img = np.empty((nh, nw, 3), np.float32)
    img[:] = MEANS_BGR
    img[top:top + h, left:left + w] = s.image
    masks = np.zeros((s.masks.shape[0], nh, nw), np.float32)
    masks[:, top:top + h, left:left + w] = s.masks
    boxes = s.boxes + np.array([left, top, left, top], np.float32)
    return s._replace(image=img, masks=masks, boxes=boxes)


def _iou_with(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], rect[:2])
    rb = np.minimum(boxes[:, 2:], rect[2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    area_a = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    area_b = (rect[2:] - rect[:2]).prod()
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def random_sample_crop(s: Sample, rng: np.random.Generator) -> Sample:
    """SSD random crop: pick a minimum IoU mode, try up to 50 crops whose IoU with some box
    passes it and that keep at least one non-crowd box centre; masks are cropped alike."""
    h, w, _ = s.image.shape
    modes = (None, (0.1, None), (0.3, None), (0.7, None), (0.9, None), (None, None))
    n_real = s.boxes.shape[0] - s.num_crowds
    while True:
        mode = modes[rng.integers(0, len(modes))]
        if mode is None or n_real == 0:
            return s
        min_iou = mode[0] if mode[0] is not None else -np.inf
        for _ in range(50):
            cw, ch = rng.uniform(0.3 * w, w), rng.uniform(0.3 * h, h)
            if ch / cw < 0.5 or ch / cw > 2:
                continue
            left, top = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
            rect = np.array([int(left), int(top), int(left + cw), int(top + ch)])
            if _iou_with(s.boxes[:n_real], rect).max() < min_iou:
                continue
            centers = (s.boxes[:, :2] + s.boxes[:, 2:]) / 2
            inside = ((centers[:, 0] > rect[0]) & (centers[:, 1] > rect[1]) &
                      (centers[:, 0] < rect[2]) & (centers[:, 1] < rect[3]))
            if not inside[:n_real].any():
                continue
            # Crowds are kept whenever they overlap the crop: they only mark regions to ignore.
            crowd_keep = np.zeros(s.boxes.shape[0], bool)
            crowd_keep[n_real:] = True
            keep = inside | crowd_keep
            boxes = s.boxes[keep].copy()
            boxes[:, :2] = np.maximum(boxes[:, :2], rect[:2]) - rect[:2]
            boxes[:, 2:] = np.minimum(boxes[:, 2:], rect[2:]) - rect[:2]
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            masks = s.masks[keep][:, rect[1]:rect[3], rect[0]:rect[2]]
            labels = s.labels[keep]
            n_crowd = int((valid & crowd_keep[keep]).sum())
            return Sample(s.image[rect[1]:rect[3], rect[0]:rect[2]].copy(), masks[valid].copy(),
                          boxes[valid], labels[valid], n_crowd)


def mirror(s: Sample, rng: np.random.Generator) -> Sample:
    if rng.random() < 0.5:
        return s
    w = s.image.shape[1]
    boxes = s.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - s.boxes[:, 2], w - s.boxes[:, 0]
    return s._replace(image=s.image[:, ::-1].copy(), masks=s.masks[:, :, ::-1].copy(), boxes=boxes)


def resize(s: Sample, size: int, min_box_size: float) -> Sample:
    """Square resize to ``size``; boxes become relative; tiny non-crowd boxes are dropped."""
    h, w, _ = s.image.shape
    img = cv2.resize(s.image, (size, size), interpolation=cv2.INTER_LINEAR)
    if s.masks.shape[0]:
        masks = np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR) for m in s.masks])
    else:
        masks = np.zeros((0, size, size), np.float32)
    boxes = s.boxes / np.array([w, h, w, h], np.float32)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (bw > min_box_size) & (bh > min_box_size)
    n_real = boxes.shape[0] - s.num_crowds
    keep[n_real:] = True  # crowds are never dropped for size
    n_crowd = int(keep[n_real:].sum())
    return Sample(img, masks[keep], boxes[keep].astype(np.float32), s.labels[keep], n_crowd)


def train_transform(s: Sample, cfg: YolactConfig, rng: np.random.Generator) -> Sample:
    if cfg.augment_photometric:
        s = photometric_distort(s, rng)
    if cfg.augment_expand:
        s = expand(s, rng)
    if cfg.augment_crop:
        s = random_sample_crop(s, rng)
    if cfg.augment_mirror:
        s = mirror(s, rng)
    return resize(s, cfg.max_size, cfg.min_box_size)


def eval_transform(s: Sample, cfg: YolactConfig) -> Sample:
    return resize(s, cfg.max_size, 0.0)
