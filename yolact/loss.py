"""YOLACT training losses (see YOLACT-FACTS.md, "Training").

Targets per image: ``boxes`` [N, 4] relative (x1, y1, x2, y2), ``labels`` [N] 0-based
foreground classes, ``masks`` [N, S, S] float in {0, 1} at input size, and ``num_crowds``:
the last ``num_crowds`` entries are crowd regions (only used to ignore priors).
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .config import YolactConfig
from .ops.boxes import box_iou, center_size, encode, point_form
from .ops.masks import crop


class MatchResult(NamedTuple):
    loc_t: torch.Tensor    # [P, 4] regression targets
    conf_t: torch.Tensor   # [P] 0 background, -1 ignored, c+1 foreground class c
    idx_t: torch.Tensor    # [P] index of the matched GT
    boxes_t: torch.Tensor  # [P, 4] matched GT box (point form)


def match(truths: torch.Tensor, labels: torch.Tensor, priors: torch.Tensor, pos_thresh: float,
          neg_thresh: float, crowd_boxes: Optional[torch.Tensor] = None, crowd_thresh: float = 0.7) -> MatchResult:
    """SSD matching: IoU >= pos positive, < neg background, in between ignored; every GT keeps
    its best prior (taken greedily, highest overlap first); priors overlapping a crowd by more
    than ``crowd_thresh`` are ignored unless positive."""
    decoded = point_form(priors)
    overlaps = box_iou(truths, decoded)
    best_truth_overlap, best_truth_idx = overlaps.max(0)
    for _ in range(overlaps.shape[0]):
        best_prior_overlap, best_prior_idx = overlaps.max(1)
        j = best_prior_overlap.argmax()
        i = best_prior_idx[j]
        overlaps[:, i] = -1
        overlaps[j, :] = -1
        best_truth_overlap[i] = 2
        best_truth_idx[i] = j
    boxes_t = truths[best_truth_idx]
    conf = labels[best_truth_idx] + 1
    conf[best_truth_overlap < pos_thresh] = -1
    conf[best_truth_overlap < neg_thresh] = 0
    if crowd_boxes is not None and crowd_boxes.numel() and crowd_thresh < 1:
        crowd_overlap = box_iou(decoded, crowd_boxes, iscrowd=True).max(1).values
        conf[(conf <= 0) & (crowd_overlap > crowd_thresh)] = -1
    return MatchResult(encode(boxes_t, priors), conf, best_truth_idx, boxes_t)


def ohem_conf_loss(conf: torch.Tensor, conf_t: torch.Tensor, negpos_ratio: int = 3) -> torch.Tensor:
    """Softmax CE over positives plus the hardest negatives (by background loss), 3:1, summed.

    conf [B, P, C+1] logits; conf_t [B, P] with -1 for ignored priors.
    """
    b, p, c = conf.shape
    pos = conf_t > 0
    with torch.no_grad():
        bg_loss = (torch.logsumexp(conf, -1) - conf[..., 0])
        bg_loss[pos] = 0
        bg_loss[conf_t < 0] = 0
        _, loss_idx = bg_loss.sort(1, descending=True)
        _, idx_rank = loss_idx.sort(1)
        num_neg = torch.clamp(negpos_ratio * pos.long().sum(1, keepdim=True), max=p - 1)
        neg = idx_rank < num_neg
        neg[pos] = False
        neg[conf_t < 0] = False
    sel = pos | neg
    return F.cross_entropy(conf[sel], conf_t[sel], reduction="sum")


def mask_loss(proto: torch.Tensor, coef: torch.Tensor, gt_masks: torch.Tensor, idx_t: torch.Tensor,
              boxes_t: torch.Tensor, scale: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """BCE of the box-cropped sigmoid(P C^T) against GT masks at proto size (binarised, not
    cropped), normalised by the GT box area in proto pixels; summed over masks and times
    ``scale`` (the original's positives / masks_to_train when a subset was drawn).

    proto [H, W, K]; coef [n, K] of the positives; gt_masks [N, H, W] downsampled+binarised;
    idx_t [n] GT index of each positive; boxes_t [n, 4] its box. Also returns the cropped
    predicted masks [H, W, n], which YOLACT++'s mask-IoU term takes with their gradient.
    """
    h, w, _ = proto.shape
    pred = crop(torch.sigmoid(proto @ coef.t()), boxes_t)  # [H, W, n]
    target = gt_masks[idx_t].permute(1, 2, 0)
    if not bool(torch.isfinite(pred).all()):
        # binary_cross_entropy refuses NaN: hand a NaN loss to the trainer's guard instead.
        return pred.sum() * float("nan"), pred
    # As the original: BCE on probabilities (PyTorch clamps each log at -100), so a GT pixel
    # outside the padded box costs 100 and a saturated prediction gets no gradient.
    pre = F.binary_cross_entropy(pred.clamp(0, 1), target, reduction="none")
    wh = center_size(boxes_t)[:, 2:]
    # The original's "emulate ROI pooling" normalisation: sum / box area (proto px) * H * W;
    # the final mask_alpha / (H * W) then cancels the H * W.
    per_mask = pre.sum(dim=(0, 1)) / (wh[:, 0] * w) / (wh[:, 1] * h)
    return (per_mask * scale).sum(), pred


def semantic_loss(segm: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sigmoid BCE per class against the union of that class's GT masks at P3 size, / area."""
    c, h, w = segm.shape
    with torch.no_grad():
        target = torch.zeros_like(segm)
        if masks.shape[0]:
            down = F.interpolate(masks[None], (h, w), mode="bilinear", align_corners=False)[0].gt(0.5).float()
            for m, lab in zip(down, labels):
                target[lab] = torch.maximum(target[lab], m)
    return F.binary_cross_entropy_with_logits(segm, target, reduction="sum") / (h * w)


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks [H, W, n] pairwise along n."""
    inter = (pred * gt).sum(dim=(0, 1))
    union = pred.sum(dim=(0, 1)) + gt.sum(dim=(0, 1)) - inter
    return inter / union.clamp(min=1e-6)


class YolactLoss:
    """Computes the weighted loss terms; returns a dict with 'box', 'conf', 'mask', 'semantic',
    ('maskiou'), and their sum 'total'."""

    def __init__(self, cfg: YolactConfig):
        self.cfg = cfg

    def __call__(self, out, targets: List[Dict[str, torch.Tensor]], maskiou_net=None,
                 generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        loc, conf, coef, proto, priors, segm = out
        bsz = loc.shape[0]
        ph, pw = proto.shape[1:3]
        conf_t_all, loss_box, loss_mask, loss_sem = [], loc.new_zeros(()), loc.new_zeros(()), loc.new_zeros(())
        iou_inputs, iou_targets, iou_labels = [], [], []
        for b in range(bsz):
            t = targets[b]
            n_crowd = int(t.get("num_crowds", 0))
            boxes, labels, masks = t["boxes"], t["labels"].long(), t["masks"]
            crowd = boxes[boxes.shape[0] - n_crowd:] if n_crowd else None
            if n_crowd:
                boxes, labels, masks = boxes[:-n_crowd], labels[:-n_crowd], masks[:-n_crowd]
            if boxes.shape[0] == 0:
                conf_t_all.append(torch.zeros(priors.shape[0], dtype=torch.long, device=loc.device))
                continue
            m = match(boxes, labels, priors, cfg.pos_iou_thresh, cfg.neg_iou_thresh, crowd, cfg.crowd_iou_thresh)
            conf_t_all.append(m.conf_t)
            pos = m.conf_t > 0
            loss_box = loss_box + F.smooth_l1_loss(loc[b][pos], m.loc_t[pos], reduction="sum")
            if segm is not None:
                loss_sem = loss_sem + semantic_loss(segm[b], masks, labels)
            pos_idx = pos.nonzero().squeeze(1)
            if pos_idx.numel() == 0:
                continue
            # Too many positives: train masks on a random subset (drawn from the global RNG unless
            # a generator is given, like the original) and scale that image's mask loss back up.
            scale = 1.0
            if pos_idx.numel() > cfg.masks_to_train:
                scale = pos_idx.numel() / cfg.masks_to_train
                perm = torch.randperm(pos_idx.numel(), generator=generator)[: cfg.masks_to_train]
                pos_idx = pos_idx[perm.to(pos_idx.device)]
            with torch.no_grad():
                gt_small = F.interpolate(masks[None], (ph, pw), mode="bilinear", align_corners=False)[0].gt(0.5).float()
            idx_t, boxes_t = m.idx_t[pos_idx], m.boxes_t[pos_idx]
            loss_b, pred = mask_loss(proto[b], coef[b][pos_idx], gt_small, idx_t, boxes_t, scale)
            loss_mask = loss_mask + loss_b
            if maskiou_net is not None:
                gt = gt_small[idx_t].permute(1, 2, 0)
                keep = gt.sum(dim=(0, 1)) > cfg.discard_mask_area
                if keep.any():
                    # The original feeds the re-scoring net the cropped soft masks with their
                    # gradient, so this term trains the prototypes and coefficients too.
                    net_in = pred.detach() if cfg.maskiou_detach_input else pred
                    iou_inputs.append(net_in.permute(2, 0, 1)[keep][:, None])
                    with torch.no_grad():
                        iou_targets.append(mask_iou(pred.gt(0.5).float(), gt)[keep])
                    iou_labels.append(labels[idx_t][keep])
        conf_t = torch.stack(conf_t_all)
        num_pos = (conf_t > 0).sum().float()
        if dist.is_available() and dist.is_initialized():
            # DDP averages gradients over ranks: normalising by the global positive count
            # divided by the world size makes that average equal the single-process loss.
            dist.all_reduce(num_pos)
            num_pos = num_pos / dist.get_world_size()
        num_pos = num_pos.clamp(min=1)
        losses = {
            "box": loss_box * cfg.bbox_alpha / num_pos,
            "conf": ohem_conf_loss(conf, conf_t, cfg.ohem_negpos_ratio) * cfg.conf_alpha / num_pos,
            "mask": loss_mask * cfg.mask_alpha / num_pos,
        }
        if segm is not None:
            losses["semantic"] = loss_sem * cfg.semantic_alpha / bsz
        if maskiou_net is not None:
            if iou_inputs:
                pred_iou = maskiou_net(torch.cat(iou_inputs))
                pred_iou = pred_iou.gather(1, torch.cat(iou_labels)[:, None]).squeeze(1)
                l_iou = F.smooth_l1_loss(pred_iou, torch.cat(iou_targets), reduction="sum")
            else:  # keep the net in the graph so DDP sees a gradient for every parameter
                l_iou = sum(p.sum() * 0 for p in maskiou_net.parameters())
            losses["maskiou"] = l_iou * cfg.maskiou_alpha / num_pos
        losses["total"] = sum(losses.values())
        return losses
