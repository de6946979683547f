"""Non-maximum suppression: Fast NMS (the paper's, per class), cross-class Fast NMS, classic NMS.

All take decoded boxes [P, 4] (relative, point form), foreground class scores [C, P] and return
indices into P, class ids and scores, sorted by descending score, at most ``max_det``.
"""
from __future__ import annotations

from typing import Tuple

import torch

from .boxes import box_iou

NmsResult = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # prior index, class, score


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
             top_k: int = 200, max_det: int = 100) -> NmsResult:
    """Fast NMS: per class, keep a box unless a higher-scoring box of its class overlaps it
    by more than ``iou_threshold`` -- even if that box is itself suppressed (the paper's
    relaxation, which makes it one matrix operation)."""
    # Only the top_k per class matter: a partial sort is ~8x cheaper than sorting every candidate.
    scores, idx = scores.topk(min(top_k, scores.shape[1]), dim=1)
    num_classes, num_dets = idx.shape
    if num_classes == 0 or num_dets == 0:
        empty = idx.new_zeros(0)
        return empty, empty, scores.new_zeros(0)
    cand = boxes[idx.view(-1)].view(num_classes, num_dets, 4)
    # The [classes, k, k] IoU tensor is computed a few classes at a time so that the temporaries
    # stay in cache (and below the allocator's mmap threshold): same values, ~5x faster on CPU.
    step = max(1, (1 << 18) // (num_dets * num_dets))
    iou_max = torch.cat([box_iou(c, c).triu_(diagonal=1).amax(dim=1) for c in cand.split(step)])
    keep = iou_max <= iou_threshold
    classes = torch.arange(num_classes, device=boxes.device)[:, None].expand_as(keep)[keep]
    idx = idx[keep]
    scores = scores[keep]
    scores, order = scores.sort(0, descending=True)
    order = order[:max_det]
    return idx[order], classes[order], scores[:max_det]


def cross_class_fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
                         top_k: int = 200, max_det: int = 100) -> NmsResult:
    """Fast NMS over all classes at once: each prior keeps only its best class."""
    best, classes = scores.max(dim=0)
    _, order = best.sort(0, descending=True)
    order = order[:top_k]
    iou = box_iou(boxes[order], boxes[order]).triu_(diagonal=1)
    iou_max, _ = iou.max(dim=0)
    keep = order[iou_max <= iou_threshold][:max_det]
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
