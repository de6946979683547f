"""Similarities and matching shared by the trackers: box IoU, mask IoU, and the one-to-one
assignment (Hungarian, scipy) with a similarity floor."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from ..errors import YolactError


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixel boxes [N, 4] and [M, 4] (x1, y1, x2, y2; area (x2 - x1) (y2 - y1), no +1) ->
    float64 IoU [N, M]; pairs with no area give 0."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Binary masks [N, h, w] and [M, h, w] (bool or 0/1 of any dtype) -> IoU [N, M]; two
    empty masks give 0."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    return inter / np.maximum(fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter, 1e-9)


def class_gate(sim: np.ndarray, track_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``sim`` [N, M] with the pairs of different classes (track label != detection label) set to 0."""
    if sim.size == 0:
        return sim
    return np.where(track_labels[:, None] == labels[None, :], sim, 0.0)


def assign(similarity: np.ndarray, threshold: float) -> Tuple[List[Tuple[int, int]], List[int], List[int]]:
    """Maximum-similarity one-to-one matching (Hungarian, scipy), keeping pairs >= threshold.
    -> (matches, unmatched rows, unmatched columns). Raises YolactError without scipy."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise YolactError("tracking needs scipy: pip install 'yolact[track]'") from None

    rows, cols = similarity.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    r, c = linear_sum_assignment(-similarity)
    matches = [(int(i), int(j)) for i, j in zip(r, c) if similarity[i, j] >= threshold]
    mr, mc = {i for i, _ in matches}, {j for _, j in matches}
    return matches, [i for i in range(rows) if i not in mr], [j for j in range(cols) if j not in mc]
