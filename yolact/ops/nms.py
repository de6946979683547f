"""Non-maximum suppression: Fast NMS (the paper's, per class), cross-class Fast NMS, classic NMS.

All take decoded boxes [P, 4] (relative, point form), foreground class scores [C, P] and return
indices into P, class ids and scores, sorted by descending score, at most ``max_det``.
"""
from __future__ import annotations

from typing import Tuple

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
    if torch.jit.is_tracing():
        return box_iou(cand, cand).triu(diagonal=1).amax(dim=1) <= iou_threshold
    groups, num_dets = cand.shape[:2]
    if groups == 0 or num_dets == 0:
        return torch.zeros((groups, num_dets), dtype=torch.bool, device=cand.device)
    # The [G, D, D] IoU tensor is computed a few groups at a time so that the temporaries stay
    # in cache (and below the allocator's mmap threshold): same values, ~5x faster on CPU.
    step = max(1, (1 << 18) // (num_dets * num_dets))
    iou_max = torch.cat([box_iou(c, c).triu_(diagonal=1).amax(dim=1) for c in cand.split(step)])
    return iou_max <= iou_threshold


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
             top_k: int = 200, max_det: int = 100) -> NmsResult:
    """Per-class Fast NMS (the paper's): each class's ``top_k`` boxes go through
    :func:`fast_nms_keep`; the survivors of all classes are sorted by score, ``max_det`` kept.
    Traces to ONNX, zero candidates included."""
    # Only the top_k per class matter: a partial sort is ~8x cheaper than sorting every candidate.
    scores, idx = scores.topk(_clamped(top_k, scores.shape[1]), dim=1)
    num_classes, num_dets = idx.shape
    cand = boxes[idx.reshape(-1)].reshape(num_classes, -1, 4)  # -1: traced, not the tracing image's count
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
    """Fast NMS over all classes at once (class-agnostic): each prior keeps only its best
    class, then one group of ``top_k`` boxes goes through :func:`fast_nms_keep`."""
    best, classes = scores.max(dim=0)
    _, order = best.sort(0, descending=True)
    order = order[:top_k]
    keep = fast_nms_keep(boxes[order][None], iou_threshold)[0]
    keep = order[keep][:max_det]
    return keep, classes[keep], best[keep]


def classic_nms_single(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS for one class; returns kept indices in descending score order."""
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
    """Per-class greedy NMS of the candidates scoring above ``conf_thresh``."""
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
