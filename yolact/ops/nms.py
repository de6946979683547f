"""Non-maximum suppression: Fast NMS (the paper's, per class), cross-class Fast NMS, classic NMS.

All take decoded boxes [P, 4] (relative, point form), foreground class scores [C, P] and return
indices into P, class ids and scores, sorted by descending score, at most ``max_det``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from .boxes import box_iou

NmsResult = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # prior index, class, score


def _clamped(k: int, n: torch.Tensor) -> int:
    """min(k, n) that stays a graph value when traced (ONNX export), so a graph built on one
    image still works when an image has fewer candidates, none included."""
    if torch.jit.is_tracing():
        return torch.clamp(torch.as_tensor(n), max=k)  # type: ignore[return-value]
    return min(k, int(n))


def fast_nms_keep(cand: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """The Fast NMS rule itself (YOLACT paper, section 3.4; original layers/functions/detection.py).

    ``cand`` [G, D, 4]: G independent groups (classes) of D boxes each, in descending score
    order. A box is kept unless a higher-scoring box of its group overlaps it by more than
    ``iou_threshold`` -- even if that box is itself suppressed (the relaxation that makes it one
    matrix operation). Returns the keep mask [G, D] (bool).
    """
    if torch.jit.is_tracing() or torch.compiler.is_exporting():  # a graph: no NumPy
        return box_iou(cand, cand).triu(diagonal=1).amax(dim=1) <= iou_threshold
    groups, num_dets = cand.shape[:2]
    if groups == 0 or num_dets == 0:
        return torch.zeros((groups, num_dets), dtype=torch.bool, device=cand.device)
    # On the CPU the [G, D, D] IoU tensor is computed a few groups at a time so that the
    # temporaries stay in cache (and below the allocator's mmap threshold): same values, ~5x
    # faster. On a GPU in one pass: each chunk costs ~20 kernel launches, and 14 chunks per image
    # (80 classes x 200 boxes) made the launches, not the arithmetic, bound batched inference
    # (~300 launches an image; batch 32 spent ~140 ms more than the original on an H200).
    # Chunking only splits independent groups (the max over each row does not depend on it), so
    # both give the same bits.
    step = max(1, (1 << 18) // (num_dets * num_dets)) if cand.device.type == "cpu" else groups
    if cand.device.type == "cpu" and cand.dtype == torch.float32 and not cand.requires_grad:
        # NumPy's broadcasting runs these [G, D, D] element-wise steps ~2x faster than
        # PyTorch's on one CPU thread; the same IEEE float32 operations in the same order, so
        # the same bits (tests/test_ops.py pins it).
        boxes = cand.detach().numpy()
        below = np.tri(num_dets, dtype=bool)  # what triu(diagonal=1) zeroes
        # One thread: spreading the chunks over torch's threads was ~1.4x alone but nothing inside
        # predict, where PyTorch's OpenMP threads still spin after the topk before it
        parts = [_iou_max_numpy(boxes[k:k + step], below) for k in range(0, len(boxes), step)]
        return torch.from_numpy(np.concatenate(parts) <= iou_threshold)
    iou_max = torch.cat([box_iou(c, c).triu_(diagonal=1).amax(dim=1) for c in cand.split(step)])
    return iou_max <= iou_threshold


def _iou_max_numpy(cand: np.ndarray, below: np.ndarray) -> np.ndarray:
    """``box_iou(cand, cand).triu_(diagonal=1).amax(dim=1)`` of float32 [G, D, 4] boxes in
    NumPy, operation for operation (NaN propagates the same way; only the sign of a zero
    may differ, which no comparison sees): float32 [G, D]. ``below``: bool [D, D], True on and
    below the diagonal (``np.tri(D)``)."""
    x1, y1, x2, y2 = (cand[..., k] for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 is NaN here as in PyTorch
        inter_w = np.minimum(x2[..., :, None], x2[..., None, :])
        inter_w -= np.maximum(x1[..., :, None], x1[..., None, :])
        np.maximum(inter_w, 0, out=inter_w)  # clamp(min=0); NaN stays NaN
        inter_h = np.minimum(y2[..., :, None], y2[..., None, :])
        inter_h -= np.maximum(y1[..., :, None], y1[..., None, :])
        np.maximum(inter_h, 0, out=inter_h)
        inter = inter_w
        inter *= inter_h
        area = (x2 - x1) * (y2 - y1)
        union = area[..., :, None] + area[..., None, :]
        union -= inter
        inter /= union
    np.copyto(inter, 0, where=below)  # np.triu(inter, 1) without its copy
    return inter.max(axis=1)


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
             top_k: int = 200, max_det: int = 100) -> NmsResult:
    """Per-class Fast NMS (the paper's; the original's ``layers/functions/detection.py:
    fast_nms``): each class's ``top_k`` boxes go through :func:`fast_nms_keep`; the survivors of
    all classes are sorted by score, ``max_det`` kept. ``boxes`` [P, 4] relative point form, ``scores`` [C, P]
    foreground -> (prior indices [D] int64, classes [D] int64 0-based, scores [D]). Traces to
    ONNX, zero candidates included."""
    # Only the top_k per class matter: a partial sort is ~8x cheaper than sorting every candidate.
    scores, idx = scores.topk(_clamped(top_k, scores.shape[1]), dim=1)
    num_classes, num_dets = idx.shape
    # Traced: -1, so the graph does not keep the tracing image's candidate count.
    cand = boxes[idx.reshape(-1)].reshape(num_classes, -1 if torch.jit.is_tracing() else num_dets, 4)
    keep = fast_nms_keep(cand, iou_threshold)
    classes = torch.arange(num_classes, device=boxes.device)[:, None].expand_as(keep)[keep]
    idx = idx[keep]
    scores = scores[keep]
    if torch.jit.is_tracing():
        scores, order = scores.topk(_clamped(max_det, scores.shape[0]))
        return idx[order], classes[order], scores
    scores, order = scores.sort(0, descending=True)
    order = order[:max_det]
    return idx[order], classes[order], scores[:max_det]


def cross_class_fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
                         top_k: int = 200, max_det: int = 100) -> NmsResult:
    """Fast NMS over all classes at once (class-agnostic; the original's
    ``layers/functions/detection.py: cc_fast_nms``): each prior keeps only its best class, then
    one group of ``top_k`` boxes goes through :func:`fast_nms_keep`. Inputs and outputs as
    :func:`fast_nms`."""
    best, classes = scores.max(dim=0)
    _, order = best.sort(0, descending=True)
    order = order[:top_k]
    keep = fast_nms_keep(boxes[order][None], iou_threshold)[0]
    keep = order[keep][:max_det]
    return keep, classes[keep], best[keep]


def classic_nms_single(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS for one class: ``boxes`` [n, 4], ``scores`` [n] -> kept indices [k] (int64)
    in descending score order; a box is dropped when its IoU with a kept one is > ``iou_threshold``."""
    order = scores.argsort(descending=True)
    keep = []
    iou = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def classic_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
                conf_thresh: float = 0.05, max_det: int = 100) -> NmsResult:
    """Per-class greedy NMS of the candidates scoring above ``conf_thresh`` (standard NMS, the
    original's ``traditional_nms`` option). Box and score shapes and outputs as :func:`fast_nms`;
    a Python loop, not traceable."""
    idx_all, cls_all, scr_all = [], [], []
    for c in range(scores.shape[0]):
        sel = (scores[c] > conf_thresh).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        keep = sel[classic_nms_single(boxes[sel], scores[c, sel], iou_threshold)]
        idx_all.append(keep)
        cls_all.append(torch.full_like(keep, c))
        scr_all.append(scores[c, keep])
    if not idx_all:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, empty, scores.new_zeros(0)
    idx, classes, scr = torch.cat(idx_all), torch.cat(cls_all), torch.cat(scr_all)
    scr, order = scr.sort(0, descending=True)
    order = order[:max_det]
    return idx[order], classes[order], scr[:max_det]
